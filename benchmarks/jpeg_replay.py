"""Replay-eval of recorded bags, raw against JPEG: what camera compression does to the policy.

From recorded bags with raw sensor_msgs/Image cameras (the recorder's, e.g.
``vla-adapter-sim-demos --jpeg_quality 0``), writes one copy per JPEG quality in which every
camera topic is replaced by ``<topic>/compressed`` sensor_msgs/CompressedImage, each frame
converted by vla-adapter-compress-images' own function (pipeline/conversions.image_to_compressed,
on the rclpy message, as the node does); every other topic, the bag's custom data and the
recorder's sidecar are copied (the sidecar's jpeg_quality and camera topics updated). Then runs
vla-adapter-replay-eval (its Python entry, with --save_chunks) on the raw bags, on the raw bags
again (run-to-run), on a copy with Gaussian pixel noise of --noise_std added to the raw frames
(a camera's own noise floor, as a yardstick) and on each JPEG copy, and prints one table: bytes
and encode ms per frame, mean abs pixel error, replay-eval's headline metrics (open-loop L1 of
the policy's chunks against the recorded actions, its step 0, gripper agreement, the executed
view's L1) and the change to the raw run, metric by metric and chunk by chunk (the same
inference points: JPEG keeps every stamp). The executed view uses a fixed latency
(--executed_latency_s) so that the measured inference times do not move it between runs.

    .venv/bin/python benchmarks/jpeg_replay.py [--bag BAG_OR_FOLDER] [--work NEW_DIR]
        [--episodes 2 --first_seed 2000] [--robot aloha_sim] [--qualities 95,80,60]
        [--checkpoint checkpoints/aloha_sim_transfer_cube] [--noise_std 2]
        [--executed_latency_s 0.04] [--overwrite]

Without --bag it first records --episodes scripted TransferCube demonstrations with raw
cameras (vla-adapter-sim-demos --jpeg_quality 0, seeds from --first_seed; MuJoCo). Writes
NEW_DIR/bags/<variant>/, NEW_DIR/reports/<variant>/ (replay-eval's reports) and
NEW_DIR/summary.json (the table's rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
import tempfile
import time

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.bag_types import bag_typestore  # noqa: E402
from vla_adapter_ros.recording.bag_format import (  # noqa: E402
    BAG_METADATA_VERSION,
    COMPRESSED_IMAGE,
    EPISODE_METADATA_NAME,
    IMAGE,
    STORAGE_PLUGINS,
)

BAG_FILES = ('metadata.yaml',)  # written by the Writer itself, never copied
STATISTICS = ('frames', 'raw_bytes', 'bytes', 'encode_s', 'pixel_error')


def _bag_information(source: Path) -> dict:
    text = (source / 'metadata.yaml').read_text(encoding='utf-8')
    return yaml.safe_load(text)['rosbag2_bagfile_information']


def _update_sidecar(source: Path, target: Path, conversion) -> None:
    """The recorder's sidecar, camera topics renamed to <topic>/compressed when compressed."""
    sidecar = yaml.safe_load((source / EPISODE_METADATA_NAME).read_text(encoding='utf-8')) or {}
    if conversion.msgtype == COMPRESSED_IMAGE:
        sidecar['jpeg_quality'] = conversion.quality
        topics = sidecar.get('topics') or {}
        sidecar['topics'] = {
            (f'{topic}/compressed' if entry.get('type') == IMAGE else topic):
                ({**entry, 'type': COMPRESSED_IMAGE} if entry.get('type') == IMAGE else entry)
            for topic, entry in topics.items()}
    sidecar['converted'] = {'from': str(source.resolve()), 'by': 'benchmarks/jpeg_replay.py',
                            **conversion.description}
    (target / EPISODE_METADATA_NAME).write_text(
        yaml.safe_dump(sidecar, sort_keys=False, allow_unicode=True), encoding='utf-8')


