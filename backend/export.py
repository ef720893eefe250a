"""`keydiff3d export DIR --fbx OUT.fbx [--glb OUT.glb] [--blend OUT.blend] [--target T] [--height H]`.

Builds the Blender scene from a rig bundle in the bpy module with the add-on's own import code
(`keydiff3d_addon.importer.import_bundle`) and writes it with the add-on's Export function
(`keydiff3d_addon.exporter.export_rig`), so the command and the Export button give the same files.
The targets are the export presets in presets/; the default is the one marked `default = true`
there, as in the add-on.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from keydiff3d_addon.rigcore.presets import PresetError, default_preset_name, list_presets, load_export_preset

from .blender import addon_module
from .errors import ConfigError, InputError
from .progress import Progress


@dataclass
class ExportRun:
    """What `export_bundle` wrote, and the seconds per stage."""

    files: list[Path] = field(default_factory=list)
    bones: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def export_bundle(
    bundle: Path,
    *,
    fbx: Path | None = None,
    glb: Path | None = None,
    blend: Path | None = None,
    target: str | None = None,
    height: float = 1.0,
    progress: Progress | None = None,
) -> ExportRun:
    """Import `bundle` into an empty Blender scene and write the requested files.
    target: an export preset (default: the presets' default); height: metres."""
    import bpy

    importer, exporter = addon_module("importer"), addon_module("exporter")
    progress = progress or Progress()
    try:
        preset = load_export_preset(target or default_preset_name("export"))
    except PresetError as error:
        raise ConfigError(str(error)) from error
    run = ExportRun()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        rig = importer.import_bundle(
            bundle, target_height=height, root_bone=preset.root_bone, progress=progress.span(0.0, 0.3, "import")
        )
    except importer.RigImportError as error:
        raise InputError(str(error)) from error
    run.timings.update({f"import_{k}": v for k, v in rig.timings.items()})
    outputs = [(path, fmt) for path, fmt in ((fbx, "fbx"), (glb, "glb")) if path is not None]
    for index, (path, fmt) in enumerate(outputs):
        progress.update(0.3 + 0.6 * index / max(len(outputs), 1), f"writing {path.name}", stage="export")
        t = time.perf_counter()
        try:
            result = exporter.export_rig(bpy.context, rig.armature, path, preset=preset, fmt=fmt)
        except exporter.RigExportError as error:
            raise InputError(str(error)) from error
        run.timings[f"export_{fmt}"] = time.perf_counter() - t
        run.files.append(result.path)
        run.bones = result.bones
    if blend is not None:
        progress.update(0.9, f"saving {blend.name}", stage="export")
        blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(blend.resolve()), check_existing=False)
        run.files.append(blend)
    progress.update(1.0, "", stage="export")
    return run


def import_timings(bundle: Path, *, repeats: int = 3, height: float = 1.0) -> dict[str, float]:
    """Median seconds per import stage (read, mesh, weights, armature, total) over `repeats`
    imports, each into a fresh empty scene, plus "evaluate": the first depsgraph update after the
    import (the deformed mesh Blender draws next), which is not part of "total".
    Used by `--import-only` and benchmarks/bench_rigging.py."""
    import statistics

    import bpy

    importer = addon_module("importer")
    runs: list[dict[str, float]] = []
    for _ in range(max(repeats, 1)):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t = time.perf_counter()
        try:
            rig = importer.import_bundle(bundle, target_height=height)
        except importer.RigImportError as error:
            raise InputError(str(error)) from error
        total = time.perf_counter() - t
        t = time.perf_counter()
        bpy.context.view_layer.update()
        runs.append({**rig.timings, "total": total, "evaluate": time.perf_counter() - t})
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="rig bundle: directory, rig.json or .zip")
    parser.add_argument("--fbx", type=Path, help="write an FBX file")
    parser.add_argument("--glb", type=Path, help="write a binary glTF file")
    parser.add_argument("--blend", type=Path, help="save the scene as a .blend file")
    targets, default = list_presets(kind="export"), default_preset_name("export")
    parser.add_argument(
        "--target", choices=targets, default=default, help=f"game-engine export preset (default {default})"
    )
    parser.add_argument(
        "--height", type=float, default=1.0, help="rig height in metres (0 keeps the bundle's scale; default 1)"
    )
    parser.add_argument(
        "--import-only", action="store_true", help="only time the import into Blender (no files written)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="imports to time with --import-only (median; default 3)")


def run(args: argparse.Namespace) -> int:
    if not args.bundle.exists():
        raise InputError(f"no rig bundle at {args.bundle}")
    if args.import_only:
        timings = import_timings(args.bundle, repeats=args.repeats, height=args.height)
        print("  ".join(f"{stage} {seconds:.3f} s" for stage, seconds in timings.items()))
        return 0
    if not (args.fbx or args.glb or args.blend):
        raise InputError("nothing to write: give at least one of --fbx, --glb or --blend")
    if args.height < 0:
        raise InputError(f"--height must be zero or positive, got {args.height}")
    from .progress import tqdm_progress

    progress = tqdm_progress("export")
    result = export_bundle(
        args.bundle,
        fbx=args.fbx,
        glb=args.glb,
        blend=args.blend,
        target=args.target,
        height=args.height,
        progress=progress,
    )
    progress.update(1.0, "", stage="done")  # "done" closes the tqdm bar
    for path in result.files:
        print(path)
    return 0
