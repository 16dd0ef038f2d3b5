"""Command lines derived from the config dataclasses: help, --config files, aliases, errors."""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time

import pytest

from training.compute_adaptive_bins import BinsConfig
from training.compute_dataset_statistics import StatisticsConfig
from training.config_cli import build_config_parser, parse_config
from training.data_config import DatasetConfig
from training.train_config import TrainConfig, build_parser

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / 'config' / 'demo' / 'transfer_cube_train.yaml'

REQUIRED = ['--data', 'episodes', '--output_dir', 'run', '--policy_config', 'policy.json',
            '--tokenizer_dir', 'tokenizer']


def parse(argv):
    return parse_config(build_parser(), TrainConfig, argv)


def user_error(capsys, argv, parser=None, cls=TrainConfig) -> str:
    """The error line of a rejected command line (exit code 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parse_config(parser or build_parser(), cls, argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f'{(parser or build_parser()).prog}: error: ')
    return lines[-1]


@pytest.mark.parametrize('cls', [TrainConfig, StatisticsConfig, BinsConfig])
def test_every_flag_has_help_text(cls):
    parser = build_config_parser(cls, prog='cli', description='test')
    flags = [action for action in parser._actions if action.option_strings]
    assert len(flags) > 20
    for action in flags:
        assert action.help and action.help != argparse.SUPPRESS, action.option_strings
        assert all(name.startswith('-') and '-' not in name.lstrip('-')
                   for name in action.option_strings), action.option_strings  # underscores
    parser.format_help()  # every help text formats (no stray % placeholders)


def test_flags_set_nested_fields_and_defaults_come_from_the_dataclasses():
    config = parse([*REQUIRED, '--camera_names', 'cam_high', '--chunk_size', '8',
                    '--crop_area', '0.8', '--learning_rate', '1e-3', '--resume'])
    assert config.data == DatasetConfig(paths=['episodes'], camera_names=['cam_high'],
                                        chunk_size=8)
    assert config.augmentation.crop_area == 0.8 and config.augmentation.enabled
    assert config.learning_rate == 1e-3 and config.resume
    defaults = TrainConfig(data=config.data, output_dir='run', policy_config='policy.json',
                           tokenizer_dir='tokenizer')
    assert config.max_steps == defaults.max_steps and config.head_kind == 'l1'


def test_config_file_supplies_values_and_flags_override_it(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('data:\n  paths: [a, b]\n  chunk_size: 10\n  robot: wx250s\n'
                    'output_dir: from_file\npretrained: ckpt\nmax_steps: 7\n'
                    'learning_rate: 0.01\naugmentation: {hue: 0.1}\n')
    config = parse(['--config', str(path), '--max_steps', '9', '--chunk_size', '12'])
    assert config.max_steps == 9 and config.data.chunk_size == 12  # the flags win
    assert config.learning_rate == 0.01 and config.output_dir == 'from_file'
    # Relative paths in the file are relative to the file's folder; names stay names.
    assert config.data.paths == [str(tmp_path / 'a'), str(tmp_path / 'b')]
    assert config.data.action_dim == 7 and config.pretrained == 'ckpt'  # wx250s, a Hub id
    assert config.augmentation.hue == 0.1 and config.augmentation.crop_area == 0.9


def test_a_saved_train_config_is_a_valid_config_file(tmp_path):
    config = parse([*REQUIRED, '--use_dual_arm', '--no_augmentation', '--lora_rank', '8'])
    path = tmp_path / 'train_config.json'
    path.write_text(json.dumps(config.to_dict()))
    assert parse(['--config', str(path)]) == config


def test_unknown_key_in_the_config_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / 'run.yaml'
    path.write_text('data:\n  paths: [a]\n  camra_names: [cam_high]\noutput_dir: x\n')
    line = user_error(capsys, ['--config', str(path)])
    assert line.endswith(f"--config {path}: unknown key 'data.camra_names'; did you mean "
                         "'data.camera_names'?")
    path.write_text('[1, 2]\n')
    assert 'expected a mapping of settings, got list' in user_error(capsys,
                                                                    ['--config', str(path)])
    assert 'cannot read it' in user_error(capsys, ['--config', str(tmp_path / 'missing.yaml')])


def test_missing_and_invalid_settings_are_one_line_errors(tmp_path, capsys):
    line = user_error(capsys, ['--output_dir', 'run', '--pretrained', 'ckpt'])
    assert line.endswith('the following arguments are required: --data')
    line = user_error(capsys, [*REQUIRED, '--max_steps', '0'])
    assert line.endswith('TrainConfig.max_steps=0: must be a positive int')
    path = tmp_path / 'run.yaml'
    path.write_text('data: {paths: [a], layout: zarr}\noutput_dir: x\npretrained: y\n')
    assert "DatasetConfig.layout='zarr'" in user_error(capsys, ['--config', str(path)])
    assert 'invalid choice' in user_error(capsys, [*REQUIRED, '--head_kind', 'diffusion'])


def test_upstream_head_flags_are_aliases_of_head_kind(capsys):
    assert parse([*REQUIRED, '--use_discrete_head']).head_kind == 'discrete'
    assert parse([*REQUIRED, '--use_dual_arm']).head_kind == 'dual_arm'
    assert parse([*REQUIRED, '--head_kind', 'dual_arm']).head_kind == 'dual_arm'
    line = user_error(capsys, [*REQUIRED, '--use_discrete_head', '--use_dual_arm'])
    assert 'not allowed with argument' in line


def test_boolean_flags_have_a_negative_spelling():
    config = parse([*REQUIRED, '--no_augmentation', '--no_progress_bar'])
    assert not config.augmentation.enabled and not config.progress_bar
    assert parse([*REQUIRED, '--no_augmentation', '--augmentation']).augmentation.enabled


def test_old_train_configs_with_head_booleans_still_load():
    config = parse(REQUIRED)
    saved = config.to_dict()
    del saved['head_kind']
    old = dict(saved, use_discrete_head=False, use_dual_arm=True)
    assert TrainConfig.from_dict(old).head_kind == 'dual_arm'
    assert TrainConfig.from_dict(dict(saved, use_discrete_head=False,
                                      use_dual_arm=False)).head_kind == 'l1'
    with pytest.raises(ValueError, match='TrainConfig.head_kind'):
        TrainConfig.from_dict(dict(saved, use_discrete_head=True, use_dual_arm=True))
    with pytest.raises(ValueError, match=r"TrainConfig.head_kind='diffusion': unknown action "
                                         r"head kind 'diffusion'; known kinds: \['discrete', "
                                         r"'dual_arm', 'l1'\]"):
        TrainConfig.from_dict(dict(saved, head_kind='diffusion'))


def test_statistics_and_bins_command_lines_share_the_dataset_options(tmp_path, capsys):
    stats_parser = build_config_parser(StatisticsConfig, prog='vla-adapter-stats',
                                       description='test')
    config = parse_config(stats_parser, StatisticsConfig,
                          ['--data', 'episodes', '--robot', 'wx250', '--unnorm_key', 'towel'])
    assert config.data.proprio_dim == 6 and config.unnorm_key == 'towel'
    bins_parser = build_config_parser(BinsConfig, prog='vla-adapter-bins', description='test')
    line = user_error(capsys, ['--data', 'episodes', '--n_action_bins', '1'], bins_parser,
                      BinsConfig)
    assert line.endswith('BinsConfig.n_action_bins=1: must be >= 2')


def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    """Issue 20.6: the demo YAML works from any directory, not only from the repository root."""
    monkeypatch.chdir(tmp_path)
    config = parse(['--config', str(DEMO_CONFIG), '--data', 'episodes', '--output_dir', 'run'])
    assert config.policy_config == str(REPO / 'config' / 'demo' / 'transfer_cube_policy.json')
    assert config.tokenizer_dir == str(REPO / 'vla_adapter_core' / 'assets' / 'qwen2_5_tokenizer')
    config.check_input_paths()  # both exist
    assert config.data.paths == [str(tmp_path / 'episodes')]  # flags: the current directory
    assert config.output_dir == 'run'  # outputs are not inputs: left as given
    folder = tmp_path / 'configs'
    (folder / 'ckpt').mkdir(parents=True)
    path = folder / 'run.yaml'
    path.write_text(f'data: {{paths: [../eps, {tmp_path}/abs], robot: aloha}}\n'
                    'tokenizer_dir: ./tok\npretrained: org/model\n')
    config = parse(['--config', str(path), '--output_dir', 'run'])
    assert config.data.paths == [str(tmp_path / 'eps'), str(tmp_path / 'abs')]
    assert config.tokenizer_dir == str(folder / 'tok')
    assert config.data.robot == 'aloha' and config.pretrained == 'org/model'  # names
    path.write_text('data: {paths: [eps]}\npretrained: ckpt\n')  # a folder that exists there
    assert parse(['--config', str(path), '--output_dir', 'run']).pretrained == str(folder / 'ckpt')


def test_a_missing_input_path_fails_in_one_line_before_the_training_imports(tmp_path):
    """The real process: exit 2 naming the field, and transformers was never imported."""
    probe = ('import sys; from training.finetune import main; code = main(sys.argv[1:]); '
             "print('transformers' in sys.modules, 'peft' in sys.modules, file=sys.stderr); "
             'sys.exit(code)')
    command = [sys.executable, '-c', probe, '--config', str(DEMO_CONFIG), '--data',
               str(tmp_path), '--output_dir', str(tmp_path / 'run'), '--tokenizer_dir',
               'no_such_tokenizer']
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"vla-adapter-train: error: TrainConfig.tokenizer_dir='{tmp_path}/no_such_tokenizer': "
        'no such file or directory', 'False False']
    assert time.monotonic() - started < 60
