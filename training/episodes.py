"""Recorded episodes on disk: ALOHA HDF5 files (and aligned rosbag2 caches in the same layout).

An episode holds, per time step t (the recording rate, 50 Hz for ALOHA): one image per camera,
the robot state ``proprio[t]`` (ALOHA: ``/observations/qpos``) and the commanded ``action[t]``.
Every check runs when the episode is opened, so a run never starts on a silently wrong dataset;
each error names the file and the field.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from training.data_config import DatasetConfig

HDF5_SUFFIXES = ('.hdf5', '.h5')
QPOS_KEY = '/observations/qpos'
ACTION_KEY = '/action'
IMAGES_GROUP = '/observations/images'
COMPRESS_LEN_KEY = '/compress_len'
# Who commanded at each step of an aligned takeover recording, (T,) uint8 (corrections.py).
CONTROL_KEY = '/control'
INSTRUCTION_ATTRS = ('instruction', 'language_instruction')
CHANNEL_ORDER_ATTR = 'jpeg_channel_order'  # written by this package's caches; ALOHA has none
SIDECAR_NAME = 'instruction.txt'


class EpisodeError(ValueError):
    """A recorded episode cannot be used; the message names the file and the field."""

    def __init__(self, path: str | Path, field: str, problem: str) -> None:
        super().__init__(f'{path}: {field}: {problem}')
        self.path = str(path)
        self.field = field


# What h5py raises for a damaged file: OSError (unreadable data), KeyError (an object that does
# not open), RuntimeError (broken links or groups). Each becomes an EpisodeError naming the field.
HDF5_ERRORS = (OSError, KeyError, RuntimeError)


@contextlib.contextmanager
def hdf5_errors(path: str | Path, field: str):
    """Turn h5py's errors on a damaged file inside the block into an EpisodeError."""
    try:
        yield
    except HDF5_ERRORS as error:
        detail = error.args[0] if error.args else type(error).__name__
        raise EpisodeError(path, field, f'damaged HDF5 file, cannot be read ({detail})') from None


def decode_jpeg(data: bytes, channel_order: str, draft_size: int) -> np.ndarray:
    """Decode JPEG bytes to uint8 (H, W, 3) RGB.

    ``draft_size`` > 0 lets libjpeg decode at the smallest 1/2^k scale whose sides are still
    >= draft_size (the processor resizes to the model's 224 px anyway); 0 decodes full size.
    ``channel_order='bgr'`` undoes cv2.imencode's reading of an RGB array as BGR.
    """
    with Image.open(io.BytesIO(data)) as image:
        if draft_size > 0:
            image.draft('RGB', (draft_size, draft_size))
        rgb = np.asarray(image.convert('RGB'))  # (H, W, 3)
    if channel_order == 'bgr':
        rgb = np.ascontiguousarray(rgb[..., ::-1])
    return rgb


def resolve_instruction(path: Path, metadata_instruction: str | None,
                        config: DatasetConfig) -> str:
    """The episode's instruction: config (CLI) > episode metadata > sidecar file.

    Sidecars: ``<episode>.instruction.txt`` beside the episode, else ``instruction.txt`` inside a
    bag directory, else ``instruction.txt`` in the episode's folder.
    """
    if config.instruction is not None:
        return config.instruction.strip()
    if metadata_instruction and metadata_instruction.strip():
        return metadata_instruction.strip()
    candidates = [path.with_name(path.name + '.instruction.txt')]
    if path.is_dir():
        candidates.append(path / SIDECAR_NAME)
    candidates.append(path.parent / SIDECAR_NAME)
    for candidate in candidates:
        if candidate.is_file():
            text = candidate.read_text(encoding='utf-8').strip()
            if not text:
                raise EpisodeError(candidate, 'instruction', 'sidecar file is empty')
            return text
    raise EpisodeError(path, 'instruction',
                       'no instruction: set it in the episode metadata (attribute "instruction"), '
                       f'a sidecar file ({candidates[0].name} or {SIDECAR_NAME}) or the CLI '
                       '(--instruction)')


def check_state_arrays(path: Path, proprio: np.ndarray, actions: np.ndarray,
                       config: DatasetConfig, proprio_field: str, action_field: str) -> None:
    """Shapes, lengths and finiteness of an episode's (T, P) proprio and (T, A) actions."""
    for field, array, name in ((proprio_field, proprio, 'proprio_dim'),
                               (action_field, actions, 'action_dim')):
        dim = getattr(config, name)
        if array.ndim != 2 or array.shape[1] != dim:
            raise EpisodeError(path, field, f'shape {array.shape}, expected (T, {dim}): the '
                                            f'{config.dim_origin(name)}')
        bad = ~np.isfinite(array)
        if bad.any():
            step, dim_index = np.argwhere(bad)[0]
            raise EpisodeError(path, field, f'{int(bad.sum())} non-finite values (NaN/inf), '
                                            f'first at step {step}, dimension {dim_index}')
    if proprio.shape[0] != actions.shape[0]:
        raise EpisodeError(path, f'{proprio_field}/{action_field}',
                           f'length mismatch: {proprio.shape[0]} vs {actions.shape[0]} steps')
    if proprio.shape[0] < 1:
        raise EpisodeError(path, proprio_field, 'episode has no steps (shorter than one step)')


