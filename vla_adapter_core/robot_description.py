"""Robot descriptions: the one home of every robot fact (numpy + PyYAML only; no ROS, no torch).

A robot is described by one YAML file under ``config/robots/`` (or any file a user writes):
which arms the policy drives (driver namespace, side, arm model), their gripper calibration and
start pose, the teleoperation leader arms, the cameras and the control rate, and optionally what
the sensors deliver (``camera_size: [height, width]``, ``camera_rate_hz``,
``joint_states_rate_hz``; the recording session's pre-flight check holds the live topics to
them). Arm models (joint
names in driver order, position and speed limits, gripper and finger joints) live in
``config/robots/arms/<model>.yaml`` and are shared by every description that names them. A file
may start from another with ``extends: NAME`` (mappings merge, lists replace).

Conventions the policy sees (one vector per step, arms in description order, left first):
- per arm its arm joints in driver order (rad), then the gripper normalised to 0 (closed) .. 1
  (open);
- proprio (observation): the gripper normalised in finger space (the driver's first finger joint,
  metres); actions: the gripper joint angle normalised with the calibration of the arm that
  produced it (leader arms when teleoperating) and de-normalised with the follower's on the robot.

:class:`RobotLayout` names every action / proprio dimension; a checkpoint stores the layout it was
trained on, and the inference node refuses a checkpoint whose layout differs from the robot's.
Every problem in a file raises :class:`RobotDescriptionError` naming the file, field and value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

GRIPPER_CONVENTIONS = ('normalized', 'raw')
SIDES = ('left', 'right')
START_GRIPPER = {'open': 1.0, 'closed': 0.0}
DEFAULT_CAMERA_TOPIC = '/{camera}/camera/color/image_rect_raw'
MAX_EXTENDS_DEPTH = 8


class RobotDescriptionError(ValueError):
    """A robot description that cannot be used; the text names the file, field and value."""


def builtin_robots_dir() -> Path:
    """``config/robots`` of this package: in the source tree or in the colcon share directory.

    Looked up from this file's location (never from the environment): the source checkout (and a
    ``--symlink-install``) has it two levels up; an installed package has it in
    ``<prefix>/share/vla_adapter_ros/config/robots``.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        for candidate in (parent / 'config' / 'robots',
                          parent / 'share' / 'vla_adapter_ros' / 'config' / 'robots'):
            if (candidate / 'arms').is_dir():
                return candidate
    raise RobotDescriptionError(f'no config/robots directory found above {here}')


def available_robots() -> list[str]:
    """Names of the built-in robot descriptions."""
    return sorted(path.stem for path in builtin_robots_dir().glob('*.yaml'))


def _fail(source: str, field: str, value: Any, problem: str) -> None:
    raise RobotDescriptionError(f'{source}: {field}={value!r}: {problem}')


