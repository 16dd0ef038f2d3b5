"""The arithmetic of benchmarks/demo_policy_diagnosis.py (issue 19's numbers)."""

from pathlib import Path
import sys

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import demo_policy_diagnosis as diagnosis  # noqa: E402

TABLE_BOX = [0.375, 0.1875, 40 / 96, 0.625]


def test_wilson_interval_of_known_counts():
    assert diagnosis.wilson_interval(7, 50) == pytest.approx((0.0695, 0.2619), abs=1e-4)
    assert diagnosis.wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)


def test_random_crop_shift_in_model_pixels():
    # 96x128 frame, 90 % crop: 91x121 px, 2.5 / 3.5 px either side of the centred crop.
    assert diagnosis.random_crop_shift((96, 128), 0.9, 84) == pytest.approx(
        (2.5 * 84 / 91, 3.5 * 84 / 121))
    assert diagnosis.random_crop_shift((40, 80), 1.0, 84) == (0.0, 0.0)


def test_cube_area_at_the_model_input():
    masks = np.zeros((1, 96, 128), dtype=bool)
    masks[0, 50:54, 68:72] = True  # a 4x4 'cube' inside the table box
    whole = diagnosis.model_input_masks(masks, {'center_crop_fraction': 1.0}, 84, 'cam_high')
    assert whole.sum() == pytest.approx(16 * (84 / 96) * (84 / 128), rel=0.03)
    cut = diagnosis.model_input_masks(masks, {'camera_crops': {'cam_high': TABLE_BOX}}, 84,
                                      'cam_high')
    assert cut.sum() == pytest.approx(16 * (84 / 40) * (84 / 80), rel=0.03)
    row, col = diagnosis.centroids(cut)[0]
    assert row == pytest.approx((52 - 36) * 84 / 40 - 0.5, abs=0.05)
    assert col == pytest.approx((70 - 24) * 84 / 80 - 0.5, abs=0.05)


def test_chunk_dependence_of_a_blind_and_a_perfect_policy():
    rng = np.random.default_rng(0)
    cube = np.concatenate([rng.uniform(0, 0.2, (20, 1)), rng.uniform(0.4, 0.6, (20, 1)),
                           np.full((20, 1), 0.05)], axis=1)  # (S, 3)
    expert = np.zeros((20, 25, 14))
    expert[:, :, 7] = cube[:, :1] * np.linspace(0, 2, 25)  # right waist follows the cube x
    expert[:, :, 8] = cube[:, 1:2] * np.linspace(0, 1, 25)
    start = {'expert': expert, 'cube': cube, 'demo_expert': expert,
             'demo_cube_xy': cube[:, :2]}
    perfect = diagnosis.chunk_dependence(expert, start)
    assert perfect['24']['gain'] == pytest.approx(1.0)
    assert perfect['24']['r2_vs_expert'] == pytest.approx(1.0)
    assert perfect['cube_from_chunk_cm']['predicted'] < 0.01
    blind = diagnosis.chunk_dependence(np.repeat(expert.mean(0, keepdims=True), 20, 0), start)
    assert blind['24']['gain'] == pytest.approx(0.0, abs=1e-12)
    assert blind['24']['r2_vs_expert'] == pytest.approx(0.0, abs=1e-12)
    assert blind['24']['predicted_std_rad'] == pytest.approx(0.0, abs=1e-12)
    assert blind['24']['r2_on_cube'] is None  # nothing to explain
    assert perfect['24']['r2_on_cube'] > 0.99  # the expert is linear in the cube here
