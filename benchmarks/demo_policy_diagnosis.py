"""Why the demo checkpoint is blind (issue 19): the numbers of docs/demo_policy_diagnosis.md.

Two steps in two processes (a process that imports both mujoco's EGL renderer and torch's
triton segfaults on import here):

    MUJOCO_GL=egl .venv/bin/python benchmarks/demo_policy_diagnosis.py render
        --output build/diagnosis/start.npz
    .venv/bin/python benchmarks/demo_policy_diagnosis.py analyse
        --start build/diagnosis/start.npz
        --checkpoint checkpoints/aloha_sim_transfer_cube [--checkpoint RUN/final ...]
        --demos build/demo_checkpoint/demos_clean build/demo_checkpoint/demos_disturbed
        --output report.json
    (one line each; --preprocessing: the policy JSONs whose image path to measure, by default
    config/demo/transfer_cube_policy.json and config/demo/transfer_cube_crop_policy.json)

``render`` (mujoco, no torch): per held-out seed the start observation at the evaluation's
96x128 (3 cameras, proprio), the cube's pixel mask per camera (segmentation render), the cube
pose and the scripted expert's first chunk; the expert's first chunks of the demonstration
seeds; the cube poses of the demonstration and evaluation seeds; observations and expert chunks
at a few steps along the expert's path (``MID_STEPS``).
``analyse`` (torch, no mujoco): (a) each checkpoint's first chunk against the expert's, and
along the expert's path how much the chunk moves when the images or the proprio of another seed
are swapped in; (b) the
cube's pixels at the model input for each preprocessing, what the training random crop and hue
jitter do to it; (c) how the demonstrations' cube positions cover the evaluation seeds'.
Prints a JSON report (and writes it with ``--output``).
``table REPORT.json ...``: markdown rows (success, 95 % Wilson interval, mean max reward) of
``vla-adapter-sim-eval`` reports, for the variants table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
CHUNK = 25  # the demo policies' chunk length
REPORT_STEPS = (12, 24)  # chunk steps the report compares (0.24 s and 0.48 s after the start)
INSTRUCTION = 'transfer the red cube to the other arm'
MID_STEPS = (5, 10, 20, 40)  # control steps along the expert where images and proprio are swapped


# ----------------------------------------------------------------------------- render (mujoco)
def render_start(seeds: list[int], image_hw: tuple[int, int]) -> dict:
    """Start observations, cube masks, cube poses and expert chunks of ``seeds``."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha, model_camera
    from vla_adapter_ros.sim.scripted_expert import scripted_joint_trajectory
    robot = load_robot_description('aloha_sim')
    scene = MujocoAloha(robot)
    box_geom = scene.physics.model.name2id('red_box', 'geom')
    images = {camera: [] for camera in CAMERAS}
    masks = {camera: [] for camera in CAMERAS}
    proprio, cubes, expert = [], [], []
    for seed in seeds:
        scene.reset(seed)
        for camera in CAMERAS:
            images[camera].append(scene.render(camera, *image_hw))  # (H, W, 3)
            segmentation = scene.physics.render(*image_hw, camera_id=model_camera(camera),
                                                segmentation=True)  # (H, W, 2) id, type
            masks[camera].append((segmentation[..., 0] == box_geom)
                                 & (segmentation[..., 1] == 5))  # 5: mjOBJ_GEOM
        proprio.append(scene.policy_state())  # (14,)
        cubes.append(scene.physics.named.data.xpos['box'].copy())  # (3,)
        expert.append(scripted_joint_trajectory(robot, seed, CHUNK)[0])  # (CHUNK, 14)
    data = {f'image_{camera}': np.stack(images[camera]) for camera in CAMERAS}
    data.update({f'mask_{camera}': np.stack(masks[camera]) for camera in CAMERAS})
    data.update(proprio=np.stack(proprio), cube=np.stack(cubes), expert=np.stack(expert),
                seeds=np.asarray(seeds))
    return data


