"""preview_posed.png: a rigged mesh at rest and with a leg, the neck and the tail bent, rendered with
Blender's Workbench engine in the bpy module, bones drawn over it.

The posed mesh is linear blend skinning of the rig's own weights (what Blender's Armature modifier
computes; evaluation.deformation), so the picture shows what a user gets when rotating those bones.
Which bones bend: by name first (the project's chain names, and the usual artist names: leg / thigh,
neck, tail; .L preferred), else by shape (the highest bone pointing down whose chain reaches the
ground for a leg, the first bone of the chain reaching highest for the neck; no tail).

Frame: z up, any units. Images are RGB uint8 arrays (H, W, 3).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..evaluation.deformation import linear_blend_skinning, rotation_matrix, subtree
from ..progress import Progress

POSE_DEGREES = 40.0
TILE = 320
REST_RGB = (0.72, 0.75, 0.80)
BONE_RGB = (40, 110, 255)
BENT_RGB = (255, 120, 0)
RENDER_TIMEOUT_S = 120.0  # a Workbench render of two panels takes seconds; past this the child is stuck
PYTHON = sys.executable  # the render child's interpreter (it needs bpy)


@dataclass
class PreviewRig:
    """A rig to picture: rest mesh vertices (V, 3) / faces (F, 3), dense weights (V, B) over the bones
    heads / tails (B, 3) with parents (B,) (-1 at roots) and names (B,), z up."""

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    parents: np.ndarray
    names: list[str]
    title: str = ""


# --------------------------------------------------------------------------- which bones bend

_ROLE_PATTERNS = {
    "leg": re.compile(r"leg|thigh", re.IGNORECASE),
    "neck": re.compile(r"neck", re.IGNORECASE),
    "tail": re.compile(r"tail", re.IGNORECASE),
}
_NOT_A_BEND = re.compile(r"ik|pole|tip|foot|feet|toe|paw", re.IGNORECASE)  # controls and extremities


def _chain_reach(tails: np.ndarray, parents: np.ndarray, bone: int) -> np.ndarray:
    return tails[subtree(parents, bone)]


def pose_bones(rig: PreviewRig) -> dict[str, int]:
    """role ("leg", "neck", "tail") -> bone index to bend, for the roles this rig has."""
    names, heads, tails, parents = rig.names, np.asarray(rig.heads), np.asarray(rig.tails), np.asarray(rig.parents)
    moving = np.asarray(rig.weights).max(0) > 0 if rig.weights is not None else np.ones(len(names), bool)
    chosen: dict[str, int] = {}
    for role, pattern in _ROLE_PATTERNS.items():
        hits = [i for i, n in enumerate(names) if moving[i] and pattern.search(n) and not _NOT_A_BEND.search(n)]
        # the upper end of the chain, the left one of a pair; in the project's chains ("leg1_01.L", ...)
        # the first bone links the body's centre to where the limb leaves it, so bend the second
        hits.sort(
            key=lambda i: (
                not re.search(r"up", names[i], re.IGNORECASE),
                not _chain_continues(names, parents, i),
                not names[i].endswith((".L", "_L", "Left")),
                _depth(parents, i),
                i,
            )
        )
        if hits:
            chosen[role] = hits[0]
    candidates = [i for i in range(len(names)) if moving[i] and parents[i] >= 0]
    if not candidates:
        return chosen
    low = float(np.asarray(rig.vertices)[:, 2].min())
    height = float(np.ptp(np.asarray(rig.vertices)[:, 2])) or 1.0
    if "leg" not in chosen:  # the highest bone whose chain reaches the ground, pointing down
        legs = [
            i
            for i in candidates
            if _chain_reach(tails, parents, i)[:, 2].min() < low + 0.15 * height
            and tails[i, 2] < heads[i, 2]
            and heads[i, 2] < low + 0.8 * height
        ]
        if legs:
            chosen["leg"] = max(legs, key=lambda i: (heads[i, 2], -i))
    if "neck" not in chosen:  # the first bone of the chain leading to the highest point
        bone = max(candidates, key=lambda i: (tails[i, 2], -i))
        while parents[bone] >= 0 and parents[parents[bone]] >= 0 and (parents == parents[bone]).sum() == 1:
            bone = int(parents[bone])
        chosen["neck"] = bone
    unique: dict[str, int] = {}
    for role, bone in chosen.items():  # two roles on one bone: bend it once
        if bone not in unique.values():
            unique[role] = bone
    return unique


def _chain_continues(names: list[str], parents: np.ndarray, bone: int) -> bool:
    """Whether `bone` continues its parent's chain of the project's names ("leg1_02.L" under "leg1_01.L")."""
    parent = int(parents[bone])

    def stem(name):
        return re.sub(r"_\d+(\.[LR])?$", "", name)

    return parent >= 0 and stem(names[parent]) == stem(names[bone]) != names[bone]


def _depth(parents: np.ndarray, bone: int) -> int:
    depth = 0
    while parents[bone] >= 0:
        bone, depth = int(parents[bone]), depth + 1
    return depth


def bend_pose(
    heads: np.ndarray, tails: np.ndarray, parents: np.ndarray, bones: list[int], degrees: float = POSE_DEGREES
) -> np.ndarray:
    """(B, 4, 4) skinning matrices bending each of `bones` (with its subtree) by `degrees` about its
    head, about the horizontal axis perpendicular to it (as the posability measure does); nested
    bends compose (the child's bend first, then its ancestor's)."""
    from ..evaluation.deformation import bend_axis

    heads, tails, parents = np.asarray(heads, np.float64), np.asarray(tails, np.float64), np.asarray(parents, np.int64)
    m = np.tile(np.eye(4), (len(heads), 1, 1))
    for b in sorted(bones, key=lambda i: -_depth(parents, i)):
        turn = np.eye(4)
        turn[:3, :3] = rotation_matrix(bend_axis(heads[b], tails[b]), np.radians(degrees))
        turn[:3, 3] = heads[b] - turn[:3, :3] @ heads[b]
        inside = subtree(parents, b)
        m[inside] = turn @ m[inside]
    return m


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.einsum("bij,bj->bi", m[:, :3, :3], points) + m[:, :3, 3]


# --------------------------------------------------------------------------- rendering


@dataclass
class Panel:
    """One picture: a mesh (vertices (V, 3), faces (F, 3)) and bone segments heads / tails (B, 3);
    bones flagged in `bent` (B,) are drawn in the bent colour."""

    vertices: np.ndarray
    faces: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    bent: np.ndarray
    label: str


def rig_panels(rig: PreviewRig, degrees: float = POSE_DEGREES) -> tuple[Panel, Panel, dict[str, str]]:
    """The rest and the posed panel of a rig, and role -> bent bone name."""
    roles = pose_bones(rig)
    bones = sorted(set(roles.values()))
    m = bend_pose(rig.heads, rig.tails, rig.parents, bones, degrees)
    posed = linear_blend_skinning(rig.vertices, rig.weights, m[None])[0]
    bent = np.zeros(len(rig.names), bool)
    bent[bones] = True
    drawn = np.asarray(rig.weights).max(0) > 0  # deforming bones only (no IK targets, no pole bones)
    heads, tails = np.asarray(rig.heads, np.float64), np.asarray(rig.tails, np.float64)
    rest = Panel(rig.vertices, rig.faces, heads[drawn], tails[drawn], bent[drawn], f"{rig.title} rest".strip())
    names = {role: rig.names[b] for role, b in roles.items()}
    label = f"{rig.title} posed: {', '.join(sorted(names))} {degrees:g} deg".strip()
    posed_panel = Panel(posed, rig.faces, _apply(m, heads)[drawn], _apply(m, tails)[drawn], bent[drawn], label)
    return rest, posed_panel, names


def view_direction(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit direction from the creature towards the camera: a three-quarter view from the side
    (the mirror plane's normal when the creature is symmetric, else the bounding box's thinner
    horizontal axis), a little from the front and from above."""
    from ..rigging.symmetry import surface_mirror

    side = surface_mirror(vertices, faces, samples=1500).normal
    along = np.cross([0.0, 0.0, 1.0], side)
    d = side + 0.55 * along + np.array([0.0, 0.0, 0.45])
    return d / np.linalg.norm(d)


