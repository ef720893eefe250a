"""Bone heat skinning (rigcore.heat, rays, sparse): invariants and the game-asset cases where
Blender's bone heat fails (eye shells, parts with no bone inside, open seams, non-manifold edges,
loose vertices, placeholder bone tails), on small synthetic meshes. Blender agreement: test_bpy_heat.py."""

from __future__ import annotations

import numpy as np
import pytest

from keydiff3d_addon.rigcore import Bone, build_skeleton, compute_skin_weights
from keydiff3d_addon.rigcore.heat import cotangent_system, heat_solution, heat_sources
from keydiff3d_addon.rigcore.rays import (
    GridHitFinder,
    MeshAdjacency,
    _unit_normals32,
    _watertight,
    _watertight_precalc,
    blocked_by_front_faces,
    nearest_points,
    segment_crosses,
)
from keydiff3d_addon.rigcore.skinning import weld_seams
from keydiff3d_addon.rigcore.sparse import (
    CsrMatrix,
    Multigrid,
    SymmetricSystem,
    connected_labels,
    solve_numpy,
)


def tube(length=3.0, radius=0.3, rings=31, sides=16, caps=True, z0=0.0):
    """Closed (or open-ended) cylinder along z: (V, 3) vertices, (F, 3) outward-facing triangles."""
    z = np.linspace(z0, z0 + length, rings)
    angle = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    v = np.concatenate([np.column_stack([ring, np.full(sides, zi)]) for zi in z])
    f = []
    for r in range(rings - 1):
        for s in range(sides):
            a, b = r * sides + s, r * sides + (s + 1) % sides
            c, d = a + sides, b + sides
            f += [[a, b, d], [a, d, c]]
    if caps:
        bottom, top = len(v), len(v) + 1
        v = np.vstack([v, [0, 0, z0], [0, 0, z0 + length]])
        last = (rings - 1) * sides
        for s in range(sides):
            f += [[bottom, (s + 1) % sides, s], [top, last + s, last + (s + 1) % sides]]
    return v, np.array(f)


def sphere(centre, radius, subdivisions=2):
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(mesh.vertices) + centre, np.asarray(mesh.faces)


def chain(points):
    """Skeleton through `points` (N, 3) in order (bones parent-first)."""
    n = len(points)
    a = np.zeros((n, n))
    for i in range(n - 1):
        a[i, i + 1] = a[i + 1, i] = 1.0
    return build_skeleton(np.asarray(points, float), a, root=0)


def combine(*meshes):
    vs, fs, offset = [], [], 0
    for v, f in meshes:
        vs.append(v)
        fs.append(f + offset)
        offset += len(v)
    return np.vstack(vs), np.vstack(fs)


def check_invariants(skin, num_vertices, k=4):
    assert skin.indices.shape == (num_vertices, k) and skin.weights.shape == (num_vertices, k)
    assert np.isfinite(skin.weights).all() and (skin.weights >= 0).all()
    np.testing.assert_allclose(skin.weights.sum(1), 1.0, atol=1e-5)
    dense = skin.dense()
    assert ((dense > 0).sum(1) >= 1).all() and ((dense > 0).sum(1) <= k).all()


BONES_Z = [[0, 0, 0.2], [0, 0, 1.2], [0, 0, 2.0], [0, 0, 2.8]]


def test_heat_on_a_tube_follows_the_bones_and_blends_at_joints():
    v, f = tube()
    skeleton = chain(BONES_Z)
    skin = compute_skin_weights(v, skeleton, faces=f, method="heat")
    check_invariants(skin, len(v))
    dense = skin.dense()
    names = skin.bone_names
    low = names.index(skeleton.bones[0].name)
    top = names.index(skeleton.bones[-1].name)
    assert dense[v[:, 2] < 0.6, low].min() > 0.95  # far below the first joint: the first bone alone
    assert dense[v[:, 2] > 2.9, top].min() > 0.95
    near_joint = np.abs(v[:, 2] - 1.2) < 0.05
    assert (np.sort(dense[near_joint], 1)[:, -2] > 0.2).all()  # both bones at the joint
    # weights change smoothly along the tube: neighbouring rings differ little
    ring_means = np.array([dense[np.isclose(v[:, 2], z)].mean(0) for z in np.unique(v[:-2, 2])])
    assert np.abs(np.diff(ring_means, axis=0)).max() < 0.35
    assert skin.method == "heat" and skin.params == {"placeholder_tails": True}
    assert skin.report["blind_pieces"] == 0 and skin.report["unweighted_before_fallback"] == 0


