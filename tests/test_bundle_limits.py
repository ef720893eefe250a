"""The bundle readers (rigcore `read_bundle`, backend `load_bundle`) on hostile and corrupt bundles:
each refuses with its documented error - BundleError / InputError and nothing else - before the work
a limit bounds. Issue 11, faults 4 (names and links), 7, 8, 9, 10, 18 and 20; the add-on's import of
the same bundles is in test_addon_import_limits.py.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from hostile_inputs import add_chain_bones, edit_rig_json, peak_memory, small_bundle, zip_of_directory

from keydiff3d.errors import InputError
from keydiff3d.rigging.io import load_bundle
from keydiff3d_addon.rigcore import BundleError, PlyError, parse_ply, read_bundle, write_bundle
from keydiff3d_addon.rigcore import bundle as bundle_module
from keydiff3d_addon.rigcore.bundle import (
    MAX_BONES,
    MAX_FILE_BYTES,
    MAX_KEYPOINTS,
    MAX_SMOOTH_ITERATIONS,
    MAX_ZIP_ENTRIES,
)
from keydiff3d_addon.rigcore.ply import MAX_FACES


def refused(path, words: str | None = None) -> str:
    """Both readers refuse `path` with their documented error (its message matching `words`, when
    given); returns read_bundle's message."""
    with pytest.raises(BundleError, match=words) as error:
        read_bundle(path)
    with pytest.raises(InputError, match=words):
        load_bundle(path)
    return str(error.value)


@pytest.fixture
def bundle_dir(tmp_path):
    return small_bundle(tmp_path / "bundle")


def test_small_bundle_reads(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert len(bundle.skeleton.keypoints) == 4 and bundle.skin.params["smooth_iterations"] == 2


# --------------------------------------------------------------------------- fault 4: names and links


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "\\Windows\\win.ini", "C:x", "C:/x/mesh.ply", "../mesh.ply", "a/../../mesh.ply", "", "mesh.ply\0"],
)
def test_file_names_that_leave_the_bundle_are_refused_under_any_path_rules(bundle_dir, name):
    path = edit_rig_json(bundle_dir, lambda doc: doc["mesh"].__setitem__("file", name))
    refused(path, "relative path inside the bundle")
    refused(zip_of_directory(bundle_dir, bundle_dir.parent / "b.zip"), "relative path inside the bundle")


