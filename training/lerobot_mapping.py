"""Declared feature mappings: a LeRobot dataset's features onto a robot description.

A mapping is a YAML file (``config/lerobot/<name>.yaml``, or any file given by path)::

    robot: aloha                         # the description it was written for
    cameras: {cam_high: observation.images.cam_high, ...}   # camera -> dataset feature
    state:  {feature: observation.state, names: '{side}_{joint}', gripper: normalized}
    action: {feature: action,            names: '{side}_{joint}', gripper: normalized}

``names`` gives the dataset's name of each description dimension ({side}, {joint}, {index});
where the dataset's feature lists names, dimensions are picked by name, else by position.
``gripper`` says the dataset's gripper units: ``normalized`` (0 closed .. 1 open, ours),
``finger`` (follower finger position, m), ``joint`` (follower gripper joint, rad),
``leader_joint`` (leader gripper joint, rad), or ``{closed: x, open: y}``; the end points come
from the description's gripper calibration. Binding a mapping to a dataset's ``info.json``
features checks every feature it uses; a misfit raises an :class:`EpisodeError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from training.episodes import EpisodeError
from vla_adapter_core.robot_description import RobotDescription, builtin_robots_dir

GRIPPER_UNITS = ('normalized', 'finger', 'joint', 'leader_joint')
VECTOR_DTYPES = ('float32', 'float64')
CAMERA_DTYPES = ('video',)
NAME_FIELDS = ('side', 'joint', 'index')


def builtin_mappings_dir() -> Path:
    """``config/lerobot`` beside the built-in robot descriptions."""
    return builtin_robots_dir().parent / 'lerobot'


def available_mappings() -> list[str]:
    """Names of the shipped mappings."""
    return sorted(path.stem for path in builtin_mappings_dir().glob('*.yaml'))


@dataclasses.dataclass(frozen=True)
class VectorMapping:
    """How one dataset vector feature (state or action) becomes the description's dimensions."""

    feature: str  # the dataset feature, e.g. observation.state
    names: str  # the dataset's name of each dimension, a template over NAME_FIELDS
    gripper: str | tuple[float, float]  # dataset gripper units, or (closed, open) values

    def __post_init__(self) -> None:
        if not isinstance(self.feature, str) or not self.feature:
            raise ValueError(f'VectorMapping.feature={self.feature!r}: name a dataset feature')
        try:
            self.names.format(side='left', joint='waist', index=0)
        except (KeyError, IndexError, AttributeError) as error:
            raise ValueError(f'VectorMapping.names={self.names!r}: a template over '
                             f'{NAME_FIELDS} ({error!r})') from None
        if isinstance(self.gripper, tuple):
            if len(self.gripper) != 2 or self.gripper[0] == self.gripper[1] or not all(
                    np.isfinite(self.gripper)):
                raise ValueError(f'VectorMapping.gripper={self.gripper!r}: closed and open '
                                 'must be two different finite numbers')
        elif self.gripper not in GRIPPER_UNITS:
            raise ValueError(f'VectorMapping.gripper={self.gripper!r}: one of {GRIPPER_UNITS} '
                             'or {closed: x, open: y}')


@dataclasses.dataclass(frozen=True)
class FeatureMapping:
    """A declared mapping (see the module docstring); ``source`` is its file."""

    robot: str  # the robot description it was written for
    cameras: dict[str, str]  # camera name -> dataset feature
    state: VectorMapping  # -> proprio
    action: VectorMapping  # -> actions
    source: str  # the YAML file, for messages

    def __post_init__(self) -> None:
        if not self.cameras or not all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in self.cameras.items()):
            raise ValueError(f'FeatureMapping.cameras={self.cameras!r}: map camera names to '
                             'dataset features')


