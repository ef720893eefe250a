# SPDX-License-Identifier: GPL-3.0-or-later
"""Rig bundle -> Blender scene: coloured mesh, armature, vertex groups, Armature modifier.

Plain functions (no operator state), called by the add-on's operators, by `keydiff3d export` in the
bpy module and by the tests. Everything is created in one go; if any step fails, every data-block
created so far is removed again and `RigImportError` is raised (a cancellation raised by the
`progress` object propagates unchanged), so the scene is as it was.

Frames: the bundle's world frame (z up, or y up when `up_axis` is "Y") is brought to Blender's z-up
frame once, then to Blender units with a `Placement` (uniform scale + offset: target height, feet on
the ground plane z = 0, bbox centred on x/y). Every position written to Blender (vertices,
bone heads/tails, keypoints) goes through the same placement, so weights stay exact.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from .rigcore import frames
from .rigcore.bundle import BundleError, RigBundle, read_bundle
from .rigcore.skinning import SkinWeights

PROP_RIG = "keydiff3d_rig"  # JSON on the armature object: source, placement, keypoints, parents
PROP_KEYPOINT = "keydiff3d_keypoint"  # on each bone: the keypoint it ends at
PROP_KIND = "keydiff3d_kind"  # on each bone: "edge" | "leaf" | "root"
COLOR_ATTRIBUTE = "Col"


class RigImportError(RuntimeError):
    """A bundle that could not be turned into a Blender rig (one sentence; the scene is unchanged)."""


@dataclass(frozen=True)
class Placement:
    """Bundle frame (z up) -> Blender units: p_blender = p * scale + offset."""

    scale: float
    offset: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) * self.scale + self.offset

    @classmethod
    def identity(cls) -> "Placement":
        return cls(1.0, np.zeros(3))

    @classmethod
    def for_height(cls, vertices: np.ndarray, target_height: float) -> "Placement":
        """Scale to `target_height` (z extent), centre x/y on the origin, lowest point at z = 0.
        A target height of 0 keeps the bundle's own scale and position."""
        if target_height <= 0:
            return cls.identity()
        lo, hi = vertices.min(0).astype(np.float64), vertices.max(0).astype(np.float64)
        height = float(hi[2] - lo[2])
        if not np.isfinite(height) or height <= 0:
            raise RigImportError("the bundle's mesh is flat along z, so it cannot be scaled to a target height")
        scale = target_height / height
        centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
        return cls(scale, -centre * scale)


@dataclass
class ImportedRig:
    """What `build_rig` made (`mesh` is the given object when it rigged one)."""

    armature: bpy.types.Object
    mesh: bpy.types.Object
    empties: list[bpy.types.Object]
    placement: Placement
    timings: dict[str, float] = field(default_factory=dict)


def to_z_up(points: np.ndarray, up_axis: str) -> np.ndarray:
    """Bundle frame -> Blender's z-up frame (`rigcore.frames`: (x, y, z) -> (x, -z, y) for a y-up bundle)."""
    try:
        return frames.to_z_up(points, str(up_axis).upper())
    except frames.FrameError as error:
        raise RigImportError(f"the bundle's {error}") from None


class _Created:
    """Data-blocks made during one import; `remove_all` undoes them (objects before their data)."""

    def __init__(self) -> None:
        self.ids: list[bpy.types.ID] = []

    def add(self, id_block):
        self.ids.append(id_block)
        return id_block

    def remove_all(self) -> None:
        if bpy.context.mode != "OBJECT" and bpy.context.view_layer.objects.active in self.ids:
            bpy.ops.object.mode_set(mode="OBJECT")
        objects = [i for i in self.ids if isinstance(i, bpy.types.Object)]
        others = [i for i in self.ids if not isinstance(i, bpy.types.Object)]
        bpy.data.batch_remove(objects)
        bpy.data.batch_remove(others)
        self.ids.clear()


# ----------------------------------------------------------------------------------- building


