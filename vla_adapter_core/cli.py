"""``vla-adapter-predict``: one action chunk from a checkpoint and an inputs .npz file.

Inputs (the upstream fixture's ``inputs.npz`` format, read with ``allow_pickle=False``):
``image_0`` .. ``image_<N-1>`` uint8 (H, W, 3), optional ``image_keys`` (camera names, same order),
``proprio`` float (P,), ``instruction`` str, optional ``unnorm_key`` str.
Output .npz: ``actions`` (chunk, A) float64 un-normalised, ``normalized_actions`` float32.

``--checkpoint`` is one of our checkpoints, an upstream run directory, or a fixture-style folder
holding ``checkpoint/``; each a local directory or a Hugging Face Hub repo id (e.g.
``VLA-Adapter/LIBERO-Spatial-Pro``, read through the Hub cache; HF_HUB_OFFLINE=1 uses only the
cache). For upstream runs the camera order is the inputs' image order (named by
``image_keys`` or ``image_<i>``), and ``tiny_overrides.json`` is read from beside the run
directory or its parent unless ``--upstream_overrides`` names another file.

Errors in the inputs or the checkpoint, and a prediction that is not finite (NaN / inf, e.g. from
broken weights), are one line on stderr and exit code 2; nothing is written then. ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile

import numpy as np

from vla_adapter_core.checkpoint import is_own_checkpoint
from vla_adapter_core.checkpoint_source import resolve_pretrained_path
from vla_adapter_core.cli_errors import add_debug_flag, run_reporting_errors

IMAGE_KEY = re.compile(r'^image_(\d+)$')
FIXTURE_CHECKPOINT_DIR = 'checkpoint'


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog='vla-adapter-predict',
        description='Predict one action chunk with a VLA-Adapter checkpoint (ours or upstream).')
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint or upstream run directory (or a folder holding '
                        'checkpoint/), or a Hugging Face Hub repo id such as '
                        'VLA-Adapter/LIBERO-Spatial-Pro')
    parser.add_argument('--inputs', required=True, help='inputs .npz (see module docstring)')
    parser.add_argument('--output', required=True, help='output .npz path')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--dtype', default='float32',
                        help="'auto' (bf16 on CUDA), 'float32' or 'bfloat16' (default float32)")
    parser.add_argument('--unnorm_key', '--unnorm-key', default=None,
                        help='dataset statistics key (default: the inputs file or checkpoint)')
    parser.add_argument('--prompt_style', '--prompt-style', choices=('openvla', 'qwen_chat'),
                        default=None, help='upstream checkpoints only (default openvla)')
    parser.add_argument('--upstream_overrides', '--upstream-overrides', default=None,
                        help='upstream checkpoints only: tiny_overrides.json-style file')
    add_debug_flag(parser)
    return parser


def read_inputs(path: str) -> dict:
    """Load and check the inputs file; returns images (ordered), keys, proprio, instruction."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'inputs file not found: {path!r}')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ValueError as error:
        raise ValueError(f'{path!r}: cannot read without pickle ({error})') from error
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f'{path!r} is not a .npz file: {error}') from error
    indices = sorted(int(IMAGE_KEY.match(key).group(1)) for key in arrays if IMAGE_KEY.match(key))
    if not indices:
        raise ValueError(f'{path!r} has no image_0 array')
    if indices != list(range(len(indices))):
        raise ValueError(f'{path!r}: image arrays must be image_0..image_N-1, got {indices}')
    images = [arrays[f'image_{index}'] for index in indices]
    for index, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'{path!r}: image_{index} must be uint8 (H, W, 3), got '
                             f'{image.dtype} {image.shape}')
    keys = [str(key) for key in arrays['image_keys']] if 'image_keys' in arrays else None
    if keys is not None and len(keys) != len(images):
        raise ValueError(f'{path!r}: image_keys has {len(keys)} names for {len(images)} images')
    for name in ('proprio', 'instruction'):
        if name not in arrays:
            raise ValueError(f'{path!r} lacks {name!r}')
    proprio = arrays['proprio']
    if proprio.ndim != 1 or not np.issubdtype(proprio.dtype, np.number):
        raise ValueError(f'{path!r}: proprio must be a 1-d numeric array, got {proprio.dtype} '
                         f'{proprio.shape}')
    unnorm = str(arrays['unnorm_key']) if 'unnorm_key' in arrays else None
    return {'images': images, 'keys': keys, 'proprio': proprio.astype(np.float64),
            'instruction': str(arrays['instruction']), 'unnorm_key': unnorm}


