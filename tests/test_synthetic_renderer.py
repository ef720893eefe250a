"""CPU renderer: agreement with an independent ray caster, projection conventions, colours, jitter."""

import numpy as np
import pytest
import trimesh
from PIL import Image

from keydiff3d.geometry import OBJECT_EXTENT, orbit_cameras, project_points
from keydiff3d.geometry.mesh import RenderMesh
from keydiff3d.mesh_io import load_mesh, load_placed_mesh, to_gltf_frame
from keydiff3d.synthetic import generate_creature
from keydiff3d.synthetic.raster import rasterize
from keydiff3d.synthetic.renderer import RenderOptions, render_multiview, sample_texture


def _pixel_rays(cameras, view):
    """World-space origins and unit directions through every pixel centre (j + 0.5, i + 0.5)."""
    K, R, t = cameras.K[view], cameras.R[view], cameras.t[view]
    j, i = np.meshgrid(np.arange(cameras.width) + 0.5, np.arange(cameras.height) + 0.5)
    pix = np.stack([j.ravel(), i.ravel(), np.ones(j.size)], 1)
    d_cam = pix @ np.linalg.inv(K).T
    d_world = d_cam @ R  # R^T d
    center = -R.T @ t
    return (
        np.broadcast_to(center, d_world.shape),
        d_world / np.linalg.norm(d_world, axis=1, keepdims=True),
        d_cam[:, 2] / np.linalg.norm(d_cam, axis=1),
    )


def test_rasteriser_matches_an_independent_ray_caster():
    mesh = trimesh.util.concatenate(
        [
            trimesh.creation.icosphere(subdivisions=2, radius=0.3),
            trimesh.creation.box(extents=[0.2, 0.6, 0.15]).apply_translation([0.15, 0.1, 0.25]),
        ]
    )
    cams = orbit_cameras(np.array([0.0, 75.0, 200.0]), 10.0, size=40)
    frags = rasterize(mesh.vertices, mesh.faces, cams)
    caster = trimesh.ray.ray_triangle.RayMeshIntersector(mesh)
    for view in range(len(cams)):
        origins, dirs, cos = _pixel_rays(cams, view)
        loc, ray_idx, tri_idx = caster.intersects_location(origins, dirs, multiple_hits=False)
        hit = np.zeros(len(origins), bool)
        hit[ray_idx] = True
        ref_depth = np.zeros(len(origins))
        ref_depth[ray_idx] = np.linalg.norm(loc - origins[ray_idx], axis=1) * cos[ray_idx]  # camera z
        ours = frags.mask[view].ravel()
        assert (ours != hit).mean() < 0.01  # only pixel centres grazing an edge may differ
        both = ours & hit
        np.testing.assert_allclose(frags.depth[view].ravel()[both], ref_depth[both], atol=1e-4)


def test_back_face_culling_changes_nothing_for_a_closed_creature():
    c = generate_creature("quadruped", 8, detail=0.5)
    cams = orbit_cameras(size=48)
    full = rasterize(c.vertices, c.faces, cams)
    culled = rasterize(c.vertices, c.faces, cams, cull_backfaces=True)
    assert (full.mask != culled.mask).mean() < 1e-3
    both = full.mask & culled.mask
    np.testing.assert_allclose(full.depth[both], culled.depth[both], atol=1e-5)


