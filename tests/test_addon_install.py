"""The built extension zip installs into Blender, registers its UI, and its operators work."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from bpy_fixtures import CREATURE_KEYPOINTS, bpy, clean_scene, make_chain_bundle  # noqa: F401  (fixtures)

from keydiff3d.addon_build import build_addon

pytestmark = pytest.mark.bpy

MODULE = "bl_ext.user_default.keydiff3d"
PANELS = (
    "KEYDIFF3D_PT_rig",
    "KEYDIFF3D_PT_import",
    "KEYDIFF3D_PT_weights",
    "KEYDIFF3D_PT_export",
    "KEYDIFF3D_PT_backend",
)
OPERATORS = (
    "check_backend",
    "import_bundle",
    "recompute_weights",
    "export_rig",
    "rig_image_remote",
    "rig_selected_mesh",
)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    return build_addon(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def install_result(built_zip):
    """Install the zip once for this module (a fresh factory state first); uninstall at the end."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(
        filepath=str(built_zip), repo="user_default", enable_on_install=True
    )
    enabled_on_install = MODULE in bpy.context.preferences.addons
    yield result, enabled_on_install
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.disable(MODULE, default_set=True)
    repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == "user_default")
    bpy.ops.extensions.package_uninstall(repo_directory=repo.directory, pkg_id="keydiff3d")


@pytest.fixture
def installed(install_result, clean_scene):
    """The installed extension, enabled in a clean factory scene; yields its preferences."""
    import addon_utils

    addon_utils.enable(MODULE, default_set=True)
    yield bpy.context.preferences.addons[MODULE].preferences
    addon_utils.disable(MODULE, default_set=True)


@pytest.fixture
def image_file(tmp_path):
    from PIL import Image

    path = tmp_path / "creature.png"
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_zip_installs_and_registers_panel_and_operators(install_result, installed):
    result, enabled_on_install = install_result
    assert result == {"FINISHED"} and enabled_on_install
    assert MODULE in bpy.context.preferences.addons
    for panel in PANELS:
        cls = getattr(bpy.types, panel)
        assert cls.bl_space_type == "VIEW_3D" and cls.bl_region_type == "UI" and cls.bl_category == "KeyDiff3D"
    for name in OPERATORS:
        assert getattr(bpy.ops.keydiff3d, name).idname() == f"KEYDIFF3D_OT_{name}"
    assert installed.backend_url == "http://127.0.0.1:8765"
    settings = bpy.context.scene.keydiff3d
    assert settings.target_height == 1.0
    for target in ("unity", "unreal", "godot"):  # dynamic enums accept exactly the preset names
        settings.export_target = target
        assert settings.export_target == target
    for category in ("quadruped", "biped", "bird", "generic"):
        settings.preset = category
    with pytest.raises(TypeError):
        settings.export_target = "no_such_engine"


def test_source_tree_package_enables_as_an_add_on(clean_scene):
    import addon_utils

    addon_utils.enable("keydiff3d_addon", default_set=True)  # from the repository (bpy_fixtures puts it on sys.path)
    try:
        assert bpy.context.preferences.addons["keydiff3d_addon"].preferences.backend_url == "http://127.0.0.1:8765"
        assert hasattr(bpy.types, "KEYDIFF3D_PT_rig") and hasattr(bpy.types.Scene, "keydiff3d")
    finally:
        addon_utils.disable("keydiff3d_addon", default_set=True)
    assert not hasattr(bpy.types, "KEYDIFF3D_PT_rig")


def test_disabling_unregisters_everything(installed):
    import addon_utils

    addon_utils.disable(MODULE, default_set=True)
    for panel in PANELS:
        assert not hasattr(bpy.types, panel)
    assert not hasattr(bpy.types.Scene, "keydiff3d")
    addon_utils.enable(MODULE, default_set=True)  # re-enabling works (no double registration)
    assert hasattr(bpy.types, "KEYDIFF3D_PT_rig")


def test_rig_from_image_without_backend_says_how_to_start_one(installed, image_file):
    url = f"http://127.0.0.1:{free_port()}"
    installed.backend_url = url
    bpy.context.scene.keydiff3d.image_path = str(image_file)
    with pytest.raises(RuntimeError) as raised:
        bpy.ops.keydiff3d.rig_image_remote()
    message = str(raised.value)
    assert f"No KeyDiff3D backend is reachable at {url}" in message
    assert "keydiff3d serve" in message


