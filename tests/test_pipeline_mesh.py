"""The mesh path of the pipeline end to end (render -> keypoints -> rig -> bundle), with a tiny
random-weight checkpoint in the real format: frames, bundle contents, progress and cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_support import creature_render_mesh, write_tiny_checkpoint

from keydiff3d.errors import Cancelled, ConfigError, DeviceError
from keydiff3d.geometry import project_points
from keydiff3d.pipeline.keypoints import load_keypoint_model
from keydiff3d.pipeline.mesh import predict_keypoints, views_in_own_frame
from keydiff3d.pipeline.models import MODELS
from keydiff3d.pipeline.options import PipelineOptions
from keydiff3d.pipeline.run import MESH_STAGES, run_mesh_pipeline, run_views_pipeline
from keydiff3d.progress import Progress
from keydiff3d.rigging.io import load_bundle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def creature():
    return creature_render_mesh("quadruped", 1)


@pytest.fixture(scope="module")
def mesh_run(checkpoint, creature, tmp_path_factory):
    events = []
    progress = Progress(lambda stage, fraction, message: events.append((stage, fraction)))
    out = tmp_path_factory.mktemp("bundle")
    result = run_mesh_pipeline(
        creature, PipelineOptions(preset="quadruped", checkpoint=checkpoint, device="cpu"), progress, out_dir=out
    )
    return result, events


def test_predict_keypoints_follows_the_mesh_frame(checkpoint, creature):
    """Keypoints come back in the mesh's own frame: moving and scaling the mesh moves them alike."""
    keypoints, adjacency, info = predict_keypoints(creature, checkpoint=checkpoint, device="cpu")
    assert keypoints.shape == (6, 3) and adjacency.shape == (6, 6)
    np.testing.assert_allclose(adjacency, adjacency.T)
    assert (np.diag(adjacency) == 0).all() and (adjacency >= 0).all()
    scale, offset = 3.0, np.array([10.0, -2.0, 5.0], np.float32)
    moved, moved_adjacency, _ = predict_keypoints(
        creature.transformed(scale, offset), checkpoint=checkpoint, device="cpu"
    )
    np.testing.assert_allclose(moved, keypoints * scale + offset, atol=1e-3 * scale)
    np.testing.assert_allclose(moved_adjacency, adjacency)
    np.testing.assert_allclose(
        info["placement"]["scale"] * (keypoints - info["placement"]["center"]), info["keypoints_world"], atol=1e-6
    )


def test_predict_keypoints_of_a_y_up_mesh(checkpoint, creature):
    """A mesh given in glTF's y-up coordinates gets the upright mesh's keypoints, in y-up coordinates."""
    from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP

    to_y_up = Y_UP_TO_Z_UP.T
    y_up = creature.rotated(to_y_up)
    upright, adjacency, _ = predict_keypoints(creature, checkpoint=checkpoint, device="cpu")
    lying, lying_adjacency, info = predict_keypoints(y_up, checkpoint=checkpoint, device="cpu", up_axis="Y")
    np.testing.assert_allclose(lying, upright @ to_y_up.T, atol=1e-3)
    np.testing.assert_allclose(lying_adjacency, adjacency, atol=1e-6)
    assert info["up_axis"] == "Y"


def test_model_is_loaded_once_per_process(checkpoint):
    device = torch.device("cpu")
    assert load_keypoint_model(checkpoint, device) is load_keypoint_model(checkpoint, device)
    assert any(checkpoint in name for name in MODELS.loaded())


def test_mesh_bundle_keeps_the_input_mesh_and_is_valid(mesh_run, creature):
    result, _ = mesh_run
    bundle = load_bundle(result.bundle_dir)  # schema + structural validation
    np.testing.assert_allclose(bundle.vertices, creature.vertices, atol=1e-6)
    np.testing.assert_array_equal(bundle.faces, creature.faces)
    assert bundle.colors is not None and bundle.colors.shape == (len(creature.vertices), 4)
    deform = [b for b in bundle.skeleton.bones if b.deform and b.kind == "edge"]
    assert len(deform) == len(bundle.skeleton.keypoints) - 1  # one bone per spanning-tree edge
    np.testing.assert_allclose(bundle.skin.weights.sum(1), 1.0, atol=1e-4)
    assert set(MESH_STAGES) - {"bundle"} <= set(bundle.timings)
    assert bundle.provenance["input"] == "mesh" and bundle.provenance["model"]["checkpoint"].endswith(
        "tiny.safetensors"
    )
    for name in ("rig.glb", "preview.png", "cameras.json", "views/020.png"):
        assert (result.bundle_dir / name).is_file(), name


def test_keypoints_lie_on_the_mesh_in_the_views(mesh_run):
    """The own-frame cameras of the bundle see each predicted keypoint inside the views (the
    skeleton's joints may reach the surface, which can leave a near view's frame)."""
    result, _ = mesh_run
    views = result.views
    uv, depth = project_points(views.cameras.P, result.prediction.keypoints)
    assert (depth > 0).all()
    inside = (uv >= 0).all(-1) & (uv[..., 0] < views.cameras.width) & (uv[..., 1] < views.cameras.height)
    assert inside.all()


def test_own_frame_cameras_match_world_cameras(mesh_run, creature):
    from keydiff3d.geometry import Placement

    result, _ = mesh_run
    placement = Placement(center=np.array([0.3, -1.0, 2.0]), scale=0.25)
    points = np.random.default_rng(0).normal(size=(10, 3))
    own_views = views_in_own_frame(result.views, placement)
    uv_world, _ = project_points(result.views.cameras.P, placement.to_world(points))
    uv_own, _ = project_points(own_views.cameras.P, points)
    np.testing.assert_allclose(uv_own, uv_world, atol=1e-6)


def test_progress_is_monotonic_and_visits_every_stage(mesh_run):
    _, events = mesh_run
    fractions = [f for _, f in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    stages = [s for s, _ in events]
    for name in MESH_STAGES:
        assert name in stages


@pytest.mark.parametrize("stage", list(MESH_STAGES))
def test_cancel_in_every_stage(stage, checkpoint, creature, tmp_path):
    """Cancelling when a stage begins stops the run there; no bundle is left behind."""
    seen = []

    def on_progress(name, fraction, message):
        seen.append(name)
        if name == stage:
            progress.cancel()

    progress = Progress(on_progress)
    with pytest.raises(Cancelled):
        run_mesh_pipeline(
            creature, PipelineOptions(checkpoint=checkpoint, device="cpu"), progress, out_dir=tmp_path / "out"
        )
    assert not (tmp_path / "out" / "rig.json").exists()
    later = list(MESH_STAGES)[list(MESH_STAGES).index(stage) + 1 :]
    assert not set(later) & set(seen)


def test_missing_checkpoint_and_unknown_preset_fail_clearly(creature, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint file"):
        run_mesh_pipeline(
            creature,
            PipelineOptions(checkpoint=str(tmp_path / "none.safetensors"), device="cpu"),
            out_dir=tmp_path / "a",
        )
    with pytest.raises(ConfigError, match="no preset named 'dragon'"):
        run_mesh_pipeline(creature, PipelineOptions(preset="dragon", device="cpu"), out_dir=tmp_path / "b")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal of Gaussian Frosting")
def test_frosting_on_cpu_is_a_device_error(mesh_run, checkpoint, tmp_path):
    result, _ = mesh_run
    options = PipelineOptions(checkpoint=checkpoint, device="cpu", reconstruction="frosting")
    with pytest.raises(DeviceError, match="CUDA"):
        run_views_pipeline(result.views, options, out_dir=tmp_path / "out")
