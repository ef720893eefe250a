"""The backend folder `backend/` is installed as the import package `keydiff3d`; the add-on as itself,
with the top-level `presets/` folder installed inside it as `keydiff3d_addon/presets/` (where the
extension zip puts it too), so the add-on and the backend read the same files in every layout.

package_data lists every non-Python file the code reads at run time (keydiff3d.paths, the preset and
training-config loaders, the bundle schema), so a plain `pip install .` works like the editable one.
"""

from setuptools import find_packages, setup

setup(
    package_dir={"keydiff3d": "backend", "keydiff3d_addon.presets": "presets"},
    packages=["keydiff3d"]
    + [f"keydiff3d.{name}" for name in find_packages("backend")]
    + find_packages(include=["keydiff3d_addon", "keydiff3d_addon.*"])
    + ["keydiff3d_addon.presets"],
    package_data={
        "keydiff3d": ["assets/*", "checkpoints/*/*"],
        "keydiff3d.training": ["presets/*.toml"],
        "keydiff3d.rigging": ["schema/*.json"],
        "keydiff3d_addon.presets": ["*.toml"],
    },
)
