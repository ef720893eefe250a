"""Where the project's files live. The data the code reads at run time is inside the package (package
data in setup.py, so a plain `pip install .` ships it); REPO_ROOT and ADDON_DIR are the source tree's,
for the development commands (`keydiff3d build-addon`, `keydiff3d bench`)."""

from pathlib import Path

from keydiff3d_addon.rigcore.presets import default_presets_dir

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
CHECKPOINTS_DIR = PACKAGE_DIR / "checkpoints"
REPO_ROOT = PACKAGE_DIR.parent
ADDON_DIR = REPO_ROOT / "keydiff3d_addon"
RIGGED_ASSETS_DIR = REPO_ROOT / "benchmarks" / "assets" / "rigged"  # the real-creature development set
PRESETS_DIR = default_presets_dir()  # top-level presets/, shared with the add-on
