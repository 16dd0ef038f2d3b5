"""`vla-adapter-sim-dagger`: HG-DAgger rounds on the MuJoCo ALOHA with the corrective expert.

Per round ``r`` (policy ``r``: the given checkpoint, then each round's fine-tuned one):
1. evaluate it on the held-out seeds (sim-eval's own code, no baselines);
2. collect ``episodes_per_round`` episodes on fresh seeds with the policy in control, the
   simulator's corrective expert at the leader arms and its takeover rule asking the executor's
   real ``~/takeover`` service, the recorder on (bags with the control-source intervals);
3. fine-tune from policy ``r`` on the corrections of every round so far plus the original
   demonstrations (``vla-adapter-train``'s own entry point: ``takeover_samples: corrections``).
Each round's folder (``round_<r>/``: eval/, bags/, train/, round.json) is kept; round.json is
written last, so ``--resume`` continues after the last finished round; within an unfinished
round it reuses a finished evaluation and a complete collection (collected.json). The table
(``dagger.md``, ``dagger.json``) and the plot (``dagger.png``: success per round with its 95 %
Wilson interval) are rewritten after every round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import json
import os
from pathlib import Path
import shutil
import sys
import time

from training.config_cli import build_config_parser, option, require_option, run_config_main
from vla_adapter_ros.tools import sim_eval
from vla_adapter_ros.tools.sim_dagger_report import (
    finished_rounds,
    round_row,
    takeover_fraction,
    write_table_and_plot,
)

PROG = 'vla-adapter-sim-dagger'
ROUND_FILE = 'round.json'
COLLECTED_FILE = 'collected.json'  # a round's bags, written once its collection is complete


@dataclass(frozen=True)
class SimDaggerConfig:
    """What `vla-adapter-sim-dagger` runs (the fields are its command line)."""

    checkpoint: str = option(metavar='DIR', help='the policy of round 0 (a checkpoint directory)')
    output_dir: str = option(metavar='DIR', aliases=('--output-dir',),
                             help='the run folder: one round_<r>/ per round, the table, the plot')
    demos: list[str] = option(factory=list, required=True, metavar='PATH',
                              help='the original demonstration bags (or folders of them), '
                                   'mixed into every fine-tuning')
    rounds: int = option(3, help='DAgger rounds (evaluate, collect, fine-tune)')
    episodes_per_round: int = option(20, aliases=('--episodes-per-round',),
                                     help='takeover episodes collected per round')
    eval_episodes: int = option(50, help='held-out evaluation episodes per round')
    # Evaluation seeds from 1000 (sim-eval's); collection seeds far from both them and the
    # demonstrations' 0..999, fresh in every round.
    eval_seed: int = option(1000, help='first held-out evaluation seed')
    collect_seed: int = option(100000, help='first collection seed (round r: from collect_seed + '
                                            'r x episodes_per_round)')
    resume: bool = option(False, help='continue after the last finished round in --output_dir')
    final_eval: bool = option(True, help="evaluate the last round's fine-tuned policy too")
    episode_steps: int = option(400, help='20 ms steps per episode')
    image_height: int = option(96, help="camera image height (the policy's)")
    image_width: int = option(128, help="camera image width (the policy's)")
    cpu_threads: int = option(1, help="the inference node's torch CPU threads")
    # The takeover rule (the MuJoCo node's parameters of the same names).
    takeover_rule: str = option('divergence', choices=('divergence', 'schedule'),
                                help='when the expert takes over')
    takeover_threshold_rad: float = option(0.3, help="'divergence': follower vs plan, rad")
    takeover_divergence_steps: int = option(10, help="'divergence': steps above the threshold")
    takeover_first_step: int = option(25, help='no takeover before this step')
    operator_steps: int = option(150, help='steps the expert keeps control per takeover')
    # The expert's plan moves on while the followers ramp to it: at the robot's default
    # (0.5 rad/s) the handover can chase it for most of a short segment.
    takeover_speed: float = option(1.5, help="the executor's ramp speed to the leaders' pose "
                                             '(rad/s)')
    # Fine-tuning (vla-adapter-train's options of the same meaning).
    train_steps: int = option(1000, help='optimiser steps of each fine-tuning')
    batch_size: int = option(8, help='samples per optimiser step')
    learning_rate: float = option(1e-4, help='peak learning rate of each fine-tuning')
    correction_repeat: int = option(2, help='times each correction sample appears per epoch')
    correction_context_s: float = option(0.5, help='seconds before each takeover kept too')
    val_episodes: int = option(1, help='episodes held out for validation in each fine-tuning')
    # While the executor holds (a late chunk on a loaded machine, a handover) it commands
    # nothing new: the last command stands, which the zero-order hold of the samples repeats.
    max_gap_s: float = option(1.0, help='a recorded topic silent for longer is an error '
                                        "(vla-adapter-train's max_gap_s)")
    device: str = option('cpu', choices=('cpu', 'cuda'),
                         help='torch device of inference and training')

    def __post_init__(self) -> None:
        for name in ('rounds', 'episodes_per_round', 'eval_episodes', 'episode_steps',
                     'train_steps', 'batch_size', 'correction_repeat', 'operator_steps'):
            require_option(getattr(self, name) >= 1, name, getattr(self, name), 'must be >= 1')
        for name in ('eval_seed', 'collect_seed', 'cpu_threads', 'val_episodes',
                     'takeover_first_step'):
            require_option(getattr(self, name) >= 0, name, getattr(self, name), 'must be >= 0')
        require_option(self.learning_rate > 0, 'learning_rate', self.learning_rate, 'must be > 0')
        require_option(self.max_gap_s > 0, 'max_gap_s', self.max_gap_s, 'must be > 0')
        require_option(0.01 <= self.takeover_speed <= 3.0, 'takeover_speed',
                       self.takeover_speed, 'must be in [0.01, 3]')
        require_option(self.takeover_threshold_rad > 0, 'takeover_threshold_rad',
                       self.takeover_threshold_rad, 'must be > 0')
        require_option(self.correction_context_s >= 0, 'correction_context_s',
                       self.correction_context_s, 'must be >= 0')
        for path in (self.checkpoint, *self.demos):
            require_option(Path(path).exists(), 'checkpoint' if path == self.checkpoint
                           else 'demos', path, 'does not exist')
        require_option(Path(self.checkpoint, 'config.json').is_file(), 'checkpoint',
                       self.checkpoint, 'no config.json (not a checkpoint directory)')

    def eval_config(self, checkpoint: Path, output: Path) -> sim_eval.SimEvalConfig:
        """Sim-eval's settings for one policy on the held-out seeds."""
        return sim_eval.SimEvalConfig(
            checkpoint=str(checkpoint), episodes=self.eval_episodes, seed=self.eval_seed,
            episode_steps=self.episode_steps, baselines=False, device=self.device,
            cpu_threads=self.cpu_threads, image_height=self.image_height,
            image_width=self.image_width, output_dir=str(output))

    def collection_nodes(self, bags: Path) -> dict[str, dict]:
        """The nodes' extra parameters of a collection: the expert, the rule, the recorder."""
        return {'simulator': {
                    'corrective_expert': True, 'takeover_rule': self.takeover_rule,
                    'takeover_threshold_rad': self.takeover_threshold_rad,
                    'takeover_divergence_steps': self.takeover_divergence_steps,
                    'takeover_first_step': self.takeover_first_step,
                    'operator_steps': self.operator_steps},
                # The sim clock waits for chunks: wall time must not make the leaders stale.
                'executor': {'leader_stale_s': 60.0, 'takeover_speed': self.takeover_speed},
                # The cameras publish only while an episode runs.
                'recorder': {'output_dir': str(bags), 'require_all_topics': False}}


