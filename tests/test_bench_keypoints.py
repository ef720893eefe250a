"""The keypoint benchmark's bookkeeping: averaging over training seeds and the issue's targets."""

import math

import pytest

from keydiff3d.bench import _load

bench = _load("keypoints")


def seed_row(seed: int, mpjpe: float, p_mpjpe: float = 100.0) -> dict:
    return {
        "mpjpe": mpjpe,
        "n_mpjpe": mpjpe - 5,
        "p_mpjpe": p_mpjpe,
        "linear_mpjpe": mpjpe + 10,
        "cd_j2j": 90.0,
        "cd_j2b": 70.0 + seed,
        "train_seconds": 100.0,
        "predict_seconds": 5.0,
        "steps": 1200,
        "count": 400,
        "seed": seed,
        "per_category_mpjpe": {"biped": mpjpe - 20, "bird": mpjpe + 20},
    }


def test_over_seeds_reports_mean_std_and_each_seed():
    row = bench._over_seeds([seed_row(0, 150.0), seed_row(1, 160.0), seed_row(2, 170.0)])
    assert row["mpjpe"] == pytest.approx(160.0)
    assert row["std"]["mpjpe"] == pytest.approx(math.sqrt(200 / 3))  # population std over seeds
    assert row["cd_j2b"] == pytest.approx(71.0)
    assert row["per_category_mpjpe"] == pytest.approx({"biped": 140.0, "bird": 180.0})
    assert row["by_seed"] == [150.0, 160.0, 170.0] and row["seeds"] == [0, 1, 2]
    assert bench._over_seeds([seed_row(0, 150.0)])["std"]["mpjpe"] == 0.0


def test_targets_are_checked_on_the_seed_means():
    rows = {
        "keydiff3d_k4": bench._over_seeds([seed_row(0, 140.0, 110.0), seed_row(1, 150.0, 110.0)]),
        "k1": bench._over_seeds([seed_row(0, 190.0)]),
        "triangulation": bench._over_seeds([seed_row(0, 150.0), seed_row(1, 160.0)]),
        "supervised": bench._over_seeds([seed_row(0, 150.0, 70.0)]),
    }
    checks = bench._targets(rows)
    k1, triangulation, supervised = (
        checks[name] for name in ("(b) MPJPE <= 0.80 x (c)", "(b) MPJPE <= 0.95 x (d)", "(b) P-MPJPE <= 1.5 x (e)")
    )
    assert k1["ratio"] == pytest.approx(145 / 190) and k1["met"]
    assert triangulation["ratio"] == pytest.approx(145 / 155) and triangulation["met"]
    assert supervised["ratio"] == pytest.approx(110 / 70) and not supervised["met"]
    assert bench._targets({"k1": rows["k1"]}) == {}  # no method row: nothing to check


def test_table_cells_show_the_spread_only_with_several_seeds():
    assert bench._fmt(154.04, 6.1, 3) == "154.0 +- 6.1"
    assert bench._fmt(154.04) == "154.0"
    assert bench._fmt(float("nan"), 0.0, 3) == "-"