def _vector(data: Any, source: str, field: str) -> VectorMapping:
    if not isinstance(data, Mapping):
        raise ValueError(f'{source}: {field}: expected a mapping with feature, names, gripper')
    unknown = sorted(set(data) - {'feature', 'names', 'gripper'})
    if unknown:
        raise ValueError(f'{source}: {field}: unknown keys {unknown}')
    gripper = data.get('gripper', 'normalized')
    if isinstance(gripper, Mapping):
        if set(gripper) != {'closed', 'open'}:
            raise ValueError(f'{source}: {field}.gripper: expected {{closed: x, open: y}}')
        gripper = (float(gripper['closed']), float(gripper['open']))
    try:
        return VectorMapping(data.get('feature'), str(data.get('names', '{side}_{joint}')),
                             gripper)
    except ValueError as error:
        raise ValueError(f'{source}: {field}: {error}') from None


def load_feature_mapping(name_or_path: str | Path) -> FeatureMapping:
    """A shipped mapping by name ('aloha', 'gym_aloha') or a mapping YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = builtin_mappings_dir() / f'{name_or_path}.yaml'
        if not path.is_file():
            raise ValueError(f'LeRobot feature mapping {str(name_or_path)!r}: not a shipped '
                             f'mapping ({available_mappings()}) nor a file')
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except OSError as error:
        raise ValueError(f'{path}: cannot read the feature mapping ({error.strerror})') from None
    if not isinstance(data, Mapping):
        raise ValueError(f'{path}: a feature mapping is a YAML mapping')
    unknown = sorted(set(data) - {'robot', 'cameras', 'state', 'action'})
    if unknown:
        raise ValueError(f'{path}: unknown keys {unknown}')
    try:
        return FeatureMapping(str(data.get('robot', '')), dict(data.get('cameras') or {}),
                              _vector(data.get('state'), str(path), 'state'),
                              _vector(data.get('action'), str(path), 'action'), str(path))
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None


def default_mapping_name(robot: str) -> str:
    """The shipped mapping written for robot description ``robot``."""
    for name in available_mappings():
        if load_feature_mapping(name).robot == robot:
            return name
    raise ValueError(f'no shipped LeRobot feature mapping for robot {robot!r} '
                     f'({available_mappings()}): pass --lerobot_mapping FILE')


def flat_names(names: Any) -> list[str] | None:
    """A feature's ``names`` as a flat list: a list, or a dict / list holding one list."""
    if isinstance(names, Mapping) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == 1 and isinstance(names[0], list):
        names = names[0]
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return list(names)
    return None


def dimension_names(template: str, description: RobotDescription) -> list[str]:
    """The dataset name of each description dimension under ``template``."""
    names = []
    for arm in description.arms:
        for joint in (*arm.joint_names, 'gripper'):
            names.append(template.format(side=arm.side, joint=joint, index=len(names)))
    return names