class FrameConversion:
    """One raw camera frame (rclpy sensor_msgs/Image) -> the frame stored in the new bag."""

    suffix = ''  # appended to the camera topic
    msgtype = IMAGE
    description: dict = {}  # what the sidecar's `converted` entry records

    def convert(self, image):
        """The new message (rclpy) and the seconds spent encoding it."""
        raise NotImplementedError

    def __call__(self, image) -> tuple:
        """(message, encode s, mean abs pixel error against ``image``)."""
        from vla_adapter_ros.pipeline.conversions import image_to_rgb

        message, encode_s = self.convert(image)
        error = np.abs(self.decode(message).astype(np.int16)
                       - image_to_rgb(image, source='recorded camera').astype(np.int16))
        return message, encode_s, float(error.mean())

    def decode(self, message) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a converted message, as the inference node reads it."""
        from vla_adapter_ros.pipeline.conversions import image_to_rgb

        return image_to_rgb(message, source='converted camera')


class JpegConversion(FrameConversion):
    """vla-adapter-compress-images' conversion at ``quality``, timed as the node times it."""

    suffix = '/compressed'
    msgtype = COMPRESSED_IMAGE

    def __init__(self, quality: int) -> None:
        """JPEG at ``quality`` (1-100)."""
        self.quality = quality
        self.description = {'jpeg_quality': quality}

    def convert(self, image):
        """image_to_compressed, the node's own function, on the rclpy message."""
        from vla_adapter_ros.pipeline.conversions import image_to_compressed

        start = time.perf_counter()
        compressed = image_to_compressed(image, self.quality, 'recorded camera')
        return compressed, time.perf_counter() - start

    def decode(self, message) -> np.ndarray:
        """The inference node's decoder."""
        from vla_adapter_ros.pipeline.conversions import compressed_image_to_rgb

        return compressed_image_to_rgb(message, source='converted camera')


class NoiseConversion(FrameConversion):
    """Raw frames with Gaussian pixel noise of ``std`` levels (0-255) added, kept raw."""

    def __init__(self, std: float, seed: int = 0) -> None:
        """Noise of ``std`` from a generator seeded with ``seed``."""
        self.std = std
        self.description = {'pixel_noise_std': std, 'seed': seed}
        self.generator = np.random.default_rng(seed)

    def convert(self, image):
        """The noisy frame, same header and encoding rgb8."""
        from vla_adapter_ros.pipeline.conversions import image_to_rgb, rgb_to_image

        rgb = image_to_rgb(image, source='recorded camera').astype(np.float32)
        noisy = np.clip(np.rint(rgb + self.generator.normal(0.0, self.std, rgb.shape)), 0, 255)
        message = rgb_to_image(noisy.astype(np.uint8))
        message.header = image.header
        return message, 0.0


def convert_bag(source: Path, target: Path, conversion: FrameConversion) -> dict:
    """Copy bag ``source`` to ``target``, each raw camera message through ``conversion``.

    Every other message is copied as stored bytes with its bag time, and so is the bag's
    custom data (the instruction). Returns the frames, their bytes before and after, the
    encode time and the summed mean abs pixel error.
    """
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.rosbag2 import Reader, Writer
    from sensor_msgs.msg import Image

    information = _bag_information(source)
    typestore = bag_typestore()
    writer = Writer(target, version=BAG_METADATA_VERSION,
                    storage_plugin=STORAGE_PLUGINS[information['storage_identifier']])
    stats = dict.fromkeys(STATISTICS, 0)
    with Reader(source) as reader:
        writer.open()
        out = {}
        for connection in reader.connections:
            camera = connection.msgtype == IMAGE
            out[connection.id] = writer.add_connection(
                connection.topic + (conversion.suffix if camera else ''),
                conversion.msgtype if camera else connection.msgtype, typestore=typestore,
                serialization_format=connection.ext.serialization_format,
                offered_qos_profiles=connection.ext.offered_qos_profiles)
        for connection, time_ns, data in reader.messages():
            if connection.msgtype == IMAGE:
                image = deserialize_message(bytes(data), Image)
                message, encode_s, error = conversion(image)
                for key, value in (('frames', 1), ('raw_bytes', len(image.data)),
                                   ('bytes', len(message.data)), ('encode_s', encode_s),
                                   ('pixel_error', error)):
                    stats[key] += value
                data = serialize_message(message)
            writer.write(out[connection.id], time_ns, data)
    for key, value in (information.get('custom_data') or {}).items():
        writer.set_custom_data(key, value)
    writer.close()
    return stats


def copy_beside(source: Path, target: Path, conversion: FrameConversion) -> None:
    """The files beside the bag's storage (the sidecar updated, anything else as it is)."""
    stored = {Path(name).name for name in _bag_information(source).get('relative_file_paths', [])}
    for path in sorted(source.iterdir()):
        if path.name in stored or path.name in BAG_FILES or not path.is_file():
            continue
        if path.name == EPISODE_METADATA_NAME:
            _update_sidecar(source, target, conversion)
        else:
            shutil.copy2(path, target / path.name)


