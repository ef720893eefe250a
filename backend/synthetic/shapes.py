"""Closed primitive meshes the creatures are made of: tapered capsules with an elliptic cross-section.

A capsule runs from point `a` (radius ra) to point `b` (radius rb) along w = (b - a)/|b - a|; its
cross-section is scaled by `thick` along the frame axis u and by `wide` along v = w x u, which
gives flat wings and broad torsos. The same parameters define an approximate signed distance, so
the union of the parts can also be meshed watertight (marching cubes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Capsule:
    """One body part in some frame: axis a -> b, end radii, cross-section frame and scales."""

    a: np.ndarray  # (3,)
    b: np.ndarray  # (3,)
    ra: float
    rb: float
    u: np.ndarray  # (3,) unit, perpendicular to the axis; `thick` scales the section along it
    thick: float = 1.0
    wide: float = 1.0

    @property
    def axis_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(u, v, w, length): orthonormal frame with w along the axis."""
        d = self.b - self.a
        length = float(np.linalg.norm(d))
        w = d / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
        u = self.u - w * float(self.u @ w)
        if np.linalg.norm(u) < 1e-6:  # frame hint parallel to the axis: pick any perpendicular
            u = np.cross(w, [1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.cross(w, [0.0, 1.0, 0.0])
        u = u / np.linalg.norm(u)
        return u, np.cross(w, u), w, length

    def transformed(self, scale: float, offset: np.ndarray) -> "Capsule":
        """The capsule under x -> scale * x + offset (a similarity without rotation)."""
        return Capsule(
            self.a * scale + offset,
            self.b * scale + offset,
            self.ra * scale,
            self.rb * scale,
            self.u,
            self.thick,
            self.wide,
        )

    def mesh(self, segments: int = 16, cap_rings: int = 4, ring_spacing: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
        """Closed triangle mesh (vertices (N, 3) float64, faces (F, 3) int32, outward winding).

        Rings: a hemisphere at `a`, straight rings every `ring_spacing` along the cone (so per-vertex
        colour patterns resolve), a hemisphere at `b`. Poles are rings of coincident points; the
        resulting zero-area triangles are harmless for rendering and normals.
        """
        u, v, w, length = self.axis_frame
        lat_a = np.linspace(-np.pi / 2, 0.0, cap_rings + 1)
        lat_b = np.linspace(0.0, np.pi / 2, cap_rings + 1)
        n_mid = int(np.clip(length / ring_spacing, 0, 24))
        ts = np.linspace(0.0, 1.0, n_mid + 2)[1:-1]
        # (along-axis centre, radius, polar angle) per ring
        rings = [(0.0, self.ra, p) for p in lat_a]
        rings += [(t * length, self.ra + t * (self.rb - self.ra), 0.0) for t in ts]
        rings += [(length, self.rb, p) for p in lat_b]
        theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
        section = np.cos(theta)[:, None] * (self.thick * u) + np.sin(theta)[:, None] * (self.wide * v)  # (S, 3)
        verts = []
        for along, radius, polar in rings:
            centre = self.a + along * w
            verts.append(centre + radius * (np.cos(polar) * section + np.sin(polar) * w))
        vertices = np.concatenate(verts)
        R, S = len(rings), segments
        i = np.arange(R - 1)[:, None] * S
        j = np.arange(S)[None, :]
        j1 = (j + 1) % S
        v00, v01, v10, v11 = i + j, i + j1, i + S + j, i + S + j1
        # u, v, w right-handed and theta turning u -> v: (v00, v01, v11) winds outward
        faces = np.concatenate(
            [np.stack([v00, v01, v11], -1).reshape(-1, 3), np.stack([v00, v11, v10], -1).reshape(-1, 3)]
        )
        return vertices, faces.astype(np.int32)

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Approximate signed distance (N,) (negative inside) of the tapered elliptic capsule."""
        u, v, w, length = self.axis_frame
        rel = points - self.a
        along = rel @ w
        t = np.clip(along / max(length, 1e-9), 0.0, 1.0)
        radius = self.ra + t * (self.rb - self.ra)
        # undo the section's anisotropy so the distance is measured in a round capsule
        du, dv = rel @ u / self.thick, rel @ v / self.wide
        dw = along - t * length
        return np.sqrt(du**2 + dv**2 + dw**2) - radius