def _number(source: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(source, field, value, 'must be a finite number')
    return float(value)


def _mapping(source: str, field: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        _fail(source, field, value, 'must be a mapping')
    return value


def _reject_unknown(source: str, field: str, data: Mapping, known: Sequence[str]) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        _fail(source, field, unknown, f'unknown keys; known: {list(known)}')


@dataclasses.dataclass(frozen=True)
class GripperCalibration:
    """Gripper end points of one arm.

    finger_open / finger_closed: the observed finger joint position (m) fully open / closed.
    joint_open / joint_closed: the gripper joint angle (rad) commanded for fully open / closed.
    """

    finger_open: float
    finger_closed: float
    joint_open: float
    joint_closed: float

    def __post_init__(self) -> None:
        for name in ('finger_open', 'finger_closed', 'joint_open', 'joint_closed'):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f'gripper {name}={getattr(self, name)!r} must be finite')
        if self.finger_open == self.finger_closed:
            raise ValueError(f'gripper finger_open ({self.finger_open}) must differ from '
                             f'finger_closed ({self.finger_closed})')
        if self.joint_open == self.joint_closed:
            raise ValueError(f'gripper joint_open ({self.joint_open}) must differ from '
                             f'joint_closed ({self.joint_closed})')

    def normalize_finger(self, finger_position: float | np.ndarray) -> np.ndarray:
        """Finger position (m) -> 0 (closed) .. 1 (open); not clipped (sensor truth)."""
        span = self.finger_open - self.finger_closed
        return (np.asarray(finger_position, dtype=np.float64) - self.finger_closed) / span

    def finger_from_normalized(self, normalized: float | np.ndarray) -> np.ndarray:
        """0 (closed) .. 1 (open) -> finger position (m); not clipped."""
        value = np.asarray(normalized, dtype=np.float64)
        return self.finger_closed * (1.0 - value) + self.finger_open * value  # exact end points

    def normalize_joint(self, joint_angle: float | np.ndarray) -> np.ndarray:
        """Gripper joint angle (rad) -> 0 (closed) .. 1 (open); not clipped."""
        span = self.joint_open - self.joint_closed
        return (np.asarray(joint_angle, dtype=np.float64) - self.joint_closed) / span

    def joint_from_normalized(self, normalized: float | np.ndarray) -> np.ndarray:
        """0 (closed) .. 1 (open) -> gripper joint angle (rad), clipped to the calibrated span."""
        value = np.clip(np.asarray(normalized, dtype=np.float64), 0.0, 1.0)
        return self.joint_closed * (1.0 - value) + self.joint_open * value  # exact end points

    @property
    def joint_limits(self) -> tuple[float, float]:
        """(lower, upper) gripper joint angle (rad): the calibrated span."""
        return (min(self.joint_open, self.joint_closed), max(self.joint_open, self.joint_closed))


@dataclasses.dataclass(frozen=True)
class JointLimit:
    """Position limits (rad) and speed limit (rad/s) of one arm joint."""

    name: str
    lower: float
    upper: float
    max_speed: float


@dataclasses.dataclass(frozen=True)
class ArmModel:
    """One Interbotix arm model: arm joints in driver order, gripper and finger joints."""

    model: str
    arm_group: str
    joints: tuple[JointLimit, ...]
    gripper_joint: str
    gripper_max_speed: float
    finger_joints: tuple[str, ...]
    finger_range: tuple[float, float]

    @classmethod
    def from_dict(cls, data: Mapping, source: str) -> ArmModel:
        """Parse an arm model file's content; errors name ``source`` and the field."""
        _reject_unknown(source, 'arm model', data, ('model', 'arm_group', 'joints', 'gripper'))
        joints_data = _mapping(source, 'joints', data.get('joints'))
        if not joints_data:
            _fail(source, 'joints', joints_data, 'needs at least one arm joint')
        joints = []
        for name, limits in joints_data.items():
            field = f'joints.{name}'
            limits = _mapping(source, field, limits)
            _reject_unknown(source, field, limits, ('lower', 'upper', 'max_speed'))
            joint = JointLimit(str(name), *(_number(source, f'{field}.{key}', limits.get(key))
                                            for key in ('lower', 'upper', 'max_speed')))
            if joint.lower >= joint.upper:
                _fail(source, f'{field}.lower', joint.lower, f'must be below upper={joint.upper}')
            if joint.max_speed <= 0:
                _fail(source, f'{field}.max_speed', joint.max_speed, 'must be > 0')
            joints.append(joint)
        gripper = _mapping(source, 'gripper', data.get('gripper'))
        _reject_unknown(source, 'gripper', gripper,
                        ('joint', 'max_speed', 'finger_joints', 'finger_range'))
        fingers = gripper.get('finger_joints')
        if not isinstance(fingers, list) or not fingers or not all(
                isinstance(name, str) and name for name in fingers):
            _fail(source, 'gripper.finger_joints', fingers, 'must list the finger joint names')
        finger_range = gripper.get('finger_range')
        if not isinstance(finger_range, list) or len(finger_range) != 2:
            _fail(source, 'gripper.finger_range', finger_range, 'must be [closed, open] in m')
        speed = _number(source, 'gripper.max_speed', gripper.get('max_speed'))
        if speed <= 0:
            _fail(source, 'gripper.max_speed', speed, 'must be > 0')
        model = cls(
            model=str(data.get('model') or Path(source).stem),
            arm_group=str(data.get('arm_group', 'arm')), joints=tuple(joints),
            gripper_joint=str(gripper.get('joint', 'gripper')), gripper_max_speed=speed,
            finger_joints=tuple(fingers),
            finger_range=tuple(_number(source, 'gripper.finger_range', v) for v in finger_range))
        names = [joint.name for joint in joints] + [model.gripper_joint, *fingers]
        if len(set(names)) != len(names):
            _fail(source, 'joints', names, 'joint names must be unique')
        return model

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The arm joints in driver order (without the gripper)."""
        return tuple(joint.name for joint in self.joints)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of a robot: driver namespace, side, model, gripper calibration, start pose.

    Vectors of this arm hold ``dim`` values: the arm joints in driver order, then the gripper.
    ``start_pose`` is in policy units (gripper normalised).
    """

    namespace: str
    side: str
    model: ArmModel
    gripper: GripperCalibration
    start_pose: tuple[float, ...]

    @property
    def dim(self) -> int:
        """Values per step of this arm: arm joints + gripper."""
        return len(self.model.joints) + 1

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Arm joints in driver order (the joint group of ``commands/joint_group``)."""
        return self.model.joint_names

    @property
    def command_joint_names(self) -> tuple[str, ...]:
        """Commanded joints: arm joints then the gripper joint (angles in rad)."""
        return (*self.model.joint_names, self.model.gripper_joint)

    @property
    def state_joint_names(self) -> tuple[str, ...]:
        """joint_states entries the observation reads: arm joints then the observed finger."""
        return (*self.model.joint_names, self.model.finger_joints[0])

    @property
    def driver_joint_names(self) -> tuple[str, ...]:
        """Everything the Interbotix driver publishes in joint_states, in its order."""
        return (*self.command_joint_names, *self.model.finger_joints)

    def observe(self, values: np.ndarray) -> np.ndarray:
        """``state_joint_names``-order positions -> policy values (gripper in finger space)."""
        out = self._checked(values, 'state').copy()
        out[..., -1] = self.gripper.normalize_finger(out[..., -1])
        return out

    def action_from_joint_angles(self, values: np.ndarray) -> np.ndarray:
        """``command_joint_names``-order angles -> policy values (gripper joint normalised)."""
        out = self._checked(values, 'joint angles').copy()
        out[..., -1] = self.gripper.normalize_joint(out[..., -1])
        return out

    def joint_angles_from_action(self, values: np.ndarray) -> np.ndarray:
        """Policy values -> ``command_joint_names``-order angles (gripper clipped to its span)."""
        out = self._checked(values, 'action').copy()
        out[..., -1] = self.gripper.joint_from_normalized(out[..., -1])
        return out

    def joint_angle_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (dim,): arm joint limits, then the calibrated gripper span."""
        low, high = self.gripper.joint_limits
        return (np.array([*(j.lower for j in self.model.joints), low]),
                np.array([*(j.upper for j in self.model.joints), high]))

    def max_joint_speed(self) -> np.ndarray:
        """Speed limits (rad/s), (dim,): arm joints then the gripper joint."""
        return np.array([*(j.max_speed for j in self.model.joints),
                         self.model.gripper_max_speed])

    def _checked(self, values: np.ndarray, what: str) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1:] != (self.dim,):
            raise ValueError(f'{self.namespace}: {what} has {values.shape[-1:]} values per step, '
                             f'expected {self.dim} ({self.model.model})')
        return values


