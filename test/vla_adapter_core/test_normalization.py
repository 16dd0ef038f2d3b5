"""Normalizer: bounds and bounds_q99 with the per-dimension mask, as upstream computes them."""

import json
import warnings

import numpy as np
import pytest

from vla_adapter_core.config import NormalizationConfig
from vla_adapter_core.normalization import (
    Normalizer,
    StatisticsWarning,
    check_statistics,
    load_statistics,
    save_statistics,
)

STATISTICS = {'robot': {
    'action': {'min': [-2.0, 0.0, -1.0], 'max': [2.0, 1.0, 1.0],
               'q01': [-1.0, 0.1, -0.5], 'q99': [1.0, 0.9, 0.5],
               'mask': [True, True, False]},
    'proprio': {'min': [0.0, -4.0], 'max': [10.0, 4.0], 'q01': [1.0, -3.0], 'q99': [9.0, 3.0]},
}}


def _normalizer(mode):
    return Normalizer(STATISTICS, NormalizationConfig(mode=mode, unnorm_key='robot'), 3, 2)


def test_bounds_use_min_max_and_q99_uses_quantiles():
    bounds, q99 = _normalizer('bounds'), _normalizer('bounds_q99')
    np.testing.assert_allclose(bounds.normalize_actions(np.array([2.0, 0.5, 0.7])),
                               [1.0, 0.0, 0.7], atol=1e-7)
    np.testing.assert_allclose(q99.normalize_actions(np.array([0.0, 0.5, 0.7])),
                               [0.0, 0.0, 0.7], atol=1e-7)
    np.testing.assert_allclose(q99.normalize_proprio(np.array([9.0, -3.0])), [1.0, -1.0],
                               atol=1e-7)


def test_normalisation_clips_and_masked_dims_pass_through():
    normalizer = _normalizer('bounds_q99')
    normalized = normalizer.normalize_actions(np.array([5.0, -5.0, 3.0]))
    np.testing.assert_array_equal(normalized, [1.0, -1.0, 1.0])  # masked dim is clipped raw
    raw = normalizer.unnormalize_actions(np.array([0.5, -1.0, 0.25], dtype=np.float32))
    assert raw.dtype == np.float64
    np.testing.assert_allclose(raw, [0.5, 0.1, 0.25], atol=1e-6)


def test_round_trip_inside_the_bounds():
    normalizer = _normalizer('bounds')
    rng = np.random.default_rng(0)
    actions = rng.uniform([-2.0, 0.0, -1.0], [2.0, 1.0, 1.0], size=(10, 3))
    restored = normalizer.unnormalize_actions(normalizer.normalize_actions(actions))
    np.testing.assert_allclose(restored, actions, atol=1e-7)


def test_unnormalize_matches_upstream_formula():
    normalizer = _normalizer('bounds_q99')
    action = STATISTICS['robot']['action']
    values = np.array([0.3, -0.7, 0.1], dtype=np.float32)
    low, high = np.array(action['q01']), np.array(action['q99'])
    upstream = np.where(action['mask'], 0.5 * (values + 1) * (high - low + 1e-8) + low, values)
    np.testing.assert_array_equal(normalizer.unnormalize_actions(values), upstream)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unnorm_key='other'"):
        Normalizer(STATISTICS, NormalizationConfig(unnorm_key='other'), 3, 2)
    with pytest.raises(ValueError, match='shape'):
        Normalizer(STATISTICS, NormalizationConfig(unnorm_key='robot'), 4, 2)
    broken = {'robot': {'action': {'min': [0.0], 'max': [1.0]}}}
    with pytest.raises(ValueError, match="'q01'"):
        Normalizer(broken, NormalizationConfig(unnorm_key='robot'), 1, None)
    with pytest.raises(FileNotFoundError):
        load_statistics(tmp_path / 'absent.json')


def test_statistics_file_round_trip(tmp_path):
    path = tmp_path / 'dataset_statistics.json'
    save_statistics({'robot': {'action': {'min': np.zeros(2)}}}, path)
    assert json.loads(path.read_text()) == {'robot': {'action': {'min': [0.0, 0.0]}}}
    assert load_statistics(path) == {'robot': {'action': {'min': [0.0, 0.0]}}}


def test_bounds_mode_without_masks_uses_min_max_everywhere():
    """ALOHA-style statistics: 'bounds' (min/max), no mask key -> every dimension scaled."""
    statistics = json.loads(json.dumps(STATISTICS))
    del statistics['robot']['action']['mask']
    normalizer = Normalizer(statistics, NormalizationConfig(mode='bounds', unnorm_key='robot'),
                            3, 2)
    action = statistics['robot']['action']
    low, high = np.array(action['min']), np.array(action['max'])
    values = np.array([0.3, -0.7, 0.1], dtype=np.float32)
    upstream = 0.5 * (values + 1) * (high - low + 1e-8) + low
    np.testing.assert_array_equal(normalizer.unnormalize_actions(values), upstream)
    proprio = np.array([2.5, 5.0])  # min/max [0, 10], [-4, 4]; the second one clips
    np.testing.assert_allclose(normalizer.normalize_proprio(proprio),
                               [2 * 2.5 / (10 + 1e-8) - 1, 1.0], rtol=0, atol=1e-12)


