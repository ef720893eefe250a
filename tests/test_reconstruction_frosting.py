"""Gaussian Frosting: the pure-tensor parts on the CPU (rotations, reference rasteriser,
regularisation, level set, frosting layer, posing, export) and the whole pipeline at toy size.
gsplat itself runs only in the CUDA-marked tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from keydiff3d.errors import DeviceError, InputError
from keydiff3d.geometry import orbit_cameras
from keydiff3d.reconstruction.frosting import (
    FrostingConfig,
    FrostingGaussians,
    GaussianParams,
    load_frosting,
    load_gaussians_ply,
    pose_gaussians,
    run_frosting,
    save_frosting,
    save_gaussians_ply,
    skin_vertices,
)
from keydiff3d.reconstruction.frosting.gaussians import covariance, matrix_to_quat, quat_multiply, quat_to_matrix
from keydiff3d.reconstruction.frosting.layer import face_frames, init_frosting, shell_thickness, vertex_normals
from keydiff3d.reconstruction.frosting.regularization import (
    density_alignment_loss,
    nearest_neighbours,
    opacity_binary_loss,
)
from keydiff3d.reconstruction.frosting.render import camera_tensors, rasterize_torch
from keydiff3d.reconstruction.frosting.surface import base_mesh, density_grid
from keydiff3d.reconstruction.frosting.train import FitSchedule
from keydiff3d.reconstruction.hull import HullConfig
from keydiff3d.reconstruction.meshing import Grid
from keydiff3d.reconstruction.metrics import chamfer_percent
from keydiff3d.synthetic.renderer import render_multiview

torch.set_num_threads(1)


def _random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    return quat_to_matrix(q)


def _params(means, quats, scales, opacity, colors) -> GaussianParams:
    o = torch.as_tensor(opacity, dtype=torch.float32).expand(len(means)).clone()
    c = torch.as_tensor(colors, dtype=torch.float32).expand(len(means), 3).clamp(1e-4, 1 - 1e-4)
    return GaussianParams(
        means.float(), quats.float(), torch.log(scales.float()), torch.log(o / (1 - o)), torch.log(c / (1 - c))
    )


def _sphere_frosting(count: int = 200) -> tuple[trimesh.Trimesh, FrostingGaussians]:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    inner = np.full(len(sphere.vertices), 0.01)
    outer = np.full(len(sphere.vertices), 0.03)
    return sphere, init_frosting(sphere, inner, outer, count, seed=1)


# ----------------------------------------------------------------------------- rotations


def test_quaternion_matrix_round_trip():
    R = _random_rotations(200)
    assert torch.allclose(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-5)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(200, 3, 3), atol=1e-5)
    # 180 degree turns (trace -1) are the unstable case of the naive formula
    flips = torch.diag_embed(torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1]]))
    assert torch.allclose(quat_to_matrix(matrix_to_quat(flips)), flips, atol=1e-6)


def test_quaternion_product_composes_rotations():
    a, b = torch.randn(50, 4), torch.randn(50, 4)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    assert torch.allclose(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-5)


# ----------------------------------------------------------------------------- reference rasteriser


def test_reference_rasteriser_projects_and_composites():
    cams = orbit_cameras(np.array([0.0]), 0.0, size=32)  # camera on +x looking at the origin
    viewmats, Ks = camera_tensors(cams)
    means = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]], requires_grad=True)  # second one in front
    g = _params(
        means,
        torch.tensor([[1.0, 0, 0, 0]] * 2),
        torch.full((2, 3), 0.08),
        0.99,
        torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]),
    )
    render, alpha, info = rasterize_torch(
        means, g.quats, g.scales, g.opacities, g.colors, viewmats, Ks, 32, 32, backgrounds=torch.ones(1, 3)
    )
    assert render.shape == (1, 32, 32, 4) and alpha.shape == (1, 32, 32, 1)
    centre = render[0, 15:17, 15:17].mean((0, 1))
    assert centre[1] > 0.9 and centre[0] < 0.1  # the nearer (green) Gaussian covers the farther (red)
    assert centre[3].item() == pytest.approx(1.7, abs=0.05)  # expected depth of the front one
    assert alpha[0, 0, 0, 0] < 1e-3 and render[0, 0, 0, :3].min() > 0.99  # white background
    assert info["means2d"].shape == (1, 2, 2) and torch.allclose(
        info["means2d"][0, 0], torch.tensor([16.0, 16.0]), atol=1e-4
    )
    render[..., 1].sum().backward()
    assert means.grad is not None and torch.isfinite(means.grad).all()


def test_reference_rasteriser_moves_with_the_gaussian():
    cams = orbit_cameras(np.array([0.0]), 0.0, size=32)
    viewmats, Ks = camera_tensors(cams)
    # camera on +x looking at -x, z up: image right = world +y (OpenCV x right = forward x up)
    cols = []
    for y in (-0.1, 0.1):
        g = _params(
            torch.tensor([[0.0, y, 0.0]]),
            torch.tensor([[1.0, 0, 0, 0]]),
            torch.full((1, 3), 0.02),
            0.9,
            torch.tensor([1.0, 0, 0]),
        )
        _, alpha, _ = rasterize_torch(g.means, g.quats, g.scales, g.opacities, g.colors, viewmats, Ks, 32, 32)
        cols.append(int(alpha[0, 16, :, 0].argmax()))
    right = np.cross(np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]))  # forward x up
    assert (cols[1] > cols[0]) == (right[1] > 0)


@pytest.mark.cuda
def test_gsplat_matches_the_reference():
    from keydiff3d.reconstruction.frosting.render import rasterize_gsplat

    gen = torch.Generator().manual_seed(0)
    n = 64
    means = (torch.rand(n, 3, generator=gen) - 0.5) * 0.6
    g = _params(
        means,
        torch.randn(n, 4, generator=gen),
        torch.rand(n, 3, generator=gen) * 0.03 + 0.01,
        0.7,
        torch.rand(n, 3, generator=gen),
    )
    cams = orbit_cameras(size=48).subset([0, 7])
    viewmats, Ks = camera_tensors(cams)
    args = (g.means, g.quats, g.scales, g.opacities, g.colors, viewmats, Ks, 48, 48)
    ref, ref_alpha, _ = rasterize_torch(*args, backgrounds=torch.ones(2, 3))
    out, out_alpha, _ = rasterize_gsplat(
        *[a.cuda() if torch.is_tensor(a) else a for a in args], backgrounds=torch.ones(2, 3).cuda()
    )
    assert (out_alpha.cpu() - ref_alpha).abs().mean() < 0.01
    assert (out[..., :3].cpu() - ref[..., :3]).abs().mean() < 0.01


# ----------------------------------------------------------------------------- regularisation, level set


def test_density_alignment_prefers_flat_opaque_sheets():
    """Gaussians tiling the plane z = 0 as flat opaque discs are near the ideal; fat ones are not."""
    xs = torch.linspace(-0.2, 0.2, 11)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    means = torch.cat([grid, torch.zeros(len(grid), 1)], 1)
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(len(means), 4)
    # in-plane scale = spacing / sqrt(2 pi): the discs' densities add up to ~1 all over the plane
    flat = _params(means, quats, torch.tensor([0.016, 0.016, 0.002]).expand(len(means), 3), 0.999, 0.5)
    fat = _params(means, quats, torch.tensor([0.04, 0.04, 0.04]).expand(len(means), 3), 0.5, 0.5)
    gen = torch.Generator().manual_seed(0)
    loss_flat = density_alignment_loss(flat, nearest_neighbours(flat.means, 8), 4000, gen)
    loss_fat = density_alignment_loss(fat, nearest_neighbours(fat.means, 8), 4000, gen)
    assert loss_flat < 0.5 * loss_fat
    with pytest.raises(ValueError, match="stale"):
        density_alignment_loss(flat, nearest_neighbours(flat.means[:10], 4), 10)


def test_opacity_binary_loss_is_lowest_at_zero_and_one():
    means = torch.zeros(3, 3)
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(3, 4)
    scales = torch.full((3, 3), 0.1)
    values = [float(opacity_binary_loss(_params(means, quats, scales, o, 0.5))) for o in (0.001, 0.5, 0.999)]
    assert values[1] == pytest.approx(math.log(2), rel=1e-3) and max(values[0], values[2]) < 0.01


def test_density_grid_of_one_gaussian():
    grid = Grid.cube(0.3, 61)  # spacing 0.01, origin voxel exactly at 0
    g = _params(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.015), 0.999, 0.5)
    density = density_grid(g, grid).numpy()
    assert density[30, 30, 30] == pytest.approx(0.999, abs=1e-3)
    s = math.sqrt(0.015**2 + 0.005**2)  # widened by half a voxel
    assert density.sum() * 0.01**3 == pytest.approx(0.999 * (2 * math.pi) ** 1.5 * s**3, rel=0.05)


@pytest.mark.parametrize("pinhole", [False, True])
def test_level_set_of_gaussians_on_a_sphere(pinhole):
    """Flat opaque Gaussians tangent to a sphere give back the sphere as a closed, solid base mesh,
    also when the sheet has a pinhole (no Gaussians on a small cap)."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    points, face = trimesh.sample.sample_surface_even(sphere, 3000, seed=0)
    if pinhole:
        keep = points[:, 2] < 0.297  # a cap of radius ~0.04 left bare
        points, face = points[keep], face[keep]
    normals = torch.as_tensor(sphere.face_normals[face], dtype=torch.float32)
    z = torch.tensor([0.0, 0.0, 1.0]).expand_as(normals)
    axis = torch.cross(z, normals, dim=-1)
    angle = torch.acos((normals * z).sum(-1).clamp(-1, 1))
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    quats = torch.cat([torch.cos(angle / 2)[:, None], axis * torch.sin(angle / 2)[:, None]], 1)  # z -> normal
    g = _params(
        torch.as_tensor(points, dtype=torch.float32),
        quats,
        torch.tensor([0.015, 0.015, 0.002]).expand(len(points), 3),
        0.999,
        0.5,
    )
    mesh, report = base_mesh(
        g, resolution=96, half=0.4, target_faces=3000, hull=sphere
    )  # the sphere stands in for its hull
    assert report.watertight and len(mesh.faces) <= 3000
    # the level set wraps the sheet's outer side: about two (grid-widened) normal scales outside it
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert 0.3 < np.median(radius) < 0.315
    assert len(mesh.split()) == 1 and mesh.volume == pytest.approx(
        4 / 3 * math.pi * np.median(radius) ** 3, rel=0.05
    )  # solid
    if not pinhole:
        assert radius.std() < 0.005
        assert chamfer_percent(mesh, sphere, samples=5000) < 1.5


