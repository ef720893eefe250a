"""A toy creature for the skeleton tests (not a test module): a body, four legs, a neck with a head
and a tail, made of closed cylinders and spheres that overlap (as game meshes do), mirror symmetric
about the plane y = 0. z is up; the body is 1.1 long."""

from __future__ import annotations

import numpy as np
import trimesh

BODY = ((-0.4, 0.0, 0.5), (0.4, 0.0, 0.5), 0.12)
LEGS = [((x, y, 0.5), (x, y, 0.02), 0.05) for x in (-0.3, 0.3) for y in (-0.1, 0.1)]
NECK = ((0.4, 0.0, 0.5), (0.6, 0.0, 0.8), 0.07)
HEAD = ((0.6, 0.0, 0.8), (0.75, 0.0, 0.8), 0.08)
TAIL = ((-0.4, 0.0, 0.5), (-0.75, 0.0, 0.62), 0.035)
FEET = np.array([end for _, end, _ in LEGS])


def toy_quadruped(yaw_deg: float = 0.0, extra=()) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) of the toy creature turned by `yaw_deg` about z; `extra`:
    more (start, end, radius) parts (to break the symmetry)."""
    parts = []
    for start, end, radius in [BODY, *LEGS, NECK, HEAD, TAIL, *extra]:
        parts.append(trimesh.creation.cylinder(radius=radius, segment=[start, end], sections=16))
        for centre in (start, end):
            parts.append(trimesh.creation.icosphere(subdivisions=2, radius=radius).apply_translation(centre))
    mesh = trimesh.util.concatenate(parts)
    turn = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1])
    mesh.apply_transform(turn)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def turn(points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Points turned by `yaw_deg` about z, as toy_quadruped turns the mesh."""
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    return np.asarray(points, np.float64) @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
