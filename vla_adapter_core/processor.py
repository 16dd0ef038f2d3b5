"""Observation dicts -> model batches; one processor serves training and inference.

Observation (docs/ARCHITECTURE.md)::

    {'images': {camera_name: uint8 (H, W, 3) RGB}, 'proprio': float (proprio_dim,),
     'instruction': str}

Each image is first cut to its camera's ``camera_crops`` box when the config declares one, then
resized to the model's size (bicubic with antialiasing, rounded back to uint8 as
upstream's evaluation does), optionally centre-cropped to an area fraction and resized back
(bilinear, like TF ``crop_and_resize``), then normalised once per vision tower. All images of a
batch that share a size go through each step together, on the processor's ``device`` (the
policy's: only uint8 pixels cross to the GPU); the normalisation constants and the crop grid are
built once. On a CPU the resize runs torch's uint8 kernel; on a GPU, which has no uint8 kernel,
it resamples in float32 and rounds (pixels may differ by one level from the CPU's).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from vla_adapter_core.config import PolicyConfig
from vla_adapter_core.normalization import Normalizer
from vla_adapter_core.prompt import PromptBuilder

IMAGES_KEY = 'images'
PROPRIO_KEY = 'proprio'
INSTRUCTION_KEY = 'instruction'


PROMPT_CACHE_SIZE = 64  # tokenised instruction tuples kept per processor


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.round().clamp(0, 255).to(torch.uint8)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(M, 3, H, W) uint8 -> (M, 3, size, size) uint8, bicubic with antialiasing.

    On a CPU this runs torch's uint8 kernel (about 4x faster than resampling in float); other
    devices resample in float32 and round to uint8.
    """
    if images.shape[-2:] == (size, size):
        return images
    if images.device.type == 'cpu':
        return F.interpolate(images, size=(size, size), mode='bicubic', antialias=True,
                             align_corners=False)
    resized = F.interpolate(images.float(), size=(size, size), mode='bicubic', antialias=True,
                            align_corners=False)  # (M, 3, S, S)
    return _to_uint8(resized)


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size) uint8 with bicubic antialiased resampling."""
    if image.shape[-2:] == (size, size):
        return image
    return resize_images(image[None], size)[0]


def center_crop_grid(height: int, width: int, area_fraction: float,
                     device: torch.device | str = 'cpu') -> torch.Tensor:
    """Sampling grid (1, H, W, 2) of a centred crop of ``area_fraction``, corner to corner."""
    side = math.sqrt(area_fraction)
    low, high = (1.0 - side) / 2.0, (1.0 + side) / 2.0
    ys = torch.linspace(2 * low - 1, 2 * high - 1, height, device=device)  # (H,) align_corners
    xs = torch.linspace(2 * low - 1, 2 * high - 1, width, device=device)  # (W,)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([grid_x, grid_y], dim=-1)[None]  # (1, H, W, 2)


def center_crop_images(images: torch.Tensor, area_fraction: float,
                       grid: torch.Tensor | None = None) -> torch.Tensor:
    """Centre crops of (M, 3, H, W) uint8 images resized back to (H, W), bilinear; uint8 out.

    ``grid``: a cached :func:`center_crop_grid` for these sizes (built here when None).
    """
    if area_fraction >= 1.0:
        return images
    if grid is None:
        grid = center_crop_grid(images.shape[-2], images.shape[-1], area_fraction,
                                images.device)
    grid = grid.expand(images.shape[0], -1, -1, -1)  # (M, H, W, 2)
    cropped = F.grid_sample(images.float(), grid, mode='bilinear', align_corners=True)
    return _to_uint8(cropped)  # (M, 3, H, W)


def center_crop_image(image: torch.Tensor, area_fraction: float) -> torch.Tensor:
    """Centre crop of ``area_fraction`` of the area, resized back to the input size (bilinear).

    Samples the crop box corner-to-corner like TF ``crop_and_resize``. (3, H, W) uint8 in and out.
    """
    if area_fraction >= 1.0:
        return image
    return center_crop_images(image[None], area_fraction)[0]


def crop_box_pixels(height: int, width: int, box: list) -> tuple[int, int, int, int]:
    """Fractional ``box`` [top, left, height, width] -> whole pixels (top, left, h, w), >= 1 px."""
    top = min(height - 1, round(box[0] * height))
    left = min(width - 1, round(box[1] * width))
    crop_h = max(1, min(height - top, round(box[2] * height)))
    crop_w = max(1, min(width - left, round(box[3] * width)))
    return top, left, crop_h, crop_w


def crop_camera_image(image: np.ndarray, box: list | None) -> np.ndarray:
    """(H, W, 3) -> the (h, w, 3) view inside ``box`` (fractions; None: the whole frame)."""
    if box is None:
        return image
    top, left, crop_h, crop_w = crop_box_pixels(image.shape[0], image.shape[1], box)
    return image[top:top + crop_h, left:left + crop_w]  # (h, w, 3)


def crop_camera_images(images: dict, crops: dict | None) -> dict:
    """Camera -> (H, W, 3) frames with each camera's ``ProcessorConfig.camera_crops`` box cut."""
    if not crops:
        return images
    return {camera: crop_camera_image(image, crops.get(camera))
            for camera, image in images.items()}


