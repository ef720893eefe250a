"""`keydiff3d bench skinning`: skin weights on real artist-rigged creatures against Blender's bone heat,
rigid nearest bone and the artist's own weights, with speed on large meshes and torn edges on the
product's own rigs.

Three sections, each in one run of this file (docs/bench/skinning.md):

1. Real creatures (`--assets DIR`, default the nine dev creatures; any folder of rigged .glb/.gltf
   files works the same, e.g. a held-out set). Every method skins the same skeleton: the artist's
   weighted bones as Blender's glTF importer builds them (`evaluation.rigged_assets`). Error = mean
   vertex distance between the method's and the artist's linear blend skinning over the clip frames
   (`--frames` per clip), in % of the bounding-box diagonal. Methods: `heat` (rigcore's default,
   with the backend's embree + scipy back ends), `heat (as given)` (the same without the placeholder
   bone rule: Blender's algorithm alone), `gaussian`, `gaussian_scaled` (rigcore, preset
   parameters), Blender bone heat (`parent_set(ARMATURE_AUTO)` in bpy) and rigid nearest bone.
   Geometric means and ratios to Blender's bone heat; unweighted vertices; seconds.
   Workbench renders (bpy) of the most deformed frame, the methods side by side, coloured by each
   vertex's distance to the artist's deformation, for the first `--renders` assets.
2. Speed (`--sizes`): a procedural quadruped with toes and ears (marching cubes of a capsule union,
   subdivided: bench_rigging's creatures) at each size, 31 deform bones: `heat` with the backend's
   back ends and with the add-on's numpy defaults (`--numpy-sizes`), against Blender's bone heat on
   the same mesh and armature, plus the largest weight difference between ours and Blender's.
3. The product's own rigs (`--product`): predicted skeletons (`rig-mesh` without --keypoints) on
   the creatures of section 1 and visual-hull meshes of the demo sample and `--hull-creatures`
   synthetic creatures (`run_views_pipeline` on rendered views): torn edges under
   `evaluation.deformation.posability` (each bone bent 35 degrees) for the bundle's `heat` weights
   against Blender's bone heat on the same mesh and skeleton; parentless bones; the share of each tip
   bone outside the mesh (winding number on the full mesh).

Single-threaded BLAS (set OMP_NUM_THREADS=1 before the run for steady timings).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METHODS = ("heat", "heat_as_given", "gaussian", "gaussian_scaled", "bone_heat", "rigid")
LABELS = {
    "heat": "heat (ours)",
    "heat_as_given": "heat, as given",
    "gaussian": "gaussian",
    "gaussian_scaled": "gaussian_scaled",
    "bone_heat": "Blender bone heat",
    "rigid": "rigid nearest",
}
RENDERED = ("artist", "heat", "bone_heat", "gaussian_scaled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from keydiff3d.paths import RIGGED_ASSETS_DIR

    parser.add_argument(
        "--assets",
        type=Path,
        default=RIGGED_ASSETS_DIR,
        help="folder of rigged .glb/.gltf creatures (default: the dev set)",
    )
    parser.add_argument("--frames", type=int, default=20, help="frames sampled per clip")
    parser.add_argument("--renders", type=int, default=3, help="render the first N assets (0: none)")
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[100_000, 200_000], help="vertex counts of the speed section"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings per size (medians are reported)")
    parser.add_argument(
        "--numpy-sizes", type=int, nargs="*", default=[100_000], help="sizes also timed with the add-on's numpy path"
    )
    parser.add_argument(
        "--product", action=argparse.BooleanOptionalAction, default=True, help="section 3: the product's own rigs"
    )
    parser.add_argument(
        "--hull-creatures", type=int, default=3, help="synthetic creatures rigged from visual-hull meshes"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("out/bench/skinning/cache"), help="loader cache (.npz per asset)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/bench/skinning"), help="results.json, skinning.md, skinning.png, renders"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from keydiff3d.bench import machine_description

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine_description(), "command": _command(args), "assets_dir": str(args.assets)}
    results["real"] = real_creatures(args.assets, args.frames, args.cache, args.out, args.renders)
    print(real_table(results["real"]), flush=True)
    if args.sizes:
        results["speed"] = [speed_row(n, n in args.numpy_sizes, args.repeats) for n in args.sizes]
        print(speed_table(results["speed"]), flush=True)
    if args.product:
        results["product"] = product_rigs(args.assets, args.hull_creatures, args.out / "product", args.cache)
        print(product_table(results["product"]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results["real"], args.out / "skinning.png")
    (args.out / "skinning.md").write_text(report(results))
    print(f"wrote {args.out / 'results.json'}, {args.out / 'skinning.md'}, {args.out / 'skinning.png'}")
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = [
        "keydiff3d bench skinning",
        f"--assets {args.assets}",
        f"--frames {args.frames}",
        f"--renders {args.renders}",
    ]
    parts.append("--sizes " + " ".join(map(str, args.sizes)) if args.sizes else "--sizes")
    parts.append(f"--repeats {args.repeats}")
    parts.append("--numpy-sizes " + " ".join(map(str, args.numpy_sizes)) if args.numpy_sizes else "--numpy-sizes")
    parts.append(f"--hull-creatures {args.hull_creatures}" if args.product else "--no-product")
    return " ".join(parts)


# --------------------------------------------------------------------------- methods


def rig_bones(names, heads, tails, parents, deform):
    """rigcore Bones of an armature given as arrays (parents index earlier bones, -1 at roots)."""
    from keydiff3d_addon.rigcore import Bone

    bones = []
    for i, name in enumerate(names):
        parent = names[parents[i]] if parents[i] >= 0 else None
        bones.append(Bone(name, np.asarray(heads[i], float), np.asarray(tails[i], float), parent, i, bool(deform[i])))
    return bones


def skin_methods(
    vertices, faces, names, heads, tails, parents, deform, methods=METHODS
) -> dict[str, tuple[np.ndarray, float]]:
    """method -> ((V, B) weights over all bones (0 for non-deforming ones), seconds)."""
    from keydiff3d.evaluation.bone_heat import blender_bone_heat
    from keydiff3d.rigging.heat_backends import heat_accelerators
    from keydiff3d_addon.rigcore import (
        compute_skin_weights,
        load_category_preset,
        segment_distances,
    )

    bones = rig_bones(names, heads, tails, parents, deform)
    columns = np.flatnonzero(deform)
    preset = load_category_preset("quadruped").skinning  # the creature presets' parameters
    out = {}
    for method in methods:
        start = time.perf_counter()
        dense = np.zeros((len(vertices), len(names)))
        if method == "bone_heat":
            heat = blender_bone_heat(vertices, faces, heads, tails, parents, deform=deform, names=names)
            out[method] = (heat.weights, heat.seconds)
            continue
        if method == "rigid":
            nearest = segment_distances(vertices, heads[columns], tails[columns]).argmin(1)
            dense[np.arange(len(vertices)), columns[nearest]] = 1.0
        else:
            kind = "heat" if method.startswith("heat") else method
            extra = heat_accelerators(vertices, faces) if kind == "heat" else {}
            params = {
                "sigma": preset.sigma,
                "sharpness": preset.sharpness,
                "placeholder_tails": method != "heat_as_given",
            }
            skin = compute_skin_weights(vertices, bones, faces=faces, method=kind, k=4, **params, **extra)
            dense[:, columns] = skin.dense()
        out[method] = (dense, time.perf_counter() - start)
    return out


# --------------------------------------------------------------------------- 1. real creatures


def real_creatures(folder: Path, frames: int, cache: Path, out: Path, renders: int) -> list[dict]:
    from keydiff3d.evaluation.deformation import (
        linear_blend_skinning,
        mean_vertex_error,
    )
    from keydiff3d.evaluation.rigged_assets import (
        asset_files,
        load_rigged_asset,
        manifest_categories,
    )

    categories = manifest_categories(folder)
    rows = []
    for index, path in enumerate(asset_files(folder)):
        asset = load_rigged_asset(
            path, max_frames_per_clip=frames, category=categories.get(path.name, ""), cache_dir=cache
        )
        matrices = asset.all_matrices()
        weights = skin_methods(
            asset.vertices, asset.faces, asset.bone_names, asset.heads, asset.tails, asset.parents, asset.deforming
        )
        row = {"asset": asset.name, "category": asset.category, "vertices": len(asset.vertices)}
        row.update({"bones": int(asset.deforming.sum()), "frames": len(matrices)})
        for method, (dense, seconds) in weights.items():
            row[f"{method}_err"] = (
                100.0 * mean_vertex_error(asset.vertices, dense, asset.weights, matrices) / asset.diagonal
            )
            row[f"{method}_unweighted"] = int((dense.sum(1) <= 0).sum())
            row[f"{method}_s"] = seconds
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if index < renders:
            frame = int(np.argmax(np.linalg.norm(asset.posed() - asset.vertices, axis=-1).mean(1)))
            reference = linear_blend_skinning(asset.vertices, asset.weights, matrices[[frame]])[0]
            panels = [("artist", reference, np.zeros(len(reference)))]
            for method in RENDERED[1:]:
                posed = linear_blend_skinning(asset.vertices, weights[method][0], matrices[[frame]])[0]
                panels.append((LABELS[method], posed, np.linalg.norm(posed - reference, axis=1) / asset.diagonal))
            render_panels(
                panels, asset.faces, out / f"skinning_{asset.name.lower()}.png", title=f"{asset.name}, frame {frame}"
            )
    return rows


def geometric_mean_ratio(rows: list[dict], method: str, reference: str = "bone_heat") -> float:
    return float(np.exp(np.mean([np.log(r[f"{method}_err"] / r[f"{reference}_err"]) for r in rows])))


def real_table(rows: list[dict]) -> str:
    head = (
        "| asset | V | bones | "
        + " | ".join(LABELS[m] for m in METHODS)
        + " | heat / bone heat | unweighted: ours / Blender |"
    )
    lines = [head, "|" + "---|" * (len(METHODS) + 5)]
    for r in rows:
        cells = " | ".join(f"{r[f'{m}_err']:.3f}" for m in METHODS)
        ratio = r["heat_err"] / r["bone_heat_err"]
        unweighted = f"{r['heat_unweighted']} / {r['bone_heat_unweighted']}"
        lines.append(f"| {r['asset']} | {r['vertices']} | {r['bones']} | {cells} | {ratio:.2f} | {unweighted} |")
    gmeans = " | ".join(f"{geometric_mean_ratio(rows, m):.2f}x" for m in METHODS)
    worst = max(r["heat_err"] / r["bone_heat_err"] for r in rows)
    lines.append(f"| **geometric mean / bone heat** | | | {gmeans} | worst {worst:.2f} | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- renders


def render_panels(panels, faces, path: Path, title: str = "", size: int = 200, clip: float = 0.02) -> Path:
    """Workbench renders (bpy) of posed meshes, one panel each, vertices coloured by `error`
    (fraction of the diagonal, clipped at `clip`: white = 0, red = clip), tiled into one small PNG."""
    import tempfile

    import bpy
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mathutils import Vector

    images = []
    colormap = plt.get_cmap("Reds")
    for _, vertices, error in panels:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        mesh = bpy.data.meshes.new("posed")
        mesh.from_pydata([tuple(p) for p in vertices], [], [tuple(int(i) for i in f) for f in faces])
        colours = colormap(np.clip(np.asarray(error) / clip, 0, 1) * 0.85)
        attribute = mesh.color_attributes.new("error", "FLOAT_COLOR", "POINT")
        attribute.data.foreach_set("color", colours.astype(np.float32).ravel())
        obj = bpy.data.objects.new("posed", mesh)
        scene.collection.objects.link(obj)
        lo, hi = vertices.min(0), vertices.max(0)
        centre, extent = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
        camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        camera.data.type, camera.data.ortho_scale = "ORTHO", 0.9 * extent
        scene.collection.objects.link(camera)
        direction = Vector((0.9, -1.6, 0.7)).normalized()
        camera.location = Vector(centre) + direction * 2.0 * extent
        camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
        scene.camera = camera
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.shading.color_type = "VERTEX"
        scene.render.resolution_x = scene.render.resolution_y = size
        scene.render.film_transparent = False
        with tempfile.TemporaryDirectory() as tmp:
            scene.render.filepath = str(Path(tmp) / "panel.png")
            bpy.ops.render.render(write_still=True)
            images.append(plt.imread(scene.render.filepath))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 * len(panels), 1.75))
    for ax, image, (label, _, error) in zip(np.atleast_1d(axes), images, panels):
        ax.imshow(image)
        ax.set_axis_off()
        mean = float(np.mean(error)) * 100
        ax.set_title(label if label == "artist" else f"{label}\n{mean:.2f}%", fontsize=6)
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    width = 0.8 / len(METHODS)
    x = np.arange(len(rows))
    for i, method in enumerate(METHODS):
        ax.bar(x + i * width, [r[f"{method}_err"] for r in rows], width, label=LABELS[method])
    ax.set_xticks(x + width * (len(METHODS) - 1) / 2, [r["asset"] for r in rows], fontsize=8)
    ax.set(
        yscale="log",
        ylabel="mean vertex error, % of diagonal",
        title="deformation vs the artist's own weights, same skeleton",
    )
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def limit_influences(weights: np.ndarray, k: int = 4) -> np.ndarray:
    """(V, B) weights keeping each row's k largest, renormalised: what Blender's FBX and glTF
    exporters do to bone heat's unlimited influences (and what rigcore's heat does)."""
    out = np.array(weights, np.float64)
    np.put_along_axis(out, np.argsort(-out, 1)[:, k:], 0.0, 1)
    total = out.sum(1, keepdims=True)
    return np.where(total > 0, out / np.maximum(total, 1e-12), 0.0)


# --------------------------------------------------------------------------- 2. speed


@dataclass(frozen=True)
class CapsuleCreature:
    """bench_rigging's Creature shape (joints, parents, radius per joint)."""

    name: str
    joints: np.ndarray
    parents: np.ndarray
    radius: np.ndarray


