"""Upstream VLA-Adapter checkpoints are reproduced numerically (fixture README tolerances).

Runs for every fixture directory under test/fixtures/upstream_vla_adapter/ that holds
expected.npz (the public one is libero_pro_2cam); nothing about a fixture is hard-coded here.
"""

import hashlib
import pathlib

import numpy as np
import pytest
import torch

from vla_adapter_core.cli import main as cli_main
from vla_adapter_core.config import LAYOUT_UPSTREAM_COMPAT
from vla_adapter_core.layout import upstream_window
from vla_adapter_core.policy import VLAPolicy

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'upstream_vla_adapter'
FIXTURE_DIRS = sorted(path.parent for path in FIXTURES.glob('*/expected.npz'))
ACTION_ATOL = 1e-4
# The Qwen-chat case has no hidden-state reference that pins upstream's bf16 rounding of the
# action window (README 3.5): where the float32 LLM output of this CPU's kernels lands on the
# other side of a bf16 rounding boundary than on the fixture's machine, one flipped value moves
# the actions by a few 1e-4 (4e-4 measured on AMD EPYC). The openvla case, whose windows are
# checked separately, keeps ACTION_ATOL.
MINIVLM_ACTION_ATOL = 1e-3
FEATURE_ATOL = 1e-4
TASK_WINDOW_ATOL = 5e-4


def _require(mapping, *keys):
    missing = [key for key in keys if key not in mapping]
    if missing:
        pytest.skip(f'this fixture has no {missing}')


def _load_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


class Case:
    """One fixture: its inputs, expected values and a float32 policy loaded from it."""

    def __init__(self, directory: pathlib.Path, prompt_style: str = 'openvla') -> None:
        self.directory = directory
        self.inputs = _load_npz(directory / 'inputs.npz')
        self.expected = _load_npz(directory / 'expected.npz')
        self.camera_names = [str(key) for key in self.inputs['image_keys']]
        self.policy = VLAPolicy.from_pretrained(
            directory / 'checkpoint', device='cpu', dtype='float32',
            unnorm_key=str(self.inputs['unnorm_key']), camera_names=self.camera_names,
            prompt_style=prompt_style)

    def observation(self) -> dict:
        images = {name: self.inputs[f'image_{index}']
                  for index, name in enumerate(self.camera_names)}
        return {'images': images, 'proprio': self.inputs['proprio'],
                'instruction': str(self.inputs['instruction'])}


@pytest.fixture(scope='module', params=FIXTURE_DIRS, ids=[path.name for path in FIXTURE_DIRS])
def case(request):
    return Case(request.param)


@pytest.fixture(scope='module')
def details(case):
    batch = case.policy.prepare_batch([case.observation()])
    with torch.inference_mode():
        outputs = case.policy.model.forward_detailed(batch)
    return batch, outputs


def test_public_fixture_present():
    assert 'libero_pro_2cam' in [path.name for path in FIXTURE_DIRS]


def test_fixture_files_match_manifest(case):
    root = case.directory
    if not (root / 'MANIFEST.sha256').is_file():
        pytest.skip('this fixture has no MANIFEST.sha256')
    lines = (root / 'MANIFEST.sha256').read_text().splitlines()
    assert lines
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_config_is_upstream_compat(case):
    config = case.policy.config
    assert config.layout == LAYOUT_UPSTREAM_COMPAT
    assert config.camera_names == case.camera_names
    expected_actions = case.expected['actions']
    assert (config.chunk_size, config.action_dim) == expected_actions.shape
    assert config.proprio_dim == case.inputs['proprio'].shape[0]
    assert config.action_head.num_blocks == config.llm.num_hidden_layers


def test_prompt_and_token_ids(case, details):
    batch, _ = details
    builder = case.policy.processor.prompt_builder
    if 'prompt_openvla' in case.inputs:
        assert builder.prompt(str(case.inputs['instruction'])) == str(
            case.inputs['prompt_openvla'])
    np.testing.assert_array_equal(batch['input_ids'].numpy(), case.expected['input_ids'])
    np.testing.assert_array_equal(batch['attention_mask'].numpy(),
                                  case.expected['attention_mask'])


def test_pixel_values(case, details):
    batch, _ = details
    pixel_values = batch['pixel_values']  # (1, N, 6, H, W) -> upstream's (1, 6N, H, W)
    flat = pixel_values.reshape(1, -1, *pixel_values.shape[-2:]).numpy()
    np.testing.assert_allclose(flat, case.expected['pixel_values'], rtol=0, atol=1e-6)