# ----------------------------------------------------------------------------- frosting layer and posing


def test_frosting_gaussians_stay_in_their_prisms():
    sphere, layer = _sphere_frosting()
    inner_layer = layer.with_params({"shell_logits": torch.full((len(layer),), -30.0)})
    outer_layer = layer.with_params({"shell_logits": torch.full((len(layer),), 30.0)})
    r_inner = inner_layer.world().means.norm(dim=-1)
    r_outer = outer_layer.world().means.norm(dim=-1)
    r_mid = layer.world().means.norm(dim=-1)
    # on a sphere the shells are spheres of radius 0.3 - 0.01 and 0.3 + 0.03 (up to flat triangles)
    assert (r_inner < 0.2905).all() and (r_inner > 0.27).all()
    assert (r_outer < 0.3305).all() and (r_outer > 0.31).all()
    assert ((r_mid >= r_inner - 1e-6) & (r_mid <= r_outer + 1e-6)).all()
    # rotations: identity local quats put the Gaussian's third axis along the triangle normal
    R = quat_to_matrix(layer.world().quats)
    normals = torch.as_tensor(sphere.face_normals[layer.face.numpy()], dtype=torch.float32)
    assert torch.allclose(R[:, :, 2], normals, atol=1e-4)
    assert torch.allclose(
        face_frames(layer.vertices, layer.faces)[:, :, 2],
        torch.tensor(np.array(sphere.face_normals), dtype=torch.float32),
        atol=1e-5,
    )