def create_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None) -> bpy.types.Mesh:
    """Mesh data from (V, 3) vertices, (F, 3) triangles and optional (V, 4) uint8 sRGB colours.

    Writes the generic attributes ("position", ".corner_vert") with contiguous typed buffers, the
    path on which `foreach_set` is a plain copy."""
    mesh = bpy.data.meshes.new(name)
    try:
        faces = np.ascontiguousarray(faces, np.int32).reshape(-1, 3)
        mesh.vertices.add(len(vertices))
        mesh.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(vertices, np.float32).ravel())
        mesh.loops.add(faces.size)
        mesh.attributes[".corner_vert"].data.foreach_set("value", faces.ravel())
        mesh.polygons.add(len(faces))
        mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        mesh.update(calc_edges=True)
        if colors is not None:
            attribute = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
            attribute.data.foreach_set("color_srgb", (np.asarray(colors, np.float32) / 255.0).ravel())
            mesh.color_attributes.active_color = attribute
            mesh.color_attributes.render_color_index = mesh.color_attributes.active_color_index
        mesh.shade_smooth()
    except Exception:
        bpy.data.meshes.remove(mesh)
        raise
    return mesh


def vertex_color_material(name: str) -> bpy.types.Material:
    """A material whose base colour is the mesh's vertex colour attribute."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes = material.node_tree.nodes
    shader = nodes.get("Principled BSDF")
    color = nodes.new("ShaderNodeVertexColor")
    color.layer_name = COLOR_ATTRIBUTE
    color.location = (shader.location.x - 300, shader.location.y)
    material.node_tree.links.new(color.outputs["Color"], shader.inputs["Base Color"])
    return material


def build_armature_bones(
    context: bpy.types.Context, armature_obj: bpy.types.Object, bones, placement: Placement, up_axis: str
) -> None:
    """Edit bones from rigcore `Bone`s (parent-first order): head/tail placed, parented, connected,
    roll from the bundle, deform flag kept; keypoint index and kind stored on each bone."""
    view_layer = context.view_layer
    view_layer.objects.active = armature_obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = armature_obj.data.edit_bones
        for bone in bones:
            edit_bone = edit_bones.new(bone.name)
            if edit_bone.name != bone.name:
                raise RigImportError(f"the bone name {bone.name!r} is used twice")
            edit_bone.head = placement.apply(to_z_up(bone.head, up_axis))
            edit_bone.tail = placement.apply(to_z_up(bone.tail, up_axis))
            edit_bone.roll = float(bone.roll)
            edit_bone.use_deform = bool(bone.deform)
        for bone in bones:
            if bone.parent is None:
                continue
            edit_bone = edit_bones[bone.name]
            edit_bone.parent = edit_bones[bone.parent]
            edit_bone.use_connect = bool(bone.connected)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    missing = [b.name for b in bones if b.name not in armature_obj.data.bones]
    if missing:  # Blender drops zero-length bones on leaving edit mode
        raise RigImportError(f"Blender dropped the zero-length bones {', '.join(missing)}")
    for bone in bones:
        data_bone = armature_obj.data.bones[bone.name]
        data_bone[PROP_KEYPOINT] = int(bone.keypoint)
        data_bone[PROP_KIND] = str(bone.kind)


def bone_major_weights(skin: SkinWeights) -> np.ndarray:
    """(B, V) float32 dense weights, one contiguous row per bone (what `foreach_set` copies fast)."""
    out = np.zeros((len(skin.bone_names), len(skin.indices)), np.float32)
    rows = np.arange(len(skin.indices))
    for slot in range(skin.k):  # within one slot every vertex appears once: plain fancy indexing
        out[skin.indices[:, slot], rows] += skin.weights[:, slot]
    return out


@contextmanager
def _outside_depsgraph(context: bpy.types.Context, obj: bpy.types.Object):
    """Keep `obj` out of viewport evaluation meanwhile (see `write_vertex_groups`)."""
    if obj.hide_viewport or not obj.users_collection:  # not evaluated anyway
        yield
        return
    obj.hide_viewport = True
    context.view_layer.update()  # frees the evaluated copy that shares the mesh's weight array
    try:
        yield
    finally:
        obj.hide_viewport = False


def write_vertex_groups(context: bpy.types.Context, mesh_obj: bpy.types.Object, skin: SkinWeights) -> None:
    """One vertex group per column of `skin` holding exactly its weights (zero weights left out);
    existing groups of the same names are replaced.

    Fastest exact path in Blender 4.x: a float point attribute per bone, converted to a vertex group
    by `geometry.attribute_convert` (a C loop). Every `bpy.ops` call re-evaluates the view layer, and
    while the depsgraph holds an evaluated copy of the mesh, each conversion copies the whole shared
    weight array again (31 groups at 200k vertices: 4.5 s instead of 0.5 s). So the groups are
    written while the object is outside the depsgraph: `build_rig` writes them before linking the
    object; for an object already in the scene it is hidden from the viewport meanwhile
    (docs/bench/blender_import.md).
    """
    mesh = mesh_obj.data
    weights = bone_major_weights(skin)
    with _outside_depsgraph(context, mesh_obj), context.temp_override(object=mesh_obj, active_object=mesh_obj):
        for row, name in enumerate(skin.bone_names):
            old = mesh_obj.vertex_groups.get(name)
            if old is not None:
                mesh_obj.vertex_groups.remove(old)
            attribute = mesh.attributes.new(name, "FLOAT", "POINT")
            attribute.data.foreach_set("value", weights[row])
            mesh.attributes.active = attribute
            bpy.ops.geometry.attribute_convert("EXEC_DEFAULT", False, mode="VERTEX_GROUP")
            if name not in mesh_obj.vertex_groups:
                raise RigImportError(f"Blender did not create the vertex group {name!r}")


def add_keypoint_empties(
    context, armature_obj, keypoints: np.ndarray, size: float, created: _Created
) -> list[bpy.types.Object]:
    empties = []
    for index, point in enumerate(keypoints):
        empty = created.add(bpy.data.objects.new(f"{armature_obj.name}_kp{index:02d}", None))
        empty.empty_display_type = "SPHERE"
        empty.empty_display_size = size
        empty.location = point
        empty.parent = armature_obj
        empty["keydiff3d_keypoint"] = index
        context.collection.objects.link(empty)
        empties.append(empty)
    return empties


def ensure_root_bone(context: bpy.types.Context, armature_obj: bpy.types.Object, name: str = "root") -> bool:
    """Give the armature a non-deforming root bone at the ground origin that parents every
    parentless bone; returns False when it already has a single parentless non-deform bone."""
    roots = [b for b in armature_obj.data.bones if b.parent is None]
    if len(roots) == 1 and not roots[0].use_deform:
        return False
    view_layer = context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = armature_obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = armature_obj.data.edit_bones
        tops = [b for b in edit_bones if b.parent is None]
        extent = max((b.length for b in edit_bones), default=1.0)
        root = edit_bones.new(name)
        root.head = (0.0, 0.0, 0.0)
        root.tail = (0.0, 0.25 * extent, 0.0)
        root.use_deform = False
        for bone in tops:
            bone.parent = root
            bone.use_connect = False
        root_name = root.name
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous
    armature_obj.data.bones[root_name][PROP_KEYPOINT] = -1
    armature_obj.data.bones[root_name][PROP_KIND] = "root"
    return True


MAX_NAME_BYTES = 63  # Blender's limit for bone, vertex group and attribute names


def check_names(bundle: RigBundle) -> None:
    """Bone names Blender can hold unchanged (it would silently truncate longer ones)."""
    for name in [b.name for b in bundle.skeleton.bones] + list(bundle.skin.bone_names):
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise RigImportError(f"the bone name {name[:20]!r}... is longer than Blender's {MAX_NAME_BYTES}-byte limit")
    missing = set(bundle.skin.bone_names) - {b.name for b in bundle.skeleton.bones if b.deform}
    if missing:
        raise RigImportError(
            f"the skin names bones that are not deform bones of the skeleton: {', '.join(sorted(missing))}"
        )


def rig_record(bundle: RigBundle, source: str, placement: Placement, up_axis: str) -> str:
    """What Recompute weights and re-export need later, in Blender units (JSON on the armature)."""
    skeleton = bundle.skeleton
    return json.dumps(
        {
            "source": source,
            "placement": {"scale": placement.scale, "offset": [float(v) for v in placement.offset]},
            "keypoints": placement.apply(to_z_up(skeleton.keypoints, up_axis)).round(6).tolist(),
            "parents": [int(p) for p in skeleton.parents],
            "root_keypoint": int(skeleton.root),
            "skin": {"method": bundle.skin.method, "k": bundle.skin.k, "params": bundle.skin.params},
        },
        default=lambda value: value.item() if hasattr(value, "item") else str(value),  # numpy scalars in params
    )


def units_per_metre(context: bpy.types.Context) -> float:
    """Blender units in one metre for the scene's unit settings (1 unless the unit scale is changed)."""
    units = context.scene.unit_settings
    return 1.0 if units.system == "NONE" or units.scale_length <= 0 else 1.0 / units.scale_length


