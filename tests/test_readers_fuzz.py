"""Fuzzing the readers of untrusted files with hypothesis: mutated rig.json documents, skin.npz
arrays, bundle zips and PLY files through `read_bundle` / `load_bundle`, and mutated GLB, PLY, OBJ,
STL and OFF files through `load_mesh`. Each example must end in a result or the reader's documented
error (BundleError, InputError) and nothing else, within a memory bound (tracemalloc) and a time
bound (hypothesis deadline). Deterministic (derandomize) and a few seconds per test, so it runs in CI;
KEYDIFF3D_FUZZ_SCALE=N runs N times the examples with fresh random seeds (a longer hunt, locally).
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
from datetime import timedelta

import numpy as np
import pytest
import trimesh
from hostile_inputs import QUAD, glb_bytes, gltf_document, peak_memory, small_bundle, zip_of_directory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_support import png_bytes

from keydiff3d.errors import InputError
from keydiff3d.mesh_io import load_mesh
from keydiff3d.rigging.io import load_bundle
from keydiff3d_addon.rigcore import BundleError, PlyError, RigBundle, parse_ply, read_bundle

MEMORY_BOUND = 64 * 1024 * 1024  # the inputs are a few KB; a reader that allocates by declared sizes fails
SCALE = int(os.environ.get("KEYDIFF3D_FUZZ_SCALE", "1"))
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")


def fuzz(examples: int):
    return settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        database=None,
        deadline=timedelta(seconds=5),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8,
)


@st.composite
def mutated_json(draw, document):
    """`document` with 1-3 mutations: a value somewhere in the tree replaced, deleted or added (the
    walk goes deeper into objects more often than into arrays, so fields are hit, not only numbers)."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        parent, key = None, None
        node = doc
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3 if isinstance(node, dict) else 1)) > 0:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, keys[draw(st.integers(0, len(keys) - 1))]
            node = node[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if parent is None:
            if action == "replace":
                doc = draw(json_values)
            continue
        if action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        elif action == "add":
            parent.insert(key, draw(json_values))
        else:
            parent[key] = draw(json_values)
    return doc


@st.composite
def mutated_bytes(draw, data: bytes):
    """`data` with 1-4 byte-level mutations: flips, truncation, insertion, deletion, a 32-bit value."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "u32"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at : at + 4] = draw(st.sampled_from([0, 1, 3, 2**16, 2**31 - 1, 2**32 - 1])).to_bytes(4, "little")
    return bytes(data)


def bounded(read, documented: type[Exception]):
    """Run `read()`; anything but a result or `documented` fails the example, as does memory over the bound."""
    with peak_memory() as peak:
        try:
            read()
        except documented:
            pass
    assert peak[0] < MEMORY_BOUND, f"peak {peak[0]} bytes"


@pytest.fixture(scope="module")
def bundle_files(tmp_path_factory) -> dict[str, bytes]:
    folder = small_bundle(tmp_path_factory.mktemp("fuzz") / "bundle")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture
def scratch(tmp_path, bundle_files):
    """Writes a bundle folder from {name: bytes} (the good files unless replaced); returns its path."""

    def write(**replace: bytes):
        folder = tmp_path / "b"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name, data in {**bundle_files, **replace}.items():
            (folder / name.replace("_", ".")).write_bytes(data)
        return folder

    return write


def read_both(path) -> None:
    bounded(lambda: read_bundle(path), BundleError)
    bounded(lambda: load_bundle(path), InputError)


# --------------------------------------------------------------------------- bundles


@fuzz(300)
@given(data=st.data())
def test_fuzz_rig_json(scratch, bundle_files, data):
    doc = data.draw(mutated_json(json.loads(bundle_files["rig.json"])))
    read_both(scratch(rig_json=json.dumps(doc).encode()))


@fuzz(60)
@given(raw=st.data())
def test_fuzz_rig_json_bytes(scratch, bundle_files, raw):
    read_both(scratch(rig_json=raw.draw(mutated_bytes(bundle_files["rig.json"]))))


npy_dtypes = st.sampled_from(["<i4", "<i8", ">i4", "<u4", "<f4", "<f8", ">f8", "|u1", "|b1", "<U3", "<c8", "O"])
npy_shapes = st.lists(st.integers(0, 40), max_size=3).map(tuple)


@fuzz(80)
@given(indices=st.tuples(npy_dtypes, npy_shapes), weights=st.tuples(npy_dtypes, npy_shapes), data=st.data())
def test_fuzz_skin_npz(scratch, indices, weights, data):
    arrays = {}
    for name, (dtype, shape) in (("indices", indices), ("weights", weights)):
        if np.dtype(dtype).kind in "iuf":
            arrays[name] = np.full(shape, data.draw(st.sampled_from([0.0, 1.0, 0.25, 3.0, 7.0]))).astype(dtype)
        else:
            arrays[name] = np.zeros(shape, dtype=np.dtype(dtype))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # stored, not compressed: mutations reach the npy headers
    read_both(scratch(skin_npz=buffer.getvalue()))
    read_both(scratch(skin_npz=data.draw(mutated_bytes(buffer.getvalue()))))


@fuzz(60)
@given(data=st.data())
def test_fuzz_skin_npz_bytes(scratch, bundle_files, data):
    read_both(scratch(skin_npz=data.draw(mutated_bytes(bundle_files["skin.npz"]))))


@fuzz(80)
@given(data=st.data())
def test_fuzz_bundle_zip(tmp_path, bundle_files, data):
    folder = tmp_path / "zipped"
    if not folder.exists():
        folder.mkdir()
        for name, content in bundle_files.items():
            (folder / name).write_bytes(content)
    archive = zip_of_directory(folder, tmp_path / "good.zip").read_bytes()
    (tmp_path / "fuzz.zip").write_bytes(data.draw(mutated_bytes(archive)))
    read_both(tmp_path / "fuzz.zip")


ply_types = st.sampled_from(["float", "double", "uchar", "int", "uint", "short", "char", "float16", "list", "x", ""])


@st.composite
def mutated_ply(draw, data: bytes):
    """A PLY with its header edited (counts, types, lines dropped or repeated), then its bytes mutated."""
    header, _, body = data.partition(b"end_header\n")
    lines = header.decode().splitlines()
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        words = lines[at].split()
        action = draw(st.sampled_from(["count", "type", "drop", "repeat"]))
        if action == "count" and words[:1] == ["element"]:
            words[-1] = str(draw(st.sampled_from([-1, 0, 1, 2, 10**3, 2**31, 10**12])))
        elif action == "type" and words[:1] == ["property"] and len(words) >= 3:
            words[1 + draw(st.integers(0, len(words) - 3))] = draw(ply_types)
        elif action == "drop":
            words = []
        elif action == "repeat":
            lines.insert(at, lines[at])
        lines[at] = " ".join(words)
    data = "\n".join(line for line in lines if line).encode() + b"\nend_header\n" + body
    return draw(mutated_bytes(data)) if draw(st.booleans()) else data


@fuzz(150)
@given(data=st.data())
def test_fuzz_ply(bundle_files, data):
    bounded(lambda: parse_ply(data.draw(mutated_ply(bundle_files["mesh.ply"]))), PlyError)


@fuzz(60)
@given(data=st.data())
def test_fuzz_ply_in_a_bundle(scratch, bundle_files, data):
    read_both(scratch(mesh_ply=data.draw(mutated_ply(bundle_files["mesh.ply"]))))


def test_fuzz_inputs_start_valid(bundle_files, scratch):
    assert isinstance(load_bundle(scratch()), RigBundle) and len(parse_ply(bundle_files["mesh.ply"])[1]) > 0


# --------------------------------------------------------------------------- meshes


@pytest.fixture(scope="module")
def textured_glb() -> tuple[dict, bytes]:
    return gltf_document(*QUAD, png_bytes(16, 16), nodes=2)


@fuzz(120)
@given(data=st.data())
def test_fuzz_glb(textured_glb, data):
    doc, blob = textured_glb
    if data.draw(st.booleans()):
        doc = data.draw(mutated_json(doc))
    else:
        blob = data.draw(mutated_bytes(blob))
    bounded(lambda: load_mesh(glb_bytes(doc, blob), "glb"), InputError)


@fuzz(50)
@given(data=st.data())
def test_fuzz_glb_bytes(textured_glb, data):
    bounded(lambda: load_mesh(data.draw(mutated_bytes(glb_bytes(*textured_glb))), "glb"), InputError)


@pytest.fixture(scope="module")
def mesh_files() -> dict[str, bytes]:
    box = trimesh.creation.box()
    files = {kind: box.export(file_type=kind) for kind in ("ply", "obj", "stl", "off")}
    files["ply_ascii"] = box.export(file_type="ply", encoding="ascii")
    return {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()}


@fuzz(120)
@given(data=st.data())
def test_fuzz_other_mesh_formats(mesh_files, data):
    kind = data.draw(st.sampled_from(sorted(mesh_files)))
    mutated = data.draw(mutated_ply(mesh_files[kind]) if kind.startswith("ply") else mutated_bytes(mesh_files[kind]))
    bounded(lambda: load_mesh(mutated, kind.split("_")[0]), InputError)
