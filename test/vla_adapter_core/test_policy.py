"""VLAPolicy on tiny real models: predict, batched == one-by-one, save/load round trip."""

import json

import numpy as np
import pytest
import torch

from vla_adapter_core.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from vla_adapter_core.heads import bins_file_name
from vla_adapter_core.policy import VLAPolicy, resolve_dtype
from vla_adapter_core.tiny_policies import build_tiny_policy, random_observation

HEAD_KINDS = ('l1', 'discrete', 'dual_arm')


@pytest.fixture(scope='module', params=HEAD_KINDS)
def policy(request):
    return build_tiny_policy(action_dim=14, proprio_dim=14, chunk_size=5,
                             camera_names=['cam_high', 'cam_left_wrist'],
                             head_kind=request.param, seed=3)


def _observations(policy):
    return [
        random_observation(policy, seed=1, image_shape=(224, 224, 3)),
        random_observation(policy, seed=2, image_shape=(480, 640, 3),
                           instruction='Fold the towel on the left side of the table twice'),
        random_observation(policy, seed=3, image_shape=(60, 80, 3), instruction='push'),
    ]


def test_predict_shapes_and_dtype(policy):
    actions = policy.predict_action_chunk(_observations(policy)[0])
    assert actions.shape == (policy.config.chunk_size, policy.config.action_dim)
    assert actions.dtype == np.float64
    assert np.all(np.isfinite(actions))
    assert policy.dtype == torch.float32


def test_batched_equals_one_by_one(policy):
    observations = _observations(policy)
    batched = policy.predict_action_chunk_batch(observations)
    assert batched.shape == (3, policy.config.chunk_size, policy.config.action_dim)
    for index, observation in enumerate(observations):
        single = policy.predict_action_chunk(observation)
        np.testing.assert_allclose(batched[index], single, rtol=0, atol=1e-5)


def test_actions_depend_on_inputs():
    policy = build_tiny_policy(camera_names=['cam_high'], seed=4)
    observation = random_observation(policy, seed=5)
    base = policy.predict_action_chunk(observation)
    other_image = dict(observation, images={'cam_high': 255 - observation['images']['cam_high']})
    other_text = dict(observation, instruction='lift the red block above the bowl')
    other_state = dict(observation, proprio=-observation['proprio'])
    for changed in (other_image, other_text, other_state):
        assert np.abs(policy.predict_action_chunk(changed) - base).max() > 1e-6


def test_same_seed_same_policy():
    first = build_tiny_policy(camera_names=['cam_high'], seed=7)
    second = build_tiny_policy(camera_names=['cam_high'], seed=7)
    observation = random_observation(first, seed=0)
    np.testing.assert_array_equal(first.predict_action_chunk(observation),
                                  second.predict_action_chunk(observation))


def test_save_and_load_round_trip(policy, tmp_path):
    policy.save_pretrained(tmp_path)
    assert (tmp_path / WEIGHTS_FILE).is_file()
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved['format'] == 'vla_adapter_core'
    assert saved['layout'] == 'aligned'
    assert saved['provenance']['torch'] == torch.__version__
    assert 'git_revision' in saved['provenance']
    if policy.config.action_head.kind == 'discrete':
        bins = json.loads((tmp_path / bins_file_name(policy.config.action_head.n_action_bins))
                          .read_text())
        assert len(bins['low']) == policy.config.action_dim
    reloaded = VLAPolicy.from_pretrained(tmp_path, device='cpu', dtype='auto')
    assert reloaded.config.to_dict() == policy.config.to_dict()
    observations = _observations(policy)
    np.testing.assert_array_equal(reloaded.predict_action_chunk_batch(observations),
                                  policy.predict_action_chunk_batch(observations))


def test_unnorm_key_selects_statistics(tmp_path):
    policy = build_tiny_policy(camera_names=['cam_high'], seed=1)
    statistics = dict(policy.statistics)
    other = json.loads(json.dumps(statistics['tiny']))
    other['action']['min'] = [v - 1.0 for v in other['action']['min']]
    statistics['other'] = other
    policy.statistics = statistics
    policy.save_pretrained(tmp_path)
    observation = random_observation(policy, seed=2)
    default = VLAPolicy.from_pretrained(tmp_path).predict_action_chunk(observation)
    switched = VLAPolicy.from_pretrained(tmp_path, unnorm_key='other')
    assert switched.config.normalization.unnorm_key == 'other'
    assert not np.allclose(switched.predict_action_chunk(observation), default)
    with pytest.raises(ValueError, match="unnorm_key='missing'"):
        VLAPolicy.from_pretrained(tmp_path, unnorm_key='missing')


