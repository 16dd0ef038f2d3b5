"""Which of the cube's two coordinates a demo policy reads, and from where (issue 19, recipe H).

    .venv/bin/python benchmarks/demo_policy_axes.py --checkpoint RUN/final
        --start build/diagnosis/start.npz --train_start build/diagnosis/start_train.npz
        [--report EVAL/report.json ...] [--output axes.json]

The start files are demo_policy_diagnosis.py's ``render`` output (held-out seeds, and training
seeds for the readouts' fit). Per checkpoint:
(a) the first chunk's slope on the cube's x and y (step 24, right arm) against the scripted
    expert's, with every camera varying across seeds and with one camera varying alone (the
    others fixed at the first seed's frame): which camera carries which coordinate;
(b) how well a linear readout fitted on the training starts finds the cube's x and y on the
    held-out starts (R^2) from the pooled task states (what the head and the auxiliary loss
    read) and from cam_high's patch embeddings;
(c) the towers' position embeddings against their patch content (std across positions);
(d) with ``--report`` (sim-eval report.json files, any seeds): success by the cube's
    distance from the demonstrations' mean cube, beside the open-loop mean demonstration.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_policy_diagnosis import (  # noqa: E402  (a sibling script, not a package)
    CAMERAS,
    INSTRUCTION,
    cube_positions,
    load_policy,
    predict_observations,
)

from vla_adapter_ros.sim.task_facts import SUCCESS_REWARD  # noqa: E402  (REPO on the path)

STEP = 24  # the chunk step compared (0.48 s after the start)
JOINTS = {'waist': 7, 'shoulder': 8, 'elbow': 9, 'wrist_angle': 11}  # right arm
DISTANCE_BANDS_CM = ((0, 5), (5, 8), (8, 10), (10, 20))
MEAN_DEMO_SEEDS = 50  # the open-loop mean demonstration averages seeds 0-49 (sim-eval's default)


def slopes(chunks: np.ndarray, cube: np.ndarray) -> dict:
    """The slope of each right-arm joint on the cube x and y (rad per m), chunk step STEP."""
    design = np.c_[cube, np.ones(len(cube))]  # (S, 3)
    fit = np.linalg.lstsq(design, chunks[:, STEP], rcond=None)[0]  # (3, 14)
    return {name: {'x': round(float(fit[0, j]), 3), 'y': round(float(fit[1, j]), 3)}
            for name, j in JOINTS.items()}


def camera_slopes(policy, start: dict) -> dict:
    """Slopes with all cameras varying, then with each camera varying alone."""
    cube = start['cube'][:, :2]
    report = {'expert': slopes(start['expert'], cube)}
    for varying in (CAMERAS, *((camera,) for camera in CAMERAS)):
        images = {camera: (start[f'image_{camera}'] if camera in varying else
                           np.repeat(start[f'image_{camera}'][:1], len(cube), axis=0))
                  for camera in CAMERAS}
        proprio = np.repeat(start['proprio'][:1], len(cube), axis=0)
        report['+'.join(varying)] = slopes(predict_observations(policy, images, proprio), cube)
    return report


def model_states(policy, start: dict) -> dict:
    """Pooled task states (S, D) and cam_high's patch embeddings (S, P * D) at the start."""
    import torch

    observations = [{'images': {camera: start[f'image_{camera}'][index] for camera in CAMERAS},
                     'proprio': start['proprio'][index], 'instruction': INSTRUCTION}
                    for index in range(len(start['proprio']))]
    with torch.no_grad():
        outputs = policy.model.forward_detailed(policy.prepare_batch(observations))
    patches = outputs.patch_embeddings.shape[1] // len(CAMERAS)
    return {'task_states_mean': outputs.task_states.mean(dim=(1, 2)).numpy(),  # (S, D)
            'cam_high_patch_embeddings': outputs.patch_embeddings[:, :patches]
            .flatten(1).numpy()}  # (S, P * D)


def held_out_r2(train: np.ndarray, train_cube: np.ndarray, test: np.ndarray,
                test_cube: np.ndarray, ridge: float = 1.0) -> dict:
    """Ridge readout (standardised features) fitted on train, R^2 of x and y on test."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    a, b = (train - mean) / std, (test - mean) / std
    offset = train_cube.mean(0)
    weights = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]),
                              a.T @ (train_cube - offset))  # (F, 2)
    predicted = b @ weights + offset
    r2 = 1 - ((predicted - test_cube) ** 2).sum(0) / ((test_cube - test_cube.mean(0)) ** 2).sum(0)
    return {'x': round(float(r2[0]), 3), 'y': round(float(r2[1]), 3)}


def position_strength(policy, start: dict) -> list[dict]:
    """Per tower: std across patch positions of the position table and of the patch content."""
    import torch

    observation = {'images': {camera: start[f'image_{camera}'][0] for camera in CAMERAS},
                   'proprio': start['proprio'][0], 'instruction': INSTRUCTION}
    pixels = policy.prepare_batch([observation])['pixel_values'][:, 0]  # (1, C, H, W) cam_high
    rows = []
    with torch.no_grad():
        for index, tower in enumerate(policy.model.vision.towers):
            content = tower.patch_embed(pixels[:, 3 * index:3 * index + 3])  # (1, P, d)
            table = tower.pos_embed[0, -content.shape[1]:]  # (P, d)
            rows.append({'position_std': round(float(table.std(dim=0).mean()), 4),
                         'patch_content_std': round(float(content[0].std(dim=0).mean()), 4)})
    return rows


def success_by_distance(report_path: Path) -> dict:
    """Successes per band of the cube's distance (cm) from the demonstrations' mean cube."""
    report = json.loads(report_path.read_text())
    seeds = [episode['seed'] for episode in report['episodes']]
    mean_cube = cube_positions(list(range(MEAN_DEMO_SEEDS))).mean(axis=0)  # (2,)
    distance = 100 * np.linalg.norm(cube_positions(seeds) - mean_cube, axis=1)  # (E,)
    results = {'policy': [episode['max_reward'] for episode in report['episodes']],
               **report.get('baseline_max_rewards', {})}
    bands = {}
    for low, high in DISTANCE_BANDS_CM:
        inside = np.flatnonzero((distance >= low) & (distance < high))
        bands[f'{low}-{high} cm'] = {
            name: f'{sum(rewards[i] >= SUCCESS_REWARD for i in inside)}/{len(inside)}'
            for name, rewards in results.items()}
    return bands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', action='append', default=[])
    parser.add_argument('--start', type=Path, required=True)
    parser.add_argument('--train_start', type=Path, required=True)
    parser.add_argument('--report', type=Path, nargs='*', default=[])
    parser.add_argument('--output', type=Path, default=None)
    args = parser.parse_args(argv)
    start, train_start = dict(np.load(args.start)), dict(np.load(args.train_start))
    result = {'checkpoints': {}, 'by_distance': {str(path): success_by_distance(path)
                                                 for path in args.report}}
    for checkpoint in args.checkpoint:
        policy = load_policy(checkpoint)
        train_states, test_states = model_states(policy, train_start), model_states(policy, start)
        result['checkpoints'][checkpoint] = {
            'slopes_rad_per_m': camera_slopes(policy, start),
            'readout_r2': {name: held_out_r2(train_states[name], train_start['cube'][:, :2],
                                             test_states[name], start['cube'][:, :2])
                           for name in train_states},
            'positions': position_strength(policy, start)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
