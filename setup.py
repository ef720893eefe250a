"""The backend folder `backend/` is installed as the import package `keydiff3d`; the add-on as itself.

package_data lists every non-Python file the code reads at run time (keydiff3d.paths, the preset and
training-config loaders, the bundle schema), so a plain `pip install .` works like the editable one.
"""
from setuptools import find_packages, setup

setup(
    package_dir={"keydiff3d": "backend"},
    packages=["keydiff3d"]
    + [f"keydiff3d.{name}" for name in find_packages("backend")]
    + find_packages(include=["keydiff3d_addon", "keydiff3d_addon.*"]),
    package_data={
        "keydiff3d": ["presets/*.toml", "assets/*", "checkpoints/default/*"],
        "keydiff3d.training": ["presets/*.toml"],
        "keydiff3d.rigging": ["schema/*.json"],
    },
)