def test_bad_observations_raise_clear_errors():
    policy = build_tiny_policy(camera_names=['cam_high', 'cam_wrist'], proprio_dim=6, seed=0)
    good = random_observation(policy, seed=0)
    with pytest.raises(ValueError, match='cam_wrist'):
        policy.predict_action_chunk(dict(good, images={'cam_high': good['images']['cam_high']}))
    with pytest.raises(ValueError, match=r"\['proprio'\] must have shape \(6,\)"):
        policy.predict_action_chunk(dict(good, proprio=np.zeros(7)))
    with pytest.raises(ValueError, match='non-finite'):
        policy.predict_action_chunk(dict(good, proprio=np.full(6, np.nan)))
    bad_image = dict(good['images'], cam_high=good['images']['cam_high'].astype(np.float32))
    with pytest.raises(ValueError, match="cam_high'\\] must be uint8"):
        policy.predict_action_chunk(dict(good, images=bad_image))
    with pytest.raises(ValueError, match='instruction'):
        policy.predict_action_chunk(dict(good, instruction=''))
    with pytest.raises(ValueError, match=r"\['instruction'\]=None"):
        policy.predict_action_chunk(dict(good, instruction=None))
    with pytest.raises(ValueError, match=r"\['proprio'\]=.*not numeric"):
        policy.predict_action_chunk(dict(good, proprio=['a'] * 6))
    with pytest.raises(ValueError, match=r"\['proprio'\] is missing"):
        policy.predict_action_chunk({key: good[key] for key in ('images', 'instruction')})
    with pytest.raises(ValueError, match=r"\['images'\] must be a dict"):
        policy.predict_action_chunk(dict(good, images=[good['images']['cam_high']]))
    gray = dict(good['images'], cam_wrist=good['images']['cam_wrist'][..., 0])
    with pytest.raises(ValueError, match=r"cam_wrist'\] must be uint8 \(H, W, 3\)"):
        policy.predict_action_chunk(dict(good, images=gray))
    with pytest.raises(ValueError, match='observation must be a dict'):
        policy.predict_action_chunk([good])


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        VLAPolicy.from_pretrained(tmp_path / 'absent')
    (tmp_path / 'pytorch_model.bin').write_bytes(b'not really a pickle')
    with pytest.raises(ValueError, match='only pickled weights'):
        VLAPolicy.from_pretrained(tmp_path)


def test_resolve_dtype():
    assert resolve_dtype('auto', torch.device('cpu')) == torch.float32
    assert resolve_dtype('bf16', torch.device('cpu')) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype='float8'"):
        resolve_dtype('float8', torch.device('cpu'))


def test_one_to_four_cameras():
    for cameras in (['a'], ['a', 'b', 'c', 'd']):
        policy = build_tiny_policy(action_dim=2, proprio_dim=2, chunk_size=2,
                                   camera_names=cameras, seed=0)
        observation = random_observation(policy, seed=0, image_shape=(32, 32, 3))
        batch = policy.prepare_batch([observation])
        assert batch['pixel_values'].shape[1] == len(cameras)
        with torch.inference_mode():
            outputs = policy.model.forward_detailed(batch)
        assert outputs.task_states.shape[2] == 256 * len(cameras)  # exactly the patches
        assert outputs.adapter_states.shape[2] == 64  # exactly the queries
        assert policy.predict_action_chunk(observation).shape == (2, 2)


@pytest.mark.parametrize('head_kind, queries', [('l1', 64), ('dual_arm', 128)])
def test_aligned_windows_are_the_patch_and_query_positions(head_kind, queries):
    """Our layout: [t0, patches, t1.., queries]; the head reads exactly patches and queries."""
    policy = build_tiny_policy(action_dim=4, proprio_dim=2, chunk_size=2, head_kind=head_kind,
                               camera_names=['a', 'b'], seed=1)
    assert policy.model.action_queries.weight.shape[0] == queries
    batch = policy.prepare_batch([random_observation(policy, seed=2, image_shape=(32, 32, 3))])
    with torch.inference_mode():
        outputs = policy.model.forward_detailed(batch)
    num_patches = 2 * 256
    length = batch['input_ids'].shape[1]
    hidden = outputs.hidden_states
    assert hidden[0].shape[1] == 1 + num_patches + (length - 1) + queries  # nothing trailing
    for block in range(policy.config.action_head.num_blocks):
        layer = hidden[block + 1][0]  # (S, D): block i reads hidden state i + 1
        torch.testing.assert_close(outputs.task_states[0, block], layer[1:1 + num_patches],
                                   rtol=0, atol=0)
        torch.testing.assert_close(outputs.adapter_states[0, block], layer[-queries:],
                                   rtol=0, atol=0)
    # the patch embeddings sit right after the first prompt token, the queries at the end
    torch.testing.assert_close(hidden[0][0, 1:1 + num_patches], outputs.patch_embeddings[0])
    torch.testing.assert_close(hidden[0][0, -queries:], policy.model.action_queries.weight)


def test_discrete_bins_file_must_match_the_weights(tmp_path):
    policy = build_tiny_policy(action_dim=3, proprio_dim=2, chunk_size=2, head_kind='discrete',
                               camera_names=['cam_high'], seed=4, n_action_bins=16)
    policy.save_pretrained(tmp_path)
    bins_path = tmp_path / bins_file_name(16)
    saved = json.loads(bins_path.read_text())
    assert saved['low'] == policy.model.action_head.bins.low.tolist()
    observation = random_observation(policy, seed=1)
    reloaded = VLAPolicy.from_pretrained(tmp_path)
    actions = reloaded.predict_action_chunk(observation)
    bins = reloaded.model.action_head.bins
    # every raw action is a bin centre of the saved file
    index = np.round((actions - np.array(saved['low'])) / bins.bin_width.numpy() - 0.5)
    centres = np.array(saved['low']) + (index + 0.5) * bins.bin_width.numpy()
    np.testing.assert_allclose(actions, centres, rtol=0, atol=1e-5)
    saved['high'][0] += 1.0
    bins_path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match='bins.high differs'):
        VLAPolicy.from_pretrained(tmp_path)