def render_along_expert(seeds: list[int], steps: tuple[int, ...],
                        image_hw: tuple[int, int]) -> dict:
    """Observations at control ``steps`` while the joint scene replays the expert, per seed."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.sim.mujoco_aloha import MujocoAloha
    from vla_adapter_ros.sim.scripted_expert import scripted_joint_trajectory
    robot = load_robot_description('aloha_sim')
    scene = MujocoAloha(robot)
    images = {camera: [] for camera in CAMERAS}
    proprio, expert = [], []
    for seed in seeds:
        targets = scripted_joint_trajectory(robot, seed, max(steps) + CHUNK)[0]  # (T, 14)
        scene.reset(seed)
        for step in range(max(steps) + 1):
            if step in steps:
                for camera in CAMERAS:
                    images[camera].append(scene.render(camera, *image_hw))  # (H, W, 3)
                proprio.append(scene.policy_state())  # (14,)
                expert.append(targets[step:step + CHUNK])  # (CHUNK, 14)
            scene.command_policy_action(targets[step])
            scene.step()
    shape = (len(seeds), len(steps))
    data = {f'mid_image_{camera}': np.stack(images[camera]).reshape(
        *shape, *image_hw, 3) for camera in CAMERAS}  # (S, K, H, W, 3)
    data.update(mid_proprio=np.stack(proprio).reshape(*shape, -1),  # (S, K, 14)
                mid_expert=np.stack(expert).reshape(*shape, CHUNK, -1),  # (S, K, CHUNK, 14)
                mid_steps=np.asarray(steps))
    return data


def demonstration_chunks(seeds: list[int]) -> np.ndarray:
    """(S, CHUNK, 14) the scripted expert's first chunks for demonstration ``seeds``."""
    from vla_adapter_core.robot_description import load_robot_description
    from vla_adapter_ros.sim.scripted_expert import scripted_joint_trajectory
    robot = load_robot_description('aloha_sim')
    return np.stack([scripted_joint_trajectory(robot, seed, CHUNK)[0] for seed in seeds])


def cube_positions(seeds: list[int]) -> np.ndarray:
    """(S, 2) cube x, y (m) that gym-aloha places for ``seeds``."""
    from gym_aloha.utils import sample_box_pose
    return np.stack([sample_box_pose(seed)[:2] for seed in seeds])


def run_render(args: argparse.Namespace) -> None:
    eval_seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    data = render_start(eval_seeds, (args.image_height, args.image_width))
    demo_seeds = list(range(args.demo_seeds))
    data['demo_expert'] = demonstration_chunks(demo_seeds)
    data['demo_cube_xy'] = cube_positions(list(range(80)))
    data['eval_cube_xy'] = cube_positions(list(range(1000, 1050)))
    data.update(render_along_expert(eval_seeds, MID_STEPS, (args.image_height, args.image_width)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **data)
    print(f'wrote {args.output}: {len(eval_seeds)} start observations, '
          f'{len(demo_seeds)} demonstration chunks')


# ----------------------------------------------------------------------------- (a) chunks
def predicted_chunks(checkpoint: str, start: dict) -> np.ndarray:
    """(S, CHUNK, 14) the checkpoint's first chunk at each start observation."""
    images = {camera: start[f'image_{camera}'] for camera in CAMERAS}
    return predict_observations(load_policy(checkpoint), images, start['proprio'])


def load_policy(checkpoint: str):
    import torch

    from vla_adapter_core.policy import VLAPolicy
    torch.set_num_threads(1)
    return VLAPolicy.from_pretrained(checkpoint, device='cpu')


def predict_observations(policy, images: dict, proprio: np.ndarray) -> np.ndarray:
    """(S, chunk, 14) chunks for camera -> (S, H, W, 3) images and (S, 14) proprio."""
    observations = [{'images': {camera: images[camera][index] for camera in CAMERAS},
                     'proprio': proprio[index], 'instruction': INSTRUCTION}
                    for index in range(len(proprio))]
    return np.concatenate([policy.predict_action_chunk_batch(observations[i:i + 10])
                           for i in range(0, len(observations), 10)])


def swap_sensitivity(checkpoint: str, start: dict) -> dict:
    """What the chunk follows along the expert's path: the images or the proprio.

    At each of ``mid_steps`` every seed's chunk is predicted from its own observation, from its
    own proprio with the next seed's images, and from its own images with the next seed's
    proprio; RMS changes (rad) against the expert's change between the two seeds.
    """
    policy = load_policy(checkpoint)
    report = {}
    for index, step in enumerate(start['mid_steps']):
        images = {camera: start[f'mid_image_{camera}'][:, index] for camera in CAMERAS}
        other = {camera: np.roll(frames, 1, axis=0) for camera, frames in images.items()}
        proprio = start['mid_proprio'][:, index]  # (S, 14)
        expert = start['mid_expert'][:, index]  # (S, CHUNK, 14)
        own = predict_observations(policy, images, proprio)  # (S, chunk, 14)
        image_swapped = predict_observations(policy, other, proprio)
        proprio_swapped = predict_observations(policy, images, np.roll(proprio, 1, axis=0))
        deviation = expert - expert.mean(axis=0)
        own_deviation = own - own.mean(axis=0)
        report[str(int(step))] = {
            'expert_change_between_seeds_rad': _rms(expert - np.roll(expert, 1, axis=0)),
            'chunk_change_images_swapped_rad': _rms(image_swapped - own),
            'chunk_change_proprio_swapped_rad': _rms(proprio_swapped - own),
            'gain_vs_expert': float((own_deviation * deviation).sum() / (deviation ** 2).sum()),
            'rms_error_rad': _rms(own - expert)}
    return report


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values ** 2)))