@dataclasses.dataclass(frozen=True)
class RobotLayout:
    """What each action / proprio dimension of a policy means; stored in every checkpoint.

    ``action_names`` / ``proprio_names``: one name per dimension ('waist', or 'left/waist' with
    several arms). ``gripper``: 'normalized' (0 closed .. 1 open, see the module docstring) or
    'raw' (gripper values as the driver reports them).
    """

    action_names: tuple[str, ...]
    proprio_names: tuple[str, ...]
    gripper: str = 'normalized'

    def __post_init__(self) -> None:
        object.__setattr__(self, 'action_names', tuple(str(n) for n in self.action_names))
        object.__setattr__(self, 'proprio_names', tuple(str(n) for n in self.proprio_names))
        if self.gripper not in GRIPPER_CONVENTIONS:
            raise ValueError(f'RobotLayout.gripper={self.gripper!r}: must be one of '
                             f'{GRIPPER_CONVENTIONS}')
        if not self.action_names:
            raise ValueError('RobotLayout.action_names=(): needs at least one dimension')

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {'action_names': list(self.action_names),
                'proprio_names': list(self.proprio_names), 'gripper': self.gripper}

    @classmethod
    def from_dict(cls, data: Mapping) -> RobotLayout:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ValueError."""
        unknown = sorted(set(data) - {'action_names', 'proprio_names', 'gripper'})
        if unknown:
            raise ValueError(f'RobotLayout: unknown keys {unknown}')
        return cls(**data)

    def mismatch(self, robot: RobotLayout, mine: str = 'checkpoint') -> str:
        """'' when ``robot`` (the robot's layout) can run a policy of this layout, else why.

        ``mine`` names what this layout belongs to in the reason ('checkpoint', 'bag', ...).
        """
        for field in ('action_names', 'proprio_names', 'gripper'):
            ours, theirs = getattr(self, field), getattr(robot, field)
            if ours != theirs:
                return f'{field}: {mine} {_describe(ours)} vs robot {_describe(theirs)}'
        return ''


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f'{len(value)} dims {list(value)}'
    return repr(value)


@dataclasses.dataclass(frozen=True)
class RobotDescription:
    """A robot: follower arms (action order), leader arms, cameras, control rate, source file."""

    name: str
    arms: tuple[Arm, ...]
    leaders: tuple[Arm, ...]
    cameras: tuple[str, ...]
    camera_topic: str
    control_rate_hz: float
    source: str
    # What the sensors deliver, for the pre-flight check (None: not described, not checked).
    camera_size: tuple[int, int] | None = None  # (height, width) of every camera image
    camera_rate_hz: float | None = None  # each camera's frame rate
    joint_states_rate_hz: float | None = None  # each arm driver's joint_states rate

    @property
    def num_arms(self) -> int:
        """Follower arms the policy drives."""
        return len(self.arms)

    @property
    def action_dim(self) -> int:
        """Sum of the arms' dims."""
        return sum(arm.dim for arm in self.arms)

    @property
    def proprio_dim(self) -> int:
        """Proprio has one value per action dimension (the same joints, observed)."""
        return self.action_dim

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Driver namespaces of the follower arms."""
        return tuple(arm.namespace for arm in self.arms)

    def arm_slices(self) -> list[slice]:
        """Each follower arm's slice of an (action_dim,) vector."""
        slices, start = [], 0
        for arm in self.arms:
            slices.append(slice(start, start + arm.dim))
            start += arm.dim
        return slices

    def dimension_names(self) -> tuple[str, ...]:
        """One name per action dimension: joint names, prefixed by the side with several arms."""
        names = []
        for arm in self.arms:
            prefix = f'{arm.side}/' if self.num_arms > 1 else ''
            names += [f'{prefix}{name}' for name in (*arm.joint_names, 'gripper')]
        return tuple(names)

    def joint_labels(self) -> tuple[str, ...]:
        """'<namespace>/<joint>' per commanded dimension (for error messages)."""
        return tuple(f'{arm.namespace}/{name}' for arm in self.arms
                     for name in arm.command_joint_names)

    def layout(self, gripper: str = 'normalized') -> RobotLayout:
        """The layout policies for this robot have."""
        names = self.dimension_names()
        return RobotLayout(action_names=names, proprio_names=names, gripper=gripper)

    def split(self, vector: np.ndarray) -> list[np.ndarray]:
        """(..., action_dim) -> one (..., arm.dim) view per follower arm."""
        vector = np.asarray(vector)
        if vector.shape[-1] != self.action_dim:
            raise ValueError(f'{self.name}: vector has {vector.shape[-1]} values per step, '
                             f'expected {self.action_dim}')
        return [vector[..., part] for part in self.arm_slices()]

    def policy_to_joint_angles(self, action: np.ndarray) -> np.ndarray:
        """(..., action_dim) policy actions -> commanded joint angles (grippers in rad)."""
        parts = [arm.joint_angles_from_action(part)
                 for arm, part in zip(self.arms, self.split(action))]
        return np.concatenate(parts, axis=-1)

    def joint_angles_to_policy(self, angles: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`policy_to_joint_angles` (gripper angles normalised, not clipped)."""
        parts = [arm.action_from_joint_angles(part)
                 for arm, part in zip(self.arms, self.split(angles))]
        return np.concatenate(parts, axis=-1)

    def joint_angle_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) over all follower arms, each (action_dim,) rad."""
        bounds = [arm.joint_angle_bounds() for arm in self.arms]
        return (np.concatenate([low for low, _ in bounds]),
                np.concatenate([high for _, high in bounds]))

    def max_joint_speed(self) -> np.ndarray:
        """Speed limits over all follower arms, (action_dim,) rad/s."""
        return np.concatenate([arm.max_joint_speed() for arm in self.arms])

    def start_joint_angles(self) -> np.ndarray:
        """The start pose as commanded joint angles, (action_dim,) rad."""
        return self.policy_to_joint_angles(
            np.concatenate([arm.start_pose for arm in self.arms]))

    def camera_topics(self) -> tuple[str, ...]:
        """The image topic of every camera."""
        return tuple(self.camera_topic.format(camera=name) for name in self.cameras)

    def with_namespaces(self, namespaces: Sequence[str]) -> RobotDescription:
        """The same robot with other driver namespaces for the follower arms (same order)."""
        namespaces = [str(name) for name in namespaces]
        if len(namespaces) != self.num_arms or len(set(namespaces)) != self.num_arms or any(
                not name or '/' in name for name in namespaces):
            _fail(self.source, 'namespaces', namespaces,
                  f'needs {self.num_arms} distinct names without / (one per arm)')
        arms = tuple(dataclasses.replace(arm, namespace=name)
                     for arm, name in zip(self.arms, namespaces))
        return dataclasses.replace(self, arms=arms)

    def summary(self) -> dict:
        """Name, source and the per-arm facts, JSON-ready (for logs, recordings and reports)."""
        return {'name': self.name, 'source': self.source, 'control_rate_hz': self.control_rate_hz,
                'cameras': list(self.cameras), 'layout': self.layout().to_dict(),
                'arms': [_arm_summary(arm) for arm in self.arms],
                'leaders': [_arm_summary(arm) for arm in self.leaders]}


def _arm_summary(arm: Arm) -> dict:
    lower, upper = arm.joint_angle_bounds()
    return {'namespace': arm.namespace, 'side': arm.side, 'model': arm.model.model,
            'joints': list(arm.command_joint_names), 'lower': lower.tolist(),
            'upper': upper.tolist(), 'max_speed': arm.max_joint_speed().tolist(),
            'gripper': dataclasses.asdict(arm.gripper), 'start_pose': list(arm.start_pose)}


# ------------------------------------------------------------------------------- loading
def load_robot_description(name_or_path: str | Path) -> RobotDescription:
    """A built-in robot by name ('aloha', 'wx250s', ...) or a description YAML file by path."""
    path = _resolve(str(name_or_path), builtin_robots_dir(), 'robot')
    data = _read_with_extends(path, depth=0)
    return _build_description(data, str(path))


def _resolve(name_or_path: str, directory: Path, what: str) -> Path:
    text = name_or_path.strip()
    if not text:
        raise RobotDescriptionError(f'{what} description name is empty')
    looks_like_path = text.endswith(('.yaml', '.yml')) or '/' in text
    path = Path(text).expanduser() if looks_like_path else directory / f'{text}.yaml'
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob('*.yaml'))
        raise RobotDescriptionError(
            f'{what} {text!r}: no such file {str(path)!r}' + ('' if looks_like_path else
                                                              f'; built-in: {known}'))
    return path


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as error:
        raise RobotDescriptionError(f'{path}: cannot read YAML: {error}') from error
    if not isinstance(data, dict):
        raise RobotDescriptionError(f'{path}: must hold a mapping, got {type(data).__name__}')
    return data


def _merge(base: Mapping, override: Mapping) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_with_extends(path: Path, depth: int) -> dict:
    data = _read_yaml(path)
    base_name = data.pop('extends', None)
    if base_name is None:
        return data
    if depth >= MAX_EXTENDS_DEPTH:
        _fail(str(path), 'extends', base_name, f'nested deeper than {MAX_EXTENDS_DEPTH} files')
    base_path = _resolve(str(base_name), builtin_robots_dir(), 'robot')
    return _merge(_read_with_extends(base_path, depth + 1), data)


def _load_arm_model(value: Any, source: str, field: str) -> ArmModel:
    if isinstance(value, Mapping):
        return ArmModel.from_dict(value, f'{source} ({field})')
    if not isinstance(value, str):
        _fail(source, field, value, 'must name an arm model (e.g. vx300s) or describe one')
    local = Path(source).parent / 'arms'
    directory = local if (local / f'{value}.yaml').is_file() else builtin_robots_dir() / 'arms'
    path = _resolve(value, directory, 'arm model')
    return ArmModel.from_dict(_read_yaml(path), str(path))


def _gripper(data: Any, model: ArmModel, source: str, field: str) -> GripperCalibration:
    data = _mapping(source, field, data)
    keys = ('finger_open', 'finger_closed', 'joint_open', 'joint_closed')
    _reject_unknown(source, field, data, keys)
    closed, opened = model.finger_range
    values = {'finger_open': data.get('finger_open', opened),
              'finger_closed': data.get('finger_closed', closed)}
    for key in ('joint_open', 'joint_closed'):
        if key not in data:
            _fail(source, f'{field}.{key}', None, 'required (gripper joint angle, rad)')
        values[key] = data[key]
    numbers = {key: _number(source, f'{field}.{key}', values[key]) for key in keys}
    try:
        return GripperCalibration(**numbers)
    except ValueError as error:
        raise RobotDescriptionError(f'{source}: {field}: {error}') from error


def _start_pose(data: Any, model: ArmModel, source: str, field: str) -> tuple[float, ...]:
    if data is None:  # the Interbotix home pose: every arm joint at 0, gripper open
        return (*[0.0] * len(model.joints), 1.0)
    data = _mapping(source, field, data)
    names = (*model.joint_names, 'gripper')
    _reject_unknown(source, field, data, names)
    missing = [name for name in names if name not in data]
    if missing:
        _fail(source, field, dict(data), f'lacks joints {missing}')
    pose = [_number(source, f'{field}.{name}', data[name]) for name in model.joint_names]
    gripper = data['gripper']
    if isinstance(gripper, str):
        if gripper not in START_GRIPPER:
            _fail(source, f'{field}.gripper', gripper, f'must be one of {list(START_GRIPPER)} '
                                                       'or a number in [0, 1]')
        gripper = START_GRIPPER[gripper]
    gripper = _number(source, f'{field}.gripper', gripper)
    if not 0.0 <= gripper <= 1.0:
        _fail(source, f'{field}.gripper', gripper, 'normalised opening must be in [0, 1]')
    for joint, value in zip(model.joints, pose):
        if not joint.lower <= value <= joint.upper:
            _fail(source, f'{field}.{joint.name}', value,
                  f'outside the {model.model} limits [{joint.lower}, {joint.upper}]')
    return (*pose, gripper)


def _arm_group(data: Any, source: str, field: str, required: bool) -> tuple[Arm, ...]:
    if data is None and not required:
        return ()
    data = _mapping(source, field, data)
    _reject_unknown(source, field, data, ('model', 'arms', 'gripper', 'start_pose'))
    model = _load_arm_model(data.get('model'), source, f'{field}.model')
    gripper = _gripper(data.get('gripper'), model, source, f'{field}.gripper')
    start = _start_pose(data.get('start_pose'), model, source, f'{field}.start_pose')
    entries = data.get('arms')
    if not isinstance(entries, list) or not 1 <= len(entries) <= 2:
        _fail(source, f'{field}.arms', entries, 'must list 1 or 2 arms')
    arms = []
    for index, entry in enumerate(entries):
        where = f'{field}.arms[{index}]'
        entry = _mapping(source, where, entry)
        _reject_unknown(source, where, entry, ('namespace', 'side'))
        namespace, side = entry.get('namespace'), entry.get('side', SIDES[index])
        if not isinstance(namespace, str) or not namespace or '/' in namespace:
            _fail(source, f'{where}.namespace', namespace, 'must be a driver namespace without /')
        if side not in SIDES:
            _fail(source, f'{where}.side', side, f'must be one of {SIDES}')
        arms.append(Arm(namespace, side, model, gripper, start))
    sides = [arm.side for arm in arms]
    if len(set(sides)) != len(sides):
        _fail(source, f'{field}.arms', sides, 'each side may appear once')
    if len(arms) == 2 and sides != ['left', 'right']:
        _fail(source, f'{field}.arms', sides, "two arms are listed left first: ['left', 'right']")
    namespaces = [arm.namespace for arm in arms]
    if len(set(namespaces)) != len(namespaces):
        _fail(source, f'{field}.arms', namespaces, 'namespaces must be distinct')
    return tuple(arms)


def _build_description(data: dict, source: str) -> RobotDescription:
    known = ('name', 'control_rate_hz', 'cameras', 'camera_topic', 'followers', 'leaders',
             'camera_size', 'camera_rate_hz', 'joint_states_rate_hz')
    _reject_unknown(source, 'robot description', data, known)
    arms = _arm_group(data.get('followers'), source, 'followers', required=True)
    leaders = _arm_group(data.get('leaders'), source, 'leaders', required=False)
    if leaders and [a.dim for a in leaders] != [a.dim for a in arms]:
        _fail(source, 'leaders', [a.namespace for a in leaders],
              'leader arms must match the followers one to one (same joints per arm)')
    if set(a.namespace for a in leaders) & set(a.namespace for a in arms):
        _fail(source, 'leaders', [a.namespace for a in leaders], 'reuse a follower namespace')
    cameras = data.get('cameras', [])
    if not isinstance(cameras, list) or not all(isinstance(c, str) and c for c in cameras) or (
            len(set(cameras)) != len(cameras)):
        _fail(source, 'cameras', cameras, 'must be a list of distinct camera names')
    camera_topic = data.get('camera_topic', DEFAULT_CAMERA_TOPIC)
    if not isinstance(camera_topic, str) or '{camera}' not in camera_topic:
        _fail(source, 'camera_topic', camera_topic, 'must contain {camera}')
    rate = _number(source, 'control_rate_hz', data.get('control_rate_hz', 50.0))
    if rate <= 0:
        _fail(source, 'control_rate_hz', rate, 'must be > 0')
    name = data.get('name') or Path(source).stem
    return RobotDescription(name=str(name), arms=arms, leaders=leaders, cameras=tuple(cameras),
                            camera_topic=camera_topic, control_rate_hz=rate, source=source,
                            **_sensor_facts(data, source))


def _sensor_facts(data: dict, source: str) -> dict:
    """The optional sensor facts: camera_size [height, width] and the two rates (Hz)."""
    size = data.get('camera_size')
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            _fail(source, 'camera_size', size, 'must be [height, width], positive integers')
        size = (size[0], size[1])
    facts = {'camera_size': size}
    for key in ('camera_rate_hz', 'joint_states_rate_hz'):
        value = data.get(key)
        if value is not None:
            value = _number(source, key, value)
            if value <= 0:
                _fail(source, key, value, 'must be > 0')
        facts[key] = value
    return facts
