"""The replay report directory: metrics.json, PNG plots and a self-contained report.html.

The plots are drawn with matplotlib and embedded into report.html as base64; the joint plots
shade the takeover intervals (replay_control.py).

Everything is written into a hidden temporary directory beside the target and renamed into
place at the end, so a failed run leaves no report that looks complete.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
import shutil
import tempfile

import numpy as np

from vla_adapter_ros.pipeline import status

METRICS_FILE = 'metrics.json'
REPORT_FILE = 'report.html'
PREDICTOR_LABELS = {'policy': 'policy', 'hold': 'hold still (current proprio)',
                    'mean_demo': 'open-loop mean demonstration'}
# How the joint plots shade the intervals the policy was not in control: colour, legend entry.
CONTROL_SPANS = {status.CONTROL_OPERATOR: ('tab:red', 'operator in control (takeover)'),
                 status.CONTROL_HANDOVER: ('tab:purple', 'handover to the operator'),
                 status.CONTROL_HOLD: ('tab:gray', 'hold (takeover refused or aborted)')}


def prepare_output(output: str | os.PathLike, overwrite: bool) -> Path:
    """The report directory; ValueError if it exists with content and ``overwrite`` is off."""
    path = Path(output).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f'--output {path}: exists and is not a directory')
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(f'--output {path}: exists and is not empty (pass --overwrite)')
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items() if not str(k).startswith('_')}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(output: Path, report: dict, max_plots: int = 4) -> None:
    """Write metrics.json, the plots and report.html into ``output`` (atomically)."""
    staging = Path(tempfile.mkdtemp(prefix=f'.{output.name}.partial-', dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
    try:
        images = draw_plots(staging, report.get('_plots', {}), report, max_plots)
        for relative, write in report.get('_files', {}).items():  # e.g. --rerun recordings
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            write(staging / relative)
        metrics = _json_ready(report)
        metrics['plots'] = list(images)
        (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + '\n')
        (staging / REPORT_FILE).write_text(render_html(metrics, staging, images))
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def draw_plots(folder: Path, plots: dict, report: dict, max_plots: int) -> list[str]:
    """PNG files of the report (their names): joints per episode, error over horizon, latency."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot

    names = []
    dimension_names = report.get('dimension_names', [])
    for index, episode in enumerate(plots.get('episodes', [])[:max_plots]):
        name = f'joints_{index:02d}_{_safe(episode["name"])}.png'
        _save(pyplot, joint_figure(pyplot, episode, dimension_names,
                                   report.get('gripper_dims', [])), folder / name)
        names.append(name)
    by_step = {key: values for key, values in plots.get('by_step', {}).items() if values}
    if by_step:
        figure, axis = pyplot.subplots(figsize=(6, 3.5))
        for key, values in by_step.items():
            steps = np.arange(len(values))
            axis.plot(steps, [np.nan if v is None else v for v in values], marker='.',
                      label=PREDICTOR_LABELS.get(key, key))
        axis.set_xlabel('horizon step')
        axis.set_ylabel('mean L1 (rad / normalised gripper)')
        axis.set_title('error over the chunk horizon')
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        _save(pyplot, figure, folder / 'error_over_horizon.png')
        names.append('error_over_horizon.png')
    latencies = np.asarray(plots.get('latencies_s', []), dtype=np.float64) * 1e3
    if latencies.size:
        _save(pyplot, latency_figure(pyplot, latencies), folder / 'latency_histogram.png')
        names.append('latency_histogram.png')
    return names