def linear_fit(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Least squares (with a tiny ridge) of ``targets`` (S, K) on [features, 1] (S, F)."""
    design = np.concatenate([features, np.ones((len(features), 1))], axis=1)  # (S, F + 1)
    gram = design.T @ design + ridge * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ targets)  # (F + 1, K)


def linear_apply(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.concatenate([features, np.ones((len(features), 1))], axis=1) @ weights


def chunk_dependence(predicted: np.ndarray, start: dict) -> dict:
    """How the first chunk (S, T, 14) follows the cube, against the scripted expert."""
    expert = start['expert'][:, :predicted.shape[1]]  # (S, T, 14)
    cube = start['cube'][:, :2]  # (S, 2) m
    mean_demo = start['demo_expert'].mean(axis=0)[:predicted.shape[1]]  # (T, 14)
    rows = {}
    for step in REPORT_STEPS:
        want, got = expert[:, step], predicted[:, step]  # (S, 14)
        want_dev, got_dev = want - want.mean(0), got - got.mean(0)
        cube_fit = linear_apply(linear_fit(cube, got), cube)  # (S, 14)
        rows[str(step)] = {
            'expert_std_rad': float(np.sqrt((want_dev ** 2).mean())),
            'predicted_std_rad': float(np.sqrt((got_dev ** 2).mean())),
            'expert_std_max_joint_rad': float(want.std(axis=0).max()),
            'predicted_std_max_joint_rad': float(got.std(axis=0).max()),
            'gain': float((got_dev * want_dev).sum() / (want_dev ** 2).sum()),
            'r2_vs_expert': float(1 - ((got - want) ** 2).sum() / (want_dev ** 2).sum()),
            'r2_on_cube': (float(1 - ((got - cube_fit) ** 2).sum() / (got_dev ** 2).sum())
                           if (got_dev ** 2).sum() > 1e-18 else None),  # None: no spread
            'rms_error_rad': float(np.sqrt(((got - want) ** 2).mean())),
            'mean_trajectory_rms_error_rad': float(np.sqrt(((mean_demo[step] - want) ** 2)
                                                           .mean())),
        }
    rows['cube_from_chunk_cm'] = cube_decoding(predicted, start)
    return rows


def cube_decoding(predicted: np.ndarray, start: dict) -> dict:
    """Where each chunk 'puts' the cube: a linear map right-arm joints -> cube x, y.

    Fitted on the demonstration seeds' expert chunks (right arm, step 24: it moves towards the
    cube), applied to the evaluation seeds' predicted and expert chunks; RMS error in cm. The
    predictions once more with their mean bias removed: the cube information in their spread.
    """
    step = REPORT_STEPS[-1]
    demo_cube = start['demo_cube_xy'][:len(start['demo_expert'])]  # (D, 2) m
    weights = linear_fit(start['demo_expert'][:, step, 7:13], demo_cube)
    cube = start['cube'][:, :2]  # (S, 2)

    def error_cm(chunks: np.ndarray) -> float:
        decoded = linear_apply(weights, chunks[:, step, 7:13])  # (S, 2)
        return float(100 * np.sqrt(((decoded - cube) ** 2).sum(axis=1).mean()))
    offset = start['expert'].mean(axis=0) - predicted.mean(axis=0)  # (T, 14) the mean bias
    return {'predicted': error_cm(predicted), 'expert': error_cm(start['expert']),
            'predicted_without_mean_bias': error_cm(predicted + offset),
            'constant_mean_cube': float(100 * np.sqrt(((cube - demo_cube.mean(0)) ** 2)
                                                      .sum(axis=1).mean()))}


# ----------------------------------------------------------------------------- (b) pixels
def model_input_masks(masks: np.ndarray, processor: dict, image_size: int,
                      camera: str) -> np.ndarray:
    """(S, H, W) bool cube masks -> (S, S', S') coverage in [0, 1] at the model's input.

    The processor's own steps: the camera's crop box, bicubic antialiased resize, centre crop.
    """
    import torch

    from vla_adapter_core.processor import (
        center_crop_images,
        crop_camera_image,
        resize_images,
    )
    box = (processor.get('camera_crops') or {}).get(camera)
    frames = np.stack([crop_camera_image(mask, box) for mask in masks])  # (S, h, w)
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.uint8)[:, None] * 255
    resized = resize_images(pixels.expand(-1, 3, -1, -1).contiguous(), image_size)
    cropped = center_crop_images(resized, processor.get('center_crop_fraction', 1.0))
    return cropped[:, 0].float().numpy() / 255.0  # (S, S', S')


def centroids(coverage: np.ndarray) -> np.ndarray:
    """(S, H, W) coverage -> (S, 2) row, column centres of mass (NaN when empty)."""
    rows, cols = np.indices(coverage.shape[1:])
    total = coverage.sum(axis=(1, 2))
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.stack([(coverage * rows).sum(axis=(1, 2)) / total,
                         (coverage * cols).sum(axis=(1, 2)) / total], axis=1)


def random_crop_shift(frame_hw: tuple[int, int], crop_area: float,
                      image_size: int) -> tuple[float, float]:
    """Largest shift (rows, cols, model pixels) of the training random crop vs the centred one."""
    side = math.sqrt(crop_area)
    shifts = []
    for extent in frame_hw:
        crop = max(1, round(extent * side))
        shifts.append((extent - crop) / 2 * image_size / crop)
    return shifts[0], shifts[1]


def pixel_report(start: dict, policy_json: str, crop_area: float) -> dict:
    """The cube at the model input of one preprocessing, per camera.

    At cam_high also the training random crop's largest shift, in model pixels and in cm of
    cube position.
    """
    config = json.loads(Path(policy_json).read_text())
    processor, size = config['processor'], config['vision']['image_size']
    report = {}
    for camera in CAMERAS:
        masks = start[f'mask_{camera}']  # (S, H, W)
        coverage = model_input_masks(masks, processor, size, camera)  # (S, S', S')
        report[camera] = {'raw_pixels': float(masks.sum(axis=(1, 2)).mean()),
                          'model_pixel_area': float(coverage.sum(axis=(1, 2)).mean()),
                          'model_pixels_half_covered': float((coverage >= 0.5)
                                                             .sum(axis=(1, 2)).mean())}
    coverage = model_input_masks(start['mask_cam_high'], processor, size, 'cam_high')
    centre = centroids(coverage)  # (S, 2) rows, cols
    slope = linear_fit(start['cube'][:, :2] * 100, centre)[:2]  # (2 cube cm, 2 px)
    rows_per_cm, cols_per_cm = abs(slope[1, 0]), abs(slope[0, 1])
    box = (processor.get('camera_crops') or {}).get('cam_high')
    height, width = start['mask_cam_high'].shape[1:]
    if box is not None:
        height, width = round(box[2] * height), round(box[3] * width)
    shift_rows, shift_cols = random_crop_shift((height, width), crop_area, size)
    report['cam_high_geometry'] = {
        'model_rows_per_cm_of_cube_y': float(rows_per_cm),
        'model_cols_per_cm_of_cube_x': float(cols_per_cm),
        'cube_range_model_px': [float(np.ptp(centre[:, 0])), float(np.ptp(centre[:, 1]))],
        f'random_crop_{crop_area}_max_shift_model_px': [shift_rows, shift_cols],
        f'random_crop_{crop_area}_max_shift_cm': [shift_rows / rows_per_cm,
                                                  shift_cols / cols_per_cm]}
    return report


def hue_report(start: dict, hue: float) -> dict:
    """The cube's mean colour and what the hue jitter's extremes make of it (RGB, HSV hue)."""
    import colorsys

    from training.augmentation import RGB_TO_YIQ
    pixels = start['image_cam_high'][start['mask_cam_high']].astype(np.float64)  # (N, 3)
    colour = pixels.mean(axis=0)
    table = start['image_cam_high'][:, 40:44, 60:64].reshape(-1, 3).mean(axis=0)
    shifted = {}
    for sign in (-1, 1):
        angle = 2 * math.pi * sign * hue
        rotate = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)],
                           [0, math.sin(angle), math.cos(angle)]])
        rgb = np.clip(np.linalg.inv(RGB_TO_YIQ) @ rotate @ RGB_TO_YIQ @ colour, 0, 255)
        shifted[f'{sign * hue:+.2f}'] = {
            'rgb': rgb.round(1).tolist(),
            'hue_deg': round(360 * colorsys.rgb_to_hsv(*(rgb / 255))[0], 1)}
    return {'cube_rgb': colour.round(1).tolist(),
            'cube_hue_deg': round(360 * colorsys.rgb_to_hsv(*(colour / 255))[0], 1),
            'table_rgb': table.round(1).tolist(), 'jittered': shifted}


def centre_crop_report(start: dict, fraction: float) -> dict:
    """What the inference centre crop cuts: band widths and cube pixels inside the bands."""
    masks = start['mask_cam_high']  # (S, H, W)
    height, width = masks.shape[1:]
    side = math.sqrt(fraction)
    band_rows, band_cols = (1 - side) / 2 * height, (1 - side) / 2 * width
    keep = np.zeros((height, width), dtype=bool)
    keep[math.ceil(band_rows):height - math.ceil(band_rows),
         math.ceil(band_cols):width - math.ceil(band_cols)] = True
    return {'band_rows_each_side': band_rows, 'band_cols_each_side': band_cols,
            'cube_pixels_cut': int((masks & ~keep).sum())}


# ----------------------------------------------------------------------------- (c) coverage
def kept_demo_seeds(folders: list[Path]) -> list[int]:
    """Seeds of the demonstrations the summaries of ``folders`` kept (transferred the cube)."""
    import yaml
    seeds = []
    for folder in folders:
        summary = yaml.safe_load((folder / 'demos_summary.yaml').read_text())
        seeds += [row['seed'] for row in summary['per_episode'] if row['bag']]
    return seeds


def coverage_report(start: dict, kept: list[int] | None) -> dict:
    """Nearest-demonstration distances of the evaluation cubes (cm), against the demos' own."""
    demo = start['demo_cube_xy']  # (80, 2) m, seeds 0-79
    if kept is not None:
        demo = demo[[seed for seed in kept if seed < len(demo)]]
    evaluation = start['eval_cube_xy']  # (50, 2) m, seeds 1000-1049
    to_demo = np.linalg.norm(evaluation[:, None] - demo[None], axis=2).min(axis=1) * 100
    among = np.linalg.norm(demo[:, None] - demo[None], axis=2) * 100
    np.fill_diagonal(among, np.inf)
    low, high = demo.min(axis=0), demo.max(axis=0)
    inside = np.all((evaluation >= low) & (evaluation <= high), axis=1)
    return {'demonstrations': len(demo),
            'eval_to_nearest_demo_cm': {'mean': float(to_demo.mean()),
                                        'median': float(np.median(to_demo)),
                                        'max': float(to_demo.max())},
            'demo_to_nearest_demo_cm_mean': float(among.min(axis=1).mean()),
            'eval_inside_demo_bounding_box': int(inside.sum()),
            'demo_x_range_cm': (100 * np.array([low[0], high[0]])).round(1).tolist(),
            'demo_y_range_cm': (100 * np.array([low[1], high[1]])).round(1).tolist()}


