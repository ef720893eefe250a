"""Backend mesh helpers for rigging: winding-number inside test, clustering, keypoint projection."""

from __future__ import annotations

import numpy as np
import trimesh

from keydiff3d.geometry.mesh import vertex_normals
from keydiff3d.rigging.mesh_tools import cluster_vertices, inside_test, project_inside, winding_number


def _two_overlapping_spheres():
    a = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    b = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    b.apply_translation([1.2, 0, 0])
    return trimesh.util.concatenate([a, b])


def test_winding_number_counts_overlaps_and_outside():
    mesh = _two_overlapping_spheres()
    tri = mesh.vertices[mesh.faces]
    w = winding_number(np.array([[0.0, 0, 0], [0.6, 0, 0], [3.0, 0, 0], [0, 0, 0.99]]), tri)
    np.testing.assert_allclose(w[:3], [1.0, 2.0, 0.0], atol=1e-6)  # the overlap counts twice, still inside
    assert w[3] > 0.5
    inside = inside_test(mesh.vertices, mesh.faces)
    assert inside(np.array([[0.0, 0, 0], [0.6, 0, 0], [1.2, 0, 0]])).all()
    assert not inside(np.array([[3.0, 0, 0], [0.6, 0, 1.2]])).any()


def test_clustering_keeps_a_closed_oriented_surface():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    v, f = cluster_vertices(np.asarray(sphere.vertices), np.asarray(sphere.faces), 12)
    assert len(f) < len(sphere.faces) / 5
    w = winding_number(np.array([[0.0, 0, 0], [0.5, 0.3, 0], [2.0, 0, 0]]), v[f])
    np.testing.assert_allclose(w, [1.0, 1.0, 0.0], atol=1e-6)


def test_project_inside_moves_only_outside_keypoints():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    inside = inside_test(sphere.vertices, sphere.faces)
    keypoints = np.array([[0.0, 0, 0], [0, 0, 1.5], [2.0, 0, 0]])
    moved, which = project_inside(keypoints, sphere.vertices, sphere.faces, inside)
    assert which == [1, 2]
    np.testing.assert_array_equal(moved[0], keypoints[0])
    assert inside(moved).all() and (np.linalg.norm(moved[1:], axis=1) > 0.95).all()
    normals = vertex_normals(np.asarray(sphere.vertices), np.asarray(sphere.faces))
    np.testing.assert_allclose(
        normals, sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True), atol=0.02
    )
