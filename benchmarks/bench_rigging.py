"""`keydiff3d bench rigging`: our skeleton + skinning vs Blender's automatic weights (bone heat).

Test assets are procedural creatures whose true deformation is known: a smooth union of capsules
(marching cubes on the union's signed distance, one connected watertight surface), one capsule per
bone. Reference weights are rigid parts (each vertex belongs to its nearest capsule) blended
linearly across the joint planes - not a distance kernel, so no method under test shares its form.
Random poses (every bone rotated up to `--max-angle` degrees about its head) deform the mesh with
linear blend skinning; a method's error is the mean vertex distance to the reference deformation,
in % of the creature's largest side. Asset "quadruped" is used to choose parameters; "biped" is
held out (different shape and proportions, never used for tuning).

Timing: skeleton + skinning (ours) vs `bpy.ops.object.parent_set(type='ARMATURE_AUTO')` on the same
mesh and armature, both single-threaded on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Creature:
    """joints (N, 3) z up, parents (N,) (-1 at the root), radius (N,) of the capsule of the bone
    ending at each joint (the root's entry is unused)."""

    name: str
    joints: np.ndarray
    parents: np.ndarray
    radius: np.ndarray


def _creature(name: str, spec: list[tuple[str, str | None, tuple[float, float, float], float]]) -> Creature:
    names = [s[0] for s in spec]
    parents = np.array([names.index(s[1]) if s[1] else -1 for s in spec])
    return Creature(name, np.array([s[2] for s in spec], float), parents, np.array([s[3] for s in spec], float))


def quadruped() -> Creature:
    spec = [
        ("pelvis", None, (0.0, 0.30, 0.50), 0.0),
        ("spine", "pelvis", (0.0, 0.0, 0.53), 0.11),
        ("chest", "spine", (0.0, -0.30, 0.55), 0.12),
        ("neck", "chest", (0.0, -0.45, 0.72), 0.06),
        ("head", "neck", (0.0, -0.58, 0.80), 0.07),
        ("tail1", "pelvis", (0.0, 0.48, 0.55), 0.035),
        ("tail2", "tail1", (0.0, 0.66, 0.48), 0.025),
    ]
    for side, x in (("L", 0.10), ("R", -0.10)):
        spec += [
            (f"hip{side}", "pelvis", (x, 0.30, 0.42), 0.07),
            (f"knee{side}", f"hip{side}", (x, 0.33, 0.23), 0.045),
            (f"foot{side}", f"knee{side}", (x, 0.30, 0.03), 0.035),
            (f"shoulder{side}", "chest", (x, -0.30, 0.45), 0.07),
            (f"elbow{side}", f"shoulder{side}", (x, -0.32, 0.25), 0.045),
            (f"hand{side}", f"elbow{side}", (x, -0.30, 0.03), 0.035),
        ]
    return _creature("quadruped", spec)


def biped() -> Creature:
    spec = [
        ("pelvis", None, (0.0, 0.0, 0.50), 0.0),
        ("spine", "pelvis", (0.0, 0.01, 0.66), 0.09),
        ("chest", "spine", (0.0, 0.0, 0.80), 0.10),
        ("neck", "chest", (0.0, -0.01, 0.90), 0.035),
        ("head", "neck", (0.0, -0.02, 1.00), 0.065),
    ]
    for side, s in (("L", 1.0), ("R", -1.0)):
        spec += [
            (f"hip{side}", "pelvis", (0.09 * s, 0.0, 0.47), 0.06),
            (f"knee{side}", f"hip{side}", (0.10 * s, -0.02, 0.26), 0.05),
            (f"ankle{side}", f"knee{side}", (0.10 * s, 0.0, 0.05), 0.04),
            (f"toe{side}", f"ankle{side}", (0.10 * s, -0.10, 0.02), 0.025),
            (f"shoulder{side}", "chest", (0.17 * s, 0.0, 0.84), 0.05),
            (f"elbow{side}", f"shoulder{side}", (0.38 * s, 0.02, 0.83), 0.035),
            (f"wrist{side}", f"elbow{side}", (0.58 * s, 0.0, 0.82), 0.028),
        ]
    return _creature("biped", spec)


ASSETS = {"quadruped": quadruped, "biped": biped}


# --------------------------------------------------------------------------- mesh and reference


def _bones_of(c: Creature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B,) child joint of each bone, heads (B, 3), tails (B, 3), in joint order."""
    child = np.flatnonzero(c.parents >= 0)
    return child, c.joints[c.parents[child]], c.joints[child]


def capsule_sdf(points: np.ndarray, c: Creature) -> np.ndarray:
    """(M, B) signed distance of points to each bone's capsule."""
    from keydiff3d_addon.rigcore import segment_distances

    child, heads, tails = _bones_of(c)
    return segment_distances(points, heads, tails) - c.radius[child]


def creature_mesh(c: Creature, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the smooth capsule union, subdivided once: about `target_vertices` vertices."""
    import trimesh
    from skimage.measure import marching_cubes

    lo, hi = c.joints.min(0) - 0.15, c.joints.max(0) + 0.15

    def surface(res: int):
        axes = [np.linspace(lo[i], hi[i], int(res * (hi[i] - lo[i]) / (hi - lo).max()) + 2) for i in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        field = np.concatenate(
            [_smooth_union(capsule_sdf(grid[s : s + 200_000], c)) for s in range(0, len(grid), 200_000)]
        )
        field = field.reshape([len(a) for a in axes])
        spacing = [a[1] - a[0] for a in axes]
        verts, faces, _, _ = marching_cubes(field, 0.0, spacing=spacing)
        return verts + lo, faces

    verts, faces = surface(64)
    res = int(64 * np.sqrt(target_vertices / 4 / len(verts)))
    verts, faces = surface(max(res, 24))
    verts, faces = trimesh.remesh.subdivide(verts, faces)
    mesh = trimesh.Trimesh(verts, faces, process=True)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _smooth_union(sdf: np.ndarray, k: float = 0.02) -> np.ndarray:
    """Polynomial smooth minimum over bones (soft joints instead of creases)."""
    out = sdf[:, 0]
    for b in range(1, sdf.shape[1]):
        h = np.clip(0.5 + 0.5 * (sdf[:, b] - out) / k, 0.0, 1.0)
        out = sdf[:, b] * (1 - h) + out * h - k * h * (1 - h)
    return out


def reference_weights(vertices: np.ndarray, c: Creature, skeleton, band: float = 0.6) -> np.ndarray:
    """(V, B) reference weights in the column order of `skeleton.deform_bones()`: rigid parts blended
    across joint planes. A vertex belongs to its nearest capsule's bone; across the plane through each
    joint (normal = bisector of the two bones for a chain, the child bone's direction at a branch)
    weight moves linearly from parent to child bone over +-`band` x the child's radius."""
    child, heads, tails = _bones_of(c)
    bone_of_joint = {int(j): b for b, j in enumerate(child)}
    part = capsule_sdf(vertices, c).argmin(1)
    w = np.zeros((len(vertices), len(child)))
    w[np.arange(len(vertices)), part] = 1.0
    for b, j in enumerate(child):
        p = bone_of_joint.get(int(c.parents[j]))
        if p is None:
            continue
        d_child = (tails[b] - heads[b]) / np.linalg.norm(tails[b] - heads[b])
        siblings = np.sum(c.parents == c.parents[j])
        normal = d_child
        if siblings == 1:
            d_parent = (tails[p] - heads[p]) / np.linalg.norm(tails[p] - heads[p])
            normal = (d_child + d_parent) / np.linalg.norm(d_child + d_parent)
        s = (vertices - heads[b]) @ normal
        width = band * c.radius[j]
        near = (
            np.isin(part, (b, p))
            & (np.abs(s) < width)
            & (np.linalg.norm(vertices - heads[b], axis=1) < 2.5 * c.radius[j] + 0.05)
        )
        t = np.clip((s[near] + width) / (2 * width), 0.0, 1.0)
        w[near, b], w[near, p] = t, 1.0 - t
    column = {int(j): b for b, j in enumerate(child)}
    return (w / w.sum(1, keepdims=True))[:, [column[b.keypoint] for b in skeleton.deform_bones()]]


# --------------------------------------------------------------------------- poses


def bone_transforms(skeleton, rotations: dict[str, np.ndarray]) -> np.ndarray:
    """(B, 4, 4) world transforms of the skeleton's deform bones for local rotations about heads."""
    world: dict[str, np.ndarray] = {}
    for b in skeleton.bones:
        local = np.eye(4)
        local[:3, :3] = rotations.get(b.name, np.eye(3))
        local[:3, 3] = b.head - local[:3, :3] @ b.head
        world[b.name] = (world[b.parent] if b.parent else np.eye(4)) @ local
    return np.stack([world[b.name] for b in skeleton.deform_bones()])


def random_pose(skeleton, rng: np.random.Generator, max_angle: float) -> dict[str, np.ndarray]:
    from keydiff3d.evaluation.deformation import rotation_matrix

    return {
        b.name: rotation_matrix(rng.normal(size=3), np.radians(rng.uniform(-max_angle, max_angle)))
        for b in skeleton.bones
        if b.kind == "edge"
    }


def blend(vertices: np.ndarray, transforms: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Linear blend skinning by (B, 4, 4) transforms; unweighted vertices stay put (as Blender does)."""
    from keydiff3d.evaluation.deformation import linear_blend_skinning

    return linear_blend_skinning(vertices, dense, transforms[None])[0]


def deformation_error(
    vertices, skeleton, reference, candidates: dict[str, np.ndarray], poses: int, max_angle: float, seed: int = 0
) -> dict[str, float]:
    """Mean vertex distance (% of the largest side) of each candidate's deformation to the reference's."""
    rng = np.random.default_rng(seed)
    extent = float(np.ptp(vertices, axis=0).max())
    errors = {name: 0.0 for name in candidates}
    for _ in range(poses):
        transforms = bone_transforms(skeleton, random_pose(skeleton, rng, max_angle))
        target = blend(vertices, transforms, reference)
        for name, dense in candidates.items():
            errors[name] += float(np.linalg.norm(blend(vertices, transforms, dense) - target, axis=1).mean())
    return {name: 100.0 * e / poses / extent for name, e in errors.items()}


# --------------------------------------------------------------------------- methods


def creature_skeleton(c: Creature):
    from keydiff3d_addon.rigcore import build_skeleton

    adjacency = np.zeros((len(c.joints),) * 2)
    for j, p in enumerate(c.parents):
        if p >= 0:
            adjacency[j, p] = adjacency[p, j] = 1.0
    return build_skeleton(c.joints, adjacency, root=int(np.flatnonzero(c.parents < 0)[0]))


def ours(vertices, faces, c: Creature, method: str, params: dict) -> tuple[np.ndarray, float]:
    from keydiff3d_addon.rigcore import compute_skin_weights

    start = time.perf_counter()
    skeleton = creature_skeleton(c)
    skin = compute_skin_weights(vertices, skeleton, faces=faces, method=method, **params)
    return skin.dense(), time.perf_counter() - start


def bone_heat(vertices, faces, skeleton) -> tuple[np.ndarray, float]:
    """Blender automatic weights on the same mesh and armature -> (V, B) deform-bone weights, seconds."""
    from keydiff3d.evaluation.bone_heat import blender_bone_heat

    bones = skeleton.bones
    index = {b.name: i for i, b in enumerate(bones)}
    heat = blender_bone_heat(
        vertices,
        faces,
        [b.head for b in bones],
        [b.tail for b in bones],
        [index[b.parent] if b.parent else -1 for b in bones],
        deform=[b.deform for b in bones],
        names=[b.name for b in bones],
        rolls=[b.roll for b in bones],
    )
    return heat.weights[:, [i for i, b in enumerate(bones) if b.deform]], heat.seconds


# --------------------------------------------------------------------------- run

# "gaussian_scaled" parameters were chosen on the quadruped only (sharpness 0.1..0.8, smoothing 0..30
# iterations; docs/bench/rigging.md); "gaussian" keeps the preset default sigma
METHOD_PARAMS = {
    "gaussian": {"sigma": 0.08},
    "gaussian_scaled": {"sharpness": 0.2, "smooth_iterations": 0},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 40_000, 100_000, 200_000], help="target vertex counts"
    )
    parser.add_argument("--quality-size", type=int, default=40_000, help="vertex count of the held-out quality asset")
    parser.add_argument("--poses", type=int, default=8, help="random poses per error measurement")
    parser.add_argument("--max-angle", type=float, default=45.0, help="largest bone rotation of a pose (degrees)")
    parser.add_argument("--no-blender", action="store_true", help="skip Blender's bone heat (ours only)")
    parser.add_argument(
        "--out", type=Path, default=Path("out/bench/rigging"), help="results.json and rigging.png go here"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [("quadruped", n) for n in args.sizes] + [("biped", args.quality_size)]
    for asset, size in jobs:
        c = ASSETS[asset]()
        vertices, faces = creature_mesh(c, size)
        skeleton = creature_skeleton(c)
        reference = reference_weights(vertices, c, skeleton)
        candidates, row = {}, {"asset": asset, "vertices": len(vertices), "faces": len(faces)}
        for method, params in METHOD_PARAMS.items():
            candidates[method], row[f"{method}_s"] = ours(vertices, faces, c, method, params)
        if not args.no_blender:
            candidates["bone_heat"], row["bone_heat_s"] = bone_heat(vertices, faces, skeleton)
            row["bone_heat_unweighted"] = int((candidates["bone_heat"].sum(1) <= 0).sum())
        for method, err in deformation_error(
            vertices, skeleton, reference, candidates, args.poses, args.max_angle
        ).items():
            row[f"{method}_err"] = err
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    (args.out / "results.json").write_text(
        json.dumps({"rows": rows, "params": METHOD_PARAMS, "poses": args.poses, "max_angle": args.max_angle}, indent=1)
    )
    _plot(rows, args.out / "rigging.png")
    print(_table(rows))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'rigging.png'}")
    return 0


def _table(rows: list[dict]) -> str:
    lines = [
        "| asset | vertices | gaussian s | gaussian_scaled s | bone heat s | speed-up (scaled) "
        "| err gaussian % | err scaled % | err bone heat % | scaled / heat |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        heat = r.get("bone_heat_s")
        lines.append(
            f"| {r['asset']} | {r['vertices']} | {r['gaussian_s']:.3f} | {r['gaussian_scaled_s']:.3f} | "
            + (f"{heat:.2f} | {heat / r['gaussian_scaled_s']:.0f}x | " if heat else "- | - | ")
            + f"{r['gaussian_err']:.3f} | {r['gaussian_scaled_err']:.3f} | "
            + (
                f"{r['bone_heat_err']:.3f} | {r['gaussian_scaled_err'] / r['bone_heat_err']:.2f} |"
                if heat
                else "- | - |"
            )
        )
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    timing = [r for r in rows if r["asset"] == "quadruped"]
    x = [r["vertices"] for r in timing]
    for key, label in (
        ("gaussian_s", "ours: gaussian"),
        ("gaussian_scaled_s", "ours: gaussian_scaled"),
        ("bone_heat_s", "Blender bone heat"),
    ):
        if key in timing[0]:
            left.plot(x, [r[key] for r in timing], "o-", label=label)
    left.set(
        xscale="log", yscale="log", xlabel="vertices", ylabel="seconds (skeleton + skinning)", title="time, 2 CPU cores"
    )
    left.legend()
    methods = [m for m in ("gaussian", "gaussian_scaled", "bone_heat") if f"{m}_err" in rows[0]]
    labels = [f"{r['asset']}\n{r['vertices'] // 1000}k" for r in rows]
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        right.bar(np.arange(len(rows)) + i * width, [r[f"{m}_err"] for r in rows], width, label=m)
    right.set_xticks(np.arange(len(rows)) + width * (len(methods) - 1) / 2, labels)
    right.set(ylabel="mean vertex error, % of size", title="deformation error vs reference (biped held out)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
