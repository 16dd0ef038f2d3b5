"""vla-adapter-stats / -bins / -train: a dataset or checkpoint error is one line and exit code 2.

``--debug`` adds the traceback; the files written (statistics, bins) are checked before writing.
"""

import fractions
import json
import os
from pathlib import Path
import subprocess
import sys
import warnings

from episode_writers import block_episode, write_aloha_hdf5
import h5py
import numpy as np
import pytest
import torch

from training.compute_adaptive_bins import main as bins_main
from training.compute_dataset_statistics import main as stats_main
from training.finetune import main as train_main
from training.train_state import latest_resumable
from vla_adapter_core.normalization import StatisticsWarning, load_statistics
from vla_adapter_core.tiny_policies import build_tiny_config, default_tokenizer_dir

REPO = Path(__file__).resolve().parents[2]
CAMERA = ['--camera_names', 'cam_high']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Two 4-step one-camera ALOHA episodes; constant: the proprio and action dimension 6."""
    folder = tmp_path_factory.mktemp('episodes')
    for index, position in enumerate(([0.2, -0.3], [-0.5, 0.4])):
        images, qpos, action = block_episode(np.array(position), 4, ['cam_high'])
        action[:, 6] = 0.5  # a gripper that never moves
        write_aloha_hdf5(folder / f'episode_{index}.hdf5', images, qpos, action,
                         instruction='touch the block')
    return folder


def _stats(data, tmp_path, *extra):
    return stats_main(['--data', str(data), *CAMERA, '--output', str(tmp_path / 's.json'),
                       *extra])


def _bins(data, tmp_path, *extra):
    return bins_main(['--data', str(data), *CAMERA, '--output_dir', str(tmp_path / 'bins'),
                      *extra])


def _train(data, tmp_path, *extra, pretrained=None):
    return train_main(['--data', str(data), *CAMERA, '--chunk_size', '2',
                       '--output_dir', str(tmp_path / 'run'), '--num_val_episodes', '0',
                       '--pretrained', str(pretrained or tmp_path / 'no_checkpoint'),
                       '--max_steps', '1', '--batch_size', '1', '--no_progress_bar', *extra])


RUNNERS = {'vla-adapter-stats': _stats, 'vla-adapter-bins': _bins, 'vla-adapter-train': _train}


def one_error_line(capsys, prog: str) -> str:
    """The only stderr line of a user error."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f'{prog}: error: ') and 'Traceback' not in captured.err
    return lines[0]


def damaged_copy(dataset: Path, folder: Path) -> Path:
    """The dataset with the object header of episode_1's /action overwritten."""
    folder.mkdir()
    for path in dataset.glob('*.hdf5'):
        (folder / path.name).write_bytes(path.read_bytes())
    target = folder / 'episode_1.hdf5'
    with h5py.File(target, 'r') as handle:
        address = h5py.h5o.get_info(handle['/action'].id).addr
    data = bytearray(target.read_bytes())
    data[address:address + 16] = b'\xff' * 16
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize('prog', sorted(RUNNERS))
def test_missing_dataset_is_one_line_and_debug_shows_the_traceback(prog, tmp_path, capsys):
    missing = tmp_path / 'no_such_dataset'
    assert RUNNERS[prog](missing, tmp_path) == 2
    line = one_error_line(capsys, prog)
    assert line == f'{prog}: error: {missing}: path: does not exist'
    assert RUNNERS[prog](missing, tmp_path, '--debug') == 2
    error = capsys.readouterr().err
    assert error.startswith('Traceback (most recent call last):') and 'EpisodeError' in error
    assert error.strip().splitlines()[-1] == line


@pytest.mark.parametrize('prog', sorted(RUNNERS))
def test_damaged_and_truncated_hdf5_files_are_named(prog, dataset, tmp_path, capsys):
    damaged = damaged_copy(dataset, tmp_path / 'damaged')
    assert RUNNERS[prog](damaged.parent, tmp_path) == 2
    assert one_error_line(capsys, prog) == (
        f'{prog}: error: {damaged}: /action: damaged HDF5 file, cannot be read (Unable to '
        'synchronously open object (bad object header version number))')
    damaged.write_bytes((dataset / 'episode_1.hdf5').read_bytes()[:5000])  # truncated
    assert RUNNERS[prog](damaged.parent, tmp_path) == 2
    line = one_error_line(capsys, prog)
    assert line.startswith(f'{prog}: error: {damaged}: file: not a readable HDF5 file (')
    assert 'truncated file' in line