def latency_figure(pyplot, latencies_ms: np.ndarray):
    """Histogram of the inference latencies with the p50 / p99 lines labelled inside the axes."""
    figure, axis = pyplot.subplots(figsize=(6, 3.5))
    axis.hist(latencies_ms, bins=min(50, max(5, latencies_ms.size // 4)))
    axis.set_xlabel('inference latency (ms)')
    axis.set_ylabel('chunks')
    axis.set_title('predict_action_chunk latency')
    low, high = axis.get_xlim()
    for row, (label, value) in enumerate((('p50', np.percentile(latencies_ms, 50)),
                                          ('p99', np.percentile(latencies_ms, 99)))):
        axis.axvline(value, linestyle='--', color='k', linewidth=0.8)
        # Labels right of a line in the left half, left of it in the right half: never past
        # the edge; the two at different heights.
        right_half = value > low + 0.5 * (high - low)
        axis.annotate(f'{label} {value:.1f} ms', xy=(value, 0.92 - 0.1 * row),
                      xycoords=('data', 'axes fraction'), ha='right' if right_half else 'left',
                      xytext=(-3 if right_half else 3, 0), textcoords='offset points',
                      fontsize=8)
    return figure


def _joint_label(name: str, dim: int, gripper_dims: list) -> str:
    unit = '0 closed..1 open' if dim in gripper_dims else 'rad'
    return f'{name}\n({unit})'


def shade_control(axis, spans: list, origin_ns: int, labelled: bool) -> None:
    """Shade ``spans`` ((source, start ns, stop ns)) on ``axis``, a colour per source.

    ``labelled``: one legend entry per source (on the panel the legend is collected from).
    """
    named = set()
    for source, start_ns, stop_ns in spans:
        colour, label = CONTROL_SPANS.get(source, ('tab:gray', source))
        axis.axvspan((start_ns - origin_ns) * 1e-9, (stop_ns - origin_ns) * 1e-9, color=colour,
                     alpha=0.18, linewidth=0,
                     label=label if labelled and source not in named else None)
        named.add(source)


def joint_figure(pyplot, episode: dict, dimension_names: list, gripper_dims: list):
    """Recorded actions, the predicted first step and the executed commands, per dimension.

    Each panel's y axis carries its unit; the legend sits above the panels, covering none.
    The intervals the policy was not in control (``control_spans``) are shaded.
    """
    recorded = np.asarray(episode['recorded'])
    dims = recorded.shape[1]
    columns = 2 if dims > 4 else 1
    rows = int(np.ceil(dims / columns))
    figure, axes = pyplot.subplots(rows, columns, figsize=(5 * columns, 1.4 * rows + 0.6),
                                   sharex=True, squeeze=False)
    origin = int(episode['grid_ns'][0])
    grid_s = (np.asarray(episode['grid_ns']) - origin) * 1e-9
    stamps_s = (np.asarray(episode['stamps_ns']) - origin) * 1e-9
    commands = episode.get('commands')
    for dim in range(dims):
        axis = axes[dim % rows, dim // rows]
        shade_control(axis, episode.get('control_spans', []), origin, labelled=dim == 0)
        axis.plot(grid_s, recorded[:, dim], color='k', linewidth=1.2, label='recorded')
        if len(stamps_s):
            axis.plot(stamps_s, episode['predicted_step0'][:, dim], '.', markersize=2.5,
                      color='tab:blue', label='predicted (step 0)')
        if commands is not None:
            axis.plot((np.asarray(commands[0]) - origin) * 1e-9, commands[1][:, dim],
                      color='tab:orange', linewidth=0.9, label='executed')
        name = dimension_names[dim] if dim < len(dimension_names) else f'dim {dim}'
        axis.set_ylabel(_joint_label(name, dim, gripper_dims), fontsize=7)
        axis.tick_params(labelsize=6)
    for axis in axes[-1]:
        axis.set_xlabel('time in the episode (s)', fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.suptitle(f'{episode["name"]}: predicted vs recorded', fontsize=9)
    figure.legend(handles, labels, fontsize=7, loc='upper center', ncol=len(labels),
                  bbox_to_anchor=(0.5, 0.965), frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    return figure


def _save(pyplot, figure, path: Path) -> None:
    if not figure.legends:  # the joint figure lays itself out around its legend
        figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)


def _safe(name: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_' else '_' for c in name)[:60]


def _cell(value) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return f'{value:.4f}'
    return html.escape(str(value))


def _table(header: list, rows: list) -> str:
    head = ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
    body = ''.join('<tr>' + ''.join(f'<td>{_cell(v)}</td>' for v in row) + '</tr>'
                   for row in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _episode_rows(metrics: dict) -> tuple[list, list]:
    if metrics.get('kind') == 'live_replay':
        live = metrics['live']
        return (['bag', 'commands', 'executed L1', 'gripper agreement'],
                [[metrics['bags'][0]['name'], live['samples'], live['l1'],
                  live['gripper_agreement']]])
    header = ['episode', 'points', 'L1 policy', 'L1 step 0', 'L1 hold', 'L1 mean demo',
              'gripper agreement', 'bin accuracy', 'executed L1', 'chunks rejected',
              'latency p50 ms', 'takeovers', 'operator s', "L1 policy, operator's steps",
              "L1 policy, policy's steps"]
    rows = []
    for row in [*metrics['episodes'], {**metrics['aggregate'], 'name': 'ALL'}]:
        parts = row['policy']['by_control']
        rows.append([row['name'], row.get('inference_points'), row['policy']['l1'],
                     row['policy']['l1_step0'], row['hold']['l1'], row['mean_demo']['l1'],
                     row['policy']['gripper_agreement'], row['policy']['bin_accuracy'],
                     row['executed'].get('l1'), row['executed'].get('rejected_chunks'),
                     row['latency']['p50_ms'], row['control']['takeovers'],
                     row['control']['operator_s'], parts['operator']['l1'],
                     parts['policy']['l1']])
    return header, rows


def render_html(metrics: dict, folder: Path, images: list[str]) -> str:
    """The self-contained report page (tables and base64-embedded PNGs)."""
    header, rows = _episode_rows(metrics)
    parts = ['<h1>Replay evaluation</h1>']
    if metrics.get('executed_warning'):
        parts.append(f'<p class="warning">{html.escape(metrics["executed_warning"])}</p>')
    parts += [f'<p>{html.escape(metrics.get("summary_line", ""))}</p>',
             f'<p>Units: {html.escape(metrics.get("units", ""))}. git revision: '
             f'{html.escape(str(metrics.get("git_revision")))}.</p>',
             '<h2>Episodes</h2>', _table(header, rows)]
    if metrics.get('kind') == 'replay_eval':
        parts.append('<h2>Takeovers</h2><p>The joint plots shade the intervals the policy was '
                     "not in control; the errors on the operator's steps are how far the "
                     'policy was from the correction it needed.</p><ul>' + ''.join(
                         f'<li>{html.escape(row["control"]["line"])}</li>'
                         for row in metrics['episodes']) + '</ul>')
        names = metrics['dimension_names']
        aggregate = metrics['aggregate']
        parts += ['<h2>L1 per dimension (all episodes)</h2>', _table(
            ['dimension', *[PREDICTOR_LABELS[key] for key in PREDICTOR_LABELS]],
            [[name, *[aggregate[key]['l1_per_dim'][i] for key in PREDICTOR_LABELS]]
             for i, name in enumerate(names)])]
        checkpoint = metrics.get('checkpoint', {})
        parts.append(f'<h2>Checkpoint</h2><p>{html.escape(str(checkpoint.get("source")))} on '
                     f'{html.escape(str(checkpoint.get("device")))}</p>')
        batching = aggregate.get('batching')
        if batching:
            parts.append(
                f'<p>Predicted {batching["batch_size"]} observations per call '
                f'({_cell(batching["observations_per_s"])} observations/s); latencies are '
                'single-observation probes; batched and single chunks differ by at most '
                f'{batching["max_abs_batched_vs_single"]:.2e}.</p>')
    parts.append('<h2>Plots</h2>')
    for name in images:
        data = base64.b64encode((folder / name).read_bytes()).decode('ascii')
        parts.append(f'<figure><img alt="{html.escape(name)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{html.escape(name)}'
                     '</figcaption></figure>')
    parts.append('<h2>Bags</h2>' + _table(['name', 'path', 'sha256'], [
        [bag['name'], bag['path'], bag['sha256']] for bag in metrics['bags']]))
    style = ('body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
             'td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:100%}'
             '.warning{background:#fde2e1;border:2px solid #c0392b;padding:8px;font-weight:bold}')
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Replay evaluation'
            f'</title><style>{style}</style></head><body>{"".join(parts)}</body></html>\n')