def test_directory_bundles_do_not_follow_links_out_of_the_bundle(bundle_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (bundle_dir / "mesh.ply").rename(outside / "mesh.ply")
    (bundle_dir / "mesh.ply").symlink_to(outside / "mesh.ply")
    refused(bundle_dir, "leads outside the bundle")
    (bundle_dir / "mesh.ply").unlink()
    (bundle_dir / "mesh.ply").symlink_to("/dev/zero")  # never read: a device outside the bundle
    refused(bundle_dir, "leads outside the bundle")
    (bundle_dir / "mesh.ply").unlink()
    (bundle_dir / "inside.ply").write_bytes((outside / "mesh.ply").read_bytes())
    (bundle_dir / "mesh.ply").symlink_to("inside.ply")  # a link that stays inside is fine
    assert len(read_bundle(bundle_dir).vertices) > 0


# --------------------------------------------------------------------------- fault 7: zip bombs


def test_zip_bomb_is_refused_before_it_is_unpacked(bundle_dir, tmp_path):
    bomb = zip_of_directory(bundle_dir, tmp_path / "bomb.zip", {"mesh.ply": MAX_FILE_BYTES + 1})
    assert bomb.stat().st_size < 2 * 1024 * 1024  # a small file that would unpack to 256 MiB
    with peak_memory() as peak:
        message = refused(bomb, "holds .* bytes unpacked; the limit is")
    assert "mesh.ply" in message and str(MAX_FILE_BYTES) in message
    assert peak[0] < 32 * 1024 * 1024  # refused from the zip's directory: nothing was unpacked


def test_all_files_of_a_bundle_together_have_a_limit(bundle_dir, tmp_path, monkeypatch):
    sizes = {p.name: p.stat().st_size for p in bundle_dir.iterdir()}
    # at small scale: a total limit the rig.json and mesh.ply fit in, but not with skin.npz too
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", sizes["rig.json"] + sizes["mesh.ply"] + 10)
    for source in (bundle_dir, zip_of_directory(bundle_dir, tmp_path / "b.zip")):
        with pytest.raises(BundleError, match="more than the limit"):
            read_bundle(source)


def test_zips_with_too_many_entries_are_refused_before_their_directory_is_read(bundle_dir, tmp_path):
    for count in (MAX_ZIP_ENTRIES + 1, 70_000):  # 70 000 > 65 535: the count lives in the zip64 record
        crowded = tmp_path / f"crowded{count}.zip"
        zip_of_directory(bundle_dir, crowded)
        with zipfile.ZipFile(crowded, "a") as zf:
            for i in range(count):
                zf.writestr(f"views/{i}", b"")
        refused(crowded, f"holds {count + 3} entries")


def test_skin_arrays_are_checked_from_their_headers(bundle_dir):
    with np.load(bundle_dir / "skin.npz") as npz:
        indices, weights = npz["indices"], npz["weights"]
    np.savez(bundle_dir / "skin.npz", indices=indices.astype(np.float32), weights=weights)
    refused(bundle_dir, "must be a 2-D array of integers")
    np.savez(bundle_dir / "skin.npz", indices=np.array([{"a": 1}], dtype=object), weights=weights)  # a pickle
    refused(bundle_dir, "not a numpy array|must be a 2-D array")
    header = np.lib.format.header_data_from_array_1_0(indices)
    header["shape"] = (10**9, 4)  # claims 16 GB, holds a few KB
    fake = io.BytesIO()
    np.lib.format.write_array_header_1_0(fake, header)
    with zipfile.ZipFile(bundle_dir / "skin.npz", "w") as zf:
        zf.writestr("indices.npy", fake.getvalue() + indices.tobytes())
        zf.writestr("weights.npy", io.BytesIO().getvalue())
    with peak_memory() as peak:
        refused(bundle_dir, "not the .* its header claims")
    assert peak[0] < 16 * 1024 * 1024


def test_big_skin_indices_do_not_wrap_into_valid_ones(bundle_dir):
    with np.load(bundle_dir / "skin.npz") as npz:
        indices, weights = npz["indices"].astype(np.int64), npz["weights"]
    np.savez(bundle_dir / "skin.npz", indices=indices + 2**32, weights=weights)  # int32 would wrap to valid
    refused(bundle_dir, "skin indices point past")


# --------------------------------------------------------------------------- faults 8, 9: counts and parameters


def test_bone_count_is_capped(bundle_dir):
    path = edit_rig_json(bundle_dir, lambda doc: add_chain_bones(doc, MAX_BONES + 1 - len(doc["skeleton"]["bones"])))
    refused(path, f"at most {MAX_BONES} bones")
    edit_rig_json(bundle_dir, lambda doc: doc["skeleton"]["bones"].pop())
    assert len(load_bundle(bundle_dir).skeleton.bones) == MAX_BONES  # the limit itself is accepted


def test_keypoint_count_is_capped(bundle_dir):
    n = MAX_KEYPOINTS + 1

    def many_keypoints(doc):
        doc["keypoints"] = [[0.0, 0.0, 0.01 * i] for i in range(n)]
        doc["adjacency"] = (np.eye(n, k=1) + np.eye(n, k=-1)).tolist()
        doc["skeleton"]["parents"] = [-1] + list(range(n - 1))

    refused(edit_rig_json(bundle_dir, many_keypoints), f"the limit is {MAX_KEYPOINTS}")


@pytest.mark.parametrize(
    "params, words",
    [
        ({"smooth_iterations": 10**9}, "smooth_iterations must be a whole number between 0 and 100"),
        ({"smooth_iterations": MAX_SMOOTH_ITERATIONS + 1}, "smooth_iterations"),
        ({"smooth_iterations": -1}, "smooth_iterations"),
        ({"smooth_iterations": 2.5}, "smooth_iterations"),
        ({"smooth_iterations": True}, "smooth_iterations"),
        ({"sharpness": 0}, "sharpness must be between 0.001 and 2"),
        ({"sharpness": 2.5}, "sharpness must be between 0.001 and 2"),  # METHOD_PARAMETERS' range, not just > 0
        ({"sigma": 1.5}, "sigma must be between 0.0001 and 1"),
        ({"sigma": -0.1, "relative": False}, "sigma must be positive"),
        ({"smooth_step": 1e-5}, "smooth_step must be between 0.001 and 1"),
        ({"sigma_world": 0}, "sigma_world must be a positive number"),
        ({"sharpness": 10**400}, "sharpness"),
        ({"sigma": -0.1}, "sigma must be"),
        ({"sigma": "wide"}, "sigma must be"),
        ({"smooth_step": 2.0}, "smooth_step must be between"),
        ({"relative": "yes"}, "relative must be"),
    ],
)
def test_skin_parameters_the_add_on_reruns_are_bounded(bundle_dir, params, words):
    refused(edit_rig_json(bundle_dir, lambda doc: doc["skin"]["params"].update(params)), words)


def test_an_absolute_sigma_is_not_held_to_the_relative_range(bundle_dir):
    # sigma in scene units (relative false) may exceed 1; it only has to be positive
    edit_rig_json(bundle_dir, lambda doc: doc["skin"]["params"].update({"sigma": 5.0, "relative": False}))
    assert load_bundle(bundle_dir).skin.params["sigma"] == 5.0


def test_unknown_skinning_method_is_refused(bundle_dir):
    refused(edit_rig_json(bundle_dir, lambda doc: doc["skin"].__setitem__("method", "magic")), "skin method 'magic'")


# --------------------------------------------------------------------------- fault 10: PLY polygons


def ply_bytes(
    vertices: int, polygons: list[list[int]], count_type: str = "uchar", declared_faces: int | None = None
) -> bytes:
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {vertices}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(polygons) if declared_faces is None else declared_faces}\n"
        f"property list {count_type} int vertex_indices\nend_header\n"
    )
    count_dtype = {"uchar": "u1", "int": "<i4"}[count_type]
    body = np.arange(3 * vertices, dtype="<f4").tobytes()
    for polygon in polygons:
        body += np.array([len(polygon)], count_dtype).tobytes() + np.array(polygon, "<i4").tobytes()
    return header.encode() + body