class VLAProcessor:
    """Builds the model batch (see the training-batch table in docs/ARCHITECTURE.md).

    ``device``: where images are resized and normalised and where the batch's tensors are
    returned (the policy passes its own; training keeps the CPU).
    """

    def __init__(self, config: PolicyConfig, prompt_builder: PromptBuilder,
                 normalizer: Normalizer | None, device: torch.device | str = 'cpu') -> None:
        self.config = config
        self.prompt_builder = prompt_builder
        self.normalizer = normalizer
        vision = config.vision
        self.image_size = vision.image_size
        self.num_towers = len(vision.timm_model_ids)
        self.device = torch.device('cpu')
        self._prompts: dict = {}  # tuple of instructions -> (input_ids, attention_mask)
        self._buffers: dict = {}  # reusable pixel buffer (inference)
        self.to(device)

    def to(self, device: torch.device | str) -> VLAProcessor:
        """Move the preprocessing (and the constants it reuses) to ``device``."""
        self.device = torch.device(device)
        vision = self.config.vision
        means = torch.tensor(vision.image_means, dtype=torch.float32, device=self.device)
        stds = torch.tensor(vision.image_stds, dtype=torch.float32, device=self.device)
        self.channel_means = means[:, :, None, None]  # (T, 3, 1, 1)
        self.channel_stds = stds[:, :, None, None]
        fraction = self.config.processor.center_crop_fraction
        self.crop_grid = None
        if fraction < 1.0:
            self.crop_grid = center_crop_grid(self.image_size, self.image_size, fraction,
                                              self.device)  # (1, S, S, 2)
        self._prompts.clear()
        self._buffers.clear()
        return self

    @classmethod
    def from_config(cls, config: PolicyConfig, tokenizer, statistics: dict | None,
                    center_crop: bool = True, camera_crop: bool = True,
                    device: torch.device | str = 'cpu') -> VLAProcessor:
        """Processor for ``config`` with its prompt style and the statistics' normaliser.

        ``center_crop=False`` gives the training variant: no centre crop, because the training
        augmentation took a random crop of the same area already. ``camera_crop=False``: the
        images arrive with ``camera_crops`` already cut (the training dataset cuts them before
        its augmentation).
        """
        if not center_crop:
            config = dataclasses.replace(config, processor=dataclasses.replace(
                config.processor, center_crop_fraction=1.0))
        if not camera_crop:
            config = dataclasses.replace(config, processor=dataclasses.replace(
                config.processor, camera_crops=None))
        options = config.processor
        builder = PromptBuilder(tokenizer, options.prompt_style, options.lowercase_instruction,
                                options.max_prompt_tokens)
        normalizer = None
        if statistics is not None:
            normalizer = Normalizer(statistics, config.normalization, config.action_dim,
                                    config.proprio_dim if config.use_proprio else None)
        return cls(config, builder, normalizer, device=device)

    @staticmethod
    def checked_image(image: np.ndarray, field: str) -> np.ndarray:
        """``image`` if it is a uint8 (H, W, 3) RGB array of at least 2x2, else ValueError."""
        if not isinstance(image, np.ndarray):
            raise ValueError(f'{field} must be a numpy array, got {type(image).__name__}')
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'{field} must be uint8 (H, W, 3) RGB, got {image.dtype} '
                             f'{image.shape}')
        if image.shape[0] < 2 or image.shape[1] < 2:
            raise ValueError(f'{field} is too small: {image.shape}')
        return image

    def images_to_pixels(self, images: list, reuse_buffer: bool = False) -> torch.Tensor:
        """Checked uint8 (H, W, 3) images -> normalised (M, 3 * towers, S, S) float32.

        Images of one size are resized, cropped and normalised together on ``self.device``.
        ``reuse_buffer``: write into the processor's buffer for this batch shape instead of a
        new tensor (no fresh pages on a CPU); the result is valid until the next such call.
        """
        size = self.image_size
        shape = (len(images), self.num_towers, 3, size, size)
        pixels = self._pixel_buffer(shape) if reuse_buffer else torch.empty(
            shape, device=self.device)  # (M, T, 3, S, S)
        by_shape: dict = {}
        for index, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(index)
        for indices in by_shape.values():
            if len(indices) == len(images):
                self._normalized_into(images, pixels)
            else:
                group = torch.empty((len(indices), *shape[1:]), device=self.device)
                self._normalized_into([images[index] for index in indices], group)
                pixels[torch.as_tensor(indices, device=self.device)] = group
        return pixels.view(len(images), 3 * self.num_towers, size, size)  # (M, 3T, S, S)

    def _pixel_buffer(self, shape: tuple) -> torch.Tensor:
        key = (shape, torch.is_inference_mode_enabled())
        if key not in self._buffers:
            self._buffers.clear()
            self._buffers[key] = torch.empty(shape, device=self.device)
        return self._buffers[key]

    def _normalized_into(self, images: list, out: torch.Tensor) -> None:
        """Same-size uint8 (H, W, 3) images -> ``out`` (m, T, 3, S, S), normalised per tower.

        The arithmetic of ``(x / 255 - mean) / std`` in float32, done in place on ``out``.
        """
        stacked = np.stack(images)  # (m, H, W, 3)
        group = torch.from_numpy(stacked).to(self.device).permute(0, 3, 1, 2)  # (m, 3, H, W)
        group = resize_images(group, self.image_size)  # (m, 3, S, S) uint8
        group = center_crop_images(group, self.config.processor.center_crop_fraction,
                                   self.crop_grid)
        out.copy_(group.contiguous().unsqueeze(1).expand_as(out))  # uint8 -> float32
        out.div_(255.0).sub_(self.channel_means).div_(self.channel_stds)

    def image_tensor(self, image: np.ndarray, field: str) -> torch.Tensor:
        """One uint8 (H, W, 3) image -> normalised (3 * towers, S, S) float32."""
        return self.images_to_pixels([self.checked_image(image, field)])[0]

    def observation_images(self, observation: dict, index: int) -> list:
        """The checked images of one observation in camera order."""
        images = observation.get(IMAGES_KEY)
        if not isinstance(images, dict):
            raise ValueError(f"observations[{index}]['images'] must be a dict camera -> image, "
                             f'got {type(images).__name__}')
        missing = [name for name in self.config.camera_names if name not in images]
        if missing:
            raise ValueError(f"observations[{index}]['images'] lacks cameras {missing} "
                             f'(has {sorted(images)}, needs {self.config.camera_names})')
        crops = self.config.processor.camera_crops or {}
        return [crop_camera_image(
                    self.checked_image(images[name], f"observations[{index}]['images'][{name!r}]"),
                    crops.get(name))
                for name in self.config.camera_names]

    def pixel_values(self, observation: dict, index: int) -> torch.Tensor:
        """The images of one observation in camera order -> (N, 3T, S, S)."""
        return self.images_to_pixels(self.observation_images(observation, index))

    def prompts(self, instructions: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``input_ids`` and ``attention_mask`` (B, L) on ``self.device``, cached.

        A robot repeats one instruction for a whole episode: each distinct tuple of
        instructions is tokenised once (the last ``PROMPT_CACHE_SIZE`` are kept; separately
        for ``torch.inference_mode``, whose tensors must not reach training). Treat the
        returned tensors as read-only.
        """
        key = (tuple(instructions), torch.is_inference_mode_enabled())
        cached = self._prompts.get(key)
        if cached is None:
            input_ids, attention_mask = self.prompt_builder.batch(list(instructions))
            cached = (input_ids.to(self.device), attention_mask.to(self.device))
            if len(self._prompts) >= PROMPT_CACHE_SIZE:
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[key] = cached
        return cached

    def proprio_vector(self, observation: dict, index: int) -> np.ndarray:
        """Checked raw proprio (P,) float64."""
        field = f"observations[{index}]['proprio']"
        if PROPRIO_KEY not in observation:
            raise ValueError(f'{field} is missing')
        try:
            proprio = np.asarray(observation[PROPRIO_KEY], dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f'{field}={observation[PROPRIO_KEY]!r} is not numeric: '
                             f'{error}') from error
        if proprio.shape != (self.config.proprio_dim,):
            raise ValueError(f'{field} must have shape ({self.config.proprio_dim},), got '
                             f'{proprio.shape}')
        if not np.all(np.isfinite(proprio)):
            raise ValueError(f'{field} has non-finite values: {proprio.tolist()}')
        return proprio

    def __call__(self, observations: list, actions: np.ndarray | None = None,
                 action_mask: np.ndarray | None = None, *, reuse_buffer: bool = False) -> dict:
        """Batch of observations (and optional raw action targets) -> dict of tensors.

        ``reuse_buffer``: ``pixel_values`` lives in a buffer the next such call overwrites (the
        policy's predict path, which is done with it before).
        """
        if isinstance(observations, dict) or not observations:
            raise ValueError('observations must be a non-empty list of observation dicts')
        for index, observation in enumerate(observations):
            if not isinstance(observation, dict):
                raise ValueError(f'observations[{index}] must be a dict, got '
                                 f'{type(observation).__name__}')
        images = [image for index, observation in enumerate(observations)
                  for image in self.observation_images(observation, index)]
        pixel_values = self.images_to_pixels(images, reuse_buffer).unflatten(
            0, (len(observations), self.config.num_cameras))  # (B, N, 3T, S, S)
        instructions = []
        for index, observation in enumerate(observations):
            instruction = observation.get(INSTRUCTION_KEY)
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError(f"observations[{index}]['instruction']={instruction!r}: must "
                                 'be a non-empty string')
            instructions.append(instruction)
        input_ids, attention_mask = self.prompts(instructions)
        batch = {'pixel_values': pixel_values,  # (B, N, 3T, S, S)
                 'input_ids': input_ids, 'attention_mask': attention_mask}
        if self.config.use_proprio:
            raw = np.stack([self.proprio_vector(obs, index)
                            for index, obs in enumerate(observations)])  # (B, P)
            normalized = self._require_normalizer().normalize_proprio(raw)
            batch['proprio'] = torch.from_numpy(normalized.astype(np.float32)).to(
                self.device)  # (B, P)
        if actions is not None:
            batch.update(self.action_targets(actions, action_mask, len(observations)))
        return batch

    def _require_normalizer(self) -> Normalizer:
        if self.normalizer is None:
            raise ValueError('this processor has no dataset statistics (normalizer is None)')
        return self.normalizer

    def action_targets(self, actions: np.ndarray, action_mask: np.ndarray | None,
                       batch: int) -> dict:
        """Raw actions (B, chunk, A) -> normalised and raw targets plus the step mask."""
        actions = np.asarray(actions, dtype=np.float64)
        expected = (batch, self.config.chunk_size, self.config.action_dim)
        if actions.shape != expected:
            raise ValueError(f'actions must have shape {expected}, got {actions.shape}')
        if not np.all(np.isfinite(actions)):
            raise ValueError('actions has non-finite values')
        if action_mask is None:
            action_mask = np.ones(expected[:2], dtype=bool)
        action_mask = np.asarray(action_mask)
        if action_mask.shape != expected[:2]:
            raise ValueError(f'action_mask must have shape {expected[:2]}, got '
                             f'{action_mask.shape}')
        normalized = self._require_normalizer().normalize_actions(actions)
        return {'actions': torch.from_numpy(normalized.astype(np.float32)),
                'raw_actions': torch.from_numpy(actions.astype(np.float32)),
                'action_mask': torch.from_numpy(action_mask.astype(bool))}