def _policy_of(config: SimDaggerConfig, run: Path, round_index: int) -> Path:
    """The policy round ``round_index`` starts from."""
    if round_index == 0:
        return Path(config.checkpoint).resolve()
    return Path(json.loads((run / f'round_{round_index - 1}' / ROUND_FILE).read_text())[
        'trained_checkpoint'])


def evaluate_once(config: SimDaggerConfig, policy: Path, output: Path) -> dict:
    """Sim-eval of ``policy``, or the report an interrupted run already wrote for it."""
    eval_config = config.eval_config(policy, output)
    report_file = output / 'report.json'
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        seeds = eval_config.seeds
        if report.get('checkpoint') == str(policy.resolve()) and report.get('seeds') == [
                seeds[0], seeds[-1]]:
            print(f'[{PROG}] reusing the evaluation in {output}', flush=True)
            return report
    return sim_eval.evaluate(eval_config)


def collect(config: SimDaggerConfig, policy: Path, folder: Path, round_index: int) -> list[Path]:
    """Takeover episodes on this round's fresh seeds, recorded; the bags."""
    first = config.collect_seed + round_index * config.episodes_per_round
    seeds = list(range(first, first + config.episodes_per_round))
    bags = folder / 'bags'
    collected = folder / COLLECTED_FILE
    if collected.is_file():  # an interrupted run finished this collection
        print(f'[{PROG}] round {round_index}: reusing the bags in {bags}', flush=True)
        return [Path(path) for path in json.loads(collected.read_text())]
    shutil.rmtree(bags, ignore_errors=True)  # a collection cut short is done again
    print(f'[{PROG}] round {round_index}: collecting seeds {seeds[0]}..{seeds[-1]}', flush=True)
    eval_config = replace(config.eval_config(policy, folder), episodes=len(seeds))
    sim_eval.run_policy_episodes(eval_config, folder, seeds, config.collection_nodes(bags))
    found = sorted(path for path in bags.iterdir() if path.is_dir())
    if len(found) != len(seeds):
        raise RuntimeError(f'round {round_index}: {len(found)} bags recorded for '
                           f'{len(seeds)} episodes in {bags}')
    collected.write_text(json.dumps([str(path) for path in found], indent=1))
    return found


