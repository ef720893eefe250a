"""Where the project's data files live (the backend is installed editable from the repository)."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PRESETS_DIR = REPO_ROOT / "presets"
ASSETS_DIR = PACKAGE_DIR / "assets"
CHECKPOINTS_DIR = PACKAGE_DIR / "checkpoints"
ADDON_DIR = REPO_ROOT / "keydiff3d_addon"
