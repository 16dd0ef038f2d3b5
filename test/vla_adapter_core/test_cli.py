"""vla-adapter-predict: results equal the Python API; bad input gives a clear error, exit 2."""

import json
from pathlib import Path
import re
import shutil
import warnings

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from vla_adapter_core.checkpoint import save_checkpoint
from vla_adapter_core.cli import build_parser, main
from vla_adapter_core.normalization import StatisticsWarning
from vla_adapter_core.tiny_policies import build_tiny_policy, random_observation

CAMERAS = ['cam_high', 'cam_left_wrist']
UPSTREAM = Path(__file__).resolve().parents[1] / 'fixtures' / 'upstream_vla_adapter'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    policy = build_tiny_policy(action_dim=6, proprio_dim=5, chunk_size=3, camera_names=CAMERAS,
                               seed=9)
    directory = tmp_path_factory.mktemp('ckpt')
    policy.save_pretrained(directory)
    return policy, directory


def _write_inputs(path, observation, keys=CAMERAS, **replace):
    arrays = {f'image_{index}': observation['images'][name] for index, name in enumerate(keys)}
    arrays.update(image_keys=np.array(keys), proprio=observation['proprio'],
                  instruction=np.array(observation['instruction']))
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


def _run(checkpoint_dir, inputs, output, *extra):
    return main(['--checkpoint', str(checkpoint_dir), '--inputs', str(inputs),
                 '--output', str(output), *extra])


