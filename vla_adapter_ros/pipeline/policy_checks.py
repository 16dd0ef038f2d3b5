"""Checks between a loaded policy and the robot, and loading a policy by parameter values.

No rclpy, and torch only inside :func:`check_device` and :func:`load_policy`: the inference
node and the offline replay tool share these, so a checkpoint is refused the same way by both.
"""

from collections.abc import Callable, Sequence
from typing import Any, Protocol
import warnings

import numpy as np

from vla_adapter_core.cli_errors import one_line, typed_one_line
from vla_adapter_core.robot_description import RobotDescription


class PolicyRunner(Protocol):
    """What the inference node needs from a policy (``vla_adapter_core.VLAPolicy`` fits).

    ``config`` exposes ``camera_names`` (list[str]), ``action_dim``, ``proprio_dim``,
    ``chunk_size`` and ``robot_layout`` (a RobotLayout or None); ``predict_action_chunk(
    observation)`` returns un-normalised actions (chunk_size, action_dim). A policy with a
    ``processor.prompt_builder`` (VLAPolicy) has its instructions checked against its prompt
    limit (see :func:`instruction_check`).
    """

    config: Any

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """Observation dict -> (chunk_size, action_dim) actions."""


def check_policy_matches_robot(policy_config: Any, robot: RobotDescription,
                               camera_names: Sequence[str]) -> str:
    """Raise ValueError (naming both sides) if the checkpoint does not fit the robot.

    A checkpoint that records its ``robot_layout`` must match the robot's layout exactly (joint
    name per action / proprio dimension, gripper convention). One that records none (upstream or
    older checkpoints) must at least have ``action_dim == proprio_dim == robot.action_dim``; the
    returned warning ('' otherwise) says that the layout could not be checked. The node must
    provide an image for every camera the checkpoint was trained with.
    """
    warning = ''
    layout = getattr(policy_config, 'robot_layout', None)
    where = f'robot {robot.name!r} ({robot.source})'
    if layout is not None:
        mismatch = layout.mismatch(robot.layout())
        if mismatch:
            raise ValueError(f'checkpoint was trained on another robot layout than {where}: '
                             f'{mismatch}')
    else:
        for field in ('action_dim', 'proprio_dim'):
            value = int(getattr(policy_config, field))
            if value != robot.action_dim:
                raise ValueError(
                    f'checkpoint {field}={value} does not match {where}, which has '
                    f'{robot.action_dim} dims {list(robot.dimension_names())}')
        warning = (f'the checkpoint records no robot layout (upstream or older checkpoint): only '
                   f'its dimension ({robot.action_dim}) was checked against {where}; make sure '
                   f'it was trained on {list(robot.dimension_names())}')
    missing = [name for name in policy_config.camera_names if name not in camera_names]
    if missing:
        raise ValueError(
            f'checkpoint cameras {missing} have no camera topic; camera_names parameter is '
            f'{list(camera_names)}, checkpoint camera_names is {list(policy_config.camera_names)}')
    return warning


def instruction_check(policy: Any) -> Callable[[str], str]:
    """The one instruction rule of ``policy``: text -> cleaned text, or ValueError saying why.

    A VLAPolicy's rule is its prompt builder's ``validate_instruction`` (non-empty, printable,
    prompt token count within ``max_prompt_tokens``; the error gives the count and the limit).
    A policy without a prompt builder gets the policy-independent part only. Any other exception
    of the check becomes a ValueError (a bad instruction never crashes the node).
    """
    builder = getattr(getattr(policy, 'processor', None), 'prompt_builder', None)
    if builder is not None:
        validate = builder.validate_instruction
    else:
        from vla_adapter_core.prompt import check_instruction_text as validate

    def check(text: str) -> str:
        try:
            return validate(text)
        except ValueError:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. a tokenizer error on odd input
            raise ValueError(f'instruction {str(text)[:60]!r} cannot be checked: '
                             f'{type(error).__name__}: {error}') from error

    return check