def test_vertex_normals_of_a_sphere_point_outward():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    n = vertex_normals(torch.as_tensor(sphere.vertices, dtype=torch.float32), torch.as_tensor(sphere.faces))
    assert torch.allclose(n, torch.as_tensor(sphere.vertices, dtype=torch.float32), atol=0.02)


def test_shell_thickness_follows_the_free_gaussians():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(4000, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    fluffy_top = dirs[:, 2] > 0
    radii = 0.3 + np.where(fluffy_top, rng.uniform(0, 0.04, 4000), 0.0)  # fur on the upper half only
    free = _params(
        torch.as_tensor(dirs * radii[:, None]),
        torch.tensor([[1.0, 0, 0, 0]]).expand(4000, 4),
        torch.full((4000, 3), 0.002),
        0.9,
        0.5,
    )
    inner, outer = shell_thickness(sphere, free, minimum=0.002, maximum=0.1, smooth_iterations=1)
    top = sphere.vertices[:, 2] > 0.15
    bottom = sphere.vertices[:, 2] < -0.15
    assert outer[top].mean() > 3 * outer[bottom].mean()
    assert inner.max() < 0.02


def test_pose_with_identity_and_rigid_transforms():
    _, layer = _sphere_frosting()
    M = len(layer.vertices)
    weights = torch.zeros(M, 2)
    weights[:, 0] = 0.7
    weights[:, 1] = 0.3
    rest = layer.world()
    same = pose_gaussians(layer, torch.eye(4).expand(2, 4, 4), weights)
    assert torch.allclose(same.means, rest.means, atol=1e-6)
    # one rigid motion for every bone moves every Gaussian rigidly
    R = _random_rotations(1, seed=3)[0]
    T = torch.eye(4)
    T[:3, :3], T[:3, 3] = R, torch.tensor([0.1, -0.2, 0.05])
    posed = pose_gaussians(layer, T.expand(2, 4, 4), weights)
    assert torch.allclose(posed.means, rest.means @ R.T + T[:3, 3], atol=1e-5)
    cov_rest = covariance(rest.quats, rest.scales)
    cov_posed = covariance(posed.quats, posed.scales)
    assert torch.allclose(cov_posed, R @ cov_rest @ R.T, atol=1e-7)
    assert torch.equal(posed.opacity_logits, rest.opacity_logits) and torch.equal(posed.color_logits, rest.color_logits)


def test_pose_follows_the_bone_that_owns_the_vertices():
    _, layer = _sphere_frosting(400)
    upper = (layer.vertices[:, 2] > 0).float()
    weights = torch.stack([1 - upper, upper], 1)  # upper half on bone 1, lower half on bone 0
    lift = torch.eye(4).repeat(2, 1, 1)
    lift[1, 2, 3] = 0.5
    rest, posed = layer.world(), pose_gaussians(layer, lift, weights)
    corners_up = upper[layer.faces[layer.face]].bool()
    all_up, all_down = corners_up.all(1), (~corners_up).all(1)
    shift = posed.means - rest.means
    assert all_up.any() and all_down.any()
    far_down = all_down & (layer.vertices[layer.faces[layer.face]][:, :, 2].max(1).values < -0.15)
    assert far_down.any()
    assert torch.allclose(shift[far_down], torch.zeros(3), atol=1e-6)
    # Gaussians well above the seam move exactly by the lift (normals at seam vertices may turn)
    far_up = all_up & (layer.vertices[layer.faces[layer.face]][:, :, 2].min(1).values > 0.15)
    assert far_up.any()
    assert torch.allclose(shift[far_up], torch.tensor([0.0, 0.0, 0.5]).expand(int(far_up.sum()), 3), atol=1e-5)


def test_top_k_skin_weights_equal_dense_ones():
    gen = torch.Generator().manual_seed(0)
    vertices = torch.rand(30, 3, generator=gen)
    bones = torch.eye(4).repeat(5, 1, 1)
    bones[:, :3, :3] = _random_rotations(5, seed=1)
    bones[:, :3, 3] = torch.rand(5, 3, generator=gen)
    indices = torch.stack([torch.randperm(5, generator=gen)[:2] for _ in range(30)])
    w = torch.rand(30, 2, generator=gen)
    w = w / w.sum(1, keepdim=True)
    dense = torch.zeros(30, 5).scatter_(1, indices, w)
    assert torch.allclose(skin_vertices(vertices, bones, w, indices), skin_vertices(vertices, bones, dense), atol=1e-6)
    # pose_gaussians takes the rig's numpy arrays (SkinWeights.indices int32, .weights float32) as they are
    _, layer = _sphere_frosting()
    M = len(layer.vertices)
    np_indices = np.zeros((M, 2), np.int32)
    np_indices[:, 1] = 1
    np_weights = np.tile(np.array([[0.25, 0.75]], np.float32), (M, 1))
    posed = pose_gaussians(layer, bones[:2].numpy(), np_weights, np_indices)
    expected = pose_gaussians(layer, bones[:2], torch.as_tensor(np_weights))
    assert torch.allclose(posed.means, expected.means, atol=1e-6)
    with pytest.raises(ValueError):
        skin_vertices(vertices, bones, dense[:, :3])


# ----------------------------------------------------------------------------- export


def test_gaussian_ply_round_trip(tmp_path):
    _, layer = _sphere_frosting()
    path = tmp_path / "g.ply"
    save_gaussians_ply(layer, path)
    header = path.read_bytes()[:600].decode("ascii", "replace")
    assert "element vertex 200" in header and "property float f_dc_0" in header and "property float rot_3" in header
    back, rest = load_gaussians_ply(path), layer.world()
    assert torch.allclose(back.means, rest.means, atol=1e-6)
    assert torch.allclose(back.log_scales, rest.log_scales, atol=1e-6)
    assert torch.allclose(back.opacities, rest.opacities, atol=1e-6)
    assert torch.allclose(back.colors, rest.colors, atol=1e-4)
    assert torch.allclose(quat_to_matrix(back.quats), quat_to_matrix(rest.quats), atol=1e-5)


def test_frosting_binding_round_trip_and_bad_files(tmp_path):
    _, layer = _sphere_frosting()
    save_frosting(layer, tmp_path / "f.npz")
    back = load_frosting(tmp_path / "f.npz")
    assert torch.allclose(back.world().means, layer.world().means)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="not a frosting file"):
        load_frosting(tmp_path / "other.npz")
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    with pytest.raises(InputError):
        load_gaussians_ply(tmp_path / "bad.ply")


