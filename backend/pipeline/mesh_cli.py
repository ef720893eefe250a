"""`keydiff3d rig-mesh MESH [--keypoints KP.json] --out DIR [--preset NAME]`: rig an existing mesh.

KP.json = {"keypoints": [[x, y, z], ...], "adjacency": [[...], ...]} in the mesh file's own
coordinates. Without --keypoints the keypoint model predicts them from rendered orbit views. The
bundle (rig.json, mesh.ply, skin.npz, rig.glb; with predicted keypoints also views/, preview.png)
is in the mesh file's own coordinates as stored (a glTF's stay y-up: the bundle's up_axis says
which). The same path as the service's mesh jobs: `pipeline.run.run_mesh_pipeline`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keydiff3d_addon.rigcore.presets import default_preset_name

from ..mesh_io import MESH_FORMATS, UP_AXES
from .options import DEVICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mesh", type=Path, help=f"mesh file ({', '.join(MESH_FORMATS)})")
    parser.add_argument(
        "--keypoints", type=Path, help="KP.json with keypoints (N x 3) and adjacency (N x N); predicted when omitted"
    )
    parser.add_argument("--out", type=Path, default=Path("out/rig"), help="output bundle directory (default: out/rig)")
    default = default_preset_name("category")
    parser.add_argument("--preset", default=default, help=f"category preset from presets/ (default: {default})")
    parser.add_argument(
        "--up-axis", choices=UP_AXES, default="auto", help="the mesh file's up axis (default auto: Y for glTF, else Z)"
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="keypoint checkpoint (default: the preset's [model] checkpoint)"
    )
    parser.add_argument("--no-glb", action="store_true", help="do not write rig.glb")
    parser.add_argument("--zip", action="store_true", help="also write DIR.zip (the bundle with files at the zip root)")
    parser.add_argument(
        "--move-inside",
        action="store_true",
        help="move given keypoints outside the mesh just inside it (predicted ones always are)",
    )


def run(args: argparse.Namespace) -> int:
    from keydiff3d_addon.rigcore import zip_bundle

    from ..progress import tqdm_progress

    path = rig_mesh_file(
        args.mesh,
        args.out,
        keypoints_path=args.keypoints,
        preset=args.preset,
        up_axis=args.up_axis,
        device=args.device,
        checkpoint=args.checkpoint,
        glb=not args.no_glb,
        move_inside=args.move_inside,
        progress=tqdm_progress("rig-mesh"),
    )
    if args.zip:
        print(f"wrote {zip_bundle(args.out, args.out.parent / f'{args.out.name}.zip')}")
    print(f"wrote {path}")
    return 0


def rig_mesh_file(
    mesh_path,
    out_dir,
    *,
    keypoints_path=None,
    preset: str | None = None,
    up_axis: str = "auto",
    device: str = "auto",
    checkpoint=None,
    glb: bool = True,
    move_inside: bool = False,
    progress=None,
) -> Path:
    """Rig the mesh file and write the bundle to `out_dir`, in the file's own coordinates with its up
    axis (`up_axis` "auto": Y for glTF, Z otherwise); returns the path of rig.json. `move_inside`:
    given keypoints outside the mesh are moved just inside it (otherwise they stay where they are)."""
    from ..mesh_io import file_up_axis, load_mesh, mesh_file_type
    from .inputs import read_keypoints_json
    from .options import PipelineOptions
    from .run import GivenKeypoints, run_mesh_pipeline

    options = PipelineOptions(
        preset=preset or default_preset_name("category"),
        device=device,
        checkpoint=str(checkpoint) if checkpoint else None,
        up_axis=up_axis,
        export_glb=glb,
        move_inside=move_inside,
    )
    file_type = mesh_file_type(mesh_path)
    up = file_up_axis(file_type, up_axis)
    given = None
    if keypoints_path is not None:
        given = GivenKeypoints(
            *read_keypoints_json(Path(keypoints_path)), source=f"given ({Path(keypoints_path).name})"
        )
    mesh = load_mesh(mesh_path, file_type, up_axis="Z")  # "Z": the file's coordinates as stored, up axis `up`
    run_mesh_pipeline(
        mesh, options, progress, out_dir=out_dir, up_axis=up, keypoints=given, source=Path(mesh_path).name
    )
    return Path(out_dir) / "rig.json"
