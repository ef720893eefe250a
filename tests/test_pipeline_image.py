"""The image path: without SV3D weights a clear MissingWeightsError before any long work; with a
tiny random-weight SV3D (real formats, real loader) it runs through and ends in a rig or a clean error."""

from __future__ import annotations

import pytest
import torch
from pipeline_support import write_tiny_checkpoint

from keydiff3d.errors import Cancelled, KeyDiff3DError, MissingWeightsError
from keydiff3d.image_io import load_image
from keydiff3d.paths import ASSETS_DIR
from keydiff3d.pipeline.models import MODELS
from keydiff3d.pipeline.options import PipelineOptions
from keydiff3d.pipeline.run import run_image_pipeline
from keydiff3d.progress import Progress
from keydiff3d.rigging.io import load_bundle

torch.set_num_threads(1)
SAMPLE_IMAGE = ASSETS_DIR / "sample_creature.png"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"))


@pytest.fixture
def no_user_weights(tmp_path, monkeypatch):
    for name in ("KEYDIFF3D_SV3D", "KEYDIFF3D_SVD_XT", "KEYDIFF3D_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    MODELS.clear()
    yield
    MODELS.clear()


def test_without_sv3d_weights_the_file_is_named(no_user_weights, checkpoint, tmp_path):
    stages = []
    progress = Progress(lambda stage, fraction, message: stages.append(stage))
    with pytest.raises(MissingWeightsError, match="sv3d_p.safetensors.*KEYDIFF3D_SV3D"):
        run_image_pipeline(
            load_image(SAMPLE_IMAGE),
            PipelineOptions(checkpoint=checkpoint, device="cpu"),
            progress,
            out_dir=tmp_path / "out",
        )
    assert stages == [] and not (tmp_path / "out").exists()  # refused before any stage ran


@pytest.fixture
def tiny_sv3d(tmp_path, no_user_weights):
    """A 64 px, 3-step SV3D-p with random weights, loaded from files in the real formats and put in the
    model cache where the pipeline looks for its generator."""
    from keydiff3d.multiview.sv3d.testing import tiny_sv3d_generator

    generator = tiny_sv3d_generator(tmp_path / "sv3d", size=64, num_steps=3)
    MODELS.get(("sv3d", "cpu"), lambda: generator)
    return generator


def test_tiny_sv3d_gives_a_rig_or_a_clean_error(tiny_sv3d, checkpoint, tmp_path):
    stages = []
    progress = Progress(lambda stage, fraction, message: stages.append(stage))
    options = PipelineOptions(checkpoint=checkpoint, device="cpu", reconstruction="hull")
    try:
        result = run_image_pipeline(load_image(SAMPLE_IMAGE), options, progress, out_dir=tmp_path / "out")
    except KeyDiff3DError as error:  # random views may hold no object: that must be one sentence
        assert str(error) and "\n" not in str(error)
        assert "sv3d" in stages and not (tmp_path / "out" / "rig.json").exists()
        return
    bundle = load_bundle(result.bundle_dir)
    assert bundle.provenance["input"] == "image" and len(result.views.images) == 21
    assert result.views.features  # the SV3D decoder taps came along


@pytest.mark.parametrize("stage", ["segmentation", "multiview"])
def test_cancel_before_and_during_generation(tiny_sv3d, checkpoint, tmp_path, stage):
    def on_progress(name, fraction, message):
        if name == stage or (stage == "multiview" and name.startswith("sv3d")):
            progress.cancel()

    progress = Progress(on_progress)
    with pytest.raises(Cancelled):
        run_image_pipeline(
            load_image(SAMPLE_IMAGE),
            PipelineOptions(checkpoint=checkpoint, device="cpu"),
            progress,
            out_dir=tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()
