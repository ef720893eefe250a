"""`keydiff3d reconstruct VIEWS_DIR --method hull|frosting|auto --out MESH`.

Reads a views folder (`keydiff3d render` / `multiview.views_io`), reconstructs in the views' world
frame and writes the mesh (PLY/GLB/OBJ by suffix); frosting also writes `<stem>_gaussians.ply`
(3DGS) and `<stem>_frosting.npz` (the binding to the base mesh, for posing).
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("views", help="views folder: views/NNN.png (RGBA), cameras.json")
    parser.add_argument("--out", required=True, help="output mesh (.ply, .glb, .obj)")
    parser.add_argument(
        "--method", choices=("auto", "hull", "frosting"), default="auto", help="auto = frosting on CUDA, else hull"
    )
    parser.add_argument("--preset", choices=("short", "medium", "long"), default="short", help="frosting schedule")
    parser.add_argument("--faces", type=int, default=20_000, help="target face count of the mesh")
    parser.add_argument("--resolution", type=int, default=160, help="hull voxels per side")
    parser.add_argument(
        "--tolerance", type=int, default=1, help="views allowed to disagree before the hull carves a voxel"
    )
    parser.add_argument(
        "--texture",
        type=int,
        default=0,
        metavar="SIZE",
        help="also bake a SIZE x SIZE UV texture (written with .glb/.obj)",
    )


def run(args: argparse.Namespace) -> int:
    from ..multiview.views_io import load_views
    from ..progress import tqdm_progress
    from . import HullConfig, reconstruct
    from .io import check_mesh_path, save_result

    check_mesh_path(args.out)
    views, _ = load_views(args.views)
    hull = HullConfig(resolution=args.resolution, tolerance=args.tolerance, target_faces=args.faces)
    progress = tqdm_progress("reconstruct")
    result = reconstruct(
        views.images,
        views.masks,
        views.cameras,
        args.method,
        progress,
        hull=hull,
        preset=args.preset,
        target_faces=args.faces,
        texture_size=args.texture,
    )
    written = save_result(result, args.out)
    progress.update(1.0, "", "done")
    summary = {
        "method": result.method,
        "vertices": len(result.mesh.vertices),
        "faces": len(result.mesh.faces),
        "watertight": result.report.watertight,
        "repaired": result.report.repaired,
        "problems": result.report.problems,
        "seconds": {k: round(v, 2) for k, v in result.timings.items()},
        "files": [str(p) for p in written],
    }
    print(json.dumps(summary, indent=1))
    return 0
