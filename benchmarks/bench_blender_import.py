"""Rig bundle import into Blender: our importer end to end, and three ways to write the weights.

For each mesh size (a 31-bone creature of capsules, 10k..200k vertices, bundle written by the
rigging core), in one run:
- `import`: `keydiff3d_addon.importer.import_bundle` (read + mesh + vertex groups + armature),
  median of `--repeats` imports into a fresh scene, plus the first depsgraph evaluation;
- vertex-group writers on the same mesh and weights: `ours_unlinked` (the import path: float
  attribute + `geometry.attribute_convert` before the object is in the scene), `ours_in_scene`
  (`write_vertex_groups` on an object in the scene: hidden from the depsgraph meanwhile),
  `convert_in_scene` (the same conversion without that care), `add_per_weight`
  (`vertex_groups[..].add([i], w)` for every non-zero weight, the usual add-on code);
- `recompute_weights`: the Recompute Weights button (numpy skinning + writing) on the imported rig.
Target: a 200k-vertex bundle imported in under 1 s.

    python benchmarks/bench_blender_import.py [--sizes 10000 40000 100000 200000] [--out DIR]
    keydiff3d bench blender_import ...   (once registered in backend/bench.py)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

# 32 keypoints, 31 tree edges: spine, four 3-bone legs, neck/head, tail, ears, fins (z up, ~1.6 long)
_SPINE = [[x, 0.0, 1.0] for x in np.linspace(-0.8, 0.8, 9)]
_LEGS = [[x, y, z] for x in (-0.6, 0.6) for y in (-0.25, 0.25) for z in (0.7, 0.35, 0.0)]
_REST = [
    [1.0, 0, 1.3],
    [1.2, 0, 1.4],
    [-1.0, 0, 1.1],
    [-1.2, 0, 1.25],
    [-1.4, 0, 1.35],
    [1.25, -0.1, 1.6],
    [1.25, 0.1, 1.6],
    [0, -0.3, 1.1],
    [0, 0.3, 1.1],
    [0, -0.45, 1.15],
    [0, 0.45, 1.15],
]
KEYPOINTS = np.array(_SPINE + _LEGS + _REST, np.float64)
EDGES = (
    [(i, i + 1) for i in range(8)]
    + [
        e
        for leg, hip in zip(range(4), (2, 2, 6, 6))
        for e in ((hip, 9 + 3 * leg), (9 + 3 * leg, 10 + 3 * leg), (10 + 3 * leg, 11 + 3 * leg))
    ]
    + [(8, 21), (21, 22), (0, 23), (23, 24), (24, 25), (22, 26), (22, 27), (4, 28), (4, 29), (28, 30), (29, 31)]
)


def creature_bundle(directory: Path, target_vertices: int) -> Path:
    """Capsules around the 31 edges (about `target_vertices` in all), skinned by the rigging core."""
    import trimesh

    from keydiff3d_addon.rigcore import RigBundle, build_skeleton, compute_skin_weights, write_bundle

    count = max(8, int(round(np.sqrt(target_vertices / len(EDGES)))))
    parts = []
    for a, b in EDGES:
        head, tail = KEYPOINTS[a], KEYPOINTS[b]
        length = float(np.linalg.norm(tail - head))
        capsule = trimesh.creation.capsule(height=length, radius=0.08, count=[count, count])
        capsule.apply_translation([0, 0, length / 2])
        capsule.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], (tail - head) / length))
        capsule.apply_translation(head)
        parts.append(capsule)
    mesh = trimesh.util.concatenate(parts)
    vertices = mesh.vertices.astype(np.float32)
    colors = np.concatenate(
        [
            (255 * (vertices - vertices.min(0)) / np.ptp(vertices, 0)).astype(np.uint8),
            np.full((len(vertices), 1), 255, np.uint8),
        ],
        1,
    )
    adjacency = np.zeros((len(KEYPOINTS), len(KEYPOINTS)))
    for a, b in EDGES:
        adjacency[a, b] = adjacency[b, a] = 1.0
    skeleton = build_skeleton(KEYPOINTS, adjacency, root=4)
    skin = compute_skin_weights(vertices, skeleton, sigma=0.05, k=4)
    write_bundle(
        directory,
        RigBundle(vertices=vertices, faces=mesh.faces.astype(np.int32), colors=colors, skeleton=skeleton, skin=skin),
    )
    return directory


def _naive_convert(context, obj, weights: np.ndarray, names: list[str]) -> None:
    """The same attribute -> vertex group conversion as ours, on an object the depsgraph evaluates."""
    import bpy

    with context.temp_override(object=obj, active_object=obj):
        for row, name in enumerate(names):
            attribute = obj.data.attributes.new(name, "FLOAT", "POINT")
            attribute.data.foreach_set("value", weights[row])
            obj.data.attributes.active = attribute
            bpy.ops.geometry.attribute_convert("EXEC_DEFAULT", False, mode="VERTEX_GROUP")


def _per_weight_add(obj, weights: np.ndarray, names: list[str]) -> None:
    for row, name in enumerate(names):
        group = obj.vertex_groups.new(name=name)
        nonzero = np.flatnonzero(weights[row])
        for index, weight in zip(nonzero.tolist(), weights[row, nonzero].tolist()):
            group.add([index], weight, "REPLACE")


def _time_writers(bundle_dir: Path, per_weight_limit: int) -> dict[str, float]:
    """Seconds to write the bundle's weights as vertex groups, four ways, on the same mesh, and
    Recompute Weights (skinning + writing) on the imported rig."""
    import bpy

    from keydiff3d.blender import addon_module

    importer, weights_module = addon_module("importer"), addon_module("weights")
    bundle = addon_module("rigcore").read_bundle(bundle_dir)
    weights, names = importer.bone_major_weights(bundle.skin), bundle.skin.bone_names
    context = bpy.context

    def fresh_object(link: bool):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = bpy.data.objects.new("m", importer.create_mesh("m", bundle.vertices, bundle.faces))
        if link:
            context.collection.objects.link(obj)
            context.view_layer.update()  # as after any redraw: the depsgraph holds an evaluated copy
        return obj

    writers = {
        "ours_unlinked": (False, lambda obj: importer.write_vertex_groups(context, obj, bundle.skin)),
        "ours_in_scene": (True, lambda obj: importer.write_vertex_groups(context, obj, bundle.skin)),
        "convert_in_scene": (True, lambda obj: _naive_convert(context, obj, weights, names)),
        "add_per_weight": (False, lambda obj: _per_weight_add(obj, weights, names)),
    }
    out: dict[str, float] = {}
    for label, (link, write) in writers.items():
        if label == "add_per_weight" and len(bundle.vertices) > per_weight_limit:
            continue
        obj = fresh_object(link)
        t = time.perf_counter()
        write(obj)
        out[label] = time.perf_counter() - t

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = importer.import_bundle(bundle_dir)
    context.view_layer.update()
    t = time.perf_counter()
    weights_module.recompute_weights(context, rig.mesh, method="gaussian", params={"sigma": 0.05}, k=4)
    out["recompute_weights"] = time.perf_counter() - t
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 40_000, 100_000, 200_000], help="target vertex counts"
    )
    parser.add_argument("--repeats", type=int, default=3, help="imports per size (median)")
    parser.add_argument(
        "--per-weight-limit", type=int, default=200_000, help="skip the slow per-weight writer above this size"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/bench/blender_import"), help="bundles, results.json, plot"
    )


def run(args: argparse.Namespace) -> int:
    from keydiff3d.export import import_timings

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        bundle_dir = creature_bundle(args.out / f"bundle_{size}", size)
        timings = import_timings(bundle_dir, repeats=args.repeats)
        writers = _time_writers(bundle_dir, args.per_weight_limit)
        vertices = json.loads((bundle_dir / "rig.json").read_text())["mesh"]["vertex_count"]
        rows.append(
            {"vertices": vertices, "bones": len(EDGES), **{f"import_{k}": v for k, v in timings.items()}, **writers}
        )
        print(_row_text(rows[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    _plot(rows, args.out / "blender_import.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'blender_import.png'}")
    return 0


def _row_text(row: dict) -> str:
    keys = [
        "import_read",
        "import_mesh",
        "import_weights",
        "import_armature",
        "import_total",
        "import_evaluate",
        "ours_unlinked",
        "ours_in_scene",
        "convert_in_scene",
        "add_per_weight",
        "recompute_weights",
    ]
    return f"{row['vertices']:>7} verts " + "  ".join(f"{k} {row[k]:.3f}" for k in keys if k in row)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = [r["vertices"] / 1000 for r in rows]
    for key, label in (
        ("import_total", "import total"),
        ("import_mesh", "mesh"),
        ("import_weights", "vertex groups"),
        ("import_read", "read bundle"),
    ):
        left.plot(x, [r[key] for r in rows], marker="o", label=label)
    left.axhline(1.0, color="grey", linestyle="--", label="target 1 s")
    left.set(xlabel="vertices (thousands)", ylabel="seconds", title="import_bundle (31 bones)")
    left.legend()
    for key in ("ours_unlinked", "ours_in_scene", "convert_in_scene", "add_per_weight", "recompute_weights"):
        points = [(r["vertices"] / 1000, r[key]) for r in rows if key in r]
        if points:
            right.plot(*zip(*points), marker="o", label=key)
    right.set(xlabel="vertices (thousands)", ylabel="seconds", title="writing 31 vertex groups; Recompute Weights")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