def test_train_names_a_missing_checkpoint_in_one_line(dataset, tmp_path, capsys):
    assert _train(dataset, tmp_path) == 2
    line = one_error_line(capsys, 'vla-adapter-train')
    assert f"checkpoint directory not found: '{tmp_path / 'no_checkpoint'}'" in line
    assert _train(dataset, tmp_path, '--debug') == 2
    error = capsys.readouterr().err
    assert 'Traceback' in error and 'FileNotFoundError' in error
    assert not (tmp_path / 'run' / 'final').exists()


def test_train_names_a_checkpoint_with_nan_statistics(dataset, tmp_path, capsys):
    from vla_adapter_core.tiny_policies import build_tiny_policy

    policy = build_tiny_policy(action_dim=14, proprio_dim=14, chunk_size=2,
                               camera_names=['cam_high'], image_size=56, seed=1)
    policy.save_pretrained(tmp_path / 'ckpt')
    path = tmp_path / 'ckpt' / 'dataset_statistics.json'
    statistics = json.loads(path.read_text())
    statistics['tiny']['proprio']['q99'][13] = float('nan')
    path.write_text(json.dumps(statistics))
    assert _train(dataset, tmp_path, pretrained=tmp_path / 'ckpt') == 2
    assert one_error_line(capsys, 'vla-adapter-train').endswith(
        f'{path}: tiny.proprio.q99[13] = nan: not finite (1 non-finite values)')


def test_stats_writes_checked_statistics_and_names_constant_dimensions(dataset, tmp_path,
                                                                       capsys):
    assert _stats(dataset, tmp_path) == 0
    out = capsys.readouterr().out
    assert 'note: constant dimensions (zero range): default.action[6] (min == max); ' \
           'default.proprio[' in out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        statistics = load_statistics(tmp_path / 's.json')
    assert [item.category for item in caught] == [StatisticsWarning]
    action = statistics['default']['action']
    assert all(low <= high for low, high in zip(action['min'], action['max']))


def test_bins_refuse_a_zero_width_range_before_writing(dataset, tmp_path, capsys):
    assert _bins(dataset, tmp_path, '--margin', '0') == 2
    line = one_error_line(capsys, 'vla-adapter-bins')
    assert 'action dimensions [6] are constant and margin=0 leaves them a zero-width' in line
    assert not (tmp_path / 'bins').exists() or not any((tmp_path / 'bins').iterdir())
    assert _bins(dataset, tmp_path) == 0  # the default margin widens constant dimensions


def test_a_bug_is_not_a_user_error(monkeypatch, dataset, tmp_path):
    """Exceptions other than the user-error types keep their traceback (they are bugs)."""
    import training.compute_dataset_statistics as module

    def broken(*_):
        raise KeyError('a bug')

    monkeypatch.setattr(module, 'compute_statistics', broken)
    with pytest.raises(KeyError, match='a bug'):
        _stats(dataset, tmp_path)


@pytest.mark.parametrize('debug', [False, True])
def test_console_entry_point_exit_code_and_output(tmp_path, debug):
    """The real process: exit code 2, one stderr line (or a traceback and that line)."""
    command = [sys.executable, '-m', 'training.compute_dataset_statistics', '--data',
               str(tmp_path / 'missing'), *CAMERA] + (['--debug'] if debug else [])
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f'vla-adapter-stats: error: {tmp_path / "missing"}: path: does not exist'
    assert (lines[0] == 'Traceback (most recent call last):') if debug else len(lines) == 1


def test_resume_refuses_a_pickle_in_one_line_without_advice(dataset, tmp_path, capsys):
    """Issue 20.9: a training state torch will not load safely is named, exit 2, no advice."""
    policy = tmp_path / 'policy.json'
    config = build_tiny_config(chunk_size=2, camera_names=['cam_high'], image_size=56)
    policy.write_text(json.dumps(config.to_dict()))
    run = tmp_path / 'run'
    args = ['--data', str(dataset), *CAMERA, '--chunk_size', '2', '--output_dir', str(run),
            '--num_val_episodes', '0', '--policy_config', str(policy), '--tokenizer_dir',
            default_tokenizer_dir(), '--batch_size', '1', '--num_workers', '0',
            '--save_every', '1', '--no_progress_bar']
    assert train_main([*args, '--max_steps', '1']) == 0
    state = latest_resumable(run) / 'training_state' / 'optimizer.pt'
    torch.save({'optimizer': fractions.Fraction(1, 3)}, state)  # a pickled Python object
    capsys.readouterr()
    assert train_main([*args, '--max_steps', '2', '--resume']) == 2
    line = one_error_line(capsys, 'vla-adapter-train')
    assert line == (f'vla-adapter-train: error: {state}: refused to load: it holds the global '
                    'fractions.Fraction, not only tensors and plain values; vla-adapter-train '
                    'never writes such a file, and loading it could run code from it (was it '
                    'replaced?)')
