"""The pipeline's three entry points, each ending in a rig bundle directory.

    run_image_pipeline  image -> foreground -> SV3D-p views + features -> keypoints -> mesh -> rig
    run_views_pipeline  orbit views (any generator)                    -> keypoints -> mesh -> rig
    run_mesh_pipeline   an existing mesh -> rendered views -> keypoints -> rig of that mesh
                        (or given keypoints -> rig: `keydiff3d rig-mesh --keypoints`)

Every stage runs inside `StageClock.stage`, which gives it its share of the progress bar, is a
cancellation point before and after, and records its seconds in rig.json's "timings". Models come
from the process-wide cache (keydiff3d.pipeline.models), so a service keeps them warm.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keydiff3d_addon.rigcore import CategoryPreset, RigBundle
from keydiff3d_addon.rigcore.presets import PresetError, default_preset_name

from .. import __version__
from ..device import resolve_device
from ..errors import ConfigError, KeyDiff3DError
from ..geometry import Placement
from ..multiview.base import MultiViewResult
from ..progress import Progress
from .keypoints import KeypointPrediction, LoadedModel, predict_from_views, preset_model
from .mesh import mesh_keypoints, upright_rotation
from .models import MODELS
from .options import PipelineOptions
from .preview import draw_preview, view_files, views_section
from .rig import MeshArrays, load_preset, rig_mesh
from .timing import StageClock

log = logging.getLogger(__name__)

MESH_STAGES = {"model": 1.0, "views": 2.0, "keypoints": 1.0, "rig": 3.0, "bundle": 2.0}
GIVEN_KEYPOINTS_STAGES = {"rig": 3.0, "bundle": 1.0}
VIEWS_STAGES = {"model": 1.0, "keypoints": 1.0, "reconstruction": 6.0, "rig": 3.0, "bundle": 2.0}
IMAGE_STAGES = {"segmentation": 1.0, "multiview": 30.0, **VIEWS_STAGES}


@dataclass
class GivenKeypoints:
    """Keypoints (N, 3) and adjacency (N, N) a user supplies for a mesh, in the mesh's own
    coordinates (`keydiff3d rig-mesh --keypoints KP.json`); `source` names where they came from."""

    keypoints: np.ndarray
    adjacency: np.ndarray
    source: str = "given"


@dataclass
class PipelineResult:
    """bundle_dir holds rig.json (+ mesh.ply, skin.npz, rig.glb, preview.png, views/); `views` are in
    the bundle's frame (None when keypoints were given: nothing was rendered); timings = seconds per
    stage (also in rig.json, except the bundle stage). `prediction` is None for given keypoints."""

    bundle_dir: Path
    bundle: RigBundle
    views: MultiViewResult | None
    prediction: KeypointPrediction | None
    timings: dict[str, float]


def warm_up(device: str = "auto", checkpoint: str | None = None, preset: str | None = None) -> str:
    """Resolve the device and load into the cache the keypoint model a job with these options runs:
    `checkpoint`, else the [model] checkpoint of `preset` (default: the default category preset).
    Returns the device's name. An unusable model or preset is logged, not raised: jobs then fail
    with the real message."""
    resolved = resolve_device(device)
    try:
        preset_model(load_preset(preset or default_preset_name("category")), checkpoint, resolved)
    except (ConfigError, PresetError) as error:
        log.warning("keypoint model not loaded at start: %s", error)
    return str(resolved)


# --------------------------------------------------------------------------- entry points


def run_mesh_pipeline(
    mesh,
    options: PipelineOptions,
    progress: Progress | None = None,
    *,
    out_dir: str | Path,
    up_axis: str = "Z",
    keypoints: GivenKeypoints | None = None,
    source: str | None = None,
) -> PipelineResult:
    """Rig an existing mesh: a geometry.mesh.RenderMesh in the coordinates the bundle keeps (its
    own frame; see keydiff3d.mesh_io.load_mesh), whose up axis is `up_axis` ("Z", or "Y" for a
    glTF's coordinates as stored). The bundle keeps the mesh's vertices, faces, frame and colours.
    Keypoints are predicted from rendered orbit views, or taken as `keypoints` (then no model runs
    and no views are rendered). `source` (e.g. the file name) is recorded in the provenance."""
    upright_rotation(up_axis)  # checks the value before any stage runs
    clock = StageClock(progress or Progress(), MESH_STAGES if keypoints is None else GIVEN_KEYPOINTS_STAGES)
    preset = load_preset(options.preset)
    views = prediction = None
    if keypoints is None:
        with clock.stage("model", "loading the keypoint model"):
            device = resolve_device(options.device)
            model = preset_model(preset, options.checkpoint, device)
        predicted = mesh_keypoints(mesh, model, clock, up_axis=up_axis)
        placement = predicted.placement
        views = predicted.views_own
        prediction = _in_frame(predicted.prediction, predicted.keypoints_own)
        points, adjacency = prediction.keypoints, prediction.adjacency
        provenance = {**_provenance(options, model, device, "mesh", placement), "keypoints": "predicted"}
    else:
        points, adjacency = keypoints.keypoints, keypoints.adjacency
        provenance = {
            "input": "mesh",
            "options": options.to_dict(),
            "keypoints": keypoints.source,
            "versions": _versions(),
        }
    if source is not None:
        provenance["source_mesh"] = source
    arrays = MeshArrays(mesh.vertices, mesh.faces, mesh.vertex_colors_rgba8())
    with clock.stage("rig", "building the skeleton and skin weights") as span:
        bundle = rig_mesh(
            arrays,
            points,
            adjacency,
            preset,
            up_axis=up_axis,
            progress=span,
            views_entry=views_section(views) if views is not None else None,
            provenance=provenance,
            given=keypoints is not None,
            move_inside=keypoints is None or options.move_inside,
        )
    bundle.timings = {**clock.timings, **bundle.timings}  # the stages so far, and the rig's own parts
    with clock.stage("bundle", "writing the rig bundle") as span:
        bundle_dir = _write(bundle, views, Path(out_dir), options, span)
    return PipelineResult(bundle_dir, bundle, views, prediction, clock.timings)


def run_views_pipeline(
    views: MultiViewResult,
    options: PipelineOptions,
    progress: Progress | None = None,
    *,
    out_dir: str | Path,
    clock: StageClock | None = None,
    source: str = "views",
) -> PipelineResult:
    """Keypoints, reconstruction and rig from orbit views in the generator's world frame (the bundle's frame)."""
    from ..reconstruction import reconstruct

    clock = clock or StageClock(progress or Progress(), VIEWS_STAGES)
    preset, method = _preflight(options)
    with clock.stage("model", "loading the keypoint model"):
        device = resolve_device(options.device)
        model = preset_model(preset, options.checkpoint, device)
    with clock.stage("keypoints", "predicting keypoints") as span:
        prediction = predict_from_views(views, model, span)
    with clock.stage("reconstruction", "reconstructing the mesh") as span:
        mesh = reconstruct(views.images, views.masks, views.cameras, method=method, progress=span).mesh
    colors = np.asarray(mesh.visual.vertex_colors, np.uint8) if getattr(mesh.visual, "kind", None) == "vertex" else None
    arrays = MeshArrays(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32), colors)
    with clock.stage("rig", "building the skeleton and skin weights") as span:
        bundle = rig_mesh(
            arrays,
            prediction.keypoints,
            prediction.adjacency,
            preset,
            progress=span,
            views_entry=views_section(views),
            provenance=_provenance(options, model, device, source, None),
        )
    bundle.timings = {**clock.timings, **bundle.timings}  # the stages so far, and the rig's own parts
    with clock.stage("bundle", "writing the rig bundle") as span:
        bundle_dir = _write(bundle, views, Path(out_dir), options, span)
    return PipelineResult(bundle_dir, bundle, views, prediction, clock.timings)


def run_image_pipeline(
    image_rgba: np.ndarray, options: PipelineOptions, progress: Progress | None = None, *, out_dir: str | Path
) -> PipelineResult:
    """Rig the creature in one image: (H, W, 4) float32 RGBA in [0, 1]; alpha = foreground when the
    image has one, else the foreground is segmented. Needs the SV3D-p weights (MissingWeightsError)."""
    clock = StageClock(progress or Progress(), IMAGE_STAGES)
    _preflight(options)  # a wrong preset, a CUDA-only choice or a missing SV3D file fails now, not after minutes
    if ("sv3d", str(resolve_device(options.device))) not in MODELS:
        from .. import weights

        weights.require("sv3d_p")  # reads the header only
    with clock.stage("segmentation", "finding the foreground") as span:
        rgba = foreground(image_rgba, options, span)
    with clock.stage("multiview", "generating orbit views with SV3D-p") as span:
        generator = load_view_generator(options)
        views = generator.from_image(rgba, span)
    return run_views_pipeline(views, options, out_dir=out_dir, clock=clock, source="image")


# --------------------------------------------------------------------------- image stages


def foreground(image_rgba: np.ndarray, options: PipelineOptions, progress: Progress) -> np.ndarray:
    """The image with alpha = foreground: its own alpha when it has a real one, else Grounded SAM
    (the extractor, and SAM once loaded, stay warm in the model cache)."""
    from ..segmentation import ForegroundExtractor

    device = str(resolve_device(options.device))
    extractor = MODELS.get(("foreground", device), lambda: ForegroundExtractor(device=device))
    return extractor.extract(image_rgba, progress=progress)


def load_view_generator(options: PipelineOptions):
    """The SV3D-p generator (weights found by `keydiff3d weights`), loaded once per device and kept in
    the model cache under ("sv3d", device). Only the run's seed changes between runs."""
    import dataclasses

    from ..multiview.sv3d import RuntimeOptions, load_generator

    device = str(resolve_device(options.device))
    generator = MODELS.get(("sv3d", device), lambda: load_generator(runtime=RuntimeOptions(device=device)))
    generator.config = dataclasses.replace(generator.config, seed=options.seed)
    return generator