def convert_bags(bags: list, folder: Path, conversion: FrameConversion) -> dict:
    """Every bag of ``bags`` into ``folder`` (same names); the summed conversion statistics."""
    total = dict.fromkeys(STATISTICS, 0)
    folder.mkdir(parents=True)
    for bag in bags:
        if not bag.is_dir():
            raise ValueError(f'{bag}: a bag directory (metadata.yaml beside the storage) is '
                             'needed, not a bare storage file')
        stats = convert_bag(bag, folder / bag.name, conversion)
        copy_beside(bag, folder / bag.name, conversion)
        total = {key: total[key] + stats[key] for key in total}
    return total


def replay(bags: Path, report: Path, args) -> dict:
    """vla-adapter-replay-eval on ``bags``: its metrics.json and chunks.npz."""
    from vla_adapter_ros.replay import replay_eval

    status = replay_eval.main([
        '--bag', str(bags), '--checkpoint', args.checkpoint, '--robot', args.robot,
        '--output', str(report), '--save_chunks', '--no_progress', '--max_plots', '0',
        '--threads', str(args.threads), '--batch_size', str(args.batch_size),
        '--executed_latency_s', str(args.executed_latency_s)])
    if status:
        raise SystemExit(f'replay-eval failed on {bags} (status {status})')
    with np.load(report / 'chunks.npz') as chunks:
        points = {(str(chunks['bags'][e]), int(s)): p for e, s, p in zip(
            chunks['episode'], chunks['stamps_ns'], chunks['predicted'])}
    return {'metrics': json.loads((report / 'metrics.json').read_text()), 'points': points}


def chunk_change(run: dict, raw: dict, scale: np.ndarray) -> dict:
    """Mean and largest |chunk - raw chunk| over the same inference points."""
    if run['points'].keys() != raw['points'].keys():
        raise SystemExit('the runs have different inference points; cannot compare chunks')
    keys = sorted(raw['points'])
    change = np.abs(np.stack([run['points'][k] for k in keys])
                    - np.stack([raw['points'][k] for k in keys]))  # (N, C, A)
    return {'mean': float(change.mean()), 'step0': float(change[:, 0].mean()),
            'max_std': float((change / scale).max()), 'points': len(keys)}


def action_scale(checkpoint: str) -> np.ndarray:
    """The training data's action std per dimension (constant dimensions: infinite)."""
    statistics = json.loads((Path(checkpoint) / 'dataset_statistics.json').read_text())
    std = np.asarray(next(iter(statistics.values()))['action']['std'])  # (A,)
    return np.where(std > 1e-6, std, np.inf)


def row_of(name: str, stats: dict | None, run: dict, raw: dict, scale: np.ndarray) -> dict:
    """One table row: transport cost, replay-eval's headline metrics, the change to raw."""
    aggregate, base = run['metrics']['aggregate'], raw['metrics']['aggregate']
    frames = max(1, stats['frames']) if stats else 1
    encoded = bool(stats and stats['encode_s'])
    row = {'variant': name,
           'bytes_per_frame': stats['bytes'] / frames if stats else None,
           'encode_ms_per_frame': stats['encode_s'] * 1e3 / frames if encoded else None,
           'pixel_error': stats['pixel_error'] / frames if stats else 0.0,
           'l1': aggregate['policy']['l1'], 'l1_step0': aggregate['policy']['l1_step0'],
           'gripper_agreement': aggregate['policy']['gripper_agreement'],
           'executed_l1': aggregate['executed']['l1'],
           'chunk_change': chunk_change(run, raw, scale)}
    row['l1_change'] = row['l1'] - base['policy']['l1']
    row['executed_l1_change'] = (None if row['executed_l1'] is None
                                 else row['executed_l1'] - base['executed']['l1'])
    return row


def print_table(rows: list, raw_bytes: float, raw: dict) -> None:
    """The rows as one Markdown table."""
    def number(value, digits: int) -> str:
        return '-' if value is None else f'{value:.{digits}f}'

    def signed(value) -> str:
        return '-' if value is None else f'{value:+.5f}'

    aggregate = raw['metrics']['aggregate']
    print(f"\n{aggregate['episodes']} episodes, {aggregate['inference_points']} inference points "
          f"per run; baselines on the raw bags: hold still L1 {aggregate['hold']['l1']:.4f}, "
          f"mean demonstration {aggregate['mean_demo']['l1']:.4f} (policy units: rad, gripper "
          f'0-1); raw frame {raw_bytes:.0f} bytes')
    print('| camera frames | bytes / frame | encode ms / frame | mean abs pixel error '
          '| open-loop L1 | change to raw | L1 step 0 | gripper agreement | executed L1 '
          '| change to raw | chunk change to raw: mean (step 0) | largest, in action std |')
    print('|' + ' --- |' * 12)
    for row in rows:
        change = row['chunk_change']
        size = raw_bytes if row['bytes_per_frame'] is None else row['bytes_per_frame']
        print(f"| {row['variant']} | {size:.0f} | {number(row['encode_ms_per_frame'], 3)} | "
              f"{row['pixel_error']:.2f} | {row['l1']:.5f} | {row['l1_change']:+.5f} | "
              f"{row['l1_step0']:.5f} | {row['gripper_agreement']:.4f} | "
              f"{number(row['executed_l1'], 5)} | {signed(row['executed_l1_change'])} | "
              f"{change['mean']:.6f} ({change['step0']:.6f}) | {change['max_std']:.4f} |")