def split_at_seams(v, f):
    """The same surface as a file stores it (glTF): every triangle with its own three vertices."""
    return v[f.reshape(-1)], np.arange(f.size).reshape(-1, 3)


def test_vertices_split_at_seams_get_the_weights_of_the_welded_surface():
    """A glTF splits vertices at every seam and hard edge; heat welds them for the solve, so both sides
    of a seam move together (solved apart, each triangle would be its own piece)."""
    v, f = tube()
    skeleton = chain(BONES_Z)
    welded = compute_skin_weights(v, skeleton, faces=f, method="heat").dense()
    split_v, split_f = split_at_seams(v, f)
    split = compute_skin_weights(split_v, skeleton, faces=split_f, method="heat")
    check_invariants(split, len(split_v))
    np.testing.assert_allclose(split.dense(), welded[f.reshape(-1)], atol=1e-6)
    assert split.report["welded_vertices"] == len(split_v) - len(v) and split.report["blind_pieces"] == 0


def test_eye_shell_with_no_bone_inside_follows_the_head():
    body = tube()
    eye = sphere([0.39, 0.0, 2.6], 0.08)  # a separate shell on the surface: no bone can be seen from it
    v, f = combine(body, eye)
    skeleton = chain(BONES_Z)
    skin = compute_skin_weights(v, skeleton, faces=f, method="heat")
    check_invariants(skin, len(v))
    assert skin.report["blind_pieces"] == 1 and skin.report["blind_vertices"] == len(eye[0])
    dense = skin.dense()
    on_eye = np.arange(len(body[0]), len(v))
    head = skin.bone_names.index(skeleton.bones[-1].name)
    assert dense[on_eye, head].min() > 0.6  # glued to the head surface under it
    assert np.ptp(dense[on_eye], axis=0).max() < 0.3  # and moves almost as one piece


def test_part_far_from_every_bone_is_weighted():
    body = tube()
    prop = sphere([2.0, 0.0, 0.5], 0.3)  # a loose prop next to the creature
    v, f = combine(body, prop)
    skin = compute_skin_weights(v, chain(BONES_Z), faces=f, method="heat")
    check_invariants(skin, len(v))


def test_bones_outside_the_mesh_still_skin_it():
    v, f = combine(sphere([0, 0, 0], 0.5), sphere([0, 0, 0], 1.0))  # two nested shells
    skeleton = chain([[2, 0, 0], [3, 0, 0], [4, 0, 0]])  # beside them: the inner shell is hidden by the outer
    skin = compute_skin_weights(v, skeleton, faces=f, method="heat")
    check_invariants(skin, len(v))
    dense = skin.dense()
    assert dense[:, skin.bone_names.index(skeleton.bones[0].name)].mean() > 0.9


def test_open_seams_and_non_manifold_fins_are_skinned():
    open_tube = tube(caps=False)
    v, f = open_tube
    # a fin: two triangles hinged on one tube edge -> three triangles share that edge
    a, b = f[100][0], f[100][1]
    fin_tip = v[[a, b]].mean(0) + [0.6, 0.0, 0.0]
    v = np.vstack([v, fin_tip, fin_tip + [0.0, 0.0, 0.2]])
    f = np.vstack([f, [[a, b, len(v) - 2], [b, len(v) - 1, len(v) - 2]]])
    _, _, _, areas = cotangent_system(v, f)
    assert (areas > 0).all()
    skin = compute_skin_weights(v, chain(BONES_Z), faces=f, method="heat")
    check_invariants(skin, len(v))


