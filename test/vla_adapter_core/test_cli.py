"""vla-adapter-predict: results equal the Python API; bad input gives a clear error, exit 2."""

import re

import numpy as np
import pytest

from vla_adapter_core.cli import build_parser, main
from vla_adapter_core.testing import build_tiny_policy, random_observation

CAMERAS = ['cam_high', 'cam_left_wrist']


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
