"""`keydiff3d render`: render a mesh's orbit views, masks, depth and cameras into a views folder."""

from __future__ import annotations

import argparse

from ..mesh_io import MESH_FORMATS, UP_AXES, load_mesh, load_placed_mesh


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mesh", help=f"mesh file ({', '.join(MESH_FORMATS)})")
    parser.add_argument("--out", required=True, help="output views folder")
    parser.add_argument("--size", type=int, default=576, help="image size in pixels (default 576, as SV3D-p)")
    parser.add_argument("--views", type=int, default=21, help="number of orbit views (21 = the SV3D-p orbit)")
    parser.add_argument(
        "--elevation", type=float, default=None, help="orbit elevation in degrees (default 10, as SV3D-p)"
    )
    parser.add_argument("--supersample", type=int, default=2, help="anti-aliasing factor (default 2)")
    parser.add_argument("--inconsistency", type=float, default=0.0, help="per-view jitter (0 = exact views)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-view jitter")
    parser.add_argument(
        "--up-axis", choices=UP_AXES, default="auto", help="the mesh file's up axis (default auto: Y for glTF, else Z)"
    )
    parser.add_argument(
        "--keep-frame",
        action="store_true",
        help="the mesh is already in the world frame: render it as is (no placement.json)",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..geometry import SV3D_ELEVATION_DEG
    from ..multiview.views_io import save_views
    from ..progress import tqdm_progress
    from .renderer import RenderOptions, orbit_views, render_multiview

    if args.size < 8 or args.views < 1:
        raise InputError("--size must be at least 8 and --views at least 1")
    progress = tqdm_progress("render")
    mesh, placement = (
        (load_mesh(args.mesh, up_axis=args.up_axis), None)
        if args.keep_frame
        else load_placed_mesh(args.mesh, up_axis=args.up_axis)
    )
    elevation = SV3D_ELEVATION_DEG if args.elevation is None else args.elevation
    cameras = orbit_views(args.views, args.size, elevation)
    options = RenderOptions(supersample=args.supersample, inconsistency=args.inconsistency, seed=args.seed)
    result = render_multiview(mesh, cameras, options=options, progress=progress.span(0.0, 0.95, "render"))
    save_views(args.out, result, placement)
    progress.update(1.0, "", stage="done")
    print(f"wrote {result.num_views} views of {args.mesh} at {args.size} px to {args.out}")
    return 0