def test_loose_vertices_and_degenerate_triangles_are_weighted():
    v, f = tube()
    loose = np.array([[0.0, 0.05, 1.0], [5.0, 5.0, 5.0]])
    v = np.vstack([v, loose, [[0.0, 0.0, 1.5]] * 3])
    n = len(v)
    f = np.vstack([f, [[n - 3, n - 2, n - 1]]])  # zero-area triangle of three coincident points
    skin = compute_skin_weights(v, chain(BONES_Z), faces=f, method="heat")
    check_invariants(skin, len(v))
    # the three coincident points are welded into one vertex, in no triangle of positive area
    assert skin.report["welded_vertices"] == 2 and skin.report["loose_vertices"] == 3


@pytest.mark.parametrize("k", [1, 2, 4])
def test_k_influences_are_the_largest_renormalised(k):
    v, f = tube()
    skeleton = chain(BONES_Z + [[0, 0, 3.3]])
    full = compute_skin_weights(v, skeleton, faces=f, method="heat", k=4).dense()
    skin = compute_skin_weights(v, skeleton, faces=f, method="heat", k=k)
    check_invariants(skin, len(v), k)
    kept = np.sort(full, 1)[:, ::-1][:, :k]
    np.testing.assert_allclose(np.sort(skin.dense(), 1)[:, ::-1][:, :k], kept / kept.sum(1, keepdims=True), atol=1e-5)


def test_placeholder_tails_skin_like_real_bones():
    """An imported armature whose tails are stubs (glTF/FBX) skins like the one with real bones."""
    v, f = tube()
    real = chain(BONES_Z).bones
    stubs = []
    for b in real:
        direction = (b.tail - b.head) / np.linalg.norm(b.tail - b.head)
        stubs.append(Bone(b.name, b.head.copy(), b.head + 0.001 * direction, b.parent, b.keypoint))
    good = compute_skin_weights(v, real, faces=f, method="heat").dense()
    repaired = compute_skin_weights(v, stubs, faces=f, method="heat")
    as_given = compute_skin_weights(v, stubs, faces=f, method="heat", placeholder_tails=False).dense()
    assert len(repaired.report["notes"]) == 2  # the inner bones and the leaf
    inner = v[:, 2] < 2.0  # the leaf's extension is a guess (half its parent's length), the rest is exact
    np.testing.assert_allclose(repaired.dense()[inner], good[inner], atol=0.02)
    assert np.abs(as_given - good).max() > 0.3  # point-like bones carve the mesh up differently


def test_sources_of_placeholder_bones():
    parent = Bone("a", np.zeros(3), np.array([0, 0, 0.001]), None, 1)
    children = [
        Bone("b", np.array([0, 0, 1.0]), np.array([0, 0, 2.0]), "a", 2),
        Bone("c", np.array([1.0, 0, 0]), np.array([2.0, 0, 0]), "a", 3),
    ]
    v, f = sphere([0, 0, 0], 3.0)
    sources = heat_sources([parent, *children], v, f)
    a_rows = sources.bone == 0
    np.testing.assert_allclose(sources.tails[a_rows], [[0, 0, 1.0], [1.0, 0, 0]])
    unchanged = heat_sources([parent, *children], v, f, placeholders=False)
    assert len(unchanged.bone) == 3 and not unchanged.notes


def test_leaf_placeholder_is_clipped_inside_the_mesh():
    v, f = tube(length=2.0)
    root = Bone("a", np.array([0, 0, 0.5]), np.array([0, 0, 1.5]), None, 1)
    leaf = Bone("b", np.array([0, 0, 1.5]), np.array([0, 0, 1.501]), "a", 2)  # half its parent would be z = 2.0
    sources = heat_sources([root, leaf], v, f)
    assert sources.tails[1, 2] == pytest.approx(2.0, abs=1e-6)  # the cap at z = 2 stops it
    leaf_long = Bone("b", np.array([0, 0, 1.8]), np.array([0, 0, 1.801]), "a", 2)
    root_long = Bone("a", np.array([0, 0, 0.2]), np.array([0, 0, 1.8]), None, 1)
    sources = heat_sources([root_long, leaf_long], v, f)
    assert sources.tails[1, 2] == pytest.approx(2.0, abs=1e-6)  # wanted 2.6, clipped at the cap