def build_rig(
    bundle: RigBundle,
    *,
    context: bpy.types.Context | None = None,
    target_height: float = 1.0,
    keypoint_empties: bool = False,
    root_bone: bool = False,
    name: str | None = None,
    source: str = "",
    progress=None,
    onto: bpy.types.Object | None = None,
    skin: SkinWeights | None = None,
) -> ImportedRig:
    """Create mesh + armature + weights for `bundle` in `context.collection`; all or nothing.

    target_height: metres (converted with the scene's unit scale); 0 keeps the bundle's coordinates.
    onto: rig this existing mesh object instead of creating one from the bundle's mesh ("Rig Selected
        Mesh": the bundle's frame is Blender's world, so the placement is the identity); `skin` then
        holds the weights of its own vertices. The object is parented to the new armature without
        moving; its vertex groups of the deform bones' names are replaced.
    progress: anything with `update(fraction, message)` (keydiff3d.progress.Progress); an exception
        it raises (cancellation) removes what was created and propagates unchanged. Blender and numpy
        failures are re-raised as `RigImportError`."""
    context = context or bpy.context
    check_names(bundle)
    if onto is not None and skin is None:
        raise RigImportError("rigging an existing mesh needs the skin weights of its own vertices")
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    name = name or (onto.name if onto is not None else "KeyDiff3D")
    timings: dict[str, float] = {}
    created = _Created()
    report = progress.update if progress is not None else (lambda fraction, message: None)
    up_axis = bundle.up_axis
    rollback = _Rollback(onto) if onto is not None else None
    try:
        report(0.0, "building the mesh")
        t = time.perf_counter()
        if onto is None:
            vertices = to_z_up(bundle.vertices, up_axis)
            placement = Placement.for_height(vertices, target_height * units_per_metre(context))
            mesh = created.add(create_mesh(name, placement.apply(vertices), bundle.faces, bundle.colors))
            if bundle.colors is not None:
                mesh.materials.append(created.add(vertex_color_material(f"{name}_vertex_color")))
            mesh_obj = created.add(bpy.data.objects.new(name, mesh))
            timings["mesh"] = time.perf_counter() - t
            report(0.4, "writing vertex groups")
            t = time.perf_counter()
            write_vertex_groups(context, mesh_obj, bundle.skin)  # before linking: see write_vertex_groups
            timings["weights"] = time.perf_counter() - t
            collection = context.collection
        else:
            placement, mesh_obj = Placement.identity(), onto
            collection = onto.users_collection[0] if onto.users_collection else context.collection

        report(0.6, "building the armature")
        t = time.perf_counter()
        armature = created.add(bpy.data.armatures.new(f"{name}_armature"))
        armature_obj = created.add(bpy.data.objects.new(f"{name}_rig", armature))
        armature_obj.show_in_front = True
        collection.objects.link(armature_obj)
        if onto is None:
            collection.objects.link(mesh_obj)
        build_armature_bones(context, armature_obj, bundle.skeleton.bones, placement, up_axis)
        if root_bone:
            ensure_root_bone(context, armature_obj)
        timings["armature"] = time.perf_counter() - t

        if onto is not None:  # last, so that a failure above leaves the user's mesh as it was
            report(0.8, "writing vertex groups")
            t = time.perf_counter()
            rollback.note_groups(skin.bone_names)
            write_vertex_groups(context, onto, skin)
            timings["weights"] = time.perf_counter() - t
        world = mesh_obj.matrix_world.copy()
        mesh_obj.parent = armature_obj
        mesh_obj.matrix_world = world  # the mesh stays where it was (the armature sits at the origin)
        modifier = mesh_obj.modifiers.new("Armature", "ARMATURE")
        modifier.object = armature_obj
        modifier.use_deform_preserve_volume = False  # linear blend skinning, as game engines do
        armature_obj[PROP_RIG] = rig_record(bundle, source, placement, up_axis)
        empties = []
        if keypoint_empties:
            keypoints = placement.apply(to_z_up(bundle.skeleton.keypoints, up_axis))
            size = 0.02 * float(np.ptp(keypoints, axis=0).max() or 1.0)
            empties = add_keypoint_empties(context, armature_obj, keypoints, size, created)

        for obj in context.view_layer.objects.selected:
            obj.select_set(False)
        mesh_obj.select_set(True)
        armature_obj.select_set(True)
        context.view_layer.objects.active = armature_obj
        report(1.0, "imported")
    except BaseException as error:
        if rollback is not None:
            rollback.restore()
        created.remove_all()
        if isinstance(error, (RuntimeError, ValueError, KeyError, TypeError, AttributeError)) and not isinstance(
            error, RigImportError
        ):
            raise RigImportError(f"importing the rig failed and nothing was added to the scene: {error}") from error
        raise
    return ImportedRig(armature_obj, mesh_obj, empties, placement, timings)


