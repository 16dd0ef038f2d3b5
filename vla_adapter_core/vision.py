"""Fused DINOv2 + SigLIP vision backbone built from timm ViTs.

Each tower sees its own normalisation of the same RGB image (the processor stacks the towers'
channels: 3 per tower). Features are the output of the second-to-last block (no final norm) with
the prefix (class / register) tokens dropped, concatenated per patch along channels. N images give
N x 256 patch tokens, images concatenated along the sequence.
"""

from __future__ import annotations

import timm
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vla_adapter_core.config import VisionConfig, tower_feature_block_index


def build_tower(model_id: str, image_size: int, overrides: dict) -> nn.Module:
    """Build one timm ViT as upstream does (no pretrained download, no classifier)."""
    kwargs = {'pretrained': False, 'num_classes': 0, 'img_size': image_size, 'act_layer': None}
    kwargs.update(overrides)
    try:
        return timm.create_model(model_id, **kwargs)
    except (AssertionError, TypeError, RuntimeError) as error:  # e.g. heads not dividing dim
        raise ValueError(f'VisionConfig: timm cannot build {model_id!r} with {overrides}: '
                         f'{error!r}') from error


def build_pretrained_tower(model_id: str, image_size: int, overrides: dict,
                           state_dict: dict | None = None,
                           cache_dir: str | None = None) -> nn.Module:
    """One timm ViT with pretrained weights, loaded by timm's own pretrained loading.

    ``state_dict`` (timm names) is given to timm as its in-memory weights override
    (``pretrained_cfg_overlay``); without it timm takes the model id's registered weights from
    the Hugging Face Hub through its cache (``cache_dir``; huggingface_hub honours
    HF_HUB_OFFLINE). Either way timm's checkpoint filter runs (DINOv2 conversion, position
    embeddings resampled to ``image_size``) and the load is strict.
    """
    kwargs = {'pretrained': True, 'num_classes': 0, 'img_size': image_size, 'act_layer': None,
              'cache_dir': cache_dir}
    if state_dict is not None:
        kwargs['pretrained_cfg_overlay'] = {'state_dict': dict(state_dict)}
    kwargs.update(overrides)
    source = 'the given weights' if state_dict is not None else 'the Hugging Face Hub cache'
    try:
        return timm.create_model(model_id, **kwargs)
    except (AssertionError, TypeError) as error:  # e.g. heads not dividing dim
        raise ValueError(f'timm cannot build {model_id!r} with {overrides}: {error!r}') from error
    except RuntimeError as error:  # a strict load that does not fit, or no registered weights
        raise ValueError(f'timm cannot load pretrained weights for {model_id!r} from {source}: '
                         f'{error}') from error
    except OSError as error:  # huggingface_hub: not cached and offline / unreachable
        raise FileNotFoundError(
            f"timm's pretrained weights for {model_id!r} are not in the Hugging Face Hub cache "
            f'and cannot be downloaded (HF_HUB_OFFLINE set or no network): {error}') from error


class FusedVisionBackbone(nn.Module):
    """One or two timm ViT towers whose patch features are concatenated per patch."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        self.towers = nn.ModuleList(
            build_tower(model_id, config.image_size, overrides)
            for model_id, overrides in zip(config.timm_model_ids, config.tower_kwargs))
        for index, tower in enumerate(self.towers):
            if tower.embed_dim != config.embed_dims[index]:
                raise ValueError(f'VisionConfig.embed_dims[{index}]={config.embed_dims[index]}: '
                                 f'tower {config.timm_model_ids[index]!r} builds '
                                 f'embed_dim={tower.embed_dim}')
            if tower.patch_embed.patch_size[0] != config.patch_size:
                raise ValueError(f'VisionConfig.patch_size={config.patch_size}: tower '
                                 f'{config.timm_model_ids[index]!r} uses '
                                 f'{tower.patch_embed.patch_size[0]}')
        self.feature_indices = [
            tower_feature_block_index(len(tower.blocks), config.feature_block_from_end)
            for tower in self.towers]
        # True: keep only each block's input and recompute the block in the backward pass.
        self.gradient_checkpointing = False

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters the features never read: later blocks, the final norm, pooling heads."""
        used = set()
        for tower, block_index in zip(self.towers, self.feature_indices):
            modules = [tower.patch_embed, tower.norm_pre, *tower.blocks[:block_index + 1]]
            used.update(id(param) for module in modules for param in module.parameters())
            used.update(id(param) for param in tower.parameters(recurse=False))  # positions
        return [param for param in self.parameters() if id(param) not in used]

    def init_sincos_positions(self) -> None:
        """Set every tower's patch position embeddings to fixed-frequency 2-D sine-cosine.

        timm starts them random at std 0.02, an order of magnitude below the patch content; a
        tower trained from scratch on a few dozen episodes keeps them that weak, so which patch
        an object is in (as against where inside its patch) hardly reaches the features. The
        prefix tokens' rows (class, registers) keep their values.
        """
        with torch.no_grad():
            for index, tower in enumerate(self.towers):
                if getattr(tower, 'pos_embed', None) is None:
                    raise ValueError(f'vision tower {index} ({self.config.timm_model_ids[index]}) '
                                     'has no position embedding table to initialise')
                grid = list(tower.patch_embed.grid_size)  # [H / patch, W / patch]
                table = build_sincos2d_pos_embed(grid, tower.embed_dim)  # (P, d), row-major
                tower.pos_embed[0, -table.shape[0]:].copy_(table)

    @property
    def channels_per_image(self) -> int:
        """Input channels per image: 3 per tower."""
        return 3 * len(self.towers)

    def tower_features(self, tower_index: int, images: torch.Tensor) -> torch.Tensor:
        """Patch features of one tower. ``images`` (M, 3, H, W) -> (M, P, d_tower)."""
        tower = self.towers[tower_index]
        block_index = self.feature_indices[tower_index]
        x = tower.patch_embed(images)  # (M, P, d)
        x = tower._pos_embed(x)  # (M, prefix + P, d)
        x = tower.patch_drop(x)
        x = tower.norm_pre(x)
        recompute = self.gradient_checkpointing and torch.is_grad_enabled()
        for block in tower.blocks[:block_index + 1]:
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return x[:, tower.num_prefix_tokens:]  # (M, P, d)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encode images. ``pixel_values`` (B, N, 3 * towers, H, W) -> (B, N * P, feature_dim)."""
        batch, num_images, channels, height, width = pixel_values.shape
        if channels != self.channels_per_image:
            raise ValueError(f'pixel_values has {channels} channels per image, expected '
                             f'{self.channels_per_image}')
        flat = pixel_values.reshape(batch * num_images, channels, height, width)  # (B*N, C, H, W)
        # A tower's channel slice is a strided view; the CPU convolution of the patch embedding
        # runs several times slower on it than on a contiguous copy (12 images 224 px, one
        # thread: 7 ms against 1.2 ms + the copy).
        features = [self.tower_features(index, flat[:, 3 * index:3 * index + 3].contiguous())
                    for index in range(len(self.towers))]
        fused = torch.cat(features, dim=-1)  # (B * N, P, feature_dim)
        patches = fused.shape[1]
        return fused.reshape(batch, num_images * patches, fused.shape[-1])  # (B, N * P, Dv)