def test_rays_are_blocked_only_by_front_facing_triangles():
    triangle = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])  # normal +z
    v = np.vstack([triangle, [[0, 0, 1.0], [0, 0, -1.0]]]).astype(np.float32)
    f = np.array([[0, 1, 2]])
    hits = GridHitFinder(v, f).hits
    down = (v[[3]], v[[4]])  # enters from the front: blocked
    up = (v[[4]], v[[3]])  # leaves through the back: not blocked
    adjacency = MeshAdjacency(f, len(v))
    for (start, end), expected in ((down, True), (up, False)):
        blocked = blocked_by_front_faces(
            v, f, start, end, np.array([3 if expected else 4]), hits(start, end), adjacency
        )
        assert blocked.tolist() == [expected]


def blocked_by_any_triangle(v32, f, origins, targets):
    """Reference for `blocked_by_front_faces`: Blender's float32 test of every ray against every triangle."""
    vec = targets - origins
    start = origins + vec * np.float32(1e-5)
    vec = vec * np.float32(1.0 - 2e-5)
    length = np.sqrt((vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1]) + vec[:, 2] * vec[:, 2])
    direction = vec / length[:, None]
    precalc = _watertight_precalc(direction)
    normals = _unit_normals32(v32, f)
    ray, tri = (x.ravel() for x in np.meshgrid(np.arange(len(origins)), np.arange(len(f)), indexing="ij"))
    d = direction[ray]
    front = (normals[tri, 0] * d[:, 0] + normals[tri, 1] * d[:, 1]) + normals[tri, 2] * d[:, 2] < np.float32(-1e-5)
    ray, tri = ray[front], tri[front]
    lam = _watertight(start[ray], precalc, ray, v32[f[tri, 0]], v32[f[tri, 1]], v32[f[tri, 2]])
    blocked = np.zeros(len(origins), bool)
    blocked[ray[lam < length[ray]]] = True
    return blocked


def test_ray_decision_equals_testing_every_triangle_on_grazing_rays():
    """The re-test skips triangles through the ray's own vertex unless the ray's start lies within float32
    rounding of their plane: on rays that run just under one of their vertex's triangles (where rounding
    decides), and on rays into the mesh, it answers as testing every triangle does."""
    rng = np.random.default_rng(3)
    v, f = sphere([0.3, -0.2, 1.1], 0.8, subdivisions=3)
    v = v * rng.uniform(0.9, 1.1, (len(v), 1))  # bumps: concave spots where rays run into the surface
    v32 = v.astype(np.float32)
    corner = rng.integers(0, 3, 1500)
    tri = rng.integers(0, len(f), 1500)
    origin_vertex = f[tri, corner]
    a, b, c = (v[f[tri, (corner + i) % 3]] for i in range(3))
    inside = rng.dirichlet([1.0, 1.0], 1500)
    along = inside[:, :1] * (b - a) + inside[:, 1:] * (c - a)  # into the triangle's corner at the vertex
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    tilt = 10.0 ** rng.uniform(-5, -1, 1500)[:, None] * np.linalg.norm(along, axis=1, keepdims=True)
    grazing = a + 3.0 * along - tilt * normal
    into = rng.uniform(-0.3, 0.3, (500, 3)) + [0.3, -0.2, 1.1]
    origin_vertex = np.concatenate([origin_vertex, rng.integers(0, len(v), 500)])
    origins = v32[origin_vertex]
    targets = np.concatenate([grazing, into]).astype(np.float32)
    hits = GridHitFinder(v, f).hits(origins.astype(np.float64), targets.astype(np.float64))
    blocked = blocked_by_front_faces(v32, f, origins, targets, origin_vertex, hits, MeshAdjacency(f, len(v)))
    expected = blocked_by_any_triangle(v32, f, origins, targets)
    np.testing.assert_array_equal(blocked, expected)
    assert 20 < expected[:1500].sum() < 1480  # the grazing rays go both ways


