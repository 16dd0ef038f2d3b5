"""`vla-adapter-sim-eval`: closed-loop success on the MuJoCo ALOHA, through the real nodes.

Starts the nodes of ``aloha.launch.py use_sim:=true sim:=mujoco sim_clock:=sim`` as processes
and runs one episode per seed (tools/episode_driver.py); the simulator owns the clock, so the
same seed gives the same episode on any machine. Beside the policy, the open-loop baselines of
sim/baselines.py run on the same seeds; every rate is reported with its 95 % Wilson interval
and compared on the same seeds (sim/eval_scoring.py). Writes ``report.json``, ``rewards.png``,
``success.png`` and the first episode's ``top_camera.png`` / ``.gif``; with ``--rerun`` also
``rerun/seed_<seed>.rrd`` per episode (tools/episode_rerun.py).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_ros.params.executor_config import EXECUTOR_PARAMETERS
from vla_adapter_ros.params.mujoco_sim_config import MUJOCO_SIM_PARAMETERS
from vla_adapter_ros.pipeline.chunk_schedule import BLEND_MODES
from vla_adapter_ros.sim import eval_scoring
from vla_adapter_ros.sim.baselines import baseline_rewards, mean_demonstration
from vla_adapter_ros.sim.task_facts import DEFAULT_INSTRUCTION, SUCCESS_REWARD
from vla_adapter_ros.tools.episode_driver import EpisodeDriver, eval_node_specs
from vla_adapter_ros.tools.episode_rerun import RERUN_FOLDER
from vla_adapter_ros.tools.sim_eval_report import print_report, write_plots, write_strip

PROG = 'vla-adapter-sim-eval'


@dataclass(frozen=True)
class SimEvalConfig:
    """What `vla-adapter-sim-eval` runs (the fields are its command line)."""

    checkpoint: str = option(metavar='DIR', help='policy checkpoint directory')
    episodes: int = option(50, help='episodes, one per seed')
    # Seeds from 1000 on: the scripted demonstrations use 0..999.
    seed: int = option(1000, help='first seed (episodes use seed .. seed+episodes-1; never used '
                                  'by the demonstrations)')
    episode_steps: int = option(400, aliases=('--episode-steps',),
                                help='20 ms steps per episode (400 = 8 s, as gym-aloha)')
    demo_seeds: int = option(50, aliases=('--demo-seeds',),
                             help='the mean-demonstration baseline averages seeds 0..N-1')
    baselines: bool = option(True, help='run the hold-still and mean-demonstration baselines')
    device: str = option('cpu', help="the inference node's torch device")
    # The simulator, executor and policy share the CPU: one policy thread never waits for a
    # core the simulator holds.
    cpu_threads: int = option(1, help="the inference node's torch CPU threads (0: torch's "
                                      'default, one per core)')
    # No pause: commands during an episode do not depend on that step's joint states, and
    # each camera frame waits for its chunk, so the same seed gives the same episode without
    # it (checked on seeds 1000-1002: identical final states); it cost 2-3 s per episode.
    settle_s: float = option(0.0, help="the simulator's wall-clock pause between its sensors "
                                       'and its clock at each step (s)')
    instruction: str = option(DEFAULT_INSTRUCTION, help='the instruction the policy is given')
    # The rate of inference: each camera frame is answered by one chunk before time goes on.
    camera_every_steps: int = option(
        MUJOCO_SIM_PARAMETERS['camera_every_steps'].default,
        help='a camera frame, and so a new chunk, every this many 20 ms steps (5 = 10 Hz)')
    # How the executor joins overlapping chunks changes what a policy does (ACT's temporal
    # ensembling was worth much on this task); unset keeps the executor's own default.
    blend_mode: str | None = option(None, choices=BLEND_MODES,
                                    help="the executor's blend_mode (default: the executor's, "
                                         f"{EXECUTOR_PARAMETERS['blend_mode'].default!r})")
    ensemble_k: float | None = option(
        None, help="the executor's ensemble_k, exp(-k*i) with i=0 the oldest chunk (default: "
                   f"the executor's, {EXECUTOR_PARAMETERS['ensemble_k'].default})")
    # The demo policy's cameras are 96x128; the simulator renders at this size.
    image_height: int = option(96, aliases=('--image-height',), help='camera image height')
    image_width: int = option(128, aliases=('--image-width',), help='camera image width')
    output_dir: str | None = option(None, aliases=('--output-dir',), metavar='DIR',
                                    help='where report.json and the plots go (default: a '
                                         'temporary folder)')
    episode_timeout_s: float = option(600.0, aliases=('--episode-timeout-s',),
                                      help='an episode that has not ended by then is an error')
    # The plan against the motion, frame by frame: what a success rate cannot show.
    rerun: bool = option(False, help='write each episode as the live view draws it: '
                                     '<output_dir>/rerun/seed_<seed>.rrd (rerun FILE opens it)')

    def __post_init__(self) -> None:
        for name in ('episodes', 'episode_steps', 'demo_seeds'):
            require_option(getattr(self, name) >= 1, name, getattr(self, name), 'must be >= 1')
        require_option(self.seed >= 0, 'seed', self.seed, 'must be >= 0')
        for name in ('image_height', 'image_width'):
            require_option(16 <= getattr(self, name) <= 2048, name, getattr(self, name),
                     'must be in [16, 2048]')
        require_option(self.episode_timeout_s > 0, 'episode_timeout_s', self.episode_timeout_s,
                 'must be > 0')
        require_option(self.cpu_threads >= 0, 'cpu_threads', self.cpu_threads, 'must be >= 0')
        require_option(0.0 <= self.settle_s <= 1.0, 'settle_s', self.settle_s, 'must be in [0, 1]')
        low, high = MUJOCO_SIM_PARAMETERS['camera_every_steps'].value_range
        require_option(low <= self.camera_every_steps <= high, 'camera_every_steps',
                       self.camera_every_steps, f'must be in [{low:g}, {high:g}]')
        low, high = EXECUTOR_PARAMETERS['ensemble_k'].value_range
        require_option(self.ensemble_k is None or low <= self.ensemble_k <= high, 'ensemble_k',
                       self.ensemble_k, f'must be in [{low}, {high}]')

    @property
    def executor_parameters(self) -> dict:
        """The executor parameters this evaluation sets (the unset ones keep their defaults)."""
        chosen = {'blend_mode': self.blend_mode, 'ensemble_k': self.ensemble_k}
        return {name: value for name, value in chosen.items() if value is not None}

    @property
    def seeds(self) -> list[int]:
        """The evaluated seeds."""
        return list(range(self.seed, self.seed + self.episodes))


def run_policy_episodes(args: SimEvalConfig, output: Path, seeds: list[int],
                        nodes: dict[str, dict] | None = None) -> dict:
    """Start the nodes, run every seed; per-episode rewards, latencies and first-episode frames.

    ``nodes``: further parameters by node (``simulator``, ``executor``; ``recorder``: record
    every episode with these recorder parameters), e.g. a DAgger collection's.
    """
    from ament_index_python.packages import get_package_prefix
    import rclpy
    from tqdm import tqdm

    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.bringup.launch_description import PACKAGE
    from vla_adapter_ros.bringup.node_processes import NodeProcessGroup
    specs = eval_node_specs(str(Path(args.checkpoint).resolve()), args.device, args.instruction,
                            args.episode_steps, (args.image_height, args.image_width),
                            args.cpu_threads,
                            {'settle_s': args.settle_s,
                             'camera_every_steps': args.camera_every_steps,
                             **(nodes or {}).get('simulator', {})},
                            {**args.executor_parameters, **(nodes or {}).get('executor', {})},
                            (nodes or {}).get('recorder'))
    executables = Path(get_package_prefix(PACKAGE)) / 'lib' / PACKAGE
    group = NodeProcessGroup(specs, executables, output / 'logs')
    rclpy.init()
    driver = EpisodeDriver(load_robot_description('aloha_sim'), group.exited,
                           record='recorder' in (nodes or {}),
                           rerun_dir=output / RERUN_FOLDER if args.rerun else None)
    episodes, frames = [], []
    try:
        group.start()
        driver.wait_for_policy(args.episode_timeout_s)
        for index, seed in enumerate(tqdm(seeds, desc='episodes', unit='episode')):
            started = time.monotonic()
            chunks_before = len(driver.inference_ms)
            sources_before = len(driver.control_sources)
            rewards = driver.run_episode(seed, args.episode_steps, args.episode_timeout_s,
                                         capture=index == 0)
            if index == 0:
                frames = list(driver.frames)
            latencies = driver.inference_ms[chunks_before:]
            episodes.append({'seed': seed, 'success': max(rewards, default=0) >= SUCCESS_REWARD,
                             'max_reward': max(rewards, default=0.0),
                             'final_reward': rewards[-1] if rewards else 0.0,
                             'steps': len(rewards), 'chunks': len(latencies),
                             'control_sources': driver.control_sources[sources_before:],
                             'final_state': driver.arm_positions(),
                             'wall_s': round(time.monotonic() - started, 2),
                             'simulator_phases_s': {phase: round(seconds, 3) for phase, seconds
                                                    in driver.phase_seconds.items()},
                             **({'rerun': str(driver.rerun.paths[-1])} if driver.rerun else {}),
                             'rewards': rewards})
    except RuntimeError as error:
        raise RuntimeError(f'{error} (logs in {output / "logs"})') from error
    finally:
        exited = group.exited()
        group.stop()
        latencies = list(driver.inference_ms)
        faults = sorted(set(driver.faults))
        driver.close()
        rclpy.try_shutdown()
    return {'episodes': episodes, 'frames': frames, 'inference_ms': latencies,
            'faults': faults, 'exited_early': exited}


def mean_phases(episodes: list[dict]) -> dict:
    """Mean wall seconds per simulator phase over the episodes (where an episode's time goes)."""
    phases = [episode['simulator_phases_s'] for episode in episodes
              if episode['simulator_phases_s']]
    names = sorted({name for entry in phases for name in entry})
    return {name: float(np.mean([entry.get(name, 0.0) for entry in phases])) for name in names}


def _check_checkpoint(config: SimEvalConfig) -> None:
    if not Path(config.checkpoint, 'config.json').is_file():
        raise ValueError(f'--checkpoint {config.checkpoint}: no config.json (not a checkpoint '
                         'directory)')


def run_baselines(config: SimEvalConfig) -> dict[str, list[list[int]]]:
    """Per-seed reward sequences of each baseline on the evaluated seeds."""
    seeds = config.seeds
    print(f'[{PROG}] baselines on seeds {seeds[0]}..{seeds[-1]}', flush=True)
    mean = mean_demonstration(list(range(config.demo_seeds)), config.episode_steps)
    return {'hold_still': baseline_rewards('hold_still', seeds, None, config.episode_steps),
            'mean_demonstration': baseline_rewards('mean_demonstration', seeds, mean,
                                                   config.episode_steps)}


def compare(policy_rewards: list, baselines: dict, summaries: dict) -> dict:
    """The policy against each baseline on the same seeds: paired test and verdict."""
    solved = eval_scoring.max_rewards(policy_rewards) >= SUCCESS_REWARD
    comparisons = {}
    for name, rewards in baselines.items():
        paired = eval_scoring.paired_comparison(
            solved, eval_scoring.max_rewards(rewards) >= SUCCESS_REWARD)
        comparisons[name] = {**paired, 'verdict': eval_scoring.verdict(
            summaries['policy'], summaries[name], paired)}
    return comparisons


def evaluate(config: SimEvalConfig) -> dict:
    """The whole evaluation; the report (also written as report.json)."""
    _check_checkpoint(config)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    output = (Path(config.output_dir) if config.output_dir
              else Path(tempfile.mkdtemp(prefix='vla_sim_eval_')))
    output.mkdir(parents=True, exist_ok=True)
    seeds = config.seeds
    baselines = run_baselines(config) if config.baselines else {}
    result = run_policy_episodes(config, output, seeds)
    policy_rewards = [episode['rewards'] for episode in result['episodes']]
    latencies = np.asarray(result['inference_ms'], dtype=np.float64)
    summaries = {'policy': eval_scoring.summarise(policy_rewards),
                 **{name: eval_scoring.summarise(rewards) for name, rewards in baselines.items()}}
    report = {
        'checkpoint': str(Path(config.checkpoint).resolve()), 'seeds': [seeds[0], seeds[-1]],
        'episode_steps': config.episode_steps, 'camera_every_steps': config.camera_every_steps,
        'executor': config.executor_parameters,
        'summary': summaries,
        'against_baselines': compare(policy_rewards, baselines, summaries),
        # Per seed (same order as 'episodes'): which seeds a blind policy solves too.
        'baseline_max_rewards': {name: eval_scoring.max_rewards(rewards).tolist()
                                 for name, rewards in baselines.items()},
        'inference_ms': {'chunks': int(latencies.size),
                         'p50': float(np.percentile(latencies, 50)) if latencies.size else None,
                         'p99': float(np.percentile(latencies, 99)) if latencies.size else None},
        'wall_s_per_episode': float(np.mean([episode['wall_s']
                                             for episode in result['episodes']])),
        'simulator_phases_s': mean_phases(result['episodes']),
        'executor_faults': result['faults'],
        'episodes': [{key: value for key, value in episode.items() if key != 'rewards'}
                     for episode in result['episodes']]}
    (output / 'report.json').write_text(json.dumps(report, indent=1))
    write_plots(output, policy_rewards, baselines, summaries)
    write_strip(output, result['frames'])
    report['output_dir'] = str(output)
    return report


def _report(config: SimEvalConfig) -> int:
    print_report(evaluate(config))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point ``vla-adapter-sim-eval``."""
    parser = build_config_parser(SimEvalConfig, PROG, __doc__.splitlines()[0])
    return run_config_main(parser, SimEvalConfig, argv, _report)


if __name__ == '__main__':
    sys.exit(main())