class _Rollback:
    """What `build_rig(onto=...)` changes on an existing mesh, undone on failure: its parent and
    world matrix, the modifiers and the vertex groups it added (groups it replaced stay replaced)."""

    def __init__(self, mesh_obj: bpy.types.Object) -> None:
        self.mesh_obj = mesh_obj
        self.parent, self.world = mesh_obj.parent, mesh_obj.matrix_world.copy()
        self.modifiers = {m.name for m in mesh_obj.modifiers}
        self.new_groups: list[str] = []

    def note_groups(self, names: list[str]) -> None:
        self.new_groups = [n for n in names if n not in self.mesh_obj.vertex_groups]

    def restore(self) -> None:
        obj = self.mesh_obj
        for modifier in [m for m in obj.modifiers if m.name not in self.modifiers]:
            obj.modifiers.remove(modifier)
        for name in self.new_groups:
            if name in obj.vertex_groups:
                obj.vertex_groups.remove(obj.vertex_groups[name])
        obj.parent = self.parent
        obj.matrix_world = self.world


def import_bundle(
    path: str | Path,
    *,
    context: bpy.types.Context | None = None,
    target_height: float = 1.0,
    keypoint_empties: bool = False,
    root_bone: bool = False,
    name: str | None = None,
    progress=None,
) -> ImportedRig:
    """Read a rig bundle (directory, rig.json or .zip) and build it in Blender (see `build_rig`;
    `target_height` in metres). `timings` gets "read" plus the build stages, in seconds."""
    path = Path(path)
    t = time.perf_counter()
    bundle = read_rig_bundle(path)
    read_s = time.perf_counter() - t
    default_name = path.parent.name if path.name == "rig.json" else path.stem
    rig = build_rig(
        bundle,
        context=context,
        target_height=target_height,
        keypoint_empties=keypoint_empties,
        root_bone=root_bone,
        name=name or default_name or "KeyDiff3D",
        source=str(path.resolve()),
        progress=progress,
    )
    rig.timings = {"read": read_s, **rig.timings}
    return rig


def read_rig_bundle(path: str | Path) -> RigBundle:
    """`read_bundle` with its failures (always a `BundleError` whose sentence names the damaged file,
    e.g. a truncated mesh.ply) as a `RigImportError` that also names the bundle."""
    path = Path(path)
    try:
        return read_bundle(path)
    except BundleError as error:
        raise RigImportError(f"cannot read the rig bundle {path}: {error}") from error