def render_panels(
    panels: list[Panel],
    columns: int,
    direction: np.ndarray | None = None,
    tile: int = TILE,
    progress: Progress | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 sheet: the panels rendered with Workbench (studio light, one colour) in rows
    of `columns`, one camera for all (framing the union of the panels' meshes), bones drawn over.

    Renders in a child process (`PYTHON -m keydiff3d.pipeline.posed_preview`): a Workbench render
    leaves an EGL context behind that crashes a later import of torch's triton (diffusers) in the
    same process, and the pipeline's processes import it. The child is polled: cancelling
    `progress` kills it (Cancelled), and so does RENDER_TIMEOUT_S (ConfigError, as any failure)."""
    import pickle

    progress = progress or Progress()
    if direction is None:
        direction = view_direction(panels[0].vertices, panels[0].faces)
    try:
        return _render_in_child(panels, columns, np.asarray(direction, np.float64), tile, progress)
    except (OSError, ValueError, pickle.PicklingError) as error:  # no interpreter, unreadable sheet (PIL), ...
        raise ConfigError(
            f"the posed preview could not be rendered ({type(error).__name__}: {error}); "
            "check that `python -c 'import bpy'` works"
        ) from None


def _render_in_child(
    panels: list[Panel], columns: int, direction: np.ndarray, tile: int, progress: Progress
) -> np.ndarray:
    """render_panels' child process: job.pkl in, sheet.png out, polled for cancel and timeout."""
    import pickle
    import subprocess

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.pkl"
        job.write_bytes(pickle.dumps((panels, columns, direction, tile)))
        log_path = Path(tmp) / "render.log"
        with open(log_path, "w") as log_file:  # a file, not a pipe: a chatty child never blocks on it
            child = subprocess.Popen([PYTHON, "-m", __name__, tmp], stdout=log_file, stderr=subprocess.STDOUT)
            try:
                end = time.monotonic() + RENDER_TIMEOUT_S
                while child.poll() is None:
                    progress.check()
                    if time.monotonic() > end:
                        raise ConfigError(
                            f"the Workbench render of the posed preview ran over {RENDER_TIMEOUT_S:g} s and was stopped"
                        )
                    time.sleep(0.1)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        if child.returncode != 0 or not (Path(tmp) / "sheet.png").is_file():
            last = (log_path.read_text(errors="replace").strip().splitlines() or [f"exit status {child.returncode}"])[
                -1
            ]
            raise ConfigError(
                f"the Workbench render of the posed preview failed ({last}); check that `python -c 'import bpy'` works"
            )
        return np.asarray(Image.open(Path(tmp) / "sheet.png").convert("RGB"))


def _render_in_this_process(panels: list[Panel], columns: int, direction: np.ndarray, tile: int) -> np.ndarray:
    """render_panels' work, in the bpy module of this process."""
    import bpy

    from ..blender import addon_module

    importer = addon_module("importer")  # the add-on's own mesh builder
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    from PIL import Image, ImageDraw

    everything = np.concatenate([p.vertices for p in panels])
    centre = 0.5 * (everything.min(0) + everything.max(0))
    radius = 0.5 * float(np.linalg.norm(np.ptp(everything, axis=0))) or 1.0
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = tile
    scene.render.resolution_percentage = 100
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "SINGLE"
    scene.display.shading.single_color = REST_RGB
    scene.display.shading.show_cavity = False
    world = bpy.data.worlds.new("white")
    world.color = (1.0, 1.0, 1.0)
    scene.world = world
    scene.view_settings.view_transform = "Standard"
    camera_data = bpy.data.cameras.new("camera")
    camera_data.lens_unit = "FOV"
    camera_data.angle = np.radians(30.0)
    camera = bpy.data.objects.new("camera", camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    distance = radius / np.sin(np.radians(15.0)) * 1.05
    camera.location = Vector((centre + distance * direction).tolist())
    camera.rotation_euler = Vector((-direction).tolist()).to_track_quat("-Z", "Y").to_euler()
    camera_data.clip_end = distance * 4
    rows = (len(panels) + columns - 1) // columns
    sheet = Image.new("RGB", (tile * columns, tile * rows), "white")
    with tempfile.TemporaryDirectory() as tmp:
        for n, panel in enumerate(panels):
            mesh = importer.create_mesh("creature", panel.vertices, panel.faces)
            mesh.shade_flat()  # game meshes are often flat shaded; facets read better
            obj = bpy.data.objects.new("creature", mesh)
            scene.collection.objects.link(obj)
            scene.render.filepath = str(Path(tmp) / f"{n}.png")
            bpy.ops.render.render(write_still=True)
            image = Image.open(scene.render.filepath).convert("RGB")
            bpy.data.objects.remove(obj)
            bpy.data.meshes.remove(mesh)
            draw = ImageDraw.Draw(image)
            bpy.context.view_layer.update()
            for head, tail, bent in zip(panel.heads, panel.tails, panel.bent):
                line = [_pixel(world_to_camera_view(scene, camera, Vector(p.tolist())), tile) for p in (head, tail)]
                draw.line(line, fill=BENT_RGB if bent else BONE_RGB, width=3 if bent else 2)
                draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=(20, 20, 20))
            draw.text((4, 3), panel.label, fill=(0, 0, 0))
            sheet.paste(image, ((n % columns) * tile, (n // columns) * tile))
    return np.asarray(sheet)


def _pixel(normalised, tile: int) -> tuple[float, float]:
    """Camera-view coordinates (x, y in [0, 1], y up) -> pixel (x right, y down)."""
    return float(normalised[0]) * tile, (1.0 - float(normalised[1])) * tile


def posed_preview_sheet(
    rigs: list[PreviewRig], degrees: float = POSE_DEGREES, tile: int = TILE, progress: Progress | None = None
) -> tuple[np.ndarray, dict[str, dict[str, str]]]:
    """(sheet (H, W, 3) uint8: one row per rig, rest then posed; rig title -> role -> bent bone name)."""
    panels, bent = [], {}
    for rig in rigs:
        rest, posed, names = rig_panels(rig, degrees)
        panels += [rest, posed]
        bent[rig.title] = names
    return render_panels(panels, 2, view_direction(rigs[0].vertices, rigs[0].faces), tile, progress), bent


def write_posed_preview(
    rigs: list[PreviewRig], path: str | Path, degrees: float = POSE_DEGREES, tile: int = TILE
) -> dict[str, dict[str, str]]:
    """PNG at `path` (`posed_preview_sheet`). Returns rig title -> role -> bent bone name."""
    from PIL import Image

    sheet, bent = posed_preview_sheet(rigs, degrees, tile)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, optimize=True)
    return bent


def bundle_preview_rig(bundle) -> PreviewRig:
    """A rig bundle (rigcore RigBundle, z- or y-up) as a z-up PreviewRig of its deform bones and weights."""
    from keydiff3d_addon.rigcore.frames import to_z_up

    from ..evaluation.rig_quality import rig_bones

    up = bundle.up_axis
    bones = rig_bones(bundle.skeleton)
    dense = bundle.skin.dense()
    column = {n: i for i, n in enumerate(bundle.skin.bone_names)}
    weights = dense[:, [column[n] for n in bones.names]]
    return PreviewRig(
        to_z_up(bundle.vertices, up),
        np.asarray(bundle.faces),
        weights,
        to_z_up(bones.heads, up),
        to_z_up(bones.tails, up),
        bones.parents,
        bones.names,
    )


def bundle_posed_preview(
    bundle, degrees: float = POSE_DEGREES, tile: int = TILE, progress: Progress | None = None
) -> bytes:
    """preview_posed.png of a rig bundle: PNG bytes of its rest and posed pictures side by side
    (ConfigError when the render fails; `progress` cancels it)."""
    import io

    from PIL import Image

    sheet, _ = posed_preview_sheet([bundle_preview_rig(bundle)], degrees, tile, progress)
    buffer = io.BytesIO()
    Image.fromarray(sheet).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _child(folder: str) -> None:
    """The child process of render_panels: job.pkl in `folder` -> sheet.png beside it."""
    import pickle

    from PIL import Image

    panels, columns, direction, tile = pickle.loads((Path(folder) / "job.pkl").read_bytes())
    Image.fromarray(_render_in_this_process(panels, columns, direction, tile)).save(Path(folder) / "sheet.png")


if __name__ == "__main__":
    import os

    _child(sys.argv[1])
    sys.stdout.flush()
    os._exit(0)  # without bpy's C exit handlers (they can deadlock)
