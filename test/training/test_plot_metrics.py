"""vla-adapter-plot-training: curves from metrics.jsonl, one-line errors."""

import json

import numpy as np

from training.plot_metrics import main, read_metrics, smooth


def _write_run(directory, steps=30):
    directory.mkdir()
    rows = [{'step': step, 'split': 'train', 'loss': 1.0 / (step + 1)} for step in range(steps)]
    rows += [{'step': step, 'split': 'val', 'loss': 0.5, 'l1_raw': 0.1 / (step + 1)}
             for step in range(0, steps, 10)]
    (directory / 'metrics.jsonl').write_text('\n'.join(json.dumps(row) for row in rows))
    return directory


def test_plot_two_runs(tmp_path, capsys):
    first, second = _write_run(tmp_path / 'a'), _write_run(tmp_path / 'b')
    output = tmp_path / 'curves.png'
    assert main(['--run', f'dual={first}', '--run', str(second), '--output', str(output)]) == 0
    assert output.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'wrote' in capsys.readouterr().out
    train, val = read_metrics(first)
    assert len(train) == 30 and [row['step'] for row in val] == [0, 10, 20]


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])


def test_errors_name_the_file(tmp_path, capsys):
    assert main(['--run', str(tmp_path), '--output', str(tmp_path / 'x.png')]) == 2
    assert f'{tmp_path}/metrics.jsonl: no such file' in capsys.readouterr().err
    (tmp_path / 'metrics.jsonl').write_text('{"step": 1}\nnot json\n')
    assert main(['--run', str(tmp_path), '--output', str(tmp_path / 'x.png')]) == 2
    assert 'metrics.jsonl:2: not JSON' in capsys.readouterr().err