@dataclasses.dataclass(frozen=True)
class BoundVector:
    """A vector mapping bound to one dataset: columns to pick, then a per-dimension affine map."""

    feature: str  # the dataset feature it reads
    columns: np.ndarray  # (D,) dataset column of each description dimension
    offset: np.ndarray  # (D,) ours = (dataset - offset) / scale
    scale: np.ndarray  # (D,)

    def to_ours(self, values: np.ndarray) -> np.ndarray:
        """(T, D_dataset) dataset values -> (T, D) float32 in the description's units."""
        picked = np.asarray(values, dtype=np.float64)[:, self.columns]
        return ((picked - self.offset) / self.scale).astype(np.float32)

    def to_dataset(self, values: np.ndarray) -> np.ndarray:
        """(T, D) description values -> (T, D) float32 dataset values (the inverse)."""
        return (np.asarray(values, dtype=np.float64) * self.scale + self.offset).astype(
            np.float32)

    def stats_to_ours(self, stats: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Mean / std / min / max of the dataset feature, in our units (min/max reordered)."""
        out = {}
        for key in ('mean', 'std', 'min', 'max'):
            if key in stats:
                out[key] = np.asarray(stats[key], dtype=np.float64).reshape(-1)[self.columns]
        if 'mean' in out:
            out['mean'] = (out['mean'] - self.offset) / self.scale
        if 'std' in out:
            out['std'] = out['std'] / np.abs(self.scale)
        if 'min' in out and 'max' in out:
            low, high = (out['min'] - self.offset) / self.scale, (out['max'] - self.offset) / \
                self.scale
            out['min'], out['max'] = np.minimum(low, high), np.maximum(low, high)
        return out


def _gripper_points(units: str | tuple, description: RobotDescription, arm_index: int,
                    where: str, feature: str) -> tuple[float, float]:
    """(closed, open) dataset values of one arm's gripper."""
    if isinstance(units, tuple):
        return units
    if units == 'normalized':
        return 0.0, 1.0
    if units == 'leader_joint':
        if not description.leaders:
            raise EpisodeError(where, feature, f'gripper units leader_joint, but robot '
                                               f'{description.name!r} has no leader arms')
        calibration = description.leaders[arm_index].gripper
        return calibration.joint_closed, calibration.joint_open
    calibration = description.arms[arm_index].gripper
    if units == 'finger':
        return calibration.finger_closed, calibration.finger_open
    return calibration.joint_closed, calibration.joint_open


def bind_vector(mapping: VectorMapping, features: Mapping[str, Any],
                description: RobotDescription, where: str) -> BoundVector:
    """Check ``mapping.feature`` in a dataset's features and bind it; EpisodeError if unfit."""
    feature = features.get(mapping.feature)
    dim = description.action_dim
    if not isinstance(feature, Mapping):
        raise EpisodeError(where, mapping.feature, f'feature missing from the dataset (it has '
                                                   f'{sorted(features)})')
    if feature.get('dtype') not in VECTOR_DTYPES:
        raise EpisodeError(where, mapping.feature, f"dtype {feature.get('dtype')!r}, expected "
                                                   f'one of {VECTOR_DTYPES}')
    shape = list(feature.get('shape') or [])
    if len(shape) != 1:
        raise EpisodeError(where, mapping.feature, f'shape {shape}, expected a vector')
    wanted = dimension_names(mapping.names, description)
    have = flat_names(feature.get('names'))
    if have is not None:
        missing = [name for name in wanted if name not in have]
        if missing:
            raise EpisodeError(where, mapping.feature,
                               f'names lack {missing} (robot {description.name!r}, mapping '
                               f'names {mapping.names!r}; dataset names {have})')
        columns = np.array([have.index(name) for name in wanted])
    elif shape[0] == dim:
        columns = np.arange(dim)
    else:
        raise EpisodeError(where, mapping.feature, f'shape {shape} without names, robot '
                                                   f'{description.name!r} needs {dim} values')
    offset, scale = np.zeros(dim), np.ones(dim)
    for index, part in enumerate(description.arm_slices()):
        closed, opened = _gripper_points(mapping.gripper, description, index, where,
                                         mapping.feature)
        offset[part.stop - 1], scale[part.stop - 1] = closed, opened - closed
    return BoundVector(mapping.feature, columns, offset, scale)


def bind_cameras(mapping: FeatureMapping, features: Mapping[str, Any],
                 camera_names: list[str], where: str) -> dict[str, str]:
    """Camera name -> video feature of the dataset; EpisodeError naming a missing feature."""
    bound = {}
    for camera in camera_names:
        key = mapping.cameras.get(camera)
        if key is None:
            raise EpisodeError(where, 'cameras', f'camera {camera!r} is not in the feature '
                                                 f'mapping {mapping.source} '
                                                 f'({sorted(mapping.cameras)})')
        feature = features.get(key)
        if not isinstance(feature, Mapping):
            videos = sorted(k for k, v in features.items() if isinstance(v, Mapping)
                            and v.get('dtype') in ('video', 'image'))
            raise EpisodeError(where, key, f'feature missing from the dataset (camera '
                                           f'{camera!r}; its cameras: {videos})')
        if feature.get('dtype') not in CAMERA_DTYPES:
            raise EpisodeError(where, key, f"dtype {feature.get('dtype')!r}, expected one of "
                                           f'{CAMERA_DTYPES} (MP4 cameras)')
        bound[camera] = key
    return bound
