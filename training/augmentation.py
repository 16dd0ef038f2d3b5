"""Training-time image augmentation on uint8 frames, before the shared processor.

Random crop of ``crop_area`` (0.9) of the frame at a random position, keeping the aspect ratio,
resized to the model's size, then colour jitter (brightness, contrast, saturation, hue) applied as
one affine colour map. At inference the processor takes the centred crop of the same area
(``ProcessorConfig.center_crop_fraction``), so both see the same field of view on average.
Randomness comes from a per-sample seed, so a sample's augmentation does not depend on the worker
that loads it or on a resumed run.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from PIL import Image
import torch

from training.config_cli import option
from vla_adapter_core.config import ConfigDictMixin

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luminance weights
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.596, -0.274, -0.322],
                       [0.211, -0.523, 0.312]])


@dataclass
class AugmentationConfig(ConfigDictMixin):
    """Random-crop area fraction and colour-jitter strengths (OpenVLA-style defaults)."""

    enabled: bool = option(True, flag='augmentation',
                           help='random crop and colour jitter of the training images')
    crop_area: float = option(0.9, help='area fraction of the random crop (validation and '
                                        'inference take the centred crop of the same area)')
    brightness: float = option(0.2, help='brightness factor drawn from [1 - b, 1 + b]')
    contrast: float = option(0.2, help='contrast factor drawn from [1 - c, 1 + c]')
    saturation: float = option(0.2, help='saturation factor drawn from [1 - s, 1 + s]')
    hue: float = option(0.05, help='hue shift drawn from [-h, h] (fraction of the hue circle)')

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_area <= 1.0:
            raise ValueError(f'AugmentationConfig.crop_area={self.crop_area!r}: must be in (0, 1]')
        for name in ('brightness', 'contrast', 'saturation'):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f'AugmentationConfig.{name}={value!r}: must be in [0, 1)')
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f'AugmentationConfig.hue={self.hue!r}: must be in [0, 0.5]')


class ImageAugmenter:
    """Applies the same random crop and jitter recipe (independently drawn) to each camera.

    With ``output_size`` (the model's image size) each crop is resized to that square with PIL's
    antialiased bicubic filter, the filter the processor's resize reproduces, so the processor's
    own resize becomes a no-op; without it the crop keeps its size.
    """

    def __init__(self, config: AugmentationConfig, output_size: int | None = None) -> None:
        if output_size is not None and output_size <= 0:
            raise ValueError(f'ImageAugmenter output_size={output_size!r}: must be positive')
        self.config = config
        self.output_size = output_size

    def _uniform(self, generator: torch.Generator, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    def _crop(self, frame: np.ndarray, generator: torch.Generator) -> np.ndarray:
        height, width = frame.shape[:2]
        side = math.sqrt(self.config.crop_area)
        crop_h, crop_w = max(1, round(height * side)), max(1, round(width * side))
        top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
        left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
        return frame[top: top + crop_h, left: left + crop_w]  # (h, w, 3)

    def colour_transform(self, generator: torch.Generator,
                         mean_gray: float) -> tuple[np.ndarray, float]:
        """Draw brightness, contrast, saturation and hue; return them as one affine map.

        All four are linear in RGB (hue: a rotation of the chroma plane of YIQ), so the image is
        transformed once: ``out = rgb @ matrix.T + offset``. ``mean_gray`` is the image's mean
        luminance, the pivot of the contrast change.
        """
        cfg = self.config
        brightness = self._uniform(generator, 1 - cfg.brightness, 1 + cfg.brightness)
        contrast = self._uniform(generator, 1 - cfg.contrast, 1 + cfg.contrast)
        saturation = self._uniform(generator, 1 - cfg.saturation, 1 + cfg.saturation)
        angle = 2 * math.pi * self._uniform(generator, -cfg.hue, cfg.hue)
        saturate = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), LUMA)
        rotate = np.array([[1.0, 0.0, 0.0],
                           [0.0, math.cos(angle), -math.sin(angle)],
                           [0.0, math.sin(angle), math.cos(angle)]])
        hue = np.linalg.inv(RGB_TO_YIQ) @ rotate @ RGB_TO_YIQ
        matrix = contrast * brightness * hue @ saturate  # (3, 3)
        # Saturation and hue keep grey grey, so the contrast pivot passes through unchanged.
        offset = (1 - contrast) * brightness * mean_gray
        return matrix.astype(np.float32), float(offset)

    def _jitter(self, frame: np.ndarray, generator: torch.Generator) -> np.ndarray:
        pixels = frame.astype(np.float32)  # (h, w, 3)
        mean_gray = float((pixels.reshape(-1, 3) @ LUMA.astype(np.float32)).mean())
        matrix, offset = self.colour_transform(generator, mean_gray)
        jittered = pixels @ matrix.T + offset  # (h, w, 3)
        return np.clip(jittered + 0.5, 0, 255).astype(np.uint8)

    def __call__(self, images: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        """Camera -> uint8 (H, W, 3) in, camera -> augmented uint8 (h, w, 3) out."""
        if not self.config.enabled:
            return images
        generator = torch.Generator().manual_seed(int(seed))
        augmented = {}
        for camera, image in images.items():
            crop = self._crop(image, generator)  # (h, w, 3)
            if self.output_size is not None:
                size = (self.output_size, self.output_size)
                crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC))
            augmented[camera] = self._jitter(crop, generator)
        return augmented