def camera_mapping(camera_names: list, inputs: dict) -> dict:
    """Images keyed by the policy's camera names: by name when possible, else by position."""
    images, keys = inputs['images'], inputs['keys']
    if keys is not None and set(camera_names) <= set(keys):
        return {name: images[keys.index(name)] for name in camera_names}
    if len(images) != len(camera_names):
        raise ValueError(f'the inputs hold {len(images)} images {keys or ""} but the policy '
                         f'needs {len(camera_names)} cameras {camera_names}')
    return dict(zip(camera_names, images))


def resolve_checkpoint(path: str) -> str:
    """The checkpoint directory (a Hub repo id: its cached snapshot); ``checkpoint/`` inside.

    A fixture-style folder holding ``checkpoint/`` resolves to that.
    """
    path = resolve_pretrained_path(path)
    nested = os.path.join(path, FIXTURE_CHECKPOINT_DIR)
    if not os.path.isfile(os.path.join(path, 'config.json')) and os.path.isdir(nested):
        return nested
    return path


def load_policy(args: argparse.Namespace, inputs: dict):
    """The policy for ``args.checkpoint`` (upstream ones take their camera names from inputs).

    An upstream run directory's ``tiny_overrides.json`` is found beside it or in its parent
    (the fixture layout) unless ``--upstream_overrides`` names one.
    """
    from vla_adapter_core.policy import VLAPolicy

    unnorm_key = args.unnorm_key or inputs['unnorm_key']
    options = {}
    args.checkpoint = resolve_checkpoint(args.checkpoint)
    if args.upstream_overrides and not os.path.isfile(args.upstream_overrides):
        raise FileNotFoundError(f'overrides file not found: {args.upstream_overrides!r}')
    if not is_own_checkpoint(args.checkpoint):
        count = len(inputs['images'])
        options['camera_names'] = inputs['keys'] or [f'image_{i}' for i in range(count)]
        if args.prompt_style:
            options['prompt_style'] = args.prompt_style
        if args.upstream_overrides:
            options['overrides'] = args.upstream_overrides
    elif args.prompt_style or args.upstream_overrides:
        raise ValueError('--prompt_style and --upstream_overrides apply only to upstream '
                         'checkpoints')
    return VLAPolicy.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype,
                                     unnorm_key=unnorm_key, **options)


def check_finite(name: str, values: np.ndarray, checkpoint: str) -> None:
    """ValueError naming the first non-finite value of a (chunk, A) prediction."""
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        step, dim = (int(index) for index in bad[0])
        raise ValueError(f'the checkpoint {checkpoint!r} predicted non-finite {name}: '
                         f'{len(bad)} of {values.size} values are NaN/inf, the first '
                         f'{name}[{step}, {dim}] = {values[step, dim]}; nothing written')


def predict(args: argparse.Namespace) -> int:
    """Read the inputs, predict, check the prediction is finite and write it."""
    inputs = read_inputs(args.inputs)
    policy = load_policy(args, inputs)
    observation = {'images': camera_mapping(policy.config.camera_names, inputs),
                   'proprio': inputs['proprio'], 'instruction': inputs['instruction']}
    prediction = policy.predict([observation])
    actions = prediction.actions[0]  # (chunk, A) raw
    normalized = prediction.normalized_actions[0]  # (chunk, A)
    check_finite('actions', actions, args.checkpoint)
    check_finite('normalized_actions', normalized, args.checkpoint)
    output_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(output_dir):
        raise FileNotFoundError(f'output directory not found: {output_dir!r}')
    np.savez(args.output, actions=actions, normalized_actions=normalized)
    print(f'wrote {args.output}: actions {actions.shape}')
    return 0


def main(argv: list | None = None) -> int:
    """Entry point; returns the process exit status (0 ok, 2 bad input or checkpoint)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_reporting_errors(parser.prog, lambda: predict(args), debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
