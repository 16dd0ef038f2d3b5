"""What the live view logs, and where in a Rerun recording (no rclpy: decoded arrays in).

Entities (``<side>`` is the arm's side, ``<joint>`` one of its joints or ``gripper``; values
in policy units: joint angles in rad, grippers 0 closed .. 1 open):

- ``cameras/<camera>``: the camera images (rgb);
- ``joints/<side>/<joint>/measured``: the follower's joint_states;
- ``joints/<side>/<joint>/leader``: the leader arm's joint_states (teleoperation, takeover);
- ``joints/<side>/<joint>/commanded``: what the executor sent to the driver;
- ``joints/<side>/<joint>/plan/<slot>``: each predicted chunk, drawn at the future times it
  plans for (observation stamp + time_from_start); chunk ``sequence`` goes to slot
  ``sequence % plan_slots``, so the last few plans stay visible as separate lines beside the
  motion the arm actually made;
- ``policy/inference_ms``: the model time of each chunk;
- ``episode/reward``: a simulator's reward at each step (`vla-adapter-sim-eval --rerun`);
- ``status/<source>``: the state of the executor / inference node whenever it changes, a fault
  as an error entry with its reason;
- ``status/control``: who commands the followers (policy | handover | operator | hold) whenever
  it changes, anything but the policy as a warning entry.

One timeline, ``ros_time``: the messages' header stamps (the clock every node shares), so the
plans and the motion line up. Joint samples are buffered and sent in columns by :meth:`flush`
(one call per entity instead of one per sample: a ``set_time`` and ``log`` pair costs about
0.2 ms here, and 100 Hz joint states of two arms would otherwise cost a tenth of a core).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rerun as rr

from vla_adapter_core.robot_description import RobotDescription
from vla_adapter_ros.pipeline.status import CONTROL_POLICY

TIMELINE = 'ros_time'
# How each stream is drawn (colour, line width): the motion bold, the plans thin.
STYLES = {'measured': ((31, 119, 180), 2.5), 'commanded': ((255, 127, 14), 1.5),
          'leader': ((44, 160, 44), 1.5), 'demonstrated': ((44, 160, 44), 1.5),
          'plan': ((148, 103, 189), 1.0)}


def _time(stamp_ns: int | np.ndarray) -> np.ndarray:
    return np.asarray(stamp_ns, dtype=np.int64).astype('datetime64[ns]')


@dataclass(frozen=True)
class ArmEntities:
    """The joint entity prefixes of one arm (follower and leader share them)."""

    side: str
    joints: tuple[str, ...]  # arm joints then 'gripper'

    def paths(self, stream: str) -> list[str]:
        """``joints/<side>/<joint>/<stream>`` for every joint."""
        return [f'joints/{self.side}/{joint}/{stream}' for joint in self.joints]


class RobotView:
    """Logs one robot's streams into a Rerun recording stream."""

    def __init__(self, robot: RobotDescription, recording: rr.RecordingStream,
                 plan_slots: int = 5, reward: bool = False) -> None:
        """``reward``: the layout gets a reward plot (a simulated episode's)."""
        if plan_slots < 1:
            raise ValueError(f'plan_slots={plan_slots}: must be >= 1')
        self.robot, self.recording, self.plan_slots = robot, recording, plan_slots
        self.arms = [ArmEntities(arm.side, (*arm.joint_names, 'gripper')) for arm in robot.arms]
        self._states: dict[str, str] = {}
        self._buffers: dict[str, tuple[list, list]] = {}  # path -> (stamps ns, values)
        self._styled: set[str] = set()
        recording.send_blueprint(default_blueprint(robot, reward))

    def _style(self, path: str) -> None:
        """Name and colour a joint entity's line once (static)."""
        if path in self._styled:
            return
        self._styled.add(path)
        parts = path.split('/')
        stream = parts[3]  # joints/<side>/<joint>/<stream>[/<slot>]
        colour, width = STYLES.get(stream, ((127, 127, 127), 1.0))
        name = ' '.join(parts[3:])
        self.recording.log(path, rr.SeriesLines(colors=[colour], widths=[width], names=[name]),
                           static=True)

    def _at(self, stamp_ns: int) -> None:
        self.recording.set_time(TIMELINE, timestamp=np.datetime64(int(stamp_ns), 'ns'))

    def camera(self, name: str, stamp_ns: int, rgb: np.ndarray) -> None:
        """One (H, W, 3) uint8 frame of camera ``name``."""
        self._at(stamp_ns)
        self.recording.log(f'cameras/{name}', rr.Image(rgb, color_model='RGB'))

    def joints(self, stream: str, arm_index: int, stamp_ns: int, values: np.ndarray) -> None:
        """One arm's (arm.dim,) values of ``stream`` ('measured', 'leader', 'commanded').

        NaN values are skipped (a command that sets the arm group only, or the gripper only).
        Buffered until :meth:`flush`.
        """
        for path, value in zip(self.arms[arm_index].paths(stream), np.asarray(values)):
            if np.isfinite(value):
                stamps, samples = self._buffers.setdefault(path, ([], []))
                stamps.append(int(stamp_ns))
                samples.append(float(value))

    def flush(self) -> None:
        """Send the buffered joint samples, one column batch per entity."""
        buffers, self._buffers = self._buffers, {}
        for path, (stamps, samples) in buffers.items():
            self._style(path)
            self.recording.send_columns(
                path, indexes=[rr.TimeColumn(TIMELINE, timestamp=_time(stamps))],
                columns=rr.Scalars.columns(scalars=np.asarray(samples)))

    def chunk(self, sequence: int, stamp_ns: int, offsets_s: np.ndarray,
              values: np.ndarray, inference_ms: float) -> None:
        """One predicted chunk: (T,) offsets from its stamp, (T, action_dim) policy values."""
        values = np.asarray(values, dtype=np.float64)  # (T, action_dim)
        times = _time(stamp_ns + np.round(np.asarray(offsets_s) * 1e9).astype(np.int64))  # (T,)
        slot = sequence % self.plan_slots
        for arm, part in zip(self.arms, self.robot.split(values)):  # part: (T, arm.dim)
            for path, column in zip(arm.paths(f'plan/{slot}'), part.T):
                self._style(path)
                self.recording.send_columns(
                    path, indexes=[rr.TimeColumn(TIMELINE, timestamp=times)],
                    columns=rr.Scalars.columns(scalars=column))
        self._at(stamp_ns)
        self.recording.log('policy/inference_ms', rr.Scalars(float(inference_ms)))

    def reward(self, stamp_ns: int, value: float) -> None:
        """A simulator's reward of one step."""
        self._at(stamp_ns)
        self.recording.log('episode/reward', rr.Scalars(float(value)))

    def status(self, source: str, stamp_ns: int, state: str, fault_reason: str) -> None:
        """A PolicyStatus: logged when the state or the fault reason changes."""
        text = f'{state}: {fault_reason}' if fault_reason else state
        if self._states.get(source) == text:
            return
        self._states[source] = text
        self._at(stamp_ns)
        level = rr.TextLogLevel.ERROR if state == 'FAULT' else rr.TextLogLevel.INFO
        self.recording.log(f'status/{source}', rr.TextLog(text, level=level))

    def control(self, stamp_ns: int, source: str) -> None:
        """The executor's control source (pipeline/status.py): logged when it changes."""
        if self._states.get('control') == source:
            return
        self._states['control'] = source
        self._at(stamp_ns)
        level = rr.TextLogLevel.INFO if source == CONTROL_POLICY else rr.TextLogLevel.WARN
        self.recording.log('status/control', rr.TextLog(source, level=level))


def default_blueprint(robot: RobotDescription, reward: bool = False):
    """The view's layout: cameras on top, one plot per joint (motion and plans), the status.

    ``reward``: a reward plot beside the inference time (a simulated episode's).
    """
    import rerun.blueprint as rrb

    cameras = rrb.Horizontal(*[rrb.Spatial2DView(origin=f'cameras/{name}', name=name)
                               for name in robot.cameras])
    # No legends (they would cover the small plots): the colours are STYLES'.
    plots = [rrb.TimeSeriesView(origin=f'joints/{arm.side}/{joint}', name=f'{arm.side} {joint}',
                                plot_legend=rrb.PlotLegend(visible=False))
             for arm in robot.arms for joint in (*arm.joint_names, 'gripper')]
    columns = max(len(arm.joint_names) + 1 for arm in robot.arms)
    return rrb.Blueprint(rrb.Vertical(
        cameras, rrb.Grid(*plots, grid_columns=columns),
        rrb.Horizontal(rrb.TimeSeriesView(origin='policy', name='inference ms'),
                       *([rrb.TimeSeriesView(origin='episode', name='reward')] if reward
                         else []),
                       rrb.TextLogView(origin='status', name='status')),
        row_shares=[2, 3, 1]), collapse_panels=True)