# ----------------------------------------------------------------------------- the pipeline


TOY = FrostingConfig(
    gaussian_iterations=40,
    regularized_iterations=10,
    frosting_iterations=30,
    init_gaussians=300,
    frosting_gaussians=300,
    grid_resolution=48,
    target_faces=600,
    hull=HullConfig(resolution=48, target_faces=600),
    schedule=FitSchedule(density_samples=2000, neighbours=8),
)


@pytest.fixture(scope="module")
def toy_views():
    blob = trimesh.creation.capsule(height=0.4, radius=0.18, count=[16, 16])
    return render_multiview(blob, orbit_cameras(size=24))


@pytest.mark.slow
def test_frosting_pipeline_on_the_cpu_reference(toy_views, tmp_path):
    v = toy_views
    stages: list[str] = []
    from keydiff3d.progress import Progress

    out = run_frosting(v.images, v.masks, v.cameras, TOY, Progress(lambda s, f, m: stages.append(s)), device="cpu")
    assert {"carving", "3dgs", "regularisation", "base mesh", "frosting"} <= set(stages)
    assert len(out.gaussians) == TOY.frosting_gaussians
    assert torch.equal(out.gaussians.vertices, torch.as_tensor(out.mesh.vertices, dtype=torch.float32))
    assert out.mesh.visual.kind == "vertex" and len(out.mesh.faces) <= TOY.target_faces
    for name in ("gaussians", "frosting"):
        losses = np.asarray(out.losses[name])
        assert np.isfinite(losses).all() and losses[-10:].mean() < losses[:10].mean(), name
    assert set(out.timings) == {"hull", "gaussians", "regularisation", "base_mesh", "frosting"}
    means = out.gaussians.world().means
    assert (means.abs() < 0.6).all()  # no Gaussian wandered into the background


