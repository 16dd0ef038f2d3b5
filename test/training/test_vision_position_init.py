"""``--vision_position_init sincos``: from-scratch towers start with 2-D sine-cosine positions.

Towers that come from a source checkpoint keep the source's position embeddings; nothing but
the patch rows of the position tables changes.
"""

import pytest
import torch

from training.data_config import DatasetConfig
from training.model_setup import PolicySource, build_model
from training.train_config import TrainConfig
from vla_adapter_core.prompt import load_tokenizer
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

CAMERAS = ['cam_high']
POSITION_SUFFIX = '.pos_embed'


@pytest.fixture(scope='module')
def tiny():
    config = build_tiny_config(chunk_size=4, camera_names=CAMERAS, image_size=56,
                               unnorm_key='default')
    return config, load_tokenizer(default_tokenizer_dir())


def patch_tables(model) -> list[torch.Tensor]:
    """Each tower's patch rows of its position table as (rows, cols, d)."""
    tables = []
    for tower in model.vision.towers:
        rows, cols = tower.patch_embed.grid_size
        tables.append(tower.pos_embed[0, -rows * cols:].detach().reshape(rows, cols, -1))
    return tables


def test_sincos_tables_follow_the_patch_grid_and_nothing_else_changes(tiny):
    config, tokenizer = tiny
    source = PolicySource(config, None, tokenizer, 'test')
    default, _ = build_model(config, source, None, seed=0)
    sincos, _ = build_model(config, source, None, seed=0, vision_position_init='sincos')
    for table, random_table in zip(patch_tables(sincos), patch_tables(default)):
        rows, cols, dim = table.shape
        assert (rows, cols) == (4, 4)
        # Row-major like the patch sequence: half the channels depend on the row only, half on
        # the column only, so a patch's row is in its features as much as its column.
        by_row = (table - table[:, :1]).abs().amax(dim=(0, 1)) > 1e-6  # (d,) not constant in a row
        by_col = (table - table[:1]).abs().amax(dim=(0, 1)) > 1e-6  # (d,) nor in a column
        assert not (by_row & by_col).any()  # each channel follows one axis
        assert by_row.sum() == by_col.sum() >= dim // 4
        assert table.abs().max() <= 1.0 and table.std(dim=(0, 1)).mean() > 0.1
        assert random_table.std(dim=(0, 1)).mean() < 0.05  # timm's random start
    positions = {name for name, _ in sincos.named_parameters() if name.endswith(POSITION_SUFFIX)}
    assert len(positions) == len(config.vision.timm_model_ids)
    changed = {name for name, value in sincos.state_dict().items()
               if not torch.equal(value, default.state_dict()[name])}
    assert changed == positions


def test_positions_from_a_source_checkpoint_are_kept(tiny):
    config, tokenizer = tiny
    trained, _ = build_model(config, PolicySource(config, None, tokenizer, 'test'), None, seed=0)
    state = {name: value.clone() for name, value in trained.state_dict().items()}
    model, _ = build_model(config, PolicySource(config, state, tokenizer, 'a checkpoint'), None,
                           seed=1, vision_position_init='sincos')
    for table, source_table in zip(patch_tables(model), patch_tables(trained)):
        assert torch.equal(table, source_table)


def test_sincos_with_pretrained_towers_is_refused_naming_the_field():
    data = DatasetConfig(paths=['unused'], camera_names=CAMERAS, chunk_size=4)
    with pytest.raises(ValueError, match=r'vision_position_init.*--pretrained towers keep'):
        TrainConfig(data=data, output_dir='unused', pretrained='some/checkpoint',
                    tokenizer_dir='unused', vision_position_init='sincos')
    with pytest.raises(ValueError, match='vision_position_init'):
        TrainConfig(data=data, output_dir='unused', policy_config='unused.json',
                    tokenizer_dir='unused', vision_position_init='learned')