def test_rig_from_image_needs_an_image(installed):
    bpy.context.scene.keydiff3d.image_path = ""
    with pytest.raises(RuntimeError, match="choose an image file first"):
        bpy.ops.keydiff3d.rig_image_remote()


def test_rig_from_image_with_an_image_loaded_in_blender(installed, image_file):
    settings = bpy.context.scene.keydiff3d
    settings.image_source = "LOADED"
    settings.image = bpy.data.images.new("painted", 8, 8)  # generated in Blender: no file behind it
    with pytest.raises(RuntimeError, match="has no file on disk"):
        bpy.ops.keydiff3d.rig_image_remote()
    settings.image = bpy.data.images.load(str(image_file))
    installed.backend_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="No KeyDiff3D backend is reachable"):  # the image was accepted
        bpy.ops.keydiff3d.rig_image_remote()


def test_rig_from_image_refuses_remote_backend_when_offline(installed, image_file):
    assert not bpy.app.online_access  # the bpy module runs with online access off
    installed.backend_url = "http://example.invalid:8765"
    bpy.context.scene.keydiff3d.image_path = str(image_file)
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.keydiff3d.rig_image_remote()
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.keydiff3d.check_backend()


def test_check_backend_without_and_with_a_live_backend(installed):
    installed.backend_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="No KeyDiff3D backend is reachable at .*keydiff3d serve"):
        bpy.ops.keydiff3d.check_backend()

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"status": "ok", "device": "cpu", "models": {}}).encode()
            self.send_response(200 if self.path == "/v1/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        installed.backend_url = f"http://127.0.0.1:{server.server_address[1]}"
        assert bpy.ops.keydiff3d.check_backend() == {"FINISHED"}
    finally:
        server.shutdown()
        server.server_close()


def test_operators_import_recompute_and_export(installed, tmp_path):
    bundle = make_chain_bundle(tmp_path / "bundle")
    assert bpy.ops.keydiff3d.import_bundle(filepath=str(bundle / "rig.json"), target_height=2.0) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    assert armature.type == "ARMATURE" and len(armature.data.bones) == len(CREATURE_KEYPOINTS) - 1
    assert bpy.ops.keydiff3d.recompute_weights(method="gaussian", params='{"sigma": 0.1}', k=2) == {"FINISHED"}
    mesh = next(child for child in armature.children if child.type == "MESH")
    assert max(len(v.groups) for v in mesh.data.vertices) <= 2
    out = tmp_path / "rig.fbx"
    assert bpy.ops.keydiff3d.export_rig(filepath=str(out), target="unreal", export_format="FBX") == {"FINISHED"}
    assert out.is_file() and out.stat().st_size > 1000
    # one undo step per operator is declared
    assert "UNDO" in bpy.types.KEYDIFF3D_OT_import_bundle.bl_options


def test_start_local_backend_logs_in_the_extension_folder_and_shows_why_it_stopped(installed):
    import sys

    from bl_ext.user_default.keydiff3d import remote

    installed.backend_url = f"127.0.0.1:{free_port()}"
    installed.start_command = f"{sys.executable} -m keydiff3d.cli serve --bogus-option"
    launcher = remote.start_local_backend(bpy.context)
    state = launcher.wait(timeout=120)
    assert state.phase == "exited" and "exited with code 2 before the backend answered" in state.message
    assert "unrecognized arguments: --bogus-option" in state.log_tail  # the reason, not DEVNULL
    log_dir = bpy.utils.extension_path_user(MODULE, path="logs")
    assert launcher.log_path.parent.samefile(log_dir) and "--bogus-option" in launcher.log_path.read_text()
    again = remote.start_local_backend(bpy.context)  # a finished launch can be retried
    assert again is not launcher and again.wait(timeout=120).phase == "exited"


def test_import_operator_reports_a_bad_bundle(installed, tmp_path):
    before = sorted(bpy.data.objects.keys())
    (tmp_path / "rig.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="cannot read the rig bundle"):
        bpy.ops.keydiff3d.import_bundle(filepath=str(tmp_path / "rig.json"))
    assert sorted(bpy.data.objects.keys()) == before
