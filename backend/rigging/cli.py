"""`keydiff3d rig-mesh MESH --keypoints KP.json --out DIR [--preset NAME]`: rig an existing mesh.

KP.json = {"keypoints": [[x, y, z], ...], "adjacency": [[...], ...]} in the mesh file's own
coordinates. Without --keypoints the keypoint model predicts them (keydiff3d.pipeline.mesh).
Writes rig.json, mesh.ply, skin.npz and rig.glb to DIR, all in the mesh file's own coordinates as
stored (a glTF's stay y-up: the bundle's up_axis says which), read by `keydiff3d.mesh_io`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..mesh_io import MESH_FORMATS, UP_AXES, file_up_axis, load_mesh, mesh_file_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mesh", type=Path, help=f"mesh file ({', '.join(MESH_FORMATS)})")
    parser.add_argument("--keypoints", type=Path, help="KP.json with keypoints (N x 3) and adjacency (N x N); predicted when omitted")
    parser.add_argument("--out", type=Path, default=Path("out/rig"), help="output bundle directory (default: out/rig)")
    parser.add_argument("--preset", default="generic", help="category preset from presets/ (default: generic)")
    parser.add_argument("--up-axis", choices=UP_AXES, default="auto", help="the mesh file's up axis (default auto: Y for glTF, else Z)")
    parser.add_argument("--no-glb", action="store_true", help="do not write rig.glb")
    parser.add_argument("--zip", action="store_true", help="also write DIR.zip (the bundle with files at the zip root)")


def run(args: argparse.Namespace) -> int:
    from ..progress import tqdm_progress

    path = rig_mesh_file(args.mesh, args.out, keypoints_path=args.keypoints, preset=args.preset,
                         up_axis=args.up_axis, glb=not args.no_glb, progress=tqdm_progress("rig-mesh"))  # fmt: skip
    if args.zip:
        from keydiff3d_addon.rigcore.bundle import zip_bundle

        print(f"wrote {zip_bundle(args.out, args.out.with_suffix('.zip'))}")
    print(f"wrote {path}")
    return 0


def read_keypoints_json(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """KP.json -> keypoints (N, 3) float64, adjacency (N, N) float64; InputError in one sentence."""
    if not path.is_file():
        raise InputError(f"keypoints file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path.name} is not valid JSON ({error})") from None
    if not isinstance(data, dict) or "keypoints" not in data or "adjacency" not in data:
        raise InputError(f'{path.name} must be an object with "keypoints" (N x 3) and "adjacency" (N x N)')
    try:
        keypoints = np.asarray(data["keypoints"], np.float64)
        adjacency = np.asarray(data["adjacency"], np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path.name}: keypoints and adjacency must be rectangular arrays of numbers") from None
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise InputError(f"{path.name}: keypoints must be N x 3, got shape {keypoints.shape}")
    if adjacency.shape != (len(keypoints), len(keypoints)):
        raise InputError(f"{path.name}: adjacency must be {len(keypoints)} x {len(keypoints)}, got shape {adjacency.shape}")
    return keypoints, adjacency


def _predict(mesh, progress, up_axis: str) -> tuple[np.ndarray, np.ndarray, dict]:
    from ..pipeline.mesh import predict_keypoints  # torch + the model: only when asked for

    return predict_keypoints(mesh, progress, up_axis=up_axis)


def rig_mesh_file(mesh_path, out_dir, *, keypoints_path=None, preset: str = "generic", up_axis: str = "auto", glb: bool = True, progress=None) -> Path:
    """Rig the mesh file and write the bundle to `out_dir`, in the file's own coordinates with its up
    axis (`up_axis` "auto": Y for glTF, Z otherwise); returns the path of rig.json."""
    from ..progress import Progress
    from keydiff3d_addon.rigcore import PresetError, RigBundle, SkeletonError, SkinningError, build_skeleton, compute_skin_weights, load_category_preset
    from .io import save_bundle
    from .mesh_tools import inside_test, project_inside

    progress = progress or Progress()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        category = load_category_preset(preset)
    except PresetError as error:
        raise ConfigError(str(error)) from None
    file_type = mesh_file_type(mesh_path)
    up = file_up_axis(file_type, up_axis)
    mesh = load_mesh(mesh_path, file_type, up_axis="Z")  # "Z": the file's coordinates as stored, up axis `up`
    timings["load"] = time.perf_counter() - t0
    progress.update(0.05, "mesh loaded", stage="rig-mesh")

    t0 = time.perf_counter()
    info: dict = {}
    if keypoints_path is not None:
        keypoints, adjacency = read_keypoints_json(Path(keypoints_path))
    else:
        keypoints, adjacency, info = _predict(mesh, progress.span(0.05, 0.5, "keypoints"), up)
        timings["keypoints"] = time.perf_counter() - t0
    if not np.isfinite(keypoints).all():
        raise InputError("the keypoints contain NaN or infinite values")

    t0 = time.perf_counter()
    inside = inside_test(mesh.vertices, mesh.faces)
    moved: list[int] = []
    if inside is not None:
        keypoints, moved = project_inside(keypoints, mesh.vertices, mesh.faces, inside)
    up_index = 2 if up == "Z" else 1
    try:
        skeleton = build_skeleton(keypoints, adjacency, inside=inside, naming=category.naming, up_axis=up,
                                  ground=float(mesh.vertices[:, up_index].min()), **category.skeleton.kwargs())  # fmt: skip
    except SkeletonError as error:
        raise InputError(f"the skeleton could not be built: {error}") from None
    if moved:
        skeleton.repairs.insert(0, f"keypoints {moved} were outside the mesh; moved just inside its surface")
    timings["skeleton"] = time.perf_counter() - t0
    progress.update(0.55, "skeleton built", stage="skinning")

    t0 = time.perf_counter()
    try:
        skin = compute_skin_weights(mesh.vertices, skeleton, faces=mesh.faces, progress=progress.span(0.55, 0.9, "skinning"), **category.skinning.kwargs())
    except SkinningError as error:
        raise InputError(f"the mesh could not be skinned: {error}") from None
    timings["skinning"] = time.perf_counter() - t0

    from .. import __version__

    bundle = RigBundle(
        vertices=mesh.vertices, faces=mesh.faces, colors=mesh.vertex_colors_rgba8(), skeleton=skeleton, skin=skin,
        up_axis=up, units="world", generator=f"keydiff3d {__version__}", timings=timings,
        provenance={"preset": category.name, "source_mesh": Path(mesh_path).name, "keypoints": "given" if keypoints_path else "predicted",
                    "model": {"checkpoint": str(info["checkpoint"])} if "checkpoint" in info else {},
                    "placement": info.get("placement", {}), "versions": {"keydiff3d": __version__}},
    )  # fmt: skip
    progress.update(0.9, "writing bundle", stage="write")
    path = save_bundle(out_dir, bundle, glb=glb)
    progress.update(1.0, "done", stage="done")
    return path