def test_vision_projector_and_proprio(case, details):
    batch, outputs = details
    expected = case.expected
    np.testing.assert_allclose(outputs.vision_features.numpy(),
                               expected['vision_patch_features'], rtol=0, atol=FEATURE_ATOL)
    np.testing.assert_allclose(outputs.patch_embeddings.numpy(),
                               expected['projected_patch_embeddings'], rtol=0, atol=FEATURE_ATOL)
    if not case.policy.config.use_proprio:
        assert outputs.proprio_token is None and 'proprio_features' not in expected
        return
    np.testing.assert_allclose(batch['proprio'][0].numpy(), expected['proprio_normalized'],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(outputs.proprio_token[:, 0].numpy(), expected['proprio_features'],
                               rtol=0, atol=FEATURE_ATOL)


def test_multi_layer_hidden_states(case, details):
    _, outputs = details
    window = upstream_window(list(outputs.hidden_states), outputs.sequence).numpy()
    expected = case.expected['multi_layer_hidden_states']
    assert window.shape == expected.shape
    num_patches = outputs.sequence.num_patches
    np.testing.assert_allclose(window[:, :, :num_patches], expected[:, :, :num_patches],
                               rtol=0, atol=TASK_WINDOW_ATOL)
    # The action window is bf16-rounded: allow isolated one-ulp flips.
    np.testing.assert_allclose(window[:, :, num_patches:], expected[:, :, num_patches:],
                               rtol=1e-2, atol=1e-3)
    if 'actions_hidden_states' not in case.expected:
        return
    last_layer_actions = window[:, -1:, num_patches:]
    np.testing.assert_allclose(last_layer_actions, case.expected['actions_hidden_states'],
                               rtol=1e-2, atol=1e-3)


def test_head_on_expected_windows(case):
    """Fed upstream's exact window and bf16 proprio, the head reproduces its output to 1e-5."""
    _require(case.expected, 'multi_layer_hidden_states')
    model = case.policy.model
    window = torch.from_numpy(case.expected['multi_layer_hidden_states'])  # (1, 25, K, D)
    split = case.policy.config.upstream_num_task_tokens
    token = None
    with torch.inference_mode():
        if model.proprio_projector is not None:
            _require(case.expected, 'proprio_bf16')
            token = model.proprio_projector(torch.from_numpy(case.expected['proprio_bf16'])[None])
        output = model.action_head(window[:, 1:, :split], window[:, 1:, split:], token)
    np.testing.assert_allclose(output[0].numpy(), case.expected['normalized_actions'],
                               rtol=0, atol=1e-5)


def test_actions_match_upstream(case):
    prediction = case.policy.predict([case.observation()])
    np.testing.assert_allclose(prediction.normalized_actions[0],
                               case.expected['normalized_actions'], rtol=0, atol=ACTION_ATOL)
    np.testing.assert_allclose(prediction.actions[0], case.expected['actions'], rtol=0,
                               atol=ACTION_ATOL)
    single = case.policy.predict_action_chunk(case.observation())
    np.testing.assert_array_equal(single, prediction.actions[0])


def test_qwen_chat_prompt_matches_upstream_minivlm(case):
    _require(case.expected, 'minivlm_input_ids', 'minivlm_actions', 'minivlm_normalized_actions')
    chat = Case(case.directory, prompt_style='qwen_chat')
    builder = chat.policy.processor.prompt_builder
    if 'prompt_minivlm' in chat.inputs:
        assert builder.prompt(str(chat.inputs['instruction'])) == str(
            chat.inputs['prompt_minivlm'])
    batch = chat.policy.prepare_batch([chat.observation()])
    np.testing.assert_array_equal(batch['input_ids'].numpy(), chat.expected['minivlm_input_ids'])
    prediction = chat.policy.predict([chat.observation()])
    np.testing.assert_allclose(prediction.normalized_actions[0],
                               chat.expected['minivlm_normalized_actions'], rtol=0,
                               atol=MINIVLM_ACTION_ATOL)
    np.testing.assert_allclose(prediction.actions[0], chat.expected['minivlm_actions'], rtol=0,
                               atol=MINIVLM_ACTION_ATOL)


def test_bfloat16_path_close_to_upstream_bf16(case):
    """Upstream's native bf16 run rounds differently: compare loosely (README section 4)."""
    _require(case.expected, 'bf16_normalized_actions')
    policy = VLAPolicy.from_pretrained(case.directory / 'checkpoint', dtype='bfloat16',
                                       unnorm_key=str(case.inputs['unnorm_key']),
                                       camera_names=case.camera_names)
    assert next(policy.model.parameters()).dtype == torch.bfloat16
    prediction = policy.predict([case.observation()])
    # bf16 rounding noise: as large as upstream's own bf16-vs-float32 gap, at least 0.07.
    upstream_gap = np.abs(case.expected['bf16_normalized_actions']
                          - case.expected['normalized_actions']).max()
    np.testing.assert_allclose(prediction.normalized_actions[0],
                               case.expected['bf16_normalized_actions'], rtol=0,
                               atol=max(0.07, 3 * float(upstream_gap)))


def test_saved_in_own_format_reloads_identically(case, tmp_path):
    case.policy.save_pretrained(tmp_path / 'converted')
    reloaded = VLAPolicy.from_pretrained(tmp_path / 'converted', dtype='float32')
    assert reloaded.config.layout == LAYOUT_UPSTREAM_COMPAT
    assert reloaded.config.to_dict() == case.policy.config.to_dict()
    before = case.policy.predict([case.observation()])
    after = reloaded.predict([case.observation()])
    np.testing.assert_array_equal(after.actions, before.actions)
    np.testing.assert_allclose(after.actions[0], case.expected['actions'], rtol=0,
                               atol=ACTION_ATOL)


@pytest.mark.parametrize('where, style', [('checkpoint', None), ('fixture_root', 'qwen_chat')])
def test_cli_reproduces_upstream(case, tmp_path, where, style):
    """The CLI on checkpoint/ (overrides found in its parent) or on the fixture folder itself."""
    prefix = ''
    extra = []
    atol = ACTION_ATOL
    if style is not None:
        atol = MINIVLM_ACTION_ATOL
        _require(case.expected, 'minivlm_actions', 'minivlm_normalized_actions')
        prefix = 'minivlm_'
        extra = ['--prompt-style', style]
    target = case.directory / 'checkpoint' if where == 'checkpoint' else case.directory
    output = tmp_path / 'out.npz'
    status = cli_main(['--checkpoint', str(target),
                       '--inputs', str(case.directory / 'inputs.npz'),
                       '--output', str(output), *extra])
    assert status == 0
    result = _load_npz(output)
    np.testing.assert_allclose(result['actions'], case.expected[prefix + 'actions'], rtol=0,
                               atol=atol)
    np.testing.assert_allclose(result['normalized_actions'],
                               case.expected[prefix + 'normalized_actions'], rtol=0, atol=atol)
