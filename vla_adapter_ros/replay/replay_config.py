"""Settings of `vla-adapter-replay-eval`: one dataclass, whose fields are the command line.

The flags, their defaults and help text come from here through training.config_cli (the path
`vla-adapter-train` uses); `--config FILE` reads the same fields from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.config_cli import build_config_parser, option, require_option
from vla_adapter_ros.pipeline.chunk_schedule import BLEND_MODES

PROG = 'vla-adapter-replay-eval'
ACTION_SOURCES = ('auto', 'leader_joint_states', 'topic')
TIMESTAMP_SOURCES = ('header', 'bag')
DEFAULT_ACTION_TOPIC = '/commanded_action'  # the recorder's combined executor commands
LATENCY_PROBES = 5  # single-observation calls timed per bag when predicting in batches
CHUNKS_FILE = 'chunks.npz'  # --save_chunks: every predicted chunk of the run
MAX_BATCH_SIZE = 256  # --batch_size limit (memory: each observation holds its images)


@dataclass(frozen=True)
class ReplayEvalConfig:
    """What to evaluate, how bags are read and how inference points are chosen."""

    bag: str = option(metavar='PATH|DIR',
                      help='a rosbag2 bag (directory, .mcap or .db3) or a folder of bags')
    checkpoint: str | None = option(None, metavar='DIR|REPO_ID',
                                    help='policy checkpoint (required unless --commands)')
    commands: str | None = option(
        None, metavar='BAG', help='score a live replay instead: a bag the recorder wrote with '
        "action_source 'executor_commands' while --bag was played (its /commanded_action "
        "against --bag's actions)")
    output: str = option('replay_eval_report', metavar='DIR',
                         help='report directory (must not exist or be empty, unless --overwrite)')
    overwrite: bool = option(False, help='replace an existing report')
    robot: str = option('aloha', metavar='NAME|FILE',
                        help='robot description of the bags (a built-in name or a YAML file)')
    instruction: str | None = option(None, help="instruction for every bag (default: the bag's)")
    stride: int = option(1, help='infer at every N-th synchronised observation')
    batch_size: int = option(
        1, help='observations per policy call (larger is faster, most of all on a GPU; the '
        'latencies and the executed view then use timed single calls on the first '
        f'{LATENCY_PROBES} batches of each bag)')
    device: str = option('cpu', help="torch device, e.g. 'cpu' or 'cuda'")
    dtype: str = option('auto', help="policy dtype ('auto': bf16 on CUDA)")
    seed: int = option(0, help='torch / numpy seed')
    # One thread: with torch's default (one per core) on a machine whose cores are busy, every
    # parallel region waits for a descheduled thread; the latencies measured 10-12x too high.
    threads: int = option(1, help="torch CPU threads (0: torch's default, one per core; faster "
                                  'only on an otherwise idle machine)')
    dt: float = option(0.0, help="chunk step in s (0: the robot's control period)")
    action_source: str = option(
        'auto', choices=ACTION_SOURCES, help="where the demonstrator's actions are ('auto': the "
        "recorder's sidecar, else leader joint states, else --action_topic)")
    action_topic: str | None = option(None, help=f'action topic (default {DEFAULT_ACTION_TOPIC})')
    timestamp_source: str = option('header', choices=TIMESTAMP_SOURCES,
                                   help='align on header stamps or bag receive times')
    max_gap_s: float = option(0.2, help='a topic silent for longer inside a bag is an error')
    # The synchroniser's settings: the inference node's defaults, so replay sees what it sees.
    sync_slop_s: float = option(0.05, help='largest stamp spread inside a synchronised set (s)')
    max_observation_age_s: float = option(0.5, help='older messages never join a set (s)')
    max_future_stamp_s: float = option(0.5, help='messages stamped further ahead are refused')
    executed_latency_s: float | None = option(
        None, help="latency of every chunk in the executed view (default: each chunk's measured "
        'inference time)')
    # The executed view's executor: the robot's rate and blending.
    executor_rate_hz: float = option(50.0, help="the simulated executor's tick rate (Hz)")
    blend_mode: str = option('ensemble', choices=BLEND_MODES,
                             help="the executor's blending in the executed view")
    gripper_threshold: float = option(0.5, help='open/closed threshold of the normalised '
                                                'gripper for the agreement metric')
    max_plots: int = option(4, help='episodes with a predicted-vs-recorded joint plot')
    # The plan-against-motion view of vla-adapter-view, per episode, for Rerun's viewer.
    rerun: bool = option(False, help='also write rerun/<bag>.rrd per episode: recorded state, '
                                     "demonstrator's actions and every predicted chunk")
    save_chunks: bool = option(False, help=f'also write {CHUNKS_FILE}: the bag, stamp, grid step '
                                           'and predicted chunk of every inference point (policy '
                                           'units), to compare two runs point by point')
    progress: bool = option(True, help='a progress bar per bag')

    def __post_init__(self) -> None:
        require_option(self.stride >= 1, 'stride', self.stride, 'must be >= 1')
        require_option(self.dt >= 0, 'dt', self.dt, 'must be >= 0')
        require_option(1 <= self.batch_size <= MAX_BATCH_SIZE, 'batch_size', self.batch_size,
                 f'must be 1 to {MAX_BATCH_SIZE}')
        require_option(self.threads >= 0, 'threads', self.threads, 'must be >= 0')
        require_option(self.max_gap_s > 0, 'max_gap_s', self.max_gap_s, 'must be > 0')
        require_option(self.executed_latency_s is None or self.executed_latency_s >= 0,
                 'executed_latency_s', self.executed_latency_s, 'must be >= 0')
        require_option(self.executor_rate_hz > 0, 'executor_rate_hz', self.executor_rate_hz,
                 'must be > 0')
        require_option(0.0 < self.gripper_threshold < 1.0, 'gripper_threshold',
                 self.gripper_threshold, 'must be inside (0, 1)')
        require_option(self.max_plots >= 0, 'max_plots', self.max_plots, 'must be >= 0')


def build_parser():
    """The command line of `vla-adapter-replay-eval` (with --config and --debug)."""
    return build_config_parser(
        ReplayEvalConfig, PROG, 'Evaluate a checkpoint on recorded rosbag2 episodes: chunk '
        'errors against the demonstrator, baselines, the executed command stream; writes a '
        'report directory (metrics.json, PNG plots, report.html).')
