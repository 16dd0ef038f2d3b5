"""Observation dicts -> model batches; one processor serves training and inference.

Observation (docs/ARCHITECTURE.md)::

    {'images': {camera_name: uint8 (H, W, 3) RGB}, 'proprio': float (proprio_dim,),
     'instruction': str}

Each image is resized to the model's size (bicubic with antialiasing, rounded back to uint8 as
upstream's evaluation does), optionally centre-cropped to an area fraction and resized back
(bilinear, like TF ``crop_and_resize``), then normalised once per vision tower.
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


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.round().clamp(0, 255).to(torch.uint8)


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size) uint8 with bicubic antialiased resampling.

    Runs torch's uint8 kernel (about 4x faster than resampling in float on a CPU).
    """
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode='bicubic', antialias=True,
                         align_corners=False)[0]


def center_crop_image(image: torch.Tensor, area_fraction: float) -> torch.Tensor:
    """Centre crop of ``area_fraction`` of the area, resized back to the input size (bilinear).

    Samples the crop box corner-to-corner like TF ``crop_and_resize``. (3, H, W) uint8 in and out.
    """
    if area_fraction >= 1.0:
        return image
    _, height, width = image.shape
    side = math.sqrt(area_fraction)
    low, high = (1.0 - side) / 2.0, (1.0 + side) / 2.0
    ys = torch.linspace(2 * low - 1, 2 * high - 1, height)  # (H,) grid coords, align_corners
    xs = torch.linspace(2 * low - 1, 2 * high - 1, width)  # (W,)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    grid = torch.stack([grid_x, grid_y], dim=-1)[None]  # (1, H, W, 2)
    cropped = F.grid_sample(image[None].float(), grid, mode='bilinear', align_corners=True)[0]
    return _to_uint8(cropped)


class VLAProcessor:
    """Builds the model batch (see the training-batch table in docs/ARCHITECTURE.md)."""

    def __init__(self, config: PolicyConfig, prompt_builder: PromptBuilder,
                 normalizer: Normalizer | None) -> None:
        self.config = config
        self.prompt_builder = prompt_builder
        self.normalizer = normalizer
        vision = config.vision
        self.image_size = vision.image_size
        means = torch.tensor(vision.image_means, dtype=torch.float32)  # (T, 3)
        stds = torch.tensor(vision.image_stds, dtype=torch.float32)  # (T, 3)
        self.channel_means = means[:, :, None, None]  # (T, 3, 1, 1)
        self.channel_stds = stds[:, :, None, None]
        self.num_towers = len(vision.timm_model_ids)

    @classmethod
    def from_config(cls, config: PolicyConfig, tokenizer, statistics: dict | None,
                    center_crop: bool = True) -> VLAProcessor:
        """Processor for ``config`` with its prompt style and the statistics' normaliser.

        ``center_crop=False`` gives the training variant: no centre crop, because the training
        augmentation took a random crop of the same area already.
        """
        if not center_crop:
            config = dataclasses.replace(config, processor=dataclasses.replace(
                config.processor, center_crop_fraction=1.0))
        options = config.processor
        builder = PromptBuilder(tokenizer, options.prompt_style, options.lowercase_instruction,
                                options.max_prompt_tokens)
        normalizer = None
        if statistics is not None:
            normalizer = Normalizer(statistics, config.normalization, config.action_dim,
                                    config.proprio_dim if config.use_proprio else None)
        return cls(config, builder, normalizer)

    def image_tensor(self, image: np.ndarray, field: str) -> torch.Tensor:
        """One uint8 (H, W, 3) image -> normalised (3 * towers, S, S) float32."""
        if not isinstance(image, np.ndarray):
            raise ValueError(f'{field} must be a numpy array, got {type(image).__name__}')
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'{field} must be uint8 (H, W, 3) RGB, got {image.dtype} '
                             f'{image.shape}')
        if image.shape[0] < 2 or image.shape[1] < 2:
            raise ValueError(f'{field} is too small: {image.shape}')
        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W)
        chw = resize_image(chw, self.image_size)
        chw = center_crop_image(chw, self.config.processor.center_crop_fraction)
        rgb = chw.float() / 255.0  # (3, S, S)
        normalized = (rgb - self.channel_means) / self.channel_stds  # (T, 3, S, S)
        return normalized.reshape(3 * self.num_towers, *rgb.shape[1:])  # (3T, S, S)

    def pixel_values(self, observation: dict, index: int) -> torch.Tensor:
        """The images of one observation in camera order -> (N, 3T, S, S)."""
        images = observation.get(IMAGES_KEY)
        if not isinstance(images, dict):
            raise ValueError(f"observations[{index}]['images'] must be a dict camera -> image, "
                             f'got {type(images).__name__}')
        missing = [name for name in self.config.camera_names if name not in images]
        if missing:
            raise ValueError(f"observations[{index}]['images'] lacks cameras {missing} "
                             f'(has {sorted(images)}, needs {self.config.camera_names})')
        return torch.stack([
            self.image_tensor(images[name], f"observations[{index}]['images'][{name!r}]")
            for name in self.config.camera_names])

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
                 action_mask: np.ndarray | None = None) -> dict:
        """Batch of observations (and optional raw action targets) -> dict of tensors."""
        if isinstance(observations, dict) or not observations:
            raise ValueError('observations must be a non-empty list of observation dicts')
        for index, observation in enumerate(observations):
            if not isinstance(observation, dict):
                raise ValueError(f'observations[{index}] must be a dict, got '
                                 f'{type(observation).__name__}')
        pixel_values = torch.stack([self.pixel_values(obs, index)
                                    for index, obs in enumerate(observations)])
        instructions = []
        for index, observation in enumerate(observations):
            instruction = observation.get(INSTRUCTION_KEY)
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError(f"observations[{index}]['instruction']={instruction!r}: must "
                                 'be a non-empty string')
            instructions.append(instruction)
        input_ids, attention_mask = self.prompt_builder.batch(instructions)
        batch = {'pixel_values': pixel_values,  # (B, N, 3T, S, S)
                 'input_ids': input_ids, 'attention_mask': attention_mask}
        if self.config.use_proprio:
            raw = np.stack([self.proprio_vector(obs, index)
                            for index, obs in enumerate(observations)])  # (B, P)
            normalized = self._require_normalizer().normalize_proprio(raw)
            batch['proprio'] = torch.from_numpy(normalized.astype(np.float32))  # (B, P)
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
