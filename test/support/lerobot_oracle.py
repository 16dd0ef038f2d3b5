"""The real ``lerobot`` package (0.4.4) as the tests' oracle, run in a subprocess of its own.

lerobot 0.4.4 pins torch < 2.11, but its dataset module runs beside our torch 2.14.1 when installed
with ``--no-deps`` (requirements/lerobot_oracle.txt). It decodes videos with torchcodec, whose
FFmpeg-8 build loads ``libavutil.so.60`` & co. by soname; PyAV's wheel ships those libraries under
mangled names, so :func:`ffmpeg_shim` links them under their sonames into a folder put on
``LD_LIBRARY_PATH`` of the subprocess (which is why lerobot never runs inside the test process).

    python lerobot_oracle.py write  --root DIR --inputs inputs.npz --spec spec.json [--out F]
    python lerobot_oracle.py dump   --root DIR --out dump.npz
    python lerobot_oracle.py convert21 --root DIR [--out F]  # lerobot's v2.1 -> v3.0 converter
    python lerobot_oracle.py decode --root VIDEO --times '[0.0, 0.02]' --out frames.npz

``--out`` after ``write`` or ``convert21`` also dumps the result.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import sysconfig

import numpy as np

ORACLE = Path(__file__).resolve()


def ffmpeg_shim(folder: Path) -> Path:
    """``folder`` with libav*/libsw* soname links to PyAV's bundled FFmpeg (idempotent)."""
    libs = Path(sysconfig.get_paths()['purelib']) / 'av.libs'
    folder.mkdir(parents=True, exist_ok=True)
    for library in sorted(libs.glob('lib*.so*')):
        stem = library.name.split('-')[0]  # libavutil-5809ad29.so.60.26.102 -> libavutil
        if not stem.startswith(('libav', 'libsw')):
            continue
        major = library.name.split('.so.')[1].split('.')[0]
        link = folder / f'{stem}.so.{major}'
        if not link.exists():
            link.symlink_to(library)
    return folder


def run_oracle(work: Path, *args: str) -> None:
    """Run this script's command ``args`` under lerobot (offline, caches inside ``work``)."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
               HF_HOME=str(work / 'hf_home'), HF_LEROBOT_HOME=str(work / 'lerobot_home'),
               LD_LIBRARY_PATH=str(ffmpeg_shim(work / 'ffmpeg_shim')))
    result = subprocess.run([sys.executable, str(ORACLE), *args], env=env, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f'lerobot oracle {args[0]} failed:\n{result.stderr[-4000:]}')


def write(root: Path, inputs: Path, spec: dict) -> None:
    """Write episodes (values from ``inputs``) with LeRobotDataset.create / add_frame."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    data = np.load(inputs)
    features = {key: {**value, 'shape': tuple(value['shape'])}
                for key, value in spec['features'].items()}
    dataset = LeRobotDataset.create(spec['repo_id'], fps=spec['fps'], root=root,
                                    features=features, robot_type=spec.get('robot_type'),
                                    use_videos=True, vcodec=spec.get('vcodec', 'libsvtav1'))
    for episode, task in enumerate(spec['tasks']):
        for step in range(len(data[f'ep{episode}/timestamp'])):
            frame = {key: data[f'ep{episode}/{key}'][step] for key in features}
            dataset.add_frame({**frame, 'task': task})
        dataset.save_episode(parallel_encoding=False)
    dataset.finalize()


def dump(root: Path, out: Path) -> None:
    """Every item LeRobotDataset yields: values, frames as uint8 (H, W, 3), tasks."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(root.name, root=root)
    items = [dataset[index] for index in range(len(dataset))]
    arrays = {}
    for key in items[0]:
        if key == 'task':
            arrays['task'] = np.array([item['task'] for item in items])
        elif key in dataset.meta.video_keys:  # float (3, H, W) in [0, 1] -> uint8 (H, W, 3)
            arrays[key] = np.stack([(item[key].permute(1, 2, 0).numpy() * 255).round()
                                    for item in items]).astype(np.uint8)
        else:
            arrays[key] = np.stack([np.asarray(item[key]) for item in items])
    for column in ('success', 'recording', 'source'):  # episode metadata of our exports
        if column in dataset.meta.episodes.column_names:
            values = dataset.meta.episodes[column]  # JSON text: no object arrays (pickle)
            arrays[f'episodes/{column}'] = np.array([json.dumps(value) for value in values])
    np.savez(out, **arrays)


def decode(video: Path, times: list[float], out: Path) -> None:
    """Lerobot's own decoding (torchcodec) of the frames at ``times`` (s) of one video."""
    from lerobot.datasets.video_utils import decode_video_frames

    frames = decode_video_frames(video, times, tolerance_s=1e-4, backend='torchcodec')
    np.savez(out, frames=(frames.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))


def convert21(root: Path) -> None:
    """Lerobot's v2.1 -> v3.0 conversion of the local dataset ``root`` (no Hub)."""
    from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

    convert_dataset(repo_id=root.name, root=root.parent, push_to_hub=False,
                    force_conversion=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('command', choices=('write', 'dump', 'convert21', 'decode'))
    parser.add_argument('--root', type=Path, help='the dataset (the video for decode)')
    parser.add_argument('--times', help='decode: JSON list of times (s)')
    parser.add_argument('--inputs', type=Path)
    parser.add_argument('--spec', type=Path)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    if args.command == 'decode':
        decode(args.root, json.loads(args.times), args.out)
        return 0
    if args.command == 'write':
        write(args.root, args.inputs, json.loads(args.spec.read_text()))
    elif args.command == 'convert21':
        convert21(args.root)
    if args.out is not None:  # dump too: one lerobot start-up (~5 s) instead of two
        dump(args.root, args.out)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
