"""Artist-rigged glTF creatures as ground truth: rest mesh, artist weights, skeleton, clip poses.

One loader for every real-asset measurement (skinning, skeleton, posability benchmarks). It reads
the file with Blender's own glTF importer in the bpy module (what a user of the add-on gets), and
the skin weights from the file itself (pygltflib), because Blender keeps only one weight for a
joint listed twice in one vertex's JOINTS_0 while glTF sums them.

Frame: Blender's world frame (z up, metres) at rest, i.e. after the files' node transforms (some
put scale 100 and -90 deg about X on the mesh and armature nodes). Everything below is in it.

- `vertices` (V, 3) / `faces` (F, 3): the skinned meshes welded by position (glTF splits vertices
  at every seam and every flat-shaded edge), degenerate and repeated triangles dropped.
- `bone_names`, `heads`, `tails` (B, 3), `parents` (B,): every bone of the armature as Blender
  builds it (tails by the importer's heuristic), parent-first order, -1 at roots.
- `weights` (V, B): the artist's weights, rows summing to 1 (columns of unweighted bones are 0);
  `deforming` (B,) bool marks bones that carry weight.
- `clips`: per animation, `matrices` (T, B, 4, 4) world-space skinning matrices: the artist's
  posed vertex is sum_b weights[v, b] * matrices[t, b] @ [vertex, 1]. Each clip is evaluated from
  the rest pose (channels a clip does not animate stay at rest, as in glTF; Blender's importer
  leaves the previous clip's pose on them).

`self_test_error` is the largest distance, over sampled frames, between linear blend skinning
with Blender's own vertex groups and Blender's evaluated mesh, as a fraction of the rest mesh's
bounding-box diagonal: it checks the matrices (< 1e-4 expected).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keydiff3d_addon.rigcore.frames import to_z_up

from ..errors import InputError

CACHE_VERSION = 1


@dataclass
class Clip:
    """One animation: `frames` (T,) Blender frame numbers, `matrices` (T, B, 4, 4) world skinning matrices."""

    name: str
    frames: np.ndarray
    matrices: np.ndarray


@dataclass
class RiggedAsset:
    """An artist-rigged creature at rest plus its clips (see the module docstring for frames and shapes)."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    bone_names: list[str]
    heads: np.ndarray
    tails: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    clips: list[Clip]
    category: str = ""
    self_test_error: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def deforming(self) -> np.ndarray:
        """(B,) bool: bones that carry weight in the artist's skin."""
        return self.weights.max(0) > 0

    @property
    def diagonal(self) -> float:
        """Bounding-box diagonal of the rest mesh (the unit of every error measure)."""
        return float(np.linalg.norm(np.ptp(self.vertices, axis=0)))

    def all_matrices(self) -> np.ndarray:
        """(T_total, B, 4, 4): every frame of every clip."""
        return (
            np.concatenate([c.matrices for c in self.clips])
            if self.clips
            else np.zeros((0, len(self.bone_names), 4, 4))
        )

    def posed(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(T_total, V, 3) vertices skinned with `weights` (V, B) (default: the artist's)."""
        from .deformation import linear_blend_skinning

        return linear_blend_skinning(self.vertices, self.weights if weights is None else weights, self.all_matrices())

    # ------------------------------------------------------------------ cache

    def save(self, path: Path) -> None:
        arrays = {
            f"clip{i}_{key}": value
            for i, c in enumerate(self.clips)
            for key, value in (("frames", c.frames), ("matrices", c.matrices))
        }
        meta = {
            "version": CACHE_VERSION,
            "name": self.name,
            "category": self.category,
            "bone_names": self.bone_names,
            "clips": [c.name for c in self.clips],
            "self_test_error": self.self_test_error,
            "notes": self.notes,
        }
        np.savez_compressed(
            path,
            meta=json.dumps(meta),
            vertices=self.vertices,
            faces=self.faces,
            heads=self.heads,
            tails=self.tails,
            parents=self.parents,
            weights=self.weights,
            **arrays,
        )

    @classmethod
    def load(cls, path: Path) -> "RiggedAsset":
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION:
                raise InputError(f"{path} is a cache of another version; delete it")
            clips = [
                Clip(name, data[f"clip{i}_frames"], data[f"clip{i}_matrices"]) for i, name in enumerate(meta["clips"])
            ]
            return cls(
                meta["name"],
                data["vertices"],
                data["faces"],
                list(meta["bone_names"]),
                data["heads"],
                data["tails"],
                data["parents"],
                data["weights"],
                clips,
                meta["category"],
                meta["self_test_error"],
                list(meta["notes"]),
            )


def asset_files(folder: Path) -> list[Path]:
    """The .glb / .gltf files of a folder of rigged assets, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"no folder of rigged assets at {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".glb", ".gltf"))
    if not files:
        raise InputError(f"{folder} holds no .glb or .gltf files")
    return files


def manifest_categories(folder: Path) -> dict[str, str]:
    """file name -> category from the folder's MANIFEST.json (a list of {"file", "category"}), if any."""
    path = Path(folder) / "MANIFEST.json"
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())
    return {e["file"]: e.get("category", "") for e in entries if isinstance(e, dict) and "file" in e}


def load_rigged_asset(
    path,
    *,
    max_frames_per_clip: int | None = None,
    self_test_frames: int = 3,
    category: str = "",
    cache_dir: Path | None = None,
) -> RiggedAsset:
    """Read one artist-rigged glTF (see the module docstring). `max_frames_per_clip` samples that
    many frames evenly from each clip (None: every frame). With `cache_dir`, the result is kept as
    an .npz keyed by the file's name, size, mtime and the sampling, and read from there next time."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"rigged asset {path} does not exist")
    cache = None
    if cache_dir is not None:
        stat = path.stat()
        cache = (
            Path(cache_dir)
            / f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}-{max_frames_per_clip}-{self_test_frames}.npz"
        )
        if cache.is_file():
            return RiggedAsset.load(cache)
    asset = _import(path, max_frames_per_clip, self_test_frames, category)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        asset.save(cache)
    return asset


# --------------------------------------------------------------------------- Blender side


def _import(path: Path, max_frames: int | None, self_test_frames: int, category: str) -> RiggedAsset:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # merge_vertices off: Blender's vertices then follow the file's order, so the file's weights map 1:1
    bpy.ops.import_scene.gltf(filepath=str(path), merge_vertices=False)
    armature, meshes = _skinned_objects(bpy, path)
    notes: list[str] = []
    for track in armature.animation_data.nla_tracks if armature.animation_data else ():
        track.mute = True  # the importer stashes every clip in the NLA; evaluate one action at a time
    actions = [a for a in bpy.data.actions if _animates(a, armature)]
    _set_action(armature, None)
    bpy.context.view_layer.update()

    bones = list(armature.data.bones)  # parent-first (Blender keeps parents before children)
    names = [b.name for b in bones]
    arm_world = np.array(armature.matrix_world)
    rest_local = np.stack([np.array(b.matrix_local) for b in bones])  # armature space
    heads = _apply(arm_world, np.array([b.head_local for b in bones]))
    tails = _apply(arm_world, np.array([b.tail_local for b in bones]))
    parents = np.array([names.index(b.parent.name) if b.parent else -1 for b in bones], np.int64)

    local_parts, world_parts, group_parts, file_parts, mesh_worlds = [], [], [], [], []
    for ob in meshes:
        local = np.array([v.co[:] for v in ob.data.vertices], np.float64)
        world = _apply(np.array(ob.matrix_world), local)
        groups = _vertex_group_weights(ob, names)
        from_file = _file_weights(path, ob, local, names, notes)
        local_parts.append(local)
        world_parts.append(world)
        group_parts.append(groups)
        file_parts.append(groups if from_file is None else from_file)
        mesh_worlds.append(np.array(ob.matrix_world))
    split_world = np.concatenate(world_parts)
    split_faces = np.concatenate([_triangles(ob) + sum(len(p) for p in world_parts[:i]) for i, ob in enumerate(meshes)])
    group_weights = np.concatenate(group_parts)
    file_weights = np.concatenate(file_parts)

    clips, self_test = [], 0.0
    rest_inverse = np.linalg.inv(rest_local)
    mesh_rest_inverse = np.linalg.inv(mesh_worlds[0])
    for action in actions:
        _set_action(armature, action)
        first, last = (int(round(f)) for f in action.frame_range)
        frames = np.arange(first, last + 1)
        if max_frames is not None and len(frames) > max_frames:
            frames = frames[np.round(np.linspace(0, len(frames) - 1, max_frames)).astype(int)]
        checked = frames[np.round(np.linspace(0, len(frames) - 1, min(self_test_frames, len(frames)))).astype(int)]
        matrices = np.empty((len(frames), len(bones), 4, 4))
        for t, frame in enumerate(frames):
            bpy.context.scene.frame_set(int(frame))
            arm_now = np.array(armature.matrix_world)
            pose = np.stack([np.array(armature.pose.bones[n].matrix) for n in names])
            # Blender's armature modifier, taken to world space: M_A P_b R_b^-1 M_A^-1 M_O M_O(rest)^-1
            mesh_motion = np.array(meshes[0].matrix_world) @ mesh_rest_inverse
            matrices[t] = arm_now @ pose @ rest_inverse @ (np.linalg.inv(arm_now) @ mesh_motion)
            if frame in checked:
                self_test = max(self_test, _self_test(bpy, meshes, split_world, group_weights, matrices[t]))
        clips.append(Clip(_clip_name(action.name, armature.name), frames, matrices))
        _set_action(armature, None)
    if not clips:
        notes.append("the file has no animation clips")

    vertices, index = weld(split_world)
    weights = _merge_rows(file_weights, index, len(vertices))
    faces = _clean_faces(index[split_faces])
    diagonal = float(np.linalg.norm(np.ptp(split_world, axis=0))) or 1.0
    return RiggedAsset(
        path.stem,
        vertices,
        faces,
        names,
        heads,
        tails,
        parents,
        weights,
        clips,
        category,
        self_test / diagonal if clips else float("nan"),
        notes,
    )


def _skinned_objects(bpy, path: Path):
    """The armature and the meshes it deforms (an Armature modifier pointing at it). The importer's
    bone-shape sphere and meshes not deformed by the armature are not part of the creature."""
    by_armature: dict[str, list] = {}
    for ob in bpy.data.objects:
        if ob.type != "MESH":
            continue
        for m in ob.modifiers:
            if m.type == "ARMATURE" and m.object is not None:
                by_armature.setdefault(m.object.name, []).append(ob)
    if not by_armature:
        raise InputError(f"{path.name} has no mesh skinned to an armature")
    # several skeletons: the one deforming the most vertices is the creature
    name = max(by_armature, key=lambda n: sum(len(o.data.vertices) for o in by_armature[n]))
    return bpy.data.objects[name], sorted(by_armature[name], key=lambda o: o.name)


def _animates(action, armature) -> bool:
    bone_names = {b.name for b in armature.data.bones}
    for curve in _fcurves(action):
        match = re.match(r'pose\.bones\["(.+?)"\]', curve.data_path)
        if match and match.group(1) in bone_names:
            return True
    return False


def _fcurves(action):
    """F-curves of an action (Blender 4.4+ keeps them in layered channelbags; older ones on the action)."""
    if hasattr(action, "layers") and len(action.layers):
        return [
            c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves
        ]
    return list(action.fcurves)


def _set_action(armature, action) -> None:
    """Play `action` on the armature from the rest pose (None: the rest pose itself)."""
    data = armature.animation_data or armature.animation_data_create()
    data.action = action
    if action is not None and hasattr(data, "action_slot") and data.action_slot is None and len(action.slots):
        data.action_slot = action.slots[0]
    for pb in armature.pose.bones:
        pb.location, pb.scale = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        pb.rotation_quaternion, pb.rotation_euler = (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
        pb.rotation_axis_angle = (0.0, 0.0, 1.0, 0.0)


def _clip_name(action_name: str, armature_name: str) -> str:
    prefix = f"{armature_name}|"
    return action_name[len(prefix) :] if action_name.startswith(prefix) else action_name


def _vertex_group_weights(ob, names: list[str]) -> np.ndarray:
    """(V, B) Blender's vertex-group weights of one mesh object, columns in `names` order."""
    column = {g.index: names.index(g.name) for g in ob.vertex_groups if g.name in names}
    dense = np.zeros((len(ob.data.vertices), len(names)))
    for v in ob.data.vertices:
        for g in v.groups:
            if g.group in column:
                dense[v.index, column[g.group]] += g.weight
    return dense


def _triangles(ob) -> np.ndarray:
    ob.data.calc_loop_triangles()
    tris = np.empty(len(ob.data.loop_triangles) * 3, np.int64)
    ob.data.loop_triangles.foreach_get("vertices", tris)
    return tris.reshape(-1, 3)


def _self_test(bpy, meshes, rest_world: np.ndarray, group_weights: np.ndarray, matrices: np.ndarray) -> float:
    """Largest distance between LBS(Blender's groups) and Blender's evaluated mesh at the current frame."""
    from .deformation import linear_blend_skinning

    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = []
    for ob in meshes:
        ev = ob.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        evaluated.append(_apply(np.array(ev.matrix_world), co.reshape(-1, 3)))
        ev.to_mesh_clear()
    evaluated = np.concatenate(evaluated)
    if len(evaluated) != len(rest_world):
        raise InputError("Blender's evaluated mesh has a different vertex count (modifiers besides the armature?)")
    normalised = group_weights / np.maximum(group_weights.sum(1, keepdims=True), 1e-12)
    ours = linear_blend_skinning(rest_world, normalised, matrices[None])[0]
    unweighted = group_weights.sum(1) <= 0
    ours[unweighted] = rest_world[unweighted]  # Blender leaves unweighted vertices in place
    return float(np.linalg.norm(ours - evaluated, axis=1).max())


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 3)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