# --------------------------------------------------------------------------- helpers


def _preflight(options: PipelineOptions) -> tuple[CategoryPreset, str]:
    """(category preset, reconstruction method) checked before any long stage runs."""
    from ..reconstruction import resolve_method

    return load_preset(options.preset), resolve_method(options.reconstruction)


def _in_frame(prediction: KeypointPrediction, keypoints: np.ndarray) -> KeypointPrediction:
    return KeypointPrediction(keypoints, prediction.adjacency, prediction.checkpoint, prediction.metadata)


def _provenance(
    options: PipelineOptions, model: LoadedModel, device: torch.device, source: str, placement: Placement | None
) -> dict:
    meta = model.metadata
    return {
        "input": source,
        "options": options.to_dict(),
        "device": str(device),
        "model": {
            "checkpoint": model.path,
            **{k: meta[k] for k in ("feature_source", "perceptual_loss", "step", "command", "eval") if k in meta},
        },
        "versions": _versions(),
        "placement": placement.to_dict() if placement is not None else {"center": [0.0, 0.0, 0.0], "scale": 1.0},
    }


def _versions() -> dict:
    return {
        "keydiff3d": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _write(
    bundle: RigBundle, views: MultiViewResult | None, out_dir: Path, options: PipelineOptions, progress: Progress
) -> Path:
    from ..rigging.io import save_bundle
    from .posed_preview import bundle_posed_preview

    files: dict[str, bytes] = {}
    if views is not None:
        files = view_files(views)
        progress.update(0.3, "drawing the preview")
        files["preview.png"] = draw_preview(views, bundle.skeleton)
    if options.posed_preview:  # best effort: the rig is done; a failed picture is noted, not fatal
        progress.update(0.4, "rendering the posed preview")
        try:
            files["preview_posed.png"] = bundle_posed_preview(bundle, progress=progress.span(0.4, 0.5))
            bundle.provenance["posed_preview"] = "rendered"
        except KeyDiff3DError as error:
            log.warning("no posed preview: %s", error)
            bundle.provenance["posed_preview"] = f"not rendered: {error}"
    progress.update(0.5, "writing files")
    save_bundle(out_dir, bundle, glb=options.export_glb, files=files)
    return out_dir
