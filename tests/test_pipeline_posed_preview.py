"""preview_posed.png: which bones bend, how bends compose, and the Workbench picture (bpy)."""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
from bpy_fixtures import bpy  # noqa: F401  (sets up the bpy module first)

from keydiff3d.evaluation.deformation import bend_matrices
from keydiff3d.pipeline.posed_preview import (
    TILE,
    PreviewRig,
    bend_pose,
    bundle_posed_preview,
    pose_bones,
)

pytestmark = pytest.mark.bpy

HEADS = np.array([[0.0, 0, 0.5], [0.4, 0, 0.5], [0.6, 0, 0.8], [-0.4, 0, 0.5], [0.3, 0.1, 0.5], [0.3, 0.1, 0.25]])
TAILS = np.array([[0.4, 0, 0.5], [0.6, 0, 0.8], [0.75, 0, 0.8], [-0.75, 0, 0.6], [0.3, 0.1, 0.25], [0.3, 0.1, 0.0]])
PARENTS = np.array([-1, 0, 1, 0, 0, 4])


def _rig(names) -> PreviewRig:
    vertices = np.concatenate([HEADS, TAILS])
    weights = np.concatenate([np.eye(6), np.eye(6)])
    return PreviewRig(vertices, np.array([[0, 1, 2]]), weights, HEADS, TAILS, PARENTS, names)


def test_bones_to_bend_come_from_names_then_from_shape():
    named = _rig(["spine_01", "neck_01", "head_01", "tail_01", "leg1_01.L", "leg1_02.L"])
    assert pose_bones(named) == {"leg": 5, "neck": 1, "tail": 3}  # the leg bends where it leaves the body
    artist = _rig(["Body", "Neck", "Head", "Tail1", "UpperLeg.L", "Foot.L"])
    assert pose_bones(artist) == {"leg": 4, "neck": 1, "tail": 3}
    unnamed = pose_bones(_rig([f"bone_{i:02d}" for i in range(6)]))
    assert unnamed["leg"] == 4 and unnamed["neck"] in (1, 2)  # the chain reaching the ground; the one reaching highest


def test_nested_bends_compose_child_first():
    m = bend_pose(HEADS, TAILS, PARENTS, [4, 5], 30.0)
    child, parent = bend_matrices(HEADS, TAILS, PARENTS, 5, 30.0), bend_matrices(HEADS, TAILS, PARENTS, 4, 30.0)
    np.testing.assert_allclose(m[5], parent[5] @ child[5], atol=1e-12)
    np.testing.assert_allclose(m[4], parent[4], atol=1e-12)
    np.testing.assert_allclose(m[0], np.eye(4), atol=1e-12)


def test_a_bundle_gets_a_rest_and_a_posed_picture():
    from dataclasses import replace

    from PIL import Image
    from rig_support import toy_quadruped

    from keydiff3d.pipeline.rig import MeshArrays, load_preset, rig_mesh

    v, f = toy_quadruped()
    preset = load_preset("quadruped")
    bundle = rig_mesh(
        MeshArrays(v.astype(np.float32), f.astype(np.int32)),
        np.zeros((2, 3)),
        np.ones((2, 2)),
        replace(preset, rig=replace(preset.rig, method="curve", resolution=64)),
    )
    image = np.asarray(Image.open(io.BytesIO(bundle_posed_preview(bundle))).convert("RGB"))
    assert image.shape == (TILE, 2 * TILE, 3)
    rest, posed = image[:, :TILE].astype(int), image[:, TILE:].astype(int)
    assert (rest.sum(-1) < 600).mean() > 0.02  # the creature is there, not a blank frame
    assert np.abs(rest - posed).sum(-1).astype(bool).mean() > 0.01  # and bent in the second picture


def test_the_pipeline_writes_the_posed_preview_unless_asked_not_to(tmp_path):
    from rig_support import toy_quadruped

    from keydiff3d.pipeline.options import PipelineOptions
    from keydiff3d.pipeline.run import GivenKeypoints, run_mesh_pipeline
    from keydiff3d.synthetic.renderer import RenderMesh

    mesh = RenderMesh.from_arrays(*toy_quadruped())
    given = GivenKeypoints(np.array([[0.0, 0.0, 0.1], [0.3, 0.0, 0.1], [-0.3, 0.0, 0.1]]), np.ones((3, 3)) - np.eye(3))
    for posed in (True, False):
        options = PipelineOptions(preset="quadruped", export_glb=False, posed_preview=posed)
        result = run_mesh_pipeline(mesh, options, out_dir=tmp_path / str(posed), keypoints=given)
        assert (result.bundle_dir / "preview_posed.png").is_file() == posed


def _failing_python(tmp_path, body: str):
    """A real executable in the render child's place: a shell script that `body` runs."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("child", "noted"),
    [
        ("echo 'no bpy here' >&2; exit 1", "no bpy here"),  # the child fails
        (None, "FileNotFoundError"),  # no interpreter there: Popen's OSError
        ('echo "not a png" > "$3/sheet.png"', "UnidentifiedImageError"),  # PIL cannot read the sheet
    ],
)
def test_a_failed_posed_preview_still_leaves_a_complete_bundle(tmp_path, monkeypatch, child, noted):
    from rig_support import toy_quadruped

    from keydiff3d.pipeline import posed_preview
    from keydiff3d.pipeline.options import PipelineOptions
    from keydiff3d.pipeline.run import GivenKeypoints, run_mesh_pipeline
    from keydiff3d.rigging.io import load_bundle
    from keydiff3d.synthetic.renderer import RenderMesh

    python = str(tmp_path / "no-such-python") if child is None else _failing_python(tmp_path, child)
    monkeypatch.setattr(posed_preview, "PYTHON", python)
    mesh = RenderMesh.from_arrays(*toy_quadruped())
    given = GivenKeypoints(np.array([[0.0, 0.0, 0.1], [0.3, 0.0, 0.1], [-0.3, 0.0, 0.1]]), np.ones((3, 3)) - np.eye(3))
    options = PipelineOptions(preset="quadruped", export_glb=False, posed_preview=True)
    result = run_mesh_pipeline(mesh, options, out_dir=tmp_path / "rig", keypoints=given)
    assert not (result.bundle_dir / "preview_posed.png").exists()
    bundle = load_bundle(result.bundle_dir)  # the whole rig is there and valid
    assert len(bundle.skeleton.bones) == len(result.bundle.skeleton.bones) > 0
    assert (
        bundle.provenance["posed_preview"].startswith("not rendered:") and noted in bundle.provenance["posed_preview"]
    )


def test_cancelling_kills_a_stuck_render_child(tmp_path, monkeypatch):
    from keydiff3d.errors import Cancelled
    from keydiff3d.pipeline import posed_preview
    from keydiff3d.progress import Progress

    pid_file = tmp_path / "pid"
    monkeypatch.setattr(posed_preview, "PYTHON", _failing_python(tmp_path, f"echo $$ > {pid_file}; exec sleep 60"))
    progress = Progress()
    rig = _rig(["spine_01", "neck_01", "head_01", "tail_01", "leg1_01.L", "leg1_02.L"])
    rest, posed, _ = posed_preview.rig_panels(rig)

    def cancel_soon():
        while not pid_file.exists():
            time.sleep(0.05)
        progress.cancel()

    threading.Thread(target=cancel_soon, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        posed_preview.render_panels([rest, posed], 2, np.array([1.0, 0.0, 0.0]), progress=progress)
    assert time.monotonic() - start < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)