def _bench_rigging():
    """benchmarks/bench_rigging.py as a module (its procedural creatures and their meshes)."""
    import importlib.util
    import sys

    name = "keydiff3d_bench_rigging"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("bench_rigging.py"))
        sys.modules[name] = module = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def speed_creature() -> CapsuleCreature:
    """bench_rigging's quadruped with a toe on each foot and two ears: 25 joints, 24 edge bones +
    7 leaf bones = 31 deform bones."""
    base = _bench_rigging().quadruped()
    joints, parents, radius = [*base.joints], [*base.parents], [*base.radius]
    names = [
        "pelvis",
        "spine",
        "chest",
        "neck",
        "head",
        "tail1",
        "tail2",
        "hipL",
        "kneeL",
        "footL",
        "shoulderL",
        "elbowL",
        "handL",
        "hipR",
        "kneeR",
        "footR",
        "shoulderR",
        "elbowR",
        "handR",
    ]
    for foot in ("footL", "handL", "footR", "handR"):
        j = names.index(foot)
        joints.append(base.joints[j] + [0.0, -0.07, -0.01])
        parents.append(j)
        radius.append(0.025)
    head = names.index("head")
    for side in (1.0, -1.0):
        joints.append(base.joints[head] + [0.04 * side, 0.02, 0.09])
        parents.append(head)
        radius.append(0.02)
    return CapsuleCreature("quadruped31", np.array(joints), np.array(parents), np.array(radius))


