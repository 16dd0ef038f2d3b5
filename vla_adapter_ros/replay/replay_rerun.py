"""`vla-adapter-replay-eval --rerun`: each replayed episode as the live view draws it (no rclpy).

Per bag ``<report>/rerun/<bag>.rrd`` (open it with ``rerun FILE``), on the entities of
`vla-adapter-view` (view/rerun_view.py), on the bag's own time: the recorded follower state on
the alignment grid (``joints/<side>/<joint>/measured``), the demonstrator's aligned actions
(``.../demonstrated``), and every predicted chunk at the future times it plans for
(``.../plan/<slot>``, chunk i in slot i mod plan_slots) with its inference time, and who was
in control whenever it changed (``status/control``, from the bag's takeover intervals, none
without them). Camera frames are not copied into it (the bag holds them; Foxglove or the live
view shows them).
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from pathlib import Path

import numpy as np

from vla_adapter_core.robot_description import RobotDescription

RERUN_FOLDER = 'rerun'
APPLICATION_ID = 'vla_adapter_replay_eval'


def write_episode_view(path: Path, run, robot: RobotDescription, chunk_step_s: float,
                       plan_slots: int = 5) -> None:
    """One EpisodeRun's recording into ``path``."""
    import rerun as rr

    from vla_adapter_ros.view.rerun_view import RobotView

    recording = rr.RecordingStream(APPLICATION_ID, recording_id=run.episode.name)
    recording.save(str(path))
    view = RobotView(robot, recording, plan_slots)
    aligned = run.episode.aligned
    for stamp_ns, proprio, action in zip(aligned.grid, aligned.proprio, aligned.actions):
        for index, (state, target) in enumerate(zip(robot.split(proprio), robot.split(action))):
            view.joints('measured', index, int(stamp_ns), state)
            view.joints('demonstrated', index, int(stamp_ns), target)
    view.flush()
    for stamp_ns, source in run.episode.control.changes:
        view.control(stamp_ns, source)
    latencies_ms = np.asarray(run.chunk_latencies_s()) * 1e3
    for sequence, (stamp_ns, chunk) in enumerate(zip(run.stamps_ns, run.predicted)):
        offsets = np.arange(len(chunk)) * chunk_step_s  # (C,)
        view.chunk(sequence, int(stamp_ns), offsets, chunk, float(latencies_ms[sequence]))
    recording.flush()
    recording.disconnect()


def episode_views(runs: list, robot: RobotDescription,
                  chunk_step_s: float) -> dict[str, Callable[[Path], None]]:
    """{'rerun/<bag>.rrd': writer(path)} for every run (the report writes them atomically)."""
    return {f'{RERUN_FOLDER}/{run.episode.name}.rrd': functools.partial(
        write_episode_view, run=run, robot=robot, chunk_step_s=chunk_step_s) for run in runs}
