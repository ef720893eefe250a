"""`keydiff3d demo [--out DIR]`: the embedded default end to end on the CPU, with no downloads.

The bundled sample creature (backend/assets/sample_creature.*) is rendered at the SV3D-p orbit
cameras (the render generator stands in for SV3D, whose weights cannot ship), then the real pipeline
runs: keypoints + adjacency from the shipped checkpoint -> visual-hull mesh from the views' masks ->
skeleton + skin -> rig bundle with rig.glb, preview.png and preview_posed.png -> rig.fbx and
rig.blend through the add-on's own import/export code (bpy).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .paths import ASSETS_DIR

DEFAULT_OUT = Path("out/demo")
DEMO_RENDER_SIZE = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--checkpoint", type=Path, default=None, help="keypoint checkpoint (default: the shipped one)")
    parser.add_argument("--preset", default=None, help="category preset (default: the sample's category)")
    from keydiff3d_addon.rigcore.presets import default_preset_name, list_presets

    default = default_preset_name("export")
    parser.add_argument(
        "--target", choices=list_presets(kind="export"), default=default, help=f"export preset (default {default})"
    )


def sample_mesh():
    """The bundled sample creature (backend/assets, written by keydiff3d.synthetic.sample_assets) as a
    RenderMesh placed in the world frame, and its category (the preset to rig it with)."""
    import json

    from .mesh_io import load_placed_mesh
    from .synthetic.sample_assets import SAMPLE_MESH, SAMPLE_TRUTH

    mesh, _ = load_placed_mesh(ASSETS_DIR / SAMPLE_MESH)
    category = json.loads((ASSETS_DIR / SAMPLE_TRUTH).read_text())["category"]
    return mesh, category


def run_demo(
    out: Path, checkpoint: Path | None = None, preset: str | None = None, target: str | None = None, progress=None
) -> dict[str, Path]:
    """Run the demo into `out`; returns the written files by role (bundle, glb, fbx, blend, preview)."""
    import torch

    from .export import export_bundle
    from .multiview.render_generator import RenderGenerator
    from .pipeline.keypoints import preset_model
    from .pipeline.options import PipelineOptions
    from .pipeline.rig import load_preset
    from .pipeline.run import VIEWS_STAGES, run_views_pipeline
    from .pipeline.timing import StageClock
    from .progress import Progress

    clock = StageClock(progress or Progress(), {"views": 2.0, **VIEWS_STAGES, "export": 4.0})
    mesh, sample_preset = sample_mesh()
    options = PipelineOptions(
        preset=preset or sample_preset,
        device="cpu",
        checkpoint=str(checkpoint) if checkpoint else None,
        reconstruction="hull",
    )
    with clock.stage("views", "rendering the sample's orbit views") as span:
        # a missing or wrong checkpoint fails before any work
        preset_model(load_preset(options.preset), options.checkpoint, torch.device("cpu"))
        views = RenderGenerator(size=DEMO_RENDER_SIZE).from_mesh(mesh, span)
    result = run_views_pipeline(views, options, out_dir=out, clock=clock, source="demo sample")
    with clock.stage("export", "writing rig.fbx and rig.blend with Blender") as span:
        export_bundle(out, fbx=out / "rig.fbx", blend=out / "rig.blend", target=target, progress=span)
    return {
        "bundle": result.bundle_dir / "rig.json",
        "glb": out / "rig.glb",
        "fbx": out / "rig.fbx",
        "blend": out / "rig.blend",
        "preview": out / "preview.png",
        "preview_posed": out / "preview_posed.png",
    }


def run(args: argparse.Namespace) -> int:
    from .progress import tqdm_progress

    began = time.perf_counter()
    progress = tqdm_progress("demo")
    files = run_demo(args.out, args.checkpoint, args.preset, args.target, progress)
    progress.update(1.0, "", stage="done")  # "done" closes the tqdm bar
    print(f"demo finished in {time.perf_counter() - began:.1f} s:")
    width = max(map(len, files))
    for role, path in files.items():
        print(f"  {role:{width}s} {path}")
    return 0