@pytest.mark.parametrize("mesh", ["sphere", "tube"])
@pytest.mark.parametrize(
    "offset, scale", [((0.0, 0.0, 0.0), 1.0), ((100.3, -50.1, 7.7), 30.0), ((0.9, 0.9, 0.9), 0.01)]
)
def test_ray_decision_equals_the_full_retest_on_long_rays_tilted_both_ways(monkeypatch, mesh, offset, scale):
    """Rays from a vertex along one of its triangles, tilted 1e-9..1 above or below it, 0.5-20 times
    the triangle's size long, on meshes far from the origin or tiny: the restricted re-test decides
    as re-testing every triangle through the origin vertex does (once missed: blockers that are
    neighbours of a hit through the origin vertex)."""
    import keydiff3d_addon.rigcore.rays as rays

    rng = np.random.default_rng(7)
    if mesh == "sphere":
        v, f = sphere([0.0, 0.0, 0.0], 0.8 * scale, subdivisions=3)
        v = v * rng.uniform(0.9, 1.1, (len(v), 1))
    else:
        v, f = tube()
        v = v * scale + rng.normal(0, 0.01 * scale, v.shape)
    v32 = (v + offset).astype(np.float32)
    n = 3000
    corner, tri = rng.integers(0, 3, n), rng.integers(0, len(f), n)
    origin_vertex = f[tri, corner]
    a, b, c = (v32[f[tri, (corner + i) % 3]].astype(np.float64) for i in range(3))
    inside = rng.dirichlet([1.0, 1.0], n)
    along = inside[:, :1] * (b - a) + inside[:, 1:] * (c - a)
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    tilt = rng.choice([-1.0, 1.0], (n, 1)) * 10.0 ** rng.uniform(-9, 0, (n, 1)) * np.linalg.norm(along, axis=1)[:, None]
    targets = (a + rng.uniform(0.5, 20, (n, 1)) * along - tilt * normal).astype(np.float32)
    origins = v32[origin_vertex]
    hits = GridHitFinder(v32.astype(np.float64), f).hits(origins.astype(np.float64), targets.astype(np.float64))
    adjacency = MeshAdjacency(f, len(v32))
    restricted = blocked_by_front_faces(v32, f, origins, targets, origin_vertex, hits, adjacency)
    monkeypatch.setattr(rays, "NEAR_PLANE_ULPS", np.inf)  # every triangle through the origin re-tested
    full = blocked_by_front_faces(v32, f, origins, targets, origin_vertex, hits, adjacency)
    np.testing.assert_array_equal(restricted, full)
    assert 0 < full.sum() < n


@pytest.mark.timeout(60)
def test_weld_seams_stays_linear_where_copies_pile_up():
    """50k seam vertices at one point (a broken or hostile file) and 20k within 1e-9 of another: one
    vertex each, in well under the timeout (all pairs would take minutes and gigabytes)."""
    rng = np.random.default_rng(1)
    v = np.concatenate([np.zeros((50_000, 3)), 0.5 + 1e-9 * rng.random((20_000, 3)), rng.random((30_000, 3))])
    f = rng.permutation(len(v))[: len(v) // 3 * 3].reshape(-1, 3)  # every vertex once: all edges open
    welded, copy_of = weld_seams(v, f)
    used = np.zeros(len(v), bool)
    used[f.reshape(-1)] = True
    assert len(set(copy_of[:50_000][used[:50_000]])) == 1 and len(set(copy_of[50_000:70_000][used[50_000:70_000]])) == 1


def test_weld_seams_keeps_the_vertex_order():
    v, f = tube()
    welded, copy_of = weld_seams(v, f)
    np.testing.assert_array_equal(welded, v)  # closed: nothing to weld
    np.testing.assert_array_equal(copy_of, np.arange(len(v)))
    split_v, split_f = split_at_seams(v, f)
    welded, copy_of = weld_seams(split_v, split_f)
    assert len(welded) == len(v)
    np.testing.assert_allclose(welded[copy_of], split_v)
    first = np.unique(copy_of, return_index=True)[1]
    np.testing.assert_array_equal(first, np.sort(first))  # welded in order of first appearance
    touching = combine(sphere([0, 0, 0], 1.0), sphere([2.0, 0, 0], 1.0))  # closed shells sharing a point
    assert len(weld_seams(*touching)[0]) == len(touching[0])


def test_grid_hit_finder_matches_brute_force():
    v, f = combine(tube(), sphere([0.0, 0.0, 1.0], 0.2))
    rng = np.random.default_rng(0)
    starts = v[rng.integers(0, len(v), 300)]
    ends = rng.uniform([-0.4, -0.4, -0.2], [0.4, 0.4, 3.2], (300, 3))
    ray, tri = GridHitFinder(v, f).hits(starts, ends)
    found = set(zip(ray.tolist(), tri.tolist()))
    r_all, t_all = np.meshgrid(np.arange(300), np.arange(len(f)), indexing="ij")
    crosses = segment_crosses(starts[r_all.ravel()], ends[r_all.ravel()], v[f[t_all.ravel()]], 1e-7)
    brute = set(zip(r_all.ravel()[crosses].tolist(), t_all.ravel()[crosses].tolist()))
    assert found == brute and len(brute) > 100


def test_nearest_points_matches_brute_force():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(2000, 3)) * [1.0, 1.0, 0.01]  # a thin sheet (the grid is sized for surfaces)
    queries = np.vstack([rng.normal(size=(300, 3)), [[40.0, 0, 0]]])  # one far outside
    index, distance = nearest_points(queries, points)
    d = np.linalg.norm(queries[:, None] - points[None], axis=2)
    np.testing.assert_allclose(distance, d.min(1))
    np.testing.assert_array_equal(index, d.argmin(1))