def validate_action_chunk(chunk: Any, action_dim: int) -> np.ndarray:
    """The policy output as float64 (T, action_dim); ValueError on wrong shape or non-finite."""
    try:
        actions = np.asarray(chunk, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f'policy output of type {type(chunk).__name__} is not numeric: '
                         f'{error}') from error
    if actions.ndim != 2 or actions.shape[1] != action_dim or actions.shape[0] == 0:
        raise ValueError(
            f'policy output shape {actions.shape} is not (chunk_size > 0, action_dim='
            f'{action_dim})')
    bad = np.argwhere(~np.isfinite(actions))  # (n_bad, 2) [step, dim]
    if bad.size:
        step, dim = (int(v) for v in bad[0])
        raise ValueError(
            f'policy output has {len(bad)} non-finite values, first at step {step} dim {dim}: '
            f'{actions[step, dim]}')
    return actions


def check_device(device: str) -> None:
    """Raise ValueError naming the ``device`` parameter when torch cannot use it here."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f'parameter device={device!r} is not a torch device: '
                         f'{typed_one_line(error)}') from error
    if parsed.type == 'cuda':
        with warnings.catch_warnings(record=True) as caught:  # e.g. a CUDA driver too old
            warnings.simplefilter('always')
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        why = f' ({caught[0].message})' if caught else ''
        if count == 0:
            raise ValueError(f'parameter device={device!r}: no CUDA device is available on this '
                             f'machine{why}; set device:=cpu or fix the CUDA installation')
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f'parameter device={device!r}: this machine has {count} CUDA '
                             f'device(s), cuda:0 to cuda:{count - 1}')
    elif parsed.type == 'mps' and not torch.backends.mps.is_available():
        raise ValueError(f'parameter device={device!r}: no MPS device is available on this '
                         'machine; set device:=cpu')


def load_policy(checkpoint: str, device: str, dtype: str, compile: str) -> PolicyRunner:
    """Load ``VLAPolicy`` from ``checkpoint`` (a directory or a Hub repo id; torch only here).

    Every failure is one ValueError naming the parameter (the node then exits with one line).
    """
    if not checkpoint:
        raise ValueError("parameter checkpoint='': name a checkpoint directory or a Hugging "
                         'Face Hub repo id')
    check_device(device)
    from vla_adapter_core import VLAPolicy

    try:
        return VLAPolicy.from_pretrained(checkpoint, device=device,
                                         dtype=dtype, compile=compile)
    except ValueError as error:  # names the file and the problem, maybe on several lines
        raise ValueError(one_line(error)) from error
    except OSError as error:  # FileNotFoundError: neither a directory nor a cached repo
        raise ValueError(f'parameter checkpoint={checkpoint!r}: {error}') from error
    except Exception as error:  # noqa: BLE001 - e.g. a corrupt weights file: one line, no trace
        raise ValueError(f'parameter checkpoint={checkpoint!r} cannot be loaded: '
                         f'{typed_one_line(error)}') from error


def warm_up_policy(policy: PolicyRunner, cameras: Sequence[str], image_hw: tuple[int, int],
                   instruction: str, runs: int) -> None:
    """Run ``policy`` ``runs`` times on blank images (a start-up check, not a fault).

    ValueError when it cannot run or its output lacks the shape its config promises.
    """
    height, width = image_hw
    observation = {'images': {name: np.zeros((height, width, 3), np.uint8) for name in cameras},
                   'proprio': np.zeros(int(policy.config.proprio_dim), np.float32),
                   'instruction': instruction}
    expected = (policy.config.chunk_size, policy.config.action_dim)
    for _ in range(runs):
        try:
            actions = policy.predict_action_chunk(observation)
        except Exception as error:  # noqa: BLE001 - reported as a start-up error
            raise ValueError(f'policy warm-up failed: {typed_one_line(error)}') from error
        if np.shape(actions) != expected:
            raise ValueError(f'policy output shape {np.shape(actions)} does not match its config '
                             f'(chunk_size={expected[0]}, action_dim={expected[1]})')


def observation_age_fault(age_s: float, max_age_s: float, max_future_s: float) -> str:
    """Why an observation ``age_s`` old (negative: stamped ahead) must not be used; '' if fine."""
    if age_s > max_age_s:
        return f'stale observation: {age_s:.3f} s old > max_observation_age_s={max_age_s}'
    if -age_s > max_future_s:
        return (f'observation stamped {-age_s:.3f} s ahead of the node clock > '
                f'max_future_stamp_s={max_future_s}')
    return ''