def test_ply_faces_with_fewer_than_three_corners_are_refused_at_once():
    for count in (10**7, MAX_FACES):  # the attack's 10^7 one-index faces, and as many as the limit allows
        face = np.zeros(count, dtype=[("n", "u1"), ("i", "<i4")])
        face["n"] = 1
        with pytest.raises(
            PlyError, match=f"the limit is {MAX_FACES}" if count > MAX_FACES else "polygon 0 has 1 corners"
        ):
            parse_ply(ply_bytes(3, [], declared_faces=count) + face.tobytes())


def test_ply_face_count_over_the_limit_is_refused_from_the_header():
    with peak_memory() as peak, pytest.raises(PlyError, match=f"the limit is {MAX_FACES}"):
        parse_ply(ply_bytes(3, [[0, 1, 2]], declared_faces=MAX_FACES + 1))
    assert peak[0] < 1024 * 1024


def test_mixed_polygons_are_fan_triangulated_in_order():
    polygons = [[0, 1, 2], [3, 4, 5, 6], [0, 2, 4, 6, 1], [1, 2, 3]] * 500
    vertices, faces, colors = parse_ply(ply_bytes(7, polygons, count_type="int"))
    expected = [[p[0], p[j], p[j + 1]] for p in polygons for j in range(1, len(p) - 1)]
    assert faces.tolist() == expected and vertices.shape == (7, 3) and colors is None
    quads = [[0, 1, 2, 3], [3, 4, 5, 6]]
    assert parse_ply(ply_bytes(7, quads))[1].tolist() == [[0, 1, 2], [0, 2, 3], [3, 4, 5], [3, 5, 6]]


@pytest.mark.parametrize(
    "data, words",
    [
        (ply_bytes(3, [[0, 1, 2]]).replace(b"element vertex 3", b"element vertex -1"), "bad element line"),
        (ply_bytes(3, [[0, 1, 2]]).replace(b"property float y", b"property float128 y"), "unsupported property"),
        (ply_bytes(3, [[0, 1, 2]]).replace(b"element vertex 3", b"element vertex 300"), "truncated"),
        (ply_bytes(3, [[0, 1, 2]]).replace(b"property float x\n", b""), "no x, y and z"),
        (ply_bytes(3, [[0, 1, 2]]).replace(b"property float y", b"property float x"), "names a property twice"),
        (ply_bytes(3, [[0, 1, 7]]), "index vertices that do not exist"),
        (ply_bytes(3, [[0, 1, 2, 1, 0, 2, 2]])[:-8], "past the end"),
        (ply_bytes(3, [[0, 1, 2]]).replace(b"end_header\n", b"end_header"), "not a PLY"),
        (b"ply\nformat binary_little_endian 1.0\nproperty float x\nend_header\n", "before any element"),
    ],
    ids=[
        "negative-count",
        "unknown-type",
        "short-body",
        "no-xyz",
        "twice",
        "bad-index",
        "truncated-polygon",
        "no-newline",
        "orphan",
    ],
)
def test_malformed_ply_gives_a_ply_error(data, words):
    with pytest.raises(PlyError, match=words):
        parse_ply(data)