def test_connected_labels_number_pieces_by_first_appearance():
    labels = connected_labels(7, np.array([5, 0, 3, 2]), np.array([6, 1, 4, 4]))
    assert labels.tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_numpy_multigrid_solver_matches_a_dense_solve():
    v, f = tube(rings=61, sides=24)  # 1466 vertices
    rows, cols, vals, areas = cotangent_system(v, f)
    n = len(v)
    degree = np.bincount(rows, weights=-vals, minlength=n)
    screen = 2 * areas * np.where(v[:, 2] < 0.5, 50.0, 0.5)
    system = SymmetricSystem(
        np.concatenate([rows, np.arange(n)]),
        np.concatenate([cols, np.arange(n)]),
        np.concatenate([vals, degree + screen]),
        n,
        v,
    )
    rhs = screen[:, None] * np.stack([v[:, 2] < 1.5, v[:, 2] >= 1.5], 1)
    exact = np.linalg.solve(system.csr().toarray(), rhs)
    iterative = solve_numpy(system, rhs, dense_limit=200, tolerance=1e-8, max_iterations=2000)
    np.testing.assert_allclose(iterative, exact, atol=1e-5)
    assert len(Multigrid(system.csr(), v, coarsest=200).levels) >= 1


def test_csr_products_match_dense():
    rng = np.random.default_rng(2)
    a = CsrMatrix.from_coo(rng.integers(0, 30, 200), rng.integers(0, 20, 200), rng.normal(size=200), (30, 20))
    b = CsrMatrix.from_coo(rng.integers(0, 20, 100), rng.integers(0, 10, 100), rng.normal(size=100), (20, 10))
    x = rng.normal(size=(20, 3))
    np.testing.assert_allclose(a @ x, a.toarray() @ x)
    np.testing.assert_allclose((a @ b).toarray(), a.toarray() @ b.toarray())
    np.testing.assert_allclose(a.transpose().toarray(), a.toarray().T)


def test_backend_accelerators_give_the_numpy_weights():
    from keydiff3d.rigging.heat_backends import EmbreeHitFinder, heat_accelerators

    v, f = combine(tube(), sphere([0.32, 0.0, 2.6], 0.08))
    skeleton = chain(BONES_Z)
    reference = compute_skin_weights(v, skeleton, faces=f, method="heat")
    fast = compute_skin_weights(v, skeleton, faces=f, method="heat", **heat_accelerators(v, f))
    np.testing.assert_allclose(fast.dense(), reference.dense(), atol=1e-6)
    starts, ends = v[:50], np.zeros((50, 3)) + [0, 0, 1.5]
    grid = set(zip(*(x.tolist() for x in GridHitFinder(v, f).hits(starts, ends))))
    assert set(zip(*(x.tolist() for x in EmbreeHitFinder(v, f).hits(starts, ends)))) <= grid