class AlohaHdf5Episode:
    """One episode in the ALOHA ``record_episodes`` HDF5 layout.

    ``/observations/qpos`` (T, P) is the proprio, ``/action`` (T, A) the action,
    ``/observations/images/<cam>`` either raw uint8 (T, H, W, 3) or JPEG bytes zero-padded to
    (T, max_len) with ``/compress_len`` (n_cams, T).
    """

    def __init__(self, path: str | Path, config: DatasetConfig,
                 source: str | Path | None = None) -> None:
        self.path = Path(path)
        self.source = Path(source) if source is not None else self.path  # e.g. the bag
        self.camera_names = list(config.camera_names)
        self.draft_size = config.jpeg_draft_size
        self._file: h5py.File | None = None
        self._file_pid = -1
        try:
            handle = h5py.File(self.path, 'r')
        except OSError as error:
            raise EpisodeError(self.path, 'file', f'not a readable HDF5 file ({error})') from None
        with handle, hdf5_errors(self.path, 'file'):
            missing = [key for key in (QPOS_KEY, ACTION_KEY) if key not in handle]
            if missing:
                raise EpisodeError(self.path, ', '.join(missing),
                                   'unknown dataset layout: missing (expected the ALOHA '
                                   f'layout with {QPOS_KEY} and {ACTION_KEY})')
            with hdf5_errors(self.path, QPOS_KEY):
                self.proprio = np.asarray(handle[QPOS_KEY][()], dtype=np.float32)  # (T, P)
            with hdf5_errors(self.path, ACTION_KEY):
                self.actions = np.asarray(handle[ACTION_KEY][()], dtype=np.float32)  # (T, A)
            check_state_arrays(self.path, self.proprio, self.actions, config, QPOS_KEY,
                               ACTION_KEY)
            self.control = self._read_control(handle)
            self.compressed = self._check_images(handle)
            order = handle.attrs.get(CHANNEL_ORDER_ATTR, config.hdf5_jpeg_channel_order)
            self.channel_order = order.decode() if isinstance(order, bytes) else str(order)
            metadata = next((handle.attrs[key] for key in INSTRUCTION_ATTRS
                             if key in handle.attrs), None)
        if isinstance(metadata, bytes):
            metadata = metadata.decode('utf-8')
        self.instruction = resolve_instruction(self.source, metadata, config)

    def __len__(self) -> int:
        return int(self.proprio.shape[0])

    def _read_control(self, handle: h5py.File) -> np.ndarray | None:
        """The control codes of a takeover recording (None for a demonstration)."""
        if CONTROL_KEY not in handle:
            return None
        with hdf5_errors(self.path, CONTROL_KEY):
            control = np.asarray(handle[CONTROL_KEY][()], dtype=np.uint8)  # (T,)
        if control.shape != (len(self.proprio),):
            raise EpisodeError(self.path, CONTROL_KEY, f'shape {control.shape}, expected '
                                                       f'({len(self.proprio)},)')
        return control

    def _check_images(self, handle: h5py.File) -> dict[str, bool]:
        """Check each configured camera's dataset; return camera -> JPEG-compressed."""
        steps = len(self)
        available = sorted(handle[IMAGES_GROUP].keys()) if IMAGES_GROUP in handle else []
        compressed = {}
        for camera in self.camera_names:
            key = f'{IMAGES_GROUP}/{camera}'
            if key not in handle:
                raise EpisodeError(self.path, key,
                                   f'missing camera {camera!r} (cameras in file: {available})')
            with hdf5_errors(self.path, key):
                dataset = handle[key]
            if dataset.dtype != np.uint8:
                raise EpisodeError(self.path, key, f'dtype {dataset.dtype}, expected uint8')
            if dataset.shape[0] != steps:
                raise EpisodeError(self.path, key,
                                   f'{dataset.shape[0]} frames but {steps} qpos steps')
            if dataset.ndim == 4 and dataset.shape[3] == 3:
                compressed[camera] = False
            elif dataset.ndim == 2:
                self._check_compress_len(handle, key, dataset.shape[1])
                compressed[camera] = True
            else:
                raise EpisodeError(self.path, key, f'shape {dataset.shape}, expected raw '
                                   '(T, H, W, 3) or JPEG-compressed (T, max_len)')
        return compressed

    def _check_compress_len(self, handle: h5py.File, key: str, padded: int) -> None:
        if COMPRESS_LEN_KEY not in handle:
            raise EpisodeError(self.path, COMPRESS_LEN_KEY,
                               f'missing, but {key} holds JPEG-compressed frames')
        lengths = handle[COMPRESS_LEN_KEY]
        if lengths.ndim != 2 or lengths.shape[1] != len(self):
            raise EpisodeError(self.path, COMPRESS_LEN_KEY,
                               f'shape {lengths.shape}, expected (n_cameras, {len(self)})')
        if np.max(lengths[()]) > padded:
            raise EpisodeError(self.path, COMPRESS_LEN_KEY,
                               f'a length exceeds the padded frame size {padded} of {key}')

    def _handle(self) -> h5py.File:
        """This process's open file (DataLoader workers each open their own)."""
        if self._file is None or self._file_pid != os.getpid():
            self._file = h5py.File(self.path, 'r')
            self._file_pid = os.getpid()
        return self._file

    def read_images(self, step: int) -> dict[str, np.ndarray]:
        """Camera name -> uint8 (H, W, 3) RGB frame at ``step``."""
        handle = self._handle()
        images = {}
        for camera in self.camera_names:
            with hdf5_errors(self.path, f'{IMAGES_GROUP}/{camera}[{step}]'):
                frame = handle[f'{IMAGES_GROUP}/{camera}'][step]
            if self.compressed[camera]:
                # The JPEG ends with its EOI marker; ALOHA pads each row with zeros.
                data = frame.tobytes().rstrip(b'\x00')
                try:
                    frame = decode_jpeg(data, self.channel_order, self.draft_size)
                except OSError as error:
                    raise EpisodeError(self.path, f'{IMAGES_GROUP}/{camera}[{step}]',
                                       f'JPEG does not decode ({error})') from None
            images[camera] = frame
        return images

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_file'] = None  # an open h5py handle cannot cross a process boundary
        state['_file_pid'] = -1
        return state
