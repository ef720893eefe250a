"""`keydiff3d reconstruct` on a views folder written by the synthetic renderer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from keydiff3d.cli import main
from keydiff3d.geometry import orbit_cameras
from keydiff3d.multiview.views_io import save_views
from keydiff3d.reconstruction import ReconstructionResult
from keydiff3d.reconstruction.frosting.export import load_frosting, load_gaussians_ply
from keydiff3d.reconstruction.frosting.layer import init_frosting
from keydiff3d.reconstruction.io import save_result
from keydiff3d.reconstruction.meshing import MeshReport
from keydiff3d.synthetic.creatures import generate_creature
from keydiff3d.synthetic.renderer import render_multiview


@pytest.fixture(scope="module")
def views_dir(tmp_path_factory):
    creature = generate_creature("quadruped", 3)
    folder = tmp_path_factory.mktemp("views")
    save_views(folder, render_multiview(creature, orbit_cameras(size=128)))
    return folder


def test_reconstruct_writes_a_coloured_mesh(views_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "hull.ply"
    rc = main(
        ["reconstruct", str(views_dir), "--method", "hull", "--out", str(out), "--resolution", "96", "--faces", "5000"]
    )
    assert rc == 0
    mesh = trimesh.load(out, process=False)
    assert len(mesh.faces) <= 5000 and mesh.is_watertight
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
    assert colors.std() > 5  # coloured from the views, not a flat default
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "hull" and summary["files"] == [str(out)]
    assert [p.name for p in out.parent.iterdir()] == ["hull.ply"]  # no temporary files left


def test_textured_glb(views_dir, tmp_path):
    out = tmp_path / "hull.glb"
    assert (
        main(
            [
                "reconstruct",
                str(views_dir),
                "--method",
                "hull",
                "--out",
                str(out),
                "--resolution",
                "64",
                "--faces",
                "2000",
                "--texture",
                "128",
            ]
        )
        == 0
    )
    loaded = trimesh.load(out)
    geometry = next(iter(loaded.geometry.values()))
    assert geometry.visual.kind == "texture" and geometry.visual.uv is not None


def test_an_empty_mask_fails_cleanly_and_writes_nothing(views_dir, tmp_path, capsys):
    from PIL import Image

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "views").mkdir()
    for f in (views_dir / "views").glob("*.png"):
        (broken / "views" / f.name).write_bytes(f.read_bytes())
    (broken / "cameras.json").write_text((views_dir / "cameras.json").read_text())
    frame = np.asarray(Image.open(broken / "views" / "005.png")).copy()
    frame[..., 3] = 0
    Image.fromarray(frame).save(broken / "views" / "005.png")
    out = tmp_path / "out" / "mesh.ply"
    assert main(["reconstruct", str(broken), "--method", "hull", "--out", str(out)]) == 2
    assert "view 5" in capsys.readouterr().err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_arguments_fail_before_any_work(views_dir, tmp_path, capsys):
    assert main(["reconstruct", str(views_dir), "--out", str(tmp_path / "mesh.xyz")]) == 2
    assert ".xyz" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "missing"), "--out", str(tmp_path / "m.ply")]) == 2
    if not torch.cuda.is_available():
        assert main(["reconstruct", str(views_dir), "--method", "frosting", "--out", str(tmp_path / "m.ply")]) == 2
        assert "CUDA" in capsys.readouterr().err


def test_save_result_writes_the_gaussians_and_their_binding(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    layer = init_frosting(sphere, np.full(len(sphere.vertices), 0.01), np.full(len(sphere.vertices), 0.02), 100)
    result = ReconstructionResult(mesh=sphere, method="frosting", report=MeshReport(), gaussians=layer)
    written = save_result(result, tmp_path / "creature.ply")
    assert [p.name for p in written] == ["creature.ply", "creature_gaussians.ply", "creature_frosting.npz"]
    assert len(load_gaussians_ply(written[1]).means) == 100
    assert torch.allclose(load_frosting(written[2]).world().means, layer.world().means)
