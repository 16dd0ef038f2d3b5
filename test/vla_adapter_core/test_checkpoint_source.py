"""One checkpoint dispatch, and checkpoints named by Hugging Face Hub repo ids.

Nothing is downloaded: each test lays out a Hub cache itself, as huggingface_hub does
(``models--owner--name/refs/main``, ``snapshots/<commit>/`` links into ``blobs/``), and
huggingface_hub reads it offline (test/conftest.py sets HF_HUB_OFFLINE=1).
"""

import pathlib
import shutil

from hub_cache import write_hub_snapshot
import huggingface_hub
import numpy as np
import pytest
import torch

from vla_adapter_core.checkpoint_source import (
    KIND_OWN,
    KIND_UPSTREAM,
    is_repo_id,
    load_policy_source,
    resolve_pretrained_path,
)
from vla_adapter_core.cli import main as cli_main
from vla_adapter_core.policy import VLAPolicy
from vla_adapter_core.tiny_policies import build_tiny_policy, random_observation

FIXTURE = (pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'upstream_vla_adapter'
           / 'libero_pro_2cam')
COMMIT = 'a04fd50' + '0' * 33  # a 40-hex commit id
REPO_ID = 'acme/tiny-aloha'
RELEASE_ID = 'VLA-Adapter/LIBERO-Spatial-Pro'


def folder_files(folder: pathlib.Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*'))
            if path.is_file()}


@pytest.fixture(scope='module')
def tiny_release(tmp_path_factory):
    """(policy, local checkpoint, Hub cache holding it as REPO_ID, its snapshot)."""
    policy = build_tiny_policy(action_dim=4, proprio_dim=3, chunk_size=2,
                               camera_names=['cam_high'], seed=6)
    directory = tmp_path_factory.mktemp('local')
    policy.save_pretrained(directory)
    cache = tmp_path_factory.mktemp('hub')
    snapshot = write_hub_snapshot(cache, REPO_ID, folder_files(directory), COMMIT)
    return policy, directory, cache, snapshot


def test_repo_ids_are_told_from_paths():
    for value in (REPO_ID, RELEASE_ID, 'Stanford-ILIAD/prism-qwen25-extra-dinosiglip-224px-0_5b',
                  'timm/vit_large_patch14_reg4_dinov2.lvd142m'):
        assert is_repo_id(value), value
    for value in ('runs/fold_towel/final', '/abs/dir', './a/b', '~/a', 'a--b/c', 'a/b..c',
                  'single', pathlib.Path('a/b')):
        assert not is_repo_id(value), value


def test_policy_from_a_repo_id_in_the_hub_cache(tiny_release):
    policy, directory, cache, snapshot = tiny_release
    observation = random_observation(policy, seed=3)
    expected = policy.predict_action_chunk(observation)
    for options in ({}, {'revision': COMMIT}, {'local_files_only': True}):
        loaded = VLAPolicy.from_pretrained(REPO_ID, dtype='float32', cache_dir=cache, **options)
        np.testing.assert_array_equal(loaded.predict_action_chunk(observation), expected)
    source = load_policy_source(REPO_ID, cache_dir=cache)
    assert source.kind == KIND_OWN
    assert source.directory == str(snapshot)
    assert source.description == f'checkpoint {REPO_ID} (Hugging Face Hub snapshot {snapshot})'
    for name, value in policy.model.state_dict().items():
        torch.testing.assert_close(source.state[name], value, rtol=0, atol=0, msg=name)


def test_a_local_directory_wins_over_a_repo_id(tiny_release, tmp_path, monkeypatch):
    policy, directory, cache, _ = tiny_release
    monkeypatch.chdir(tmp_path)
    shutil.copytree(directory, tmp_path / 'acme' / 'tiny-aloha')
    assert resolve_pretrained_path(REPO_ID, cache_dir=cache) == REPO_ID
    assert load_policy_source(REPO_ID, cache_dir=cache).description == f'checkpoint {REPO_ID}'


def test_missing_checkpoints_name_the_value_and_the_cache(tiny_release, tmp_path):
    cache = tmp_path / 'empty_cache'
    with pytest.raises(FileNotFoundError, match=r"'acme/elsewhere' is not a local directory, and "
                       r"the Hugging Face Hub repo 'acme/elsewhere' is not in the cache .*"
                       'empty_cache.*HF_HUB_OFFLINE'):
        VLAPolicy.from_pretrained('acme/elsewhere', cache_dir=cache)
    with pytest.raises(FileNotFoundError, match="revision 'v2' of the Hugging Face Hub repo"):
        load_policy_source(REPO_ID, cache_dir=tiny_release[2], revision='v2')
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found: 'runs/a/b'"):
        load_policy_source('runs/a/b')
    (tmp_path / 'weights.safetensors').write_bytes(b'')
    with pytest.raises(ValueError, match='weights.safetensors.* is a file'):
        load_policy_source(str(tmp_path / 'weights.safetensors'))
    with pytest.raises(ValueError, match=r"'.*empty' is neither a vla_adapter_core checkpoint"):
        (tmp_path / 'empty').mkdir()
        load_policy_source(tmp_path / 'empty')


def test_upstream_options_are_refused_for_our_checkpoints(tiny_release):
    _, directory, _, _ = tiny_release
    with pytest.raises(ValueError, match=r"options \['prompt_style'\] apply only to upstream"):
        load_policy_source(directory, prompt_style='qwen_chat')
    with pytest.raises(ValueError, match=r"unknown checkpoint options \['lora'\]"):
        VLAPolicy.from_pretrained(directory, lora=True)


@pytest.fixture(scope='module')
def upstream_release(tmp_path_factory):
    """The upstream fixture laid out as a released Hub repo (unnumbered head files)."""
    files = folder_files(FIXTURE / 'checkpoint')
    for kind in ('action_head', 'proprio_projector'):
        files[f'{kind}--checkpoint.pt'] = files.pop(f'{kind}--5000_checkpoint.pt')
    files['tiny_overrides.json'] = (FIXTURE / 'tiny_overrides.json').read_bytes()  # tiny heads
    cache = tmp_path_factory.mktemp('hub')
    return cache, write_hub_snapshot(cache, RELEASE_ID, files, COMMIT)


def test_upstream_release_from_the_hub_cache_matches_the_run_directory(upstream_release):
    cache, snapshot = upstream_release
    local = load_policy_source(FIXTURE / 'checkpoint', camera_names=['full_image', 'wrist'])
    hub = load_policy_source(RELEASE_ID, cache_dir=cache, camera_names=['full_image', 'wrist'])
    assert hub.kind == local.kind == KIND_UPSTREAM
    assert hub.tokenizer_dir == str(snapshot)
    assert hub.config.to_dict() == local.config.to_dict()
    assert sorted(hub.state) == sorted(local.state)
    for name, value in local.state.items():
        torch.testing.assert_close(hub.state[name], value, rtol=0, atol=0, msg=name)


def test_cli_predicts_from_a_repo_id(upstream_release, tmp_path, monkeypatch):
    cache, _ = upstream_release
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))  # default cache
    assert cli_main(['--checkpoint', RELEASE_ID, '--inputs', str(FIXTURE / 'inputs.npz'),
                     '--output', str(tmp_path / 'hub.npz')]) == 0
    assert cli_main(['--checkpoint', str(FIXTURE), '--inputs', str(FIXTURE / 'inputs.npz'),
                     '--output', str(tmp_path / 'local.npz')]) == 0
    with np.load(tmp_path / 'hub.npz') as hub, np.load(tmp_path / 'local.npz') as local:
        np.testing.assert_array_equal(hub['actions'], local['actions'])