def test_cli_writes_the_policy_prediction(checkpoint, tmp_path):
    policy, directory = checkpoint
    observation = random_observation(policy, seed=4)
    inputs = _write_inputs(tmp_path / 'inputs.npz', observation)
    assert _run(directory, inputs, tmp_path / 'out.npz') == 0
    with np.load(tmp_path / 'out.npz', allow_pickle=False) as result:
        prediction = policy.predict([observation])
        np.testing.assert_allclose(result['actions'], prediction.actions[0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(result['normalized_actions'],
                                   prediction.normalized_actions[0], rtol=0, atol=1e-6)


def test_cli_maps_cameras_by_name(checkpoint, tmp_path):
    policy, directory = checkpoint
    observation = random_observation(policy, seed=4)
    swapped = _write_inputs(tmp_path / 'swapped.npz', observation, keys=CAMERAS[::-1])
    assert _run(directory, swapped, tmp_path / 'a.npz') == 0
    ordered = _write_inputs(tmp_path / 'ordered.npz', observation)
    assert _run(directory, ordered, tmp_path / 'b.npz') == 0
    with np.load(tmp_path / 'a.npz') as first, np.load(tmp_path / 'b.npz') as second:
        np.testing.assert_array_equal(first['actions'], second['actions'])


@pytest.mark.parametrize('case, message', [
    ('missing_inputs', 'inputs file not found'),
    ('missing_checkpoint', 'checkpoint directory not found'),
    ('proprio_shape', r"\['proprio'\] must have shape \(5,\)"),
    ('image_shape', 'image_1 must be uint8 \\(H, W, 3\\)'),
    ('camera_count', 'the inputs hold 1 images'),
    ('unnorm_key', "unnorm_key='nowhere'"),
    ('object_array', 'cannot read without pickle'),
    ('no_instruction', "lacks 'instruction'"),
])
def test_cli_errors(checkpoint, tmp_path, capsys, case, message):
    policy, directory = checkpoint
    observation = random_observation(policy, seed=1)
    inputs = tmp_path / 'inputs.npz'
    extra = []
    if case == 'missing_inputs':
        inputs = tmp_path / 'absent.npz'
    elif case == 'missing_checkpoint':
        _write_inputs(inputs, observation)
        directory = tmp_path / 'no_checkpoint'
    elif case == 'proprio_shape':
        _write_inputs(inputs, observation, proprio=np.zeros(7))
    elif case == 'image_shape':
        _write_inputs(inputs, observation, image_1=np.zeros((4, 4), np.uint8))
    elif case == 'camera_count':
        _write_inputs(inputs, observation, keys=['cam_high'], image_keys=np.array(['other']))
    elif case == 'unnorm_key':
        _write_inputs(inputs, observation)
        extra = ['--unnorm-key', 'nowhere']
    elif case == 'object_array':
        _write_inputs(inputs, observation, proprio=np.array([{'x': 1}], dtype=object))
    elif case == 'no_instruction':
        arrays = {'image_0': observation['images']['cam_high'], 'proprio': observation['proprio']}
        np.savez(inputs, **arrays)
    assert _run(directory, inputs, tmp_path / 'out.npz', *extra) == 2
    error = capsys.readouterr().err
    assert error.startswith('vla-adapter-predict: error:')
    assert re.search(message, error), error
    assert not (tmp_path / 'out.npz').exists()


def test_cli_refuses_pickle_only_checkpoint(checkpoint, tmp_path, capsys):
    policy, _ = checkpoint
    pickled = tmp_path / 'pickled'
    pickled.mkdir()
    (pickled / 'pytorch_model.bin').write_bytes(b'\x80\x04pickle payload')
    inputs = _write_inputs(tmp_path / 'inputs.npz', random_observation(policy, seed=1))
    assert _run(pickled, inputs, tmp_path / 'out.npz') == 2
    assert 'only pickled weights' in capsys.readouterr().err


@pytest.mark.parametrize('spelling', ['--unnorm_key', '--unnorm-key'])
def test_underscore_flags_with_the_dashed_spelling_as_alias(spelling):
    parser = build_parser()
    args = parser.parse_args(['--checkpoint', 'c', '--inputs', 'i', '--output', 'o', spelling,
                              'towel', '--prompt_style', 'qwen_chat', '--upstream-overrides',
                              'tiny.json'])
    assert (args.unnorm_key, args.prompt_style, args.upstream_overrides) == (
        'towel', 'qwen_chat', 'tiny.json')
    for action in parser._actions:  # the first spelling of every flag uses underscores
        assert '-' not in action.option_strings[0].lstrip('-'), action.option_strings


def _copy_with_statistics(directory, tmp_path, edit):
    """A copy of the checkpoint whose dataset_statistics.json went through ``edit``."""
    copy = shutil.copytree(directory, tmp_path / 'edited')
    path = copy / 'dataset_statistics.json'
    statistics = json.loads(path.read_text())
    edit(statistics['tiny'])
    path.write_text(json.dumps(statistics))  # NaN is written as JSON's NaN
    return copy


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith('vla-adapter-predict: error: ')
    return lines[0]


def _nan_min(entry):
    entry['action']['min'][3] = float('nan')


def _inverted(entry):
    action = entry['action']
    action['min'][2], action['max'][2] = action['max'][2], action['min'][2]


@pytest.mark.parametrize('edit, message', [
    (_nan_min, r'dataset_statistics\.json: tiny\.action\.min\[3\] = nan: not finite'),
    (_inverted, r'dataset_statistics\.json: tiny\.action\.min\[2\] = [\d.]+ > '
                r'max\[2\] = -[\d.]+: inverted range'),
])
def test_checkpoint_with_invalid_statistics_is_refused(checkpoint, tmp_path, capsys, edit,
                                                       message):
    policy, directory = checkpoint
    edited = _copy_with_statistics(directory, tmp_path, edit)
    inputs = _write_inputs(tmp_path / 'inputs.npz', random_observation(policy, seed=2))
    assert _run(edited, inputs, tmp_path / 'out.npz') == 2
    assert re.search(message, _one_error_line(capsys))
    assert not (tmp_path / 'out.npz').exists()


def test_constant_dimension_loads_with_one_warning(checkpoint, tmp_path):
    policy, directory = checkpoint

    def constant(entry):
        for key in ('min', 'max', 'q01', 'q99'):
            entry['action'][key][1] = 0.25

    edited = _copy_with_statistics(directory, tmp_path, constant)
    inputs = _write_inputs(tmp_path / 'inputs.npz', random_observation(policy, seed=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert _run(edited, inputs, tmp_path / 'out.npz') == 0
    said = [str(item.message) for item in caught if item.category is StatisticsWarning]
    assert len(said) == 1 and 'tiny.action[1] (min == max)' in said[0], said
    with np.load(tmp_path / 'out.npz') as result:
        np.testing.assert_allclose(result['actions'][:, 1], 0.25, atol=1e-7)  # the constant
        assert np.isfinite(result['actions']).all()


def test_non_finite_prediction_exits_non_zero_and_writes_nothing(checkpoint, tmp_path, capsys):
    policy, directory = checkpoint
    broken = shutil.copytree(directory, tmp_path / 'broken')
    state = load_file(broken / 'model.safetensors')
    state['action_head.model.fc2.bias'][4] = float('nan')  # the loader takes any weights
    save_file(state, broken / 'model.safetensors', metadata={'format': 'vla_adapter_core'})
    inputs = _write_inputs(tmp_path / 'inputs.npz', random_observation(policy, seed=2))
    assert _run(broken, inputs, tmp_path / 'out.npz') == 2
    line = _one_error_line(capsys)
    assert re.search(r'predicted non-finite actions: 3 of 18 values are NaN/inf, the first '
                     r'actions\[0, 4\] = nan; nothing written', line), line
    assert not (tmp_path / 'out.npz').exists()


def test_debug_adds_the_traceback(checkpoint, tmp_path, capsys):
    policy, _ = checkpoint
    inputs = _write_inputs(tmp_path / 'inputs.npz', random_observation(policy, seed=2))
    absent = tmp_path / 'absent'
    assert _run(absent, inputs, tmp_path / 'out.npz') == 2
    line = _one_error_line(capsys)
    assert 'Traceback' not in line and f"checkpoint directory not found: '{absent}'" in line
    assert _run(absent, inputs, tmp_path / 'out.npz', '--debug') == 2
    error = capsys.readouterr().err
    assert error.startswith('Traceback (most recent call last):')
    assert 'FileNotFoundError' in error
    assert error.strip().splitlines()[-1] == line


def test_unreadable_weights_are_one_line(checkpoint, tmp_path, capsys):
    policy, directory = checkpoint
    truncated = shutil.copytree(directory, tmp_path / 'truncated')
    weights = truncated / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:1000])
    inputs = _write_inputs(tmp_path / 'inputs.npz', random_observation(policy, seed=2))
    assert _run(truncated, inputs, tmp_path / 'out.npz') == 2
    assert f"'{weights}' is not a readable safetensors file" in _one_error_line(capsys)


def test_invalid_statistics_are_never_written_into_a_checkpoint(checkpoint, tmp_path):
    policy, _ = checkpoint
    statistics = json.loads(json.dumps(policy.statistics))
    statistics['tiny']['action']['max'][0] = -10.0
    with pytest.raises(ValueError, match=r'dataset_statistics\.json: tiny\.action\.min\[0\] = '
                                         r'-[\d.]+ > max\[0\] = -10\.0: inverted range'):
        save_checkpoint(tmp_path / 'out', policy.model, policy.config, statistics,
                        policy.tokenizer)
    assert not (tmp_path / 'out').exists()


def test_upstream_run_with_inverted_statistics_is_refused(tmp_path, capsys):
    fixture = shutil.copytree(UPSTREAM / 'libero_pro_2cam', tmp_path / 'fixture')
    path = fixture / 'checkpoint' / 'dataset_statistics.json'
    statistics = json.loads(path.read_text())
    proprio = statistics['libero_spatial_no_noops']['proprio']
    proprio['q01'][4], proprio['q99'][4] = proprio['q99'][4], proprio['q01'][4]
    path.write_text(json.dumps(statistics))
    assert _run(fixture, fixture / 'inputs.npz', tmp_path / 'out.npz') == 2
    assert re.search(r'checkpoint/dataset_statistics\.json: libero_spatial_no_noops\.proprio\.'
                     r'q01\[4\] = 0\.93\d+ > q99\[4\] = -1\.31\d+: inverted range',
                     _one_error_line(capsys))
    assert not (tmp_path / 'out.npz').exists()
