"""The report's plots say their units and keep every label readable (matplotlib, Agg)."""

import matplotlib

matplotlib.use('Agg')
from matplotlib import pyplot  # noqa: E402
import numpy as np  # noqa: E402

from vla_adapter_core.robot_description import load_robot_description  # noqa: E402
from vla_adapter_ros.replay.replay_report import joint_figure, latency_figure  # noqa: E402

ALOHA = load_robot_description('aloha')


def _inside(figure, inner, outer) -> bool:
    renderer = figure.canvas.get_renderer()
    box, frame = inner.get_window_extent(renderer), outer.get_window_extent(renderer)
    return (frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1
            and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1)


def _episode(steps: int = 50) -> dict:
    grid = np.arange(steps) * 20_000_000
    recorded = np.tile(np.linspace(-1, 1, steps)[:, None], (1, 14))
    return {'name': 'episode_0000', 'grid_ns': grid, 'recorded': recorded,
            'stamps_ns': grid[::3], 'predicted_step0': recorded[::3] + 0.01,
            'commands': (grid, recorded - 0.01)}


def test_joint_panels_carry_units_and_the_legend_covers_no_panel():
    names = list(ALOHA.dimension_names())
    figure = joint_figure(pyplot, _episode(), names, [6, 13])
    figure.canvas.draw()
    labels = [axis.get_ylabel() for axis in figure.axes]
    assert f'{names[0]}\n(rad)' in labels and f'{names[6]}\n(0 closed..1 open)' in labels
    assert all(label.endswith(('(rad)', '(0 closed..1 open)')) for label in labels)
    assert all(axis.get_legend() is None for axis in figure.axes)
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        'recorded', 'predicted (step 0)', 'executed']
    renderer = figure.canvas.get_renderer()
    legend_box = legend.get_window_extent(renderer)
    for axis in figure.axes:
        assert not legend_box.overlaps(axis.get_window_extent(renderer))
    pyplot.close(figure)


def test_latency_labels_stay_inside_the_plot_even_at_the_right_edge():
    latencies = np.concatenate([np.full(98, 20.0), [400.0, 900.0]])  # p99 near the edge
    figure = latency_figure(pyplot, latencies)
    figure.canvas.draw()
    [axis] = figure.axes
    texts = [text for text in axis.texts if text.get_text().startswith(('p50', 'p99'))]
    assert [text.get_text().split()[0] for text in texts] == ['p50', 'p99']
    for text in texts:
        assert _inside(figure, text, axis), text.get_text()
    pyplot.close(figure)