# --------------------------------------------------------------------------- the file's own weights


def _file_weights(path: Path, ob, local: np.ndarray, names: list[str], notes: list[str]) -> np.ndarray | None:
    """(V, B) the glTF file's skin weights for Blender object `ob` (duplicate joints summed), or None
    (with a note) when the file's vertices cannot be matched to Blender's one to one."""
    from .gltf_skin import file_skin

    skin = file_skin(path, ob.name)
    if skin is None:
        notes.append(f"{ob.name}: no glTF node of that name; used Blender's vertex groups")
        return None
    positions, joints, weights, joint_names = skin
    positions_z_up = to_z_up(positions, "Y")  # glTF y-up -> Blender
    scale = float(np.ptp(local, axis=0).max()) or 1.0
    if len(positions) != len(local) or np.abs(positions_z_up - local).max() > 1e-4 * scale:
        notes.append(f"{ob.name}: the file's vertices do not match Blender's one to one; used Blender's vertex groups")
        return None
    missing = sorted({n for n in joint_names if n not in names})
    if missing:
        notes.append(f"{ob.name}: joints {missing[:3]} are not bones in Blender; used Blender's vertex groups")
        return None
    column = np.array([names.index(n) for n in joint_names], np.int64)
    dense = np.zeros((len(local), len(names)))
    rows = np.repeat(np.arange(len(local)), joints.shape[1])
    np.add.at(dense, (rows, column[joints.reshape(-1)]), weights.reshape(-1))
    listed = np.sort(np.where(weights > 0, joints, -1 - np.arange(joints.shape[1])), 1)  # zero-weight slots never match
    repeated = int((listed[:, 1:] == listed[:, :-1]).any(1).sum())
    if repeated:
        notes.append(f"{ob.name}: {repeated} vertices list a joint twice; their weights are summed (Blender keeps one)")
    return dense