def test_scipy_solver_in_nested_dissection_order_matches_a_dense_solve():
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    from keydiff3d.rigging.heat_backends import nested_dissection_order, scipy_solver

    v, f = tube(rings=61, sides=24)
    shuffle = np.random.default_rng(4).permutation(len(v))  # no locality left in the vertex numbering
    v, f = v[shuffle], np.argsort(shuffle)[f]
    rows, cols, vals, areas = cotangent_system(v, f)
    n = len(v)
    screen = 2 * areas * np.where(v[:, 2] < 0.5, 50.0, 0.5)
    diagonal = np.bincount(rows, weights=-vals, minlength=n) + screen
    system = SymmetricSystem(np.r_[rows, np.arange(n)], np.r_[cols, np.arange(n)], np.r_[vals, diagonal], n, v)
    rhs = screen[:, None] * np.stack([v[:, 2] < 1.5, v[:, 2] >= 1.5], 1)
    np.testing.assert_allclose(scipy_solver(system, rhs), np.linalg.solve(system.csr().toarray(), rhs), atol=1e-10)
    order = nested_dissection_order(v, system.rows, system.cols)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    matrix = sp.csc_matrix((system.vals, (system.rows, system.cols)), shape=(n, n))
    options = {"permc_spec": "NATURAL", "diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}
    fill_as_numbered = splu(matrix, **options).L.nnz
    fill_ordered = splu(matrix[order][:, order], **options).L.nnz
    assert fill_ordered < 0.5 * fill_as_numbered


@pytest.mark.timeout(60)
def test_nested_dissection_order_ends_on_points_it_cannot_split():
    """Coincident vertices (a hostile or broken upload) once split forever; they end as one leaf."""
    from keydiff3d.rigging.heat_backends import nested_dissection_order

    points = np.concatenate([np.zeros((40, 3)), np.random.default_rng(0).random((200, 3))])
    rows = np.r_[np.arange(239), np.arange(1, 240)]  # a path through all of them, both ways
    cols = np.r_[np.arange(1, 240), np.arange(239)]
    order = nested_dissection_order(points, rows, cols, leaf=8)
    np.testing.assert_array_equal(np.sort(order), np.arange(240))


def test_heat_solution_rows_sum_to_one_where_sources_are_seen():
    v, f = tube()
    skeleton = chain(BONES_Z)
    sources = heat_sources(skeleton.bones, v, f)
    solution = heat_solution(v, f, sources)
    np.testing.assert_allclose(solution.values.sum(1), 1.0, atol=1e-6)  # L 1 = 0 and the p rows sum to 1


def test_heat_progress_is_reported_and_can_cancel():
    from keydiff3d.errors import Cancelled
    from keydiff3d.progress import Progress

    v, f = tube()
    seen = []
    progress = Progress(lambda stage, fraction, message: seen.append(fraction))
    compute_skin_weights(v, chain(BONES_Z), faces=f, method="heat", progress=progress)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    progress.cancel()
    with pytest.raises(Cancelled):
        compute_skin_weights(v, chain(BONES_Z), faces=f, method="heat", progress=progress)


def test_seam_copies_are_welded_wherever_they_fall_on_a_grid():
    """Pairs of copies 5e-9 apart (tolerance 1e-7 of the size 1) placed every 4.1e-9 over 4e-7: one
    grid of cells of any size up to there would cut at least one pair; every pair is one vertex,
    and the pairs stay apart (0.01 between them)."""
    from keydiff3d_addon.rigcore.skinning import weld_seams

    pairs = 97
    x = np.arange(pairs) * (4e-7 / pairs)
    y = 0.01 * np.arange(pairs)
    first = np.column_stack([x, y, np.zeros(pairs)])
    second = first + [5e-9, 0.0, 0.0]
    far = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    v = np.concatenate([first, second, far])
    a, b = np.arange(pairs), pairs + np.arange(pairs)
    faces = np.concatenate(
        [
            np.column_stack([a, np.full(pairs, 2 * pairs), np.full(pairs, 2 * pairs + 1)]),
            np.column_stack([b, np.full(pairs, 2 * pairs + 1), np.full(pairs, 2 * pairs)]),
        ]
    )
    welded, copy_of = weld_seams(v, faces)
    np.testing.assert_array_equal(copy_of[a], copy_of[b])
    assert len(welded) == pairs + 2
    np.testing.assert_array_equal(welded, v[np.r_[a, 2 * pairs, 2 * pairs + 1]])  # first copies, in order