# ----------------------------------------------------------------------------- variants
def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def variant_rows(reports: list[Path]) -> list[str]:
    """Markdown rows (policy and baselines) of ``vla-adapter-sim-eval`` report.json files."""
    rows = []
    for path in reports:
        report = json.loads(path.read_text())
        for name, summary in report['summary'].items():
            trials = summary['episodes']
            successes = round(summary['success_rate'] * trials)
            low, high = wilson_interval(successes, trials)
            label = report['checkpoint'] if name == 'policy' else f'baseline {name}'
            rows.append(f'| {label} | {successes}/{trials} ({100 * successes / trials:.0f} %) '
                        f'| {100 * low:.0f}-{100 * high:.0f} % '
                        f'| {summary["mean_max_reward"]:.2f} | seeds {report["seeds"][0]}-'
                        f'{report["seeds"][1]} |')
    return rows


def run_table(args: argparse.Namespace) -> None:
    print('| checkpoint | success | 95 % Wilson | mean max reward | seeds |')
    print('| --- | --- | --- | --- | --- |')
    print('\n'.join(variant_rows(args.reports)))


# ----------------------------------------------------------------------------- main
def run_analyse(args: argparse.Namespace) -> None:
    start = dict(np.load(args.start))
    kept = kept_demo_seeds(args.demos) if args.demos else None
    report = {'seeds': [int(start['seeds'][0]), int(start['seeds'][-1])],
              'chunks': {}, 'pixels': {}, 'coverage': coverage_report(start, kept)}
    for checkpoint in args.checkpoint:
        report['chunks'][checkpoint] = chunk_dependence(predicted_chunks(checkpoint, start),
                                                        start)
        if 'mid_steps' in start:
            report['chunks'][checkpoint]['swaps'] = swap_sensitivity(checkpoint, start)
    report['chunks']['expert (sanity)'] = chunk_dependence(start['expert'], start)
    for policy_json, crop_area in zip(args.preprocessing, args.crop_area):
        report['pixels'][policy_json] = pixel_report(start, policy_json, crop_area)
    report['hue_jitter'] = hue_report(start, args.hue)
    report['centre_crop_0.9'] = centre_crop_report(start, 0.9)
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + '\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    render = commands.add_parser('render', help='start observations (mujoco; no torch)')
    render.add_argument('--output', type=Path, required=True)
    render.add_argument('--first_seed', type=int, default=1000)
    render.add_argument('--seeds', type=int, default=30)
    render.add_argument('--demo_seeds', type=int, default=50)
    render.add_argument('--image_height', type=int, default=96)
    render.add_argument('--image_width', type=int, default=128)
    analyse = commands.add_parser('analyse', help='the numbers (torch; no mujoco)')
    analyse.add_argument('--start', type=Path, required=True)
    analyse.add_argument('--checkpoint', action='append', default=[])
    analyse.add_argument('--preprocessing', nargs='*', default=[
        'config/demo/transfer_cube_policy.json', 'config/demo/transfer_cube_crop_policy.json'])
    analyse.add_argument('--crop_area', type=float, nargs='*', default=[0.9, 1.0],
                         help='training random-crop area of each --preprocessing (as trained)')
    analyse.add_argument('--hue', type=float, default=0.05)
    analyse.add_argument('--demos', type=Path, nargs='*', default=None,
                         help='demonstration folders: count only the kept demonstrations')
    analyse.add_argument('--output', type=Path, default=None)
    table = commands.add_parser('table', help='variant rows of sim-eval report.json files')
    table.add_argument('reports', type=Path, nargs='+')
    args = parser.parse_args(argv)
    {'render': run_render, 'analyse': run_analyse, 'table': run_table}[args.command](args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