def speed_row(size: int, numpy_too: bool, repeats: int = 3) -> dict:
    from keydiff3d.evaluation.bone_heat import blender_bone_heat
    from keydiff3d.rigging.heat_backends import heat_accelerators
    from keydiff3d_addon.rigcore import build_skeleton, compute_skin_weights

    creature = speed_creature()
    vertices, faces = _bench_rigging().creature_mesh(creature, size)
    adjacency = np.zeros((len(creature.joints),) * 2)
    for j, p in enumerate(creature.parents):
        if p >= 0:
            adjacency[j, p] = adjacency[p, j] = 1.0
    skeleton = build_skeleton(creature.joints, adjacency, root=0, leaf_bones=True)
    bones = skeleton.bones
    row = {"vertices": len(vertices), "faces": len(faces), "bones": len(skeleton.deform_bones()), "repeats": repeats}
    names = [b.name for b in bones]
    parents = [names.index(b.parent) if b.parent else -1 for b in bones]
    heads, tails = [b.head for b in bones], [b.tail for b in bones]
    wall, cpu, blender_wall, blender_cpu = [], [], [], []
    for _ in range(repeats):  # Blender's time varies 2-3x between runs on this shared machine: median of several
        start, start_cpu = time.perf_counter(), time.process_time()
        ours = compute_skin_weights(
            vertices, skeleton, faces=faces, method="heat", **heat_accelerators(vertices, faces)
        )
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        start_cpu = time.process_time()
        heat = blender_bone_heat(vertices, faces, heads, tails, parents, deform=[b.deform for b in bones], names=names)
        blender_cpu.append(time.process_time() - start_cpu)
        blender_wall.append(heat.seconds)
    row.update({"heat_s": float(np.median(wall)), "heat_cpu_s": float(np.median(cpu)), "heat_s_all": wall})
    row.update(
        {
            "bone_heat_s": float(np.median(blender_wall)),
            "bone_heat_cpu_s": float(np.median(blender_cpu)),
            "bone_heat_s_all": blender_wall,
        }
    )
    if numpy_too:
        start = time.perf_counter()
        numpy_skin = compute_skin_weights(vertices, skeleton, faces=faces, method="heat")
        row["heat_numpy_s"] = time.perf_counter() - start
        row["numpy_vs_backend_max_dw"] = float(np.abs(numpy_skin.dense() - ours.dense()).max())
    row["bone_heat_unweighted"] = heat.unweighted
    blender = heat.weights[:, [i for i, b in enumerate(bones) if b.deform]]
    difference = np.abs(ours.dense() - limit_influences(blender))
    row["vs_blender_max_dw"] = float(difference.max())
    row["vs_blender_mean_dw"] = float(difference.sum(1).mean())
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return row


