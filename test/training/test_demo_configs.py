"""Every training recipe under config/demo is a valid `vla-adapter-train --config` file."""

from pathlib import Path

import pytest
import yaml

from training.aux_targets import AUX_TARGETS_FILE, write_aux_targets
from training.config_cli import parse_config
from training.train_config import TrainConfig, build_parser

DEMO = Path(__file__).resolve().parents[2] / 'config' / 'demo'


def parsed(recipe: Path, folder: Path) -> TrainConfig:
    """The recipe as vla-adapter-train reads it, with demos (and their targets) in ``folder``."""
    arguments = ['--config', str(recipe), '--data', str(folder),
                 '--output_dir', str(folder / 'run')]
    if yaml.safe_load(recipe.read_text()).get('aux_weight'):  # sim-demos writes the targets
        targets = folder / AUX_TARGETS_FILE
        write_aux_targets(targets, ['cube_x', 'cube_y'], {'episode_0000': ([0.1, 0.5], 170)})
        arguments += ['--aux_targets', str(targets)]
    return parse_config(build_parser(), TrainConfig, arguments)


@pytest.mark.parametrize('recipe', sorted(DEMO.glob('*_train.yaml')), ids=lambda path: path.stem)
def test_recipe_parses_and_names_existing_inputs(recipe, tmp_path):
    config = parsed(recipe, tmp_path)
    config.check_input_paths()  # the policy JSON and tokenizer the recipe names exist
    assert config.policy_config is not None and config.data.camera_names


def test_recipe_h_is_recipe_g_plus_sincos_positions(tmp_path):
    recipe_g = parsed(DEMO / 'transfer_cube_aux_train.yaml', tmp_path).to_dict()
    recipe_h = parsed(DEMO / 'transfer_cube_pos_train.yaml', tmp_path).to_dict()
    changed = {key for key in recipe_g if recipe_g[key] != recipe_h[key]}
    assert changed == {'vision_position_init'}
    assert recipe_h['vision_position_init'] == 'sincos'
