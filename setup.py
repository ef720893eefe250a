"""The backend folder `backend/` is installed as the import package `keydiff3d`; the add-on as itself."""
from setuptools import find_packages, setup

setup(
    package_dir={"keydiff3d": "backend"},
    packages=["keydiff3d"]
    + [f"keydiff3d.{name}" for name in find_packages("backend")]
    + find_packages(include=["keydiff3d_addon", "keydiff3d_addon.*"]),
    include_package_data=True,
)
