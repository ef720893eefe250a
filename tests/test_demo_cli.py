"""`keydiff3d demo` as a user runs it: a subprocess that writes the bundle, rig.glb/fbx/blend and preview."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from pipeline_support import write_tiny_checkpoint

from keydiff3d.model.checkpoint import DEFAULT_CHECKPOINT

pytestmark = pytest.mark.slow


def run_demo(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keydiff3d.cli", "demo", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return done, time.perf_counter() - began


def check_outputs(out):
    import trimesh
    from PIL import Image

    from keydiff3d.rigging.io import load_bundle

    bundle = load_bundle(out)
    n = len(bundle.skeleton.keypoints)
    assert len(bundle.skeleton.deform_bones()) >= n - 1
    assert bundle.provenance["input"] == "demo sample"
    assert {"views", "keypoints", "reconstruction", "rig"} <= set(bundle.timings)
    for name in ("rig.glb", "rig.fbx", "rig.blend", "preview.png"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "rig.fbx").read_bytes()[:18] == b"Kaydara FBX Binary"
    assert (out / "rig.blend").read_bytes()[:7] == b"BLENDER" or (out / "rig.blend").read_bytes()[
        :4
    ] == b"\x28\xb5\x2f\xfd"  # plain or zstd
    preview = Image.open(out / "preview.png")
    assert preview.size == (4 * 256, 256)
    # keypoints are drawn: the preview differs from the plain views somewhere in red
    pixels = np.asarray(preview.convert("RGB")).astype(int)
    assert ((pixels[..., 0] > 200) & (pixels[..., 1] < 90) & (pixels[..., 2] < 80)).sum() > 20
    from keydiff3d.pipeline.posed_preview import TILE

    assert Image.open(out / "preview_posed.png").size == (2 * TILE, TILE)  # rest and posed
    scene = trimesh.load(out / "rig.glb")
    assert len(scene.geometry) == 1 and sum(len(g.faces) for g in scene.geometry.values()) == len(bundle.faces)
    return bundle


def test_demo_with_a_tiny_checkpoint(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    done, seconds = run_demo(tmp_path / "demo", "--checkpoint", str(checkpoint))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo finished" in done.stdout and "rig.fbx" in done.stdout
    check_outputs(tmp_path / "demo")
    assert seconds < 120


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="the shipped checkpoint is not in this tree yet")
def test_demo_with_the_shipped_checkpoint(tmp_path):
    done, seconds = run_demo(tmp_path / "demo")
    assert done.returncode == 0, done.stderr[-2000:]
    bundle = check_outputs(tmp_path / "demo")
    from keydiff3d.pipeline.keypoints import named_checkpoint
    from keydiff3d_addon.rigcore import load_category_preset

    # the sample is a quadruped: the quadruped preset's own checkpoint (its 20 keypoints)
    expected = named_checkpoint(load_category_preset("quadruped").checkpoint) / "model.safetensors"
    assert bundle.provenance["model"]["checkpoint"] == str(expected)
    assert seconds < 120


def test_demo_names_a_missing_checkpoint(tmp_path):
    done, _ = run_demo(tmp_path / "demo", "--checkpoint", str(tmp_path / "missing.safetensors"))
    assert done.returncode == 2
    assert "no checkpoint file" in done.stderr and "Traceback" not in done.stderr