# --------------------------------------------------------------------------- welding


def weld(points: np.ndarray, tolerance: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Merge points closer than `tolerance` x the bounding-box diagonal: (unique (U, 3), index (N,))
    with unique[index] ~ points. Connected groups merge (union of close pairs)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    points = np.asarray(points, np.float64)
    radius = tolerance * (float(np.linalg.norm(np.ptp(points, axis=0))) or 1.0)
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2)
    count, label = connected_components(graph, directed=False)
    # number the groups by first appearance, so the welded order follows the file's
    first = np.full(count, len(points))
    np.minimum.at(first, label, np.arange(len(points)))
    rank = np.empty(count, np.int64)
    rank[np.argsort(first)] = np.arange(count)
    index = rank[label]
    unique = np.zeros((count, 3))
    np.add.at(unique, index, points)
    return unique / np.bincount(index, minlength=count)[:, None], index


def _merge_rows(weights: np.ndarray, index: np.ndarray, count: int) -> np.ndarray:
    """Mean weight row of each welded vertex, renormalised (seam copies carry the same weights)."""
    merged = np.zeros((count, weights.shape[1]))
    np.add.at(merged, index, weights)
    total = merged.sum(1, keepdims=True)
    return np.where(total > 0, merged / np.maximum(total, 1e-12), 0.0)


def _clean_faces(faces: np.ndarray) -> np.ndarray:
    """Drop triangles that welding collapsed and repeated ones (same vertices, either orientation)."""
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]
    _, keep = np.unique(np.sort(faces, 1), axis=0, return_index=True)
    return faces[np.sort(keep)]
