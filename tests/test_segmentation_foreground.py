"""Foreground: SV3D preprocessing, alpha / box + SAM / Grounded SAM with tiny models in the official formats."""

import numpy as np
import pytest
import torch

from keydiff3d.errors import InputError, MissingWeightsError
from keydiff3d.image_io import load_image
from keydiff3d.segmentation import ForegroundExtractor, ForegroundOptions, prepare_sv3d_input
from keydiff3d.segmentation.grounded_sam import SamSegmenter, build_sam_from_state, normalise_prompt
from keydiff3d.segmentation.testing import write_tiny_grounding_dino, write_tiny_sam

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    return write_tiny_sam(root / "sam_tiny.pth"), write_tiny_grounding_dino(root / "grounding-dino")


@pytest.fixture
def photo():
    rgba = np.ones((90, 120, 4), np.float32)
    rgba[20:70, 30:90, :3] = [0.3, 0.2, 0.1]
    return rgba


def test_preprocessing_centres_the_alpha_box_with_margin_on_white():
    rgba = np.zeros((100, 200, 4), np.float32)
    rgba[10:50, 120:140] = [0.0, 1.0, 0.0, 1.0]  # 20 wide, 40 tall, off centre
    out = prepare_sv3d_input(rgba, size=100, margin=0.2)
    assert out.rgb.shape == (100, 100, 3) and out.alpha.shape == (100, 100) and out.box == (120, 10, 140, 50)
    ys, xs = np.nonzero(out.alpha > 0.5)
    assert ys.min() == pytest.approx(10, abs=1) and ys.max() + 1 == pytest.approx(90, abs=1)  # 80% of the side
    assert (xs.min() + xs.max() + 1) / 2 == pytest.approx(50, abs=1)
    assert np.allclose(out.rgb[0, 0], 1.0) and np.allclose(out.rgb[50, 50], [0.0, 1.0, 0.0], atol=1e-3)
    with pytest.raises(InputError, match="no foreground"):
        prepare_sv3d_input(np.zeros((10, 10, 4), np.float32))


def test_object_at_the_border_is_padded_with_white():
    rgba = np.zeros((40, 40, 4), np.float32)
    rgba[:, :10] = [1.0, 0.0, 0.0, 1.0]
    out = prepare_sv3d_input(rgba, size=64)
    assert np.allclose(out.rgb[32, 2], 1.0) and out.alpha[32, 2] == pytest.approx(0.0, abs=1e-3)


def test_load_image_reports_unreadable_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    with pytest.raises(InputError, match="cannot read image"):
        load_image(bad)


def test_alpha_method(photo):
    extractor = ForegroundExtractor()
    with pytest.raises(InputError, match="no transparent background"):
        extractor.extract(photo, ForegroundOptions(method="alpha"))
    cut = photo.copy()
    cut[..., 3] = 0.0
    cut[20:70, 30:90, 3] = 1.0
    assert extractor.extract(cut, ForegroundOptions(method="auto")) is cut


def test_sam_architecture_is_read_from_checkpoint_shapes():
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        official = sam_model_registry["vit_b"]()
        rebuilt = build_sam_from_state(official.state_dict())
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in official.state_dict().items()
    }
    assert rebuilt.image_encoder.blocks[2].window_size == 0 and rebuilt.image_encoder.blocks[0].window_size == 14


@pytest.mark.slow
def test_box_and_grounded_sam(photo, tiny_weights, tmp_path):
    sam, dino = tiny_weights
    extractor = ForegroundExtractor(sam=sam, grounding_dino=dino)
    boxed = extractor.extract(photo, ForegroundOptions(method="box", box=(30, 20, 90, 70)))
    assert boxed.shape == photo.shape and set(np.unique(boxed[..., 3])) <= {0.0, 1.0}
    assert np.array_equal(boxed[..., :3], photo[..., :3])
    with pytest.raises(InputError, match="not inside"):
        extractor.extract(photo, ForegroundOptions(method="box", box=(30, 20, 500, 70)))

    # random weights: accept every box, then the best one goes to SAM
    grounded = extractor.extract(photo, ForegroundOptions(method="grounded-sam", box_threshold=0.0, text_threshold=0.0))
    assert grounded.shape == photo.shape and grounded[..., 3].sum() > 0
    with pytest.raises(InputError, match="no 'animal' found"):
        extractor.extract(photo, ForegroundOptions(method="grounded-sam", prompt="animal", box_threshold=1.01))

    wrong = tmp_path / "not_sam.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, wrong)
    with pytest.raises(MissingWeightsError):
        SamSegmenter(wrong)
    with pytest.raises(MissingWeightsError):
        ForegroundExtractor(sam=wrong).validate(ForegroundOptions(method="box"))


def test_prompt_normalisation():
    assert normalise_prompt("Dog. Cat") == "dog. cat."
    with pytest.raises(ValueError):
        normalise_prompt(" . ")


def test_sam_refines_generated_view_masks(tiny_weights):
    sam, _ = tiny_weights
    extractor = ForegroundExtractor(sam=sam)
    view = np.ones((64, 64, 3), np.float32)
    view[10:50, 20:40] = [0.2, 0.5, 0.3]
    rough = np.zeros((64, 64), np.float32)
    rough[10:50, 20:40] = 1.0
    refined = extractor.refine_view_mask(view, rough)
    assert refined.shape == (64, 64) and refined.dtype == np.float32 and set(np.unique(refined)) <= {0.0, 1.0}
    assert extractor.refine_view_mask(view, np.zeros_like(rough)).max() == 0.0


def test_segment_foreground_names_the_missing_sam_file(photo, tmp_path, monkeypatch):
    from keydiff3d.segmentation import segment_foreground

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("KEYDIFF3D_SAM", raising=False)
    monkeypatch.delenv("KEYDIFF3D_GROUNDING_DINO", raising=False)
    with pytest.raises(MissingWeightsError, match="Grounding DINO|Segment Anything"):
        segment_foreground(photo, device="cpu")
