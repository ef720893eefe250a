"""`keydiff3d build-addon`: the extension zip's layout, the manifest, and what the add-on may import."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import keydiff3d
from keydiff3d.addon_build import MANIFEST_PATH, build_addon, read_manifest
from keydiff3d.cli import main as cli_main
from keydiff3d.errors import ConfigError
from keydiff3d.paths import ADDON_DIR, PRESETS_DIR

RIGCORE_DIR = ADDON_DIR / "rigcore"
ALLOWED_THIRD_PARTY = {"bpy", "bpy_extras", "mathutils", "numpy", "addon_utils"}


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    return build_addon(tmp_path_factory.mktemp("dist"))


def test_zip_has_manifest_beside_package_init(built_zip):
    assert built_zip.name == f"keydiff3d-{read_manifest()['version']}.zip"
    with zipfile.ZipFile(built_zip) as archive:
        names = archive.namelist()
        assert "blender_manifest.toml" in names and "__init__.py" in names
        assert archive.read("blender_manifest.toml") == MANIFEST_PATH.read_bytes()
        modules = ["importer.py", "exporter.py", "operators.py", "backend_operators.py", "panels.py", "preferences.py"]
        modules += ["weights.py", "skin_methods.py", "client/__init__.py", "client/jobs.py", "client/launcher.py"]
        for module in modules:
            assert module in names
        assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
        assert len(names) == len(set(names))


def test_zip_copies_rigcore_files_and_presets(built_zip):
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
        assert len(list(RIGCORE_DIR.glob("*.py"))) >= 5
        for source in RIGCORE_DIR.glob("*.py"):
            name = f"rigcore/{source.name}"
            assert name in names, name
            assert archive.read(name) == source.read_bytes()  # a real copy, link resolved
            mode = archive.getinfo(name).external_attr >> 16
            assert mode & 0o170000 != 0o120000, f"{name} is stored as a symlink"
        preset_files = sorted(p.name for p in PRESETS_DIR.glob("*.toml"))
        assert preset_files, "the repository has no presets to ship"
        for preset in preset_files:
            assert f"presets/{preset}" in names


def test_manifest_fields():
    manifest = tomllib.loads(MANIFEST_PATH.read_text())
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "keydiff3d" and manifest["type"] == "add-on"
    assert manifest["version"] == keydiff3d.__version__
    assert tuple(int(x) for x in manifest["blender_version_min"].split(".")) >= (4, 2, 0)
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    tagline = manifest["tagline"]
    assert len(tagline) <= 64 and tagline[-1].isalnum()
    permissions = manifest["permissions"]
    assert set(permissions) >= {"network", "files"}
    assert all(isinstance(reason, str) and 0 < len(reason) <= 64 for reason in permissions.values())


def test_blenders_validator_accepts_the_zip(built_zip):
    import bpy  # a test dependency: Blender's own extension tool ships inside the bpy wheel

    tool = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert tool.is_file(), f"the bpy wheel has no extension validator at {tool}"
    result = subprocess.run(
        [sys.executable, str(tool), "validate", str(built_zip)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def _with_line(text: str, key: str, line: str | None) -> str:
    """The manifest text with the line starting with `key` replaced (or removed when None)."""
    lines = [line if current.startswith(f"{key} ") else current for current in text.splitlines()]
    return "\n".join(current for current in lines if current is not None) + "\n"


@pytest.mark.parametrize(
    "key, line, message",
    [
        ("tagline", 'tagline = "Ends with a dot."', "tagline"),
        ("tagline", f'tagline = "{"x" * 65}"', "tagline"),
        ("license", None, "license"),
        ("id", "id = [broken", "cannot read"),
    ],
)
def test_bad_manifest_is_a_clear_error(tmp_path, key, line, message):
    bad = tmp_path / "blender_manifest.toml"
    bad.write_text(_with_line(MANIFEST_PATH.read_text(), key, line))
    with pytest.raises(ConfigError, match=message):
        read_manifest(bad)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_addon_imports_only_blender_numpy_and_stdlib(built_zip, tmp_path):
    with zipfile.ZipFile(built_zip) as archive:
        archive.extractall(tmp_path)
    for path in tmp_path.rglob("*.py"):
        foreign = _imports(path) - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY - {"__future__"}
        assert not foreign, f"{path.relative_to(tmp_path)} imports {foreign}: Blender's Python has none of these"


def test_addon_package_imports_without_bpy():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import keydiff3d_addon, keydiff3d_addon.rigcore; "
        "assert 'bpy' not in sys.modules, 'bpy imported'; assert callable(keydiff3d_addon.register)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ADDON_DIR.parent)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_build_addon_command(tmp_path, capsys):
    assert cli_main(["build-addon", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed).is_file() and Path(printed).parent == tmp_path
    assert not list(tmp_path.glob("*.part"))