def record_demos(folder: Path, episodes: int, first_seed: int) -> Path:
    """Scripted TransferCube episodes, raw cameras at the demo policy's 96x128, into ``folder``."""
    from vla_adapter_ros.tools import scripted_demos

    status = scripted_demos.main(['--output', str(folder), '--episodes', str(episodes),
                                  '--first_seed', str(first_seed), '--jpeg_quality', '0',
                                  '--workers', '1'])
    if status:
        raise SystemExit(f'vla-adapter-sim-demos failed (status {status})')
    return folder


def variants(args) -> list:
    """(name, folder name, conversion or None: the recorded bags) of every replay, raw first."""
    listed = [('raw', 'raw', None), ('raw, again', 'raw_again', None)]
    if args.noise_std > 0:
        listed.append((f'raw + noise std {args.noise_std:g}', f'noise_{args.noise_std:g}',
                       NoiseConversion(args.noise_std)))
    listed += [(f'JPEG {q}', f'jpeg_{q}', JpegConversion(int(q)))
               for q in args.qualities.split(',')]
    return listed


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bag', default='', help='a recorded bag or a folder of bags '
                        "(default: record --episodes with vla-adapter-sim-demos' raw cameras)")
    parser.add_argument('--episodes', type=int, default=2)
    parser.add_argument('--first_seed', type=int, default=2000)
    parser.add_argument('--work', default='', help='new folder for the bags and reports '
                                                   '(default: a new temporary folder)')
    parser.add_argument('--checkpoint', default=str(REPO / 'checkpoints' /
                                                    'aloha_sim_transfer_cube'))
    parser.add_argument('--robot', default='aloha_sim')
    parser.add_argument('--qualities', default='95,80,60')
    parser.add_argument('--noise_std', type=float, default=2.0,
                        help='pixel noise of the yardstick copy (0-255 levels; 0: none)')
    parser.add_argument('--executed_latency_s', type=float, default=0.04)
    parser.add_argument('--batch_size', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--overwrite', action='store_true', help='replace --work')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Convert, replay, compare; prints the table and writes <work>/summary.json."""
    from vla_adapter_ros.replay.bag_episodes import find_bags

    args = parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix='jpeg_replay_'))
    if work.exists() and any(work.iterdir()):
        if not args.overwrite:
            raise SystemExit(f'--work {work}: exists and is not empty (--overwrite)')
        shutil.rmtree(work)
    if not args.bag:
        args.bag = str(record_demos(work / 'bags' / 'recorded', args.episodes, args.first_seed))
    bags = find_bags(args.bag)
    scale, rows, raw, raw_bytes = action_scale(args.checkpoint), [], None, 0.0
    for name, slug, conversion in variants(args):
        folder, stats = Path(args.bag), None
        if conversion is not None:
            folder = work / 'bags' / slug
            start = time.perf_counter()
            stats = convert_bags(bags, folder, conversion)
            raw_bytes = stats['raw_bytes'] / max(1, stats['frames'])
            print(f'{name}: {len(bags)} bags, {stats["frames"]} frames converted in '
                  f'{time.perf_counter() - start:.1f} s', flush=True)
        start = time.perf_counter()
        run = replay(folder, work / 'reports' / slug, args)
        print(f'{name}: replay-eval {time.perf_counter() - start:.1f} s', flush=True)
        raw = raw or run
        rows.append(row_of(name, stats, run, raw, scale))
    print_table(rows, raw_bytes, raw)
    (work / 'summary.json').write_text(json.dumps({
        'bags': [str(bag) for bag in bags], 'checkpoint': args.checkpoint, 'rows': rows,
        'raw_bytes_per_frame': raw_bytes, 'settings': vars(args)}, indent=2) + '\n')
    print(f'bags, replay-eval reports and summary.json in {work}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
