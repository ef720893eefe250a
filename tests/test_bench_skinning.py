"""The skinning benchmark on a folder holding one small creature (a held-out set is run the same way)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from bpy_fixtures import bpy  # noqa: F401  (sets up the bpy module first)

from keydiff3d.bench import _load
from keydiff3d.paths import RIGGED_ASSETS_DIR

pytestmark = pytest.mark.bpy
bench = _load("skinning")


def test_real_creatures_rows_table_and_render(tmp_path):
    folder = tmp_path / "held_out"
    folder.mkdir()
    shutil.copy(RIGGED_ASSETS_DIR / "Shark.glb", folder)
    (folder / "MANIFEST.json").write_text(json.dumps([{"file": "Shark.glb", "category": "fish"}]))
    rows = bench.real_creatures(folder, frames=2, cache=tmp_path / "cache", out=tmp_path, renders=1)
    (row,) = rows
    assert row["asset"] == "Shark" and row["category"] == "fish" and row["bones"] == 8
    for method in bench.METHODS:
        assert row[f"{method}_err"] >= 0 and row[f"{method}_unweighted"] >= 0
    assert row["heat_as_given_err"] == pytest.approx(row["bone_heat_err"], rel=0.02)  # Blender's algorithm, reproduced
    assert (tmp_path / "skinning_shark.png").stat().st_size > 1000
    table = bench.real_table(rows)
    assert "| Shark |" in table and "geometric mean" in table
    assert bench.geometric_mean_ratio(rows, "bone_heat") == pytest.approx(1.0)


def test_limit_influences_keeps_the_largest_four():
    weights = np.array([[0.3, 0.25, 0.2, 0.15, 0.1], [0.0, 0.0, 0.0, 0.0, 0.0]])
    limited = bench.limit_influences(weights)
    np.testing.assert_allclose(limited[0], [0.3, 0.25, 0.2, 0.15, 0.0] / np.float64(0.9))
    assert (limited[1] == 0).all()


def test_speed_creature_has_31_deform_bones():
    from keydiff3d_addon.rigcore import build_skeleton

    creature = bench.speed_creature()
    adjacency = np.zeros((len(creature.joints),) * 2)
    for j, p in enumerate(creature.parents):
        if p >= 0:
            adjacency[j, p] = adjacency[p, j] = 1.0
    assert len(build_skeleton(creature.joints, adjacency, root=0, leaf_bones=True).deform_bones()) == 31
