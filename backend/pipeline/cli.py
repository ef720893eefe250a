"""`keydiff3d rig IMAGE [--out DIR] [--preset NAME] [--device auto|cuda|cpu]`: the real pipeline, no server.

Needs the SV3D-p weights (see `keydiff3d weights`); a missing file is named in one sentence.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keydiff3d_addon.rigcore.presets import default_preset_name

from .options import DEVICES, RECONSTRUCTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "image", type=Path, help="PNG, JPEG or WebP image of one creature (alpha = foreground if present)"
    )
    parser.add_argument("--out", type=Path, default=None, help="bundle folder (default: out/<image name>)")
    default = default_preset_name("category")
    parser.add_argument("--preset", default=default, help=f"category preset in presets/ (default {default})")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="keypoint checkpoint (default: the preset's [model] checkpoint)"
    )
    parser.add_argument(
        "--reconstruction",
        choices=RECONSTRUCTIONS,
        default="auto",
        help="auto (frosting on CUDA, else hull), hull or frosting",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of SV3D-p's sampling (default 0)")
    parser.add_argument("--no-glb", action="store_true", help="do not write rig.glb")


def run(args: argparse.Namespace) -> int:
    from ..image_io import load_image
    from ..progress import tqdm_progress
    from .options import PipelineOptions
    from .run import run_image_pipeline

    options = PipelineOptions(
        preset=args.preset,
        device=args.device,
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        reconstruction=args.reconstruction,
        export_glb=not args.no_glb,
        seed=args.seed,
    )
    image = load_image(args.image)
    out = args.out or Path("out") / args.image.stem
    result = run_image_pipeline(image, options, tqdm_progress("rig"), out_dir=out)
    print(result.bundle_dir / "rig.json")
    for stage, seconds in result.timings.items():
        print(f"  {stage:15s} {seconds:7.2f} s")
    return 0
