"""Views folder format: round trip, CLI `keydiff3d render`, clear errors."""

import json

import numpy as np
import pytest
import trimesh

from keydiff3d.cli import main
from keydiff3d.errors import InputError
from keydiff3d.geometry import OBJECT_EXTENT, Placement, orbit_cameras
from keydiff3d.multiview.views_io import load_views, save_views
from keydiff3d.synthetic import generate_creature
from keydiff3d.synthetic.renderer import RenderOptions, render_multiview


def test_round_trip_keeps_views_masks_depth_cameras_and_placement(tmp_path):
    res = render_multiview(
        generate_creature("biped", 1, detail=0.5), orbit_cameras(size=40), options=RenderOptions(supersample=2)
    )
    placement = Placement(np.array([0.1, -2.0, 3.0]), 0.25)
    save_views(tmp_path / "v", res, placement)
    assert sorted(p.name for p in (tmp_path / "v" / "views").iterdir())[-1] == "020.png"
    back, placement_back = load_views(tmp_path / "v")
    assert np.abs(back.images - res.images).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back.masks - res.masks).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(back.depth, res.depth)
    np.testing.assert_allclose(back.cameras.P, res.cameras.P)
    assert back.input_view == 20 and back.cameras.width == 40
    np.testing.assert_allclose(placement_back.center, placement.center)
    assert placement_back.scale == placement.scale


def test_optional_parts_are_optional_and_stale_files_removed(tmp_path):
    res = render_multiview(generate_creature("bird", 1, detail=0.5), orbit_cameras(size=24))
    save_views(tmp_path, res, Placement(np.zeros(3), 1.0))
    res.depth = None
    save_views(tmp_path, res)  # rewrite without depth and placement
    back, placement = load_views(tmp_path)
    assert back.depth is None and placement is None


def test_broken_folders_give_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not a views folder"):
        load_views(tmp_path)
    res = render_multiview(generate_creature("bird", 1, detail=0.5), orbit_cameras(size=24))
    save_views(tmp_path, res)
    (tmp_path / "views" / "003.png").unlink()
    with pytest.raises(InputError, match="20 views but 21 cameras"):
        load_views(tmp_path)


def test_render_command_writes_a_loadable_views_folder(tmp_path):
    mesh = trimesh.creation.capsule(height=2.0, radius=0.5)
    mesh.apply_translation([10.0, 0.0, 5.0])  # any own frame: the command places it
    mesh.export(tmp_path / "capsule.ply")
    out = tmp_path / "out"
    assert (
        main(
            [
                "render",
                str(tmp_path / "capsule.ply"),
                "--out",
                str(out),
                "--size",
                "32",
                "--views",
                "8",
                "--supersample",
                "1",
            ]
        )
        == 0
    )
    res, placement = load_views(out)
    assert res.num_views == 8 and res.images.shape == (8, 32, 32, 3) and res.input_view == 7
    assert json.loads((out / "views.json").read_text())["num_views"] == 8
    # the placement maps the mesh's own frame into the world: centred, height 3 -> OBJECT_EXTENT
    np.testing.assert_allclose(placement.to_world(np.array([[10.0, 0.0, 5.0]])), 0.0, atol=1e-6)
    assert np.isclose(placement.scale, OBJECT_EXTENT / 3)
    assert (res.masks.sum(axis=(1, 2)) > 20).all()


def test_render_command_reports_a_missing_file_in_one_sentence(tmp_path, capsys):
    assert main(["render", str(tmp_path / "nope.glb"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.glb does not exist" in capsys.readouterr().err


def test_render_keep_frame_matches_rendering_the_creature_directly(tmp_path):
    from keydiff3d.paths import ASSETS_DIR
    from keydiff3d.synthetic import sample_assets as sa

    out = tmp_path / "kept"
    assert (
        main(
            [
                "render",
                str(ASSETS_DIR / sa.SAMPLE_MESH),
                "--out",
                str(out),
                "--size",
                "48",
                "--supersample",
                "1",
                "--keep-frame",
            ]
        )
        == 0
    )
    res, placement = load_views(out)
    assert placement is None
    creature = generate_creature(sa.SAMPLE_CATEGORY, sa.SAMPLE_SEED, yaw_deg=sa.SAMPLE_YAW_DEG, detail=0.75)
    direct = render_multiview(creature, orbit_cameras(size=48))
    assert (res.masks != direct.masks).mean() < 2e-3
    both = (res.masks > 0) & (direct.masks > 0)
    assert np.abs(res.images[both] - direct.images[both]).mean() < 2.0 / 255  # colours survive the GLB