def test_joints_and_vertices_project_onto_the_mask_and_depth_is_camera_z():
    c = generate_creature("biped", 2)
    cams = orbit_cameras(size=96)
    res = render_multiview(c, cams)
    assert res.images.shape == (21, 96, 96, 3) and res.masks.shape == (21, 96, 96) and res.input_view == 20
    uv, z = project_points(cams.P, c.joints.astype(np.float64))
    cols, rows = np.floor(uv[..., 0]).astype(int), np.floor(uv[..., 1]).astype(int)
    inside = (cols >= 0) & (cols < 96) & (rows >= 0) & (rows < 96)
    v = np.broadcast_to(np.arange(21)[:, None], cols.shape)
    # joints lie inside the body, so they project onto the silhouette, behind the visible surface
    assert res.masks[v[inside], rows[inside], cols[inside]].mean() > 0.97
    assert (res.depth[v[inside], rows[inside], cols[inside]] <= z[inside] + 1e-5).mean() > 0.97
    # the visible surface point of a pixel reprojects to that pixel centre at the stored depth
    frags = rasterize(c.vertices, c.faces, cams, cull_backfaces=True)
    vi, ri, ci = np.nonzero(frags.mask)
    pts = np.einsum(
        "pk,pkc->pc", frags.bary[vi, ri, ci], c.vertices[c.faces[frags.face[vi, ri, ci]]].astype(np.float64)
    )
    uv_s, z_s = project_points(cams.P[vi], pts[:, None])
    np.testing.assert_allclose(uv_s[:, 0], np.stack([ci + 0.5, ri + 0.5], 1), atol=2e-3)
    np.testing.assert_allclose(z_s[:, 0], frags.depth[vi, ri, ci], rtol=1e-5)
    assert (res.depth[res.masks == 0] == 0).all() and (res.depth[res.masks > 0] > 0).all()


def test_background_is_white_and_consistent_views_repeat_exactly():
    c = generate_creature("bird", 1, detail=0.5)
    cams = orbit_cameras(size=48)
    a, b = render_multiview(c, cams), render_multiview(c, cams)
    np.testing.assert_array_equal(a.images, b.images)
    assert (a.images[a.masks == 0] == 1.0).all()


def test_inconsistency_jitters_views_deterministically_by_seed():
    c = generate_creature("limbtree", 3, detail=0.5)
    cams = orbit_cameras(size=48)
    clean = render_multiview(c, cams)
    j1 = render_multiview(c, cams, options=RenderOptions(inconsistency=1.0, seed=5))
    j2 = render_multiview(c, cams, options=RenderOptions(inconsistency=1.0, seed=5))
    j3 = render_multiview(c, cams, options=RenderOptions(inconsistency=1.0, seed=6))
    np.testing.assert_array_equal(j1.images, j2.images)
    assert np.abs(j1.images - clean.images).mean() > 1e-3
    assert np.abs(j1.images - j3.images).mean() > 1e-3
    # jitter is mild: silhouettes overlap almost entirely
    inter = np.logical_and(j1.masks > 0, clean.masks > 0).sum()
    assert inter / (clean.masks > 0).sum() > 0.9


def test_supersampling_gives_soft_edges_with_the_same_coverage():
    c = generate_creature("quadruped", 4, detail=0.5)
    cams = orbit_cameras(np.array([0.0, 90.0]), size=64)
    hard = render_multiview(c, cams)
    soft = render_multiview(c, cams, options=RenderOptions(supersample=3))
    assert ((soft.masks > 0) & (soft.masks < 1)).any()
    assert abs(soft.masks.sum() - hard.masks.sum()) / hard.masks.sum() < 0.05


def _front_camera():
    return orbit_cameras(np.array([0.0]), 0.0, size=64)  # at +x, looking at the origin, no tilt


def test_glb_with_vertex_colours_renders_its_colours(tmp_path):
    box = trimesh.creation.box(extents=[0.5, 0.5, 0.5])
    colors = np.tile([255, 0, 0, 255], (len(box.vertices), 1)).astype(np.uint8)
    colors[box.vertices[:, 2] > 0] = [0, 0, 255, 255]  # top vertices blue
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=colors)
    path = tmp_path / "box.glb"
    to_gltf_frame(box).export(path)
    mesh, placement = load_placed_mesh(path)
    assert np.isclose(placement.scale, OBJECT_EXTENT / 0.5)
    res = render_multiview(mesh, orbit_cameras(np.array([0.0]), 60.0, size=64))  # from above: sees the top
    fg = res.masks[0] > 0
    rgb = res.images[0][fg]
    assert (rgb[:, 1] < 0.02).all()  # only red and blue (and their blend along side faces)
    assert (rgb[:, 0] > 0.3).any() and (rgb[:, 2] > 0.3).any()
    top = res.images[0, 8:20, 28:36]  # image top = the box's top face, seen from above
    assert (top[..., 2] > top[..., 0]).all()