def test_head_actions_convert_from_either_output_space():
    normalizer = _normalizer('bounds')
    normalized = np.array([[-1.0, 0.0, 0.3], [1.0, 0.5, -0.7]], dtype=np.float32)  # (T, A)
    raw, again = normalizer.actions_from_head(normalized, 'normalized')
    assert raw.dtype == np.float64 and again.dtype == np.float32
    np.testing.assert_array_equal(raw, normalizer.unnormalize_actions(normalized))
    np.testing.assert_array_equal(again, normalized)
    raw_back, renormalized = normalizer.actions_from_head(raw, 'raw')  # the discrete head
    np.testing.assert_array_equal(raw_back, raw)
    np.testing.assert_allclose(renormalized, normalized, atol=1e-6)
    with pytest.raises(ValueError, match="output_space='logits'"):
        normalizer.actions_from_head(normalized, 'logits')


def _statistics_with(feature='action', **values):
    statistics = json.loads(json.dumps(STATISTICS))
    statistics['robot'][feature].update(values)
    return statistics


@pytest.mark.parametrize('values, message', [
    ({'min': [-2.0, 0.0, float('nan')]}, r'robot\.action\.min\[2\] = nan: not finite'),
    ({'q99': [1.0, float('inf'), 0.5]}, r'robot\.action\.q99\[1\] = inf: not finite'),
    ({'min': [-2.0, 3.0, -1.0]},
     r'robot\.action\.min\[1\] = 3\.0 > max\[1\] = 1\.0: inverted range'),
    ({'q01': [-1.0, 0.1, 0.6]},
     r'robot\.action\.q01\[2\] = 0\.6 > q99\[2\] = 0\.5: inverted range'),
    ({'std': [1.0, -0.1, 1.0]}, r'robot\.action\.std\[1\] = -0\.1: negative'),
    ({'max': [2.0, 1.0]}, r'robot\.action\.max has shape \(2,\), expected 3 values'),
    ({'min': ['a', 0.0, 0.0]}, r'robot\.action\.min = .*not a list of numbers'),
])
def test_invalid_statistics_name_the_file_key_and_value(tmp_path, values, message):
    path = tmp_path / 'dataset_statistics.json'
    path.write_text(json.dumps(_statistics_with(**values)))  # NaN / Infinity as JSON allows
    with pytest.raises(ValueError, match=f'dataset_statistics.json: {message}'):
        load_statistics(path)
    with pytest.raises(ValueError, match=message):  # the normaliser checks what it is given
        Normalizer(_statistics_with(**values), NormalizationConfig(unnorm_key='robot'), 3, 2)


def test_invalid_statistics_are_never_written(tmp_path):
    path = tmp_path / 'dataset_statistics.json'
    with pytest.raises(ValueError, match=r'dataset_statistics.json: robot\.proprio\.max\[0\]'):
        save_statistics(_statistics_with('proprio', max=[np.nan, 4.0]), path)
    assert not path.exists()


def test_constant_dimensions_load_with_one_warning_naming_them(tmp_path):
    path = tmp_path / 'dataset_statistics.json'
    constant = _statistics_with(min=[-2.0, 0.5, 0.3], max=[2.0, 0.5, 0.3],
                                q01=[-1.0, 0.5, 0.3], q99=[1.0, 0.5, 0.3])
    constant['robot']['proprio'].update(q01=[5.0, -3.0], q99=[5.0, 3.0])
    assert save_statistics(constant, path) == ['robot.action[1] (min == max)',
                                               'robot.proprio[0] (q01 == q99)']
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert load_statistics(path) == constant
    messages = [str(item.message) for item in caught if item.category is StatisticsWarning]
    assert len(messages) == 1, messages  # dim 2 is masked out: not reported
    assert messages[0].startswith(f'{path}: constant dimensions')
    assert 'robot.action[1] (min == max); robot.proprio[0] (q01 == q99)' in messages[0]
    normalizer = Normalizer(constant, NormalizationConfig(mode='bounds', unnorm_key='robot'),
                            3, 2)
    restored = normalizer.unnormalize_actions(normalizer.normalize_actions([0.0, 0.5, 0.3]))
    np.testing.assert_allclose(restored, [0.0, 0.5, 0.3], atol=1e-7)


def test_upstream_statistics_layout_passes_the_check():
    statistics = _statistics_with(mask=[True, True, False])
    statistics['robot'].update(num_transitions=10, num_trajectories=2)
    assert check_statistics(statistics, 'x.json') == []
    with pytest.raises(ValueError, match=r'x.json: robot\.action\.mask must be 3 booleans'):
        check_statistics(_statistics_with(mask=[1, 1, 0]), 'x.json')
    with pytest.raises(ValueError, match=r'x.json: robot must be an object with an "action"'):
        check_statistics({'robot': {'proprio': {}}}, 'x.json')