def speed_table(rows: list[dict]) -> str:
    header = (
        "| vertices | bones | heat (backend) s wall / CPU | heat (numpy, add-on) s | Blender bone heat s wall / CPU |"
    )
    header += (
        " speed-up wall / CPU | Blender's runs s | max / mean per-vertex sum of abs weight differences vs Blender |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        numpy_s = f"{r['heat_numpy_s']:.1f}" if "heat_numpy_s" in r else "-"
        ours = f"{r['heat_s']:.2f} / {r['heat_cpu_s']:.2f}"
        blender = f"{r['bone_heat_s']:.1f} / {r['bone_heat_cpu_s']:.1f}"
        ratio = f"{r['bone_heat_s'] / r['heat_s']:.1f}x / {r['bone_heat_cpu_s'] / r['heat_cpu_s']:.1f}x"
        runs = ", ".join(f"{t:.1f}" for t in r["bone_heat_s_all"])
        difference = f"{r['vs_blender_max_dw']:.1e} / {r['vs_blender_mean_dw']:.1e}"
        lines.append(
            f"| {r['vertices']} | {r['bones']} | {ours} | {numpy_s} | {blender} | {ratio} | {runs} | {difference} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- 3. the product's own rigs


@dataclass
class ProductRig:
    """A bundle the product made: z-up vertices (V, 3), faces, bones, the bundle's skin (V, B)."""

    name: str
    source: str
    vertices: np.ndarray
    faces: np.ndarray
    bones: list
    weights: np.ndarray
    notes: dict = field(default_factory=dict)


def product_rigs(folder: Path, hull_creatures: int, out: Path, cache: Path) -> list[dict]:
    rows = []
    for rig in _predicted_rigs(folder, out) + _hull_rigs(hull_creatures, out):
        rows.append(product_row(rig))
        print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    return rows


def _category_preset(category: str) -> str:
    return category if category in ("quadruped", "biped", "bird") else "generic"


def _bundle_rig(bundle_dir: Path, name: str, source: str) -> ProductRig:
    from keydiff3d.rigging.io import load_bundle
    from keydiff3d_addon.rigcore.frames import to_z_up

    bundle = load_bundle(bundle_dir)

    def turn(points):
        return to_z_up(points, bundle.up_axis)

    bones = []
    for b in bundle.skeleton.bones:
        b.head, b.tail = turn(np.asarray(b.head, float)), turn(np.asarray(b.tail, float))
        bones.append(b)
    weights = np.zeros((len(bundle.vertices), len(bones)))
    dense = bundle.skin.dense()
    for column, bone_name in enumerate(bundle.skin.bone_names):
        weights[:, [b.name for b in bones].index(bone_name)] = dense[:, column]
    return ProductRig(name, source, turn(np.asarray(bundle.vertices, float)), np.asarray(bundle.faces), bones, weights)


def _predicted_rigs(folder: Path, out: Path) -> list[ProductRig]:
    from keydiff3d.evaluation.rigged_assets import asset_files, manifest_categories
    from keydiff3d.pipeline.mesh_cli import rig_mesh_file

    categories = manifest_categories(folder)
    rigs = []
    for path in asset_files(folder):
        target = out / f"predicted_{path.stem}"
        rig_mesh_file(path, target, preset=_category_preset(categories.get(path.name, "")), device="cpu", glb=False)
        rigs.append(_bundle_rig(target, path.stem, "predicted skeleton, artist mesh"))
    return rigs


def _hull_rigs(count: int, out: Path) -> list[ProductRig]:
    from keydiff3d.demo import DEMO_RENDER_SIZE, sample_mesh
    from keydiff3d.multiview.render_generator import RenderGenerator
    from keydiff3d.pipeline.options import PipelineOptions
    from keydiff3d.pipeline.run import run_views_pipeline
    from keydiff3d.synthetic.creatures import generate_creature

    jobs = [("demo sample", *sample_mesh())]
    for i, category in enumerate(("quadruped", "biped", "bird", "generic")[:count]):
        creature = generate_creature(category, 1000 + i)
        jobs.append((f"synthetic {category} {1000 + i}", creature, category))
    rigs = []
    for name, mesh, category in jobs:
        views = RenderGenerator(size=DEMO_RENDER_SIZE).from_mesh(mesh)
        target = out / ("hull_" + name.replace(" ", "_"))
        options = PipelineOptions(
            preset=_category_preset(category), device="cpu", reconstruction="hull", export_glb=False
        )
        run_views_pipeline(views, options, out_dir=target, source=name)
        rigs.append(_bundle_rig(target, name, "predicted skeleton, visual-hull mesh"))
    return rigs


def product_row(rig: ProductRig) -> dict:
    import igl

    from keydiff3d.evaluation.bone_heat import blender_bone_heat
    from keydiff3d.evaluation.deformation import posability

    names = [b.name for b in rig.bones]
    parents = np.array([names.index(b.parent) if b.parent else -1 for b in rig.bones])
    heads, tails = np.array([b.head for b in rig.bones]), np.array([b.tail for b in rig.bones])
    deform = np.array([b.deform for b in rig.bones])
    heat = blender_bone_heat(rig.vertices, rig.faces, heads, tails, parents, deform=deform, names=names)
    tested = np.flatnonzero(deform)
    ours = posability(rig.vertices, rig.faces, rig.weights, heads, tails, parents, bones=tested)
    theirs = posability(rig.vertices, rig.faces, heat.weights, heads, tails, parents, bones=tested)
    exported = posability(rig.vertices, rig.faces, limit_influences(heat.weights), heads, tails, parents, bones=tested)
    tips = [i for i, b in enumerate(rig.bones) if b.kind == "leaf"]
    outside = []
    if tips:
        t = np.linspace(0.0, 1.0, 9)[1:]
        samples = (heads[tips][:, None] + t[None, :, None] * (tails[tips] - heads[tips])[:, None]).reshape(-1, 3)
        winding = igl.winding_number(np.asarray(rig.vertices, np.float64), np.asarray(rig.faces, np.int64), samples)
        outside = (winding.reshape(len(tips), -1) < 0.5).mean(1)
    return {
        "rig": rig.name,
        "source": rig.source,
        "vertices": len(rig.vertices),
        "deform_bones": int(deform.sum()),
        "parentless_bones": int((parents < 0).sum()),
        "heat_torn": ours.mean_torn,
        "bone_heat_torn": theirs.mean_torn,
        "bone_heat_top4_torn": exported.mean_torn,
        "heat_bones_tearing": int((ours.torn[tested] > 0).sum()),
        "bone_heat_bones_tearing": int((theirs.torn[tested] > 0).sum()),
        "heat_unweighted": int((rig.weights.sum(1) <= 0).sum()),
        "bone_heat_unweighted": heat.unweighted,
        "tips": len(tips),
        "tips_over_25pct_outside": int((np.asarray(outside) > 0.25).sum()) if tips else 0,
        "tip_outside_mean": float(np.mean(outside)) if tips else 0.0,
    }


def product_table(rows: list[dict]) -> str:
    header = "| rig | mesh | V | deform bones | torn edges %: heat / Blender (4 influences) / Blender (all) |"
    header += " bones tearing: heat / Blender (all) |"
    lines = [
        header + " unweighted: heat / Blender | parentless bones | tips > 25% outside |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        failed = r["bone_heat_unweighted"] == r["vertices"]
        blender = "no weights" if failed else f"{100 * r['bone_heat_top4_torn']:.3f} / {100 * r['bone_heat_torn']:.3f}"
        torn = f"{100 * r['heat_torn']:.3f} / {blender}"
        tearing = f"{r['heat_bones_tearing']} / {'-' if failed else r['bone_heat_bones_tearing']}"
        unweighted = f"{r['heat_unweighted']} / {r['bone_heat_unweighted']}"
        tips = f"{r['tips_over_25pct_outside']} of {r['tips']}"
        mesh = r["source"].split(", ")[1]
        cells = f"{torn} | {tearing} | {unweighted} | {r['parentless_bones']} | {tips}"
        lines.append(f"| {r['rig']} | {mesh} | {r['vertices']} | {r['deform_bones']} | {cells} |")
    weighted = [r for r in rows if r["bone_heat_unweighted"] < r["vertices"]]
    if weighted:
        means = [
            100 * np.mean([r[key] for r in weighted]) for key in ("heat_torn", "bone_heat_top4_torn", "bone_heat_torn")
        ]
        label = f"**mean, the {len(weighted)} rigs Blender weights**"
        lines.append(f"| {label} | | | | {means[0]:.3f} / {means[1]:.3f} / {means[2]:.3f} | | | | |")
    return "\n".join(lines)


def report(results: dict) -> str:
    parts = [
        f"Command: `{results['command']}`",
        f"Machine: {results['machine']}",
        "",
        "## Real creatures",
        "",
        real_table(results["real"]),
    ]
    if "speed" in results:
        parts += ["", "## Speed", "", speed_table(results["speed"])]
    if "product" in results:
        parts += ["", "## The product's own rigs", "", product_table(results["product"])]
    return "\n".join(parts) + "\n"
