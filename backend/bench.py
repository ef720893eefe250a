"""`keydiff3d bench NAME`: runs benchmarks/bench_<NAME>.py (each defines add_arguments and run)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from types import ModuleType

from .errors import InputError
from .paths import REPO_ROOT

BENCHMARKS = {
    "rigging": "skeleton + skinning vs Blender bone heat; bundle import time; deformation error",
    "keypoints": "KeyDiff3D K=4 vs K=1, triangulation, mean pose and supervised, one budget",
    "skeleton": "spanning-tree length prior: learned vs length-weighted vs Euclidean trees against GT skeletons",
    "model": "KeyDiff3D training-step cost across voxel/map sizes and variants",
    "reconstruction": "visual hull vs Gaussian Frosting against ground-truth meshes",
    "service": "per-stage latency and jobs per minute of the mesh path",
    "blender_import": "rig bundle import into Blender; vertex-group write paths",
    "synthetic": "procedural creatures + CPU renderer throughput",
    "sv3d": "SV3D-p sampling + feature taps: time and memory per step",
    "device": "the prepared GPU check: CUDA tests, SV3D-p 576 px, Frosting, M=72 training, image -> rig latency",
}


def _load(name: str) -> ModuleType:
    path = REPO_ROOT / "benchmarks" / f"bench_{name}.py"
    if not path.exists():
        raise InputError(f"no benchmark named {name!r}; choose one of {', '.join(BENCHMARKS)}")
    spec = importlib.util.spec_from_file_location(f"keydiff3d_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def machine_description() -> str:
    """One line for a benchmark report: CPU cores and architecture, GPU, torch version and threads."""
    import os
    import platform

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="NAME")
    for name, help_text in BENCHMARKS.items():
        bench_parser = sub.add_parser(name, help=help_text, description=help_text)
        bench_parser.set_defaults(bench_name=name)
        if (REPO_ROOT / "benchmarks" / f"bench_{name}.py").exists():
            _load(name).add_arguments(bench_parser)


def run(args: argparse.Namespace) -> int | None:
    return _load(args.bench_name).run(args)