def fine_tune(config: SimDaggerConfig, policy: Path, bags: list[Path], folder: Path) -> Path:
    """Fine-tune ``policy`` on the corrections in ``bags`` and the demonstrations; its final."""
    from training.data_config import DatasetConfig
    from training.finetune import run_checked
    from training.train_config import TrainConfig
    from training.trainer import FINAL_DIR
    from vla_adapter_core.config import PolicyConfig
    policy_config = PolicyConfig.from_dict(json.loads((policy / 'config.json').read_text()))
    data = DatasetConfig(
        paths=[str(path) for path in (*bags, *config.demos)], robot='aloha_sim',
        camera_names=list(policy_config.camera_names), chunk_size=policy_config.chunk_size,
        action_source='topic', jpeg_draft_size=0,  # the demo recipe's full-size frames
        action_topic='/commanded_action', cache_dir=str(folder / 'cache'),
        takeover_samples='corrections', correction_context_s=config.correction_context_s,
        max_gap_s=config.max_gap_s)
    train = TrainConfig(
        # The policy's own head: another kind would start a fresh head and drop the trained one.
        data=data, output_dir=str(folder / 'train'), pretrained=str(policy),
        head_kind=policy_config.action_head.kind,
        max_steps=config.train_steps, batch_size=config.batch_size,
        learning_rate=config.learning_rate, warmup_steps=min(100, config.train_steps // 10),
        correction_repeat=config.correction_repeat, num_val_episodes=config.val_episodes,
        val_every=config.train_steps, save_every=config.train_steps, progress_bar=False,
        device=config.device, num_workers=0)
    shutil.rmtree(folder / 'train', ignore_errors=True)  # a fine-tuning cut short starts again
    run_checked(train)
    return folder / 'train' / FINAL_DIR


def run_round(config: SimDaggerConfig, run: Path, round_index: int) -> dict:
    """One round; its row (also written as round_<r>/round.json)."""
    folder = run / f'round_{round_index}'
    policy = _policy_of(config, run, round_index)
    report = evaluate_once(config, policy, folder / 'eval')
    bags = collect(config, policy, folder, round_index)
    all_bags = [Path(bag) for index in range(round_index) for bag in
                json.loads((run / f'round_{index}' / ROUND_FILE).read_text())['bags']] + bags
    started = time.monotonic()
    trained = fine_tune(config, policy, all_bags, folder)
    minutes = (time.monotonic() - started) / 60.0
    row = round_row(round_index, policy, report['summary']['policy'], bags,
                    takeover_fraction(bags), minutes, trained)
    (folder / ROUND_FILE).write_text(json.dumps(row, indent=1))
    return row


def run_dagger(config: SimDaggerConfig) -> list[dict]:
    """Every round (after the finished ones with ``--resume``); the table's rows."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    run = Path(config.output_dir)
    done = finished_rounds(run, ROUND_FILE)
    if done and not config.resume:
        raise ValueError(f'--output_dir {run}: holds {len(done)} finished round(s); add '
                         '--resume to continue or choose another folder')
    rows = [json.loads((run / f'round_{index}' / ROUND_FILE).read_text())
            for index in range(len(done))]
    for index in range(len(done), config.rounds):
        rows.append(run_round(config, run, index))
        write_table_and_plot(run, rows, None)
    final = None
    if config.final_eval and rows:
        trained = Path(rows[-1]['trained_checkpoint'])
        final = evaluate_once(config, trained, run / 'final_eval')
        final = {'round': len(rows), 'checkpoint': str(trained), **final['summary']['policy']}
    write_table_and_plot(run, rows, final)
    return rows


def _run(config: SimDaggerConfig) -> int:
    rows = run_dagger(config)
    print((Path(config.output_dir) / 'dagger.md').read_text())
    print(f'[{PROG}] {len(rows)} round(s) in {config.output_dir}')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point ``vla-adapter-sim-dagger``."""
    parser = build_config_parser(SimDaggerConfig, PROG, __doc__.splitlines()[0])
    return run_config_main(parser, SimDaggerConfig, argv, _run)


if __name__ == '__main__':
    sys.exit(main())