@pytest.mark.parametrize("suffix", ["obj", "glb"])
def test_textured_mesh_renders_texture_right_side_up(tmp_path, suffix):
    # a vertical quad facing +x; texture: upper half red, lower half green (image row 0 = top)
    verts = np.array([[0, -0.4, -0.4], [0, 0.4, -0.4], [0, 0.4, 0.4], [0, -0.4, 0.4]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)  # v up: vertex at z = +0.4 has v = 1
    tex = np.zeros((16, 16, 3), np.uint8)
    tex[:8] = [255, 0, 0]
    tex[8:] = [0, 255, 0]
    quad = trimesh.Trimesh(verts, faces, process=False)
    if suffix == "glb":  # glTF: PBR base-colour texture
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(tex))
        quad.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    else:  # OBJ + MTL + PNG
        quad.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(tex))
    path = tmp_path / f"quad.{suffix}"
    (to_gltf_frame(quad) if suffix == "glb" else quad).export(path)
    mesh = load_mesh(path)
    assert len(mesh.textures) == 1
    res = render_multiview(mesh, _front_camera())
    img, mask = res.images[0], res.masks[0] > 0
    assert mask[16:48, 16:48].all()
    upper, lower = img[14:28, 20:44], img[36:50, 20:44]
    assert (upper[..., 0] > 0.5).all() and (upper[..., 1] < 0.05).all()
    assert (lower[..., 1] > 0.5).all() and (lower[..., 0] < 0.05).all()


def test_texture_sampling_is_bilinear_and_wraps():
    tex = np.array([[[0.0], [1.0]], [[0.0], [1.0]]])  # 2x2, left column 0, right column 1
    uv = np.array([[0.25, 0.5], [0.5, 0.5], [0.75, 0.5], [1.25, 0.5]])
    np.testing.assert_allclose(sample_texture(tex, uv)[:, 0], [0.0, 0.5, 1.0, 0.0])


def test_invalid_arrays_give_clear_errors():
    from keydiff3d.errors import InputError

    with pytest.raises(InputError, match="do not exist"):
        RenderMesh.from_arrays(np.zeros((3, 3)), np.array([[0, 1, 5]]))


def test_glb_scene_keeps_node_transforms_and_per_geometry_materials(tmp_path):
    red = trimesh.creation.box(extents=[0.3, 0.3, 0.3])
    red.visual = trimesh.visual.ColorVisuals(red, face_colors=np.tile([255, 0, 0, 255], (len(red.faces), 1)))
    green = trimesh.creation.box(extents=[0.3, 0.3, 0.3])
    uv = np.full((len(green.vertices), 2), 0.5)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(np.full((4, 4, 3), [0, 255, 0], np.uint8))
    )
    green.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    scene = trimesh.Scene()
    scene.add_geometry(red, transform=trimesh.transformations.translation_matrix([0, 0.3, 0]))
    scene.add_geometry(green, transform=trimesh.transformations.translation_matrix([0, -0.3, 0]))
    to_gltf_frame(scene).export(tmp_path / "scene.glb")
    mesh = load_mesh(tmp_path / "scene.glb")
    np.testing.assert_allclose(mesh.vertices.min(0), [-0.15, -0.45, -0.15], atol=1e-6)
    np.testing.assert_allclose(mesh.vertices.max(0), [0.15, 0.45, 0.15], atol=1e-6)
    img = render_multiview(mesh, _front_camera()).images[0]
    # camera on +x looking at the origin: world +y is image right
    right, left = img[28:36, 40:48], img[28:36, 16:24]
    assert (right[..., 0] > 0.3).all() and (right[..., 1] < 0.02).all()
    assert (left[..., 1] > 0.3).all() and (left[..., 0] < 0.02).all()