def test_densification_through_gsplats_strategy_on_the_reference(toy_views):
    """gsplat's DefaultStrategy (pure torch) grows the Gaussians using the reference's `info`."""
    pytest.importorskip("gsplat.strategy")
    from keydiff3d.reconstruction.frosting.gaussians import init_from_mesh
    from keydiff3d.reconstruction.frosting.train import ViewData, fit_gaussians

    blob = trimesh.creation.capsule(height=0.4, radius=0.18, count=[16, 16])
    init = init_from_mesh(blob, 60, seed=0)
    views = ViewData.from_arrays(toy_views.images, toy_views.masks, toy_views.cameras, torch.device("cpu"))
    fitted, losses = fit_gaussians(
        init, views, FitSchedule(iterations=40, refine_start=10, refine_every=10), rasterize_torch
    )
    assert len(fitted) > len(init)
    assert all(len(t) == len(fitted) for t in fitted.as_dict().values())
    assert np.isfinite(losses).all()


def test_frosting_presets_and_device_errors(toy_views):
    assert FrostingConfig.preset("long").frosting_iterations > FrostingConfig.preset("short").frosting_iterations
    assert FrostingConfig.preset("short", target_faces=5000).target_faces == 5000
    with pytest.raises(InputError, match="preset"):
        FrostingConfig.preset("forever")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            run_frosting(toy_views.images, toy_views.masks, toy_views.cameras, TOY, device="cuda")


@pytest.mark.cuda
@pytest.mark.slow
def test_frosting_on_cuda_with_gsplat():
    from keydiff3d.synthetic.creatures import generate_creature, watertight_mesh

    creature = generate_creature("quadruped", 0)
    views = render_multiview(creature, orbit_cameras(size=128))
    config = FrostingConfig.preset(
        "short",
        gaussian_iterations=600,
        regularized_iterations=300,
        frosting_iterations=600,
        frosting_gaussians=30_000,
        target_faces=5000,
    )
    out = run_frosting(views.images, views.masks, views.cameras, config, device="cuda")
    assert out.report.watertight or out.report.problems
    assert chamfer_percent(out.mesh, watertight_mesh(creature), samples=5000) < 3.0