# --------------------------------------------------------------------------- fault 18: one error type


def test_bundle_faults_reach_the_caller_as_the_documented_error_only(bundle_dir, tmp_path):
    good_ply = (bundle_dir / "mesh.ply").read_bytes()
    cases = {
        "negative vertex count": {"mesh.ply": good_ply.replace(b"element vertex ", b"element vertex -", 1)},
        "unknown PLY type": {"mesh.ply": good_ply.replace(b"property float x", b"property quaternion x", 1)},
        "skin.npz not a zip": {"skin.npz": b"PK\x03\x04 broken"},
    }
    for label, replace in cases.items():
        refused(zip_of_directory(bundle_dir, tmp_path / f"{label}.zip", replace))
    # a damaged member: flip bytes inside mesh.ply's compressed data
    archive = bytearray(zip_of_directory(bundle_dir, tmp_path / "damaged.zip").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as zf:
        info = zf.getinfo("mesh.ply")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 10, start + info.compress_size - 10, 7):
        archive[i] ^= 0x5A
    (tmp_path / "damaged.zip").write_bytes(bytes(archive))
    assert "mesh.ply" in refused(tmp_path / "damaged.zip", "damaged")
    for value in (5, None, ["mesh.ply"], {"a": 1}):
        refused(
            edit_rig_json(bundle_dir, lambda doc, value=value: doc["mesh"].__setitem__("file", value)),
            "bundle file name",
        )


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.__setitem__("timings", [1, 2]),
        lambda d: d.__setitem__("provenance", []),
        lambda d: d["provenance"].__setitem__("repairs", "many"),
        lambda d: d["skeleton"]["bones"][0].__setitem__("roll", "a lot"),
        lambda d: d["skeleton"]["bones"][0].__setitem__("deform", "yes"),
        lambda d: d["skeleton"]["bones"][0].__setitem__("kind", ["edge"]),
        lambda d: d["skeleton"]["bones"].__setitem__(0, "bone"),
        lambda d: d["skin"].__setitem__("bones", [{"name": "x"}]),
        lambda d: d["skin"].__setitem__("params", None),
        lambda d: d["mesh"].__setitem__("vertex_count", "many"),
        lambda d: d["keypoints"].__setitem__(0, [10**400, 0, 0]),
        lambda d: d.__setitem__("format_version", True),
        lambda d: d.__setitem__("skeleton", []),
    ],
)
def test_wrong_types_anywhere_in_rig_json_give_a_bundle_error(bundle_dir, edit):
    refused(edit_rig_json(bundle_dir, edit))


def test_rig_json_nested_too_deep_or_too_big_is_refused(bundle_dir):
    (bundle_dir / "rig.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(bundle_dir, "not valid JSON")
    (bundle_dir / "rig.json").write_bytes(b" " * (bundle_module.MAX_RIG_JSON_BYTES + 1))
    refused(bundle_dir, "rig.json holds .* the limit is")
    (bundle_dir / "rig.json").write_bytes(b'{"a": "\xff"}')
    refused(bundle_dir, "not valid JSON")


# --------------------------------------------------------------------------- fault 20: parents with cycles


def test_parents_with_cycles_are_refused_by_every_reader_and_the_writer(tmp_path):
    bundle_dir = small_bundle(tmp_path / "bundle", keypoints=5)
    message = refused(
        edit_rig_json(bundle_dir, lambda d: d["skeleton"].__setitem__("parents", [-1, 2, 1, 4, 3])), "cycle"
    )
    assert "reach the root" in message
    refused(edit_rig_json(bundle_dir, lambda d: d["skeleton"].__setitem__("parents", [-1, 0, 3, 4, 2])), "cycle")
    edit_rig_json(bundle_dir, lambda d: d["skeleton"].__setitem__("parents", [-1, 0, 1, 2, 3]))
    bundle = read_bundle(bundle_dir)
    bundle.skeleton.parents = np.array([-1, 2, 1, 4, 3])
    with pytest.raises(BundleError, match="cycle"):
        write_bundle(tmp_path / "copy", bundle)
    assert not (tmp_path / "copy" / "rig.json").exists()


def test_rig_json_of_the_writer_is_still_accepted(bundle_dir):
    doc = json.loads((bundle_dir / "rig.json").read_text())
    bundle_module.validate_document(doc)
    assert doc["skin"]["params"]["smooth_iterations"] == 2
