"""CPU renderer for any triangle mesh at orbit cameras: RGB (Lambert + ambient), mask, depth.

`render_multiview(mesh_or_creature, cameras)` is what the render generator, `keydiff3d render` and
the data set writer call. Lighting is a fixed rig in the world frame (a key light from above and
three fills around the horizon, so every orbit view is similarly lit). Loaded meshes are lit
two-sided (normals turned towards the camera), so inconsistent winding renders correctly; closed
outward-wound meshes (`RenderMesh.closed`, the creatures) are back-face culled instead.

Optional per-view inconsistency mimics a diffusion model's imperfect views: per view, the lights'
strength and tint, the albedo's colour balance and a small smooth deformation of the mesh are
jittered, all drawn from `seed`; with inconsistency 0 the views are exactly consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..geometry import SV3D_ELEVATION_DEG, SV3D_INPUT_FRAME, SV3D_NUM_FRAMES, Cameras, orbit_cameras
from ..geometry.mesh import RenderMesh
from ..geometry.views import MultiViewResult
from ..progress import Progress
from .creatures import Creature
from .raster import Fragments, rasterize

AMBIENT = 0.35
# (direction towards the light, intensity): key from above, fills around the horizon
LIGHTS = (
    (np.array([0.3, 0.2, 1.0]), 0.55),
    (np.array([1.0, 0.0, 0.3]), 0.22),
    (np.array([-0.5, 0.87, 0.3]), 0.22),
    (np.array([-0.5, -0.87, 0.3]), 0.22),
)
_VIEW_BATCH_FACES = 400_000  # (view, face) pairs rasterised at once; bounds memory for big meshes
_VIEW_BATCH_PIXELS = 4_000_000  # (view, pixel) pairs per batch


def as_render_mesh(mesh) -> RenderMesh:
    """A `RenderMesh` from a RenderMesh, a `Creature`, a trimesh.Trimesh or a trimesh.Scene."""
    if isinstance(mesh, RenderMesh):
        return mesh
    if isinstance(mesh, Creature):  # its capsules are closed and outward-wound
        return RenderMesh.from_arrays(mesh.vertices, mesh.faces, mesh.vertex_colors, closed=True)
    from ..mesh_io import trimesh_to_render_mesh

    return trimesh_to_render_mesh(mesh)


@dataclass(frozen=True)
class RenderOptions:
    """supersample: render at s x the size and box-filter down (anti-aliasing, s^2 the cost);
    inconsistency: 0 = consistent views, ~0.5 = mild, 1 = strong per-view jitter; seed: its draws."""

    supersample: int = 1
    inconsistency: float = 0.0
    seed: int = 0
    background: float = 1.0


def render_multiview(
    mesh,
    cameras: Cameras | None = None,
    *,
    options: RenderOptions = RenderOptions(),
    progress: Progress | None = None,
) -> MultiViewResult:
    """Render RGB, mask and depth of `mesh` (already in the world frame) from every camera.

    mesh: RenderMesh, Creature, trimesh.Trimesh or trimesh.Scene; cameras: default the 21 SV3D-p
    orbit cameras at 576 px. Returns a `MultiViewResult` with images (V, H, W, 3) float32 on white,
    masks (V, H, W) float32, depth (V, H, W) float32 (0 = background), input_view = the azimuth-0
    view (20 for the SV3D-p orbit).
    """
    rmesh = as_render_mesh(mesh)
    cams = orbit_cameras() if cameras is None else cameras
    s = int(options.supersample)
    if s < 1:
        raise InputError("supersample must be a positive integer")
    big = cams.resized(cams.width * s, cams.height * s) if s > 1 else cams
    V = len(cams)
    jitter = _ViewJitter.draw(V, options.inconsistency, options.seed)
    images = np.empty((V, cams.height, cams.width, 3), np.float32)
    masks = np.empty((V, cams.height, cams.width), np.float32)
    depth = np.empty((V, cams.height, cams.width), np.float32)
    # views per batch: bounds the (view, face) and (view, pixel) working arrays
    batch = max(1, min(_VIEW_BATCH_FACES // len(rmesh.faces), _VIEW_BATCH_PIXELS // (big.width * big.height)))
    for start in range(0, V, batch):
        if progress is not None:
            progress.update(start / V, f"rendering view {start + 1}/{V}")
        idx = np.arange(start, min(start + batch, V))
        verts = jitter.deform(rmesh.vertices, idx)
        frags = rasterize(verts, rmesh.faces, big.subset(idx), cull_backfaces=rmesh.closed)
        rgb, mask = _shade(rmesh, frags, big.subset(idx), verts, jitter, idx, options.background)
        if s > 1:
            rgb, mask, dep = _downsample(rgb, s), _downsample(mask, s), _downsample_depth(frags.depth, s)
        else:
            dep = frags.depth
        images[idx], masks[idx], depth[idx] = rgb, mask, dep
    if progress is not None:
        progress.update(1.0, "rendered")
    return MultiViewResult(images=images, masks=masks, cameras=cams, input_view=input_view_index(cams), depth=depth)


def orbit_views(
    num_views: int = SV3D_NUM_FRAMES, size: int = 576, elevation_deg: float = SV3D_ELEVATION_DEG
) -> Cameras:
    """The SV3D-p orbit for 21 views; otherwise `num_views` evenly spaced azimuths ending at 0 (input)."""
    if num_views == SV3D_NUM_FRAMES:
        return orbit_cameras(elevation_deg=elevation_deg, size=size)
    azimuths = (np.arange(1, num_views + 1) * 360.0 / num_views) % 360.0
    return orbit_cameras(azimuths, elevation_deg, size=size)


def input_view_index(cameras: Cameras) -> int:
    """The view at azimuth 0 (the input view; 20 for the SV3D-p orbit), else the last view."""
    az = np.abs((np.asarray(cameras.azimuth_deg) + 180.0) % 360.0 - 180.0)
    hits = np.flatnonzero(az < 1e-6)
    if len(cameras) == 21 and SV3D_INPUT_FRAME in hits:
        return SV3D_INPUT_FRAME
    return int(hits[-1]) if len(hits) else len(cameras) - 1


# --------------------------------------------------------------------------- shading


def _shade(
    mesh: RenderMesh,
    frags: Fragments,
    cams: Cameras,
    verts: np.ndarray,
    jitter: "_ViewJitter",
    views: np.ndarray,
    background: float,
):
    """Lambert-shaded RGB (V, H, W, 3) composited on `background`, and the mask (V, H, W)."""
    V, H, W = frags.face.shape
    rgb = np.full((V, H, W, 3), background, np.float32)
    mask = frags.mask
    v_idx, rows, cols = np.nonzero(mask)
    face = frags.face[mask]
    bary = frags.bary[mask]  # (P, 3)
    tri = mesh.faces[face]  # (P, 3)
    normal = np.einsum("pk,pkc->pc", bary, mesh.normals[tri])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    if not mesh.closed:  # two-sided: turn normals towards the camera (closed meshes show front faces only)
        verts_v = np.broadcast_to(verts, (V,) + verts.shape[-2:]) if verts.ndim == 2 else verts
        point = np.einsum("pk,pkc->pc", bary, verts_v[v_idx[:, None], tri])
        to_camera = cams.centers[v_idx] - point
        normal *= np.where((normal * to_camera).sum(1) < 0, -1.0, 1.0)[:, None]
    albedo = _albedo(mesh, face, tri, bary)
    if jitter.strength == 0:  # one light rig for all views: a single (P, 3) x (3, L) product
        directions, gains = jitter.light_dirs[0], jitter.light_gain[0] * [i for _, i in LIGHTS]
        light = (AMBIENT + np.clip(normal @ directions.T, 0, None) @ gains)[:, None]
    else:
        albedo = albedo * jitter.albedo_gain[views][v_idx]
        light = np.full((len(face), 3), AMBIENT)
        for k, (_, intensity) in enumerate(LIGHTS):
            lambert = np.clip((normal * jitter.light_dirs[views, k][v_idx]).sum(1), 0, None)
            light += (intensity * jitter.light_gain[views, k][v_idx] * lambert)[:, None] * jitter.light_tint[views, k][
                v_idx
            ]
    rgb[v_idx, rows, cols] = np.clip(albedo * light, 0.0, 1.0)
    return rgb, mask.astype(np.float32)


def _albedo(mesh: RenderMesh, face: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Per-pixel albedo (P, 3): vertex colours, or the face's texture sampled bilinearly at its UV."""
    albedo = np.einsum("pk,pkc->pc", bary, mesh.colors[tri])
    tex_id = mesh.face_texture[face]
    for t, texture in enumerate(mesh.textures):
        sel = tex_id == t
        if sel.any():
            uv = np.einsum("pk,pkc->pc", bary[sel], mesh.uv[tri[sel]])
            albedo[sel] = sample_texture(texture, uv) * albedo[sel]  # vertex colours act as a colour factor
    return albedo


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (P, C) in a (h, w, C) texture at OpenGL uv (P, 2), repeating outside [0, 1]."""
    h, w = texture.shape[:2]
    x = (uv[:, 0] % 1.0) * w - 0.5
    y = (1.0 - uv[:, 1] % 1.0) * h - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, x1 = x0 % w, (x0 + 1) % w
    y0, y1 = y0 % h, (y0 + 1) % h
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _downsample(array: np.ndarray, s: int) -> np.ndarray:
    V, H, W = array.shape[:3]
    return array.reshape(V, H // s, s, W // s, s, *array.shape[3:]).mean(axis=(2, 4)).astype(np.float32)


def _downsample_depth(depth: np.ndarray, s: int) -> np.ndarray:
    """Mean depth of the covered sub-samples, 0 where none is covered."""
    V, H, W = depth.shape
    blocks = depth.reshape(V, H // s, s, W // s, s)
    covered = (blocks > 0).sum(axis=(2, 4))
    return np.where(covered > 0, blocks.sum(axis=(2, 4)) / np.maximum(covered, 1), 0.0).astype(np.float32)


# --------------------------------------------------------------------------- per-view jitter


@dataclass
class _ViewJitter:
    """Per-view draws of the inconsistency model (identity when strength is 0)."""

    strength: float
    light_dirs: np.ndarray  # (V, L, 3) unit
    light_gain: np.ndarray  # (V, L)
    light_tint: np.ndarray  # (V, L, 3)
    albedo_gain: np.ndarray  # (V, 3)
    warp_freq: np.ndarray  # (V, 3, 3) smooth deformation: x += amp * sin(freq @ x + phase)
    warp_phase: np.ndarray  # (V, 3)
    warp_amp: np.ndarray  # (V, 3)

    @classmethod
    def draw(cls, views: int, strength: float, seed: int) -> "_ViewJitter":
        if strength < 0:
            raise InputError("inconsistency must be >= 0")
        rng = np.random.default_rng([int(seed), 0x5EED])
        dirs = np.stack([d / np.linalg.norm(d) for d, _ in LIGHTS])
        L = len(LIGHTS)
        x = float(strength)
        light_dirs = dirs[None] + x * 0.25 * rng.normal(size=(views, L, 3))
        light_dirs /= np.linalg.norm(light_dirs, axis=-1, keepdims=True)
        return cls(
            strength=x,
            light_dirs=light_dirs,
            light_gain=np.clip(1.0 + x * 0.25 * rng.normal(size=(views, L)), 0.3, 2.0),
            light_tint=np.clip(1.0 + x * 0.08 * rng.normal(size=(views, L, 3)), 0.5, 1.5),
            albedo_gain=np.clip(1.0 + x * 0.06 * rng.normal(size=(views, 3)), 0.5, 1.5),
            warp_freq=rng.normal(0.0, 4.0, size=(views, 3, 3)),
            warp_phase=rng.uniform(0, 2 * np.pi, size=(views, 3)),
            warp_amp=x * 0.01 * rng.normal(size=(views, 3)),
        )

    def deform(self, vertices: np.ndarray, views: np.ndarray) -> np.ndarray:
        """(N, 3) when consistent, else (len(views), N, 3) smoothly displaced (~1% of the object size)."""
        if self.strength == 0:
            return vertices
        v = vertices.astype(np.float64)
        arg = np.einsum("vij,nj->vni", self.warp_freq[views], v) + self.warp_phase[views, None]
        return (v[None] + self.warp_amp[views, None] * np.sin(arg)).astype(np.float32)
