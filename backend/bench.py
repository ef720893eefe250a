"""`keydiff3d bench NAME`: runs benchmarks/bench_<NAME>.py (each defines add_arguments and run).

The list of benchmarks is the folder itself: every benchmarks/bench_<NAME>.py is one, and the first
sentence of its docstring is its help text.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from types import ModuleType

from .errors import InputError
from .paths import REPO_ROOT

BENCHMARKS_DIR = REPO_ROOT / "benchmarks"


def benchmarks() -> dict[str, str]:
    """name -> one-line description of every benchmarks/bench_<name>.py, sorted by name."""
    found = {}
    for path in sorted(BENCHMARKS_DIR.glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        paragraph = " ".join(doc.strip().split("\n\n")[0].split())
        sentence = re.split(r"(?<=\.)\s", re.sub(r"^`keydiff3d bench \w+`:\s*", "", paragraph))[0]
        found[path.stem.removeprefix("bench_")] = sentence.rstrip(".")
    return found


def _load(name: str) -> ModuleType:
    path = BENCHMARKS_DIR / f"bench_{name}.py"
    if not path.exists():
        raise InputError(f"no benchmark named {name!r}; choose one of {', '.join(benchmarks())}")
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
    return (
        f"{os.cpu_count()} CPU cores ({platform.machine()}), {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="NAME")
    for name, help_text in benchmarks().items():
        bench_parser = sub.add_parser(name, help=help_text, description=help_text)
        bench_parser.set_defaults(bench_name=name)
        _load(name).add_arguments(bench_parser)


def run(args: argparse.Namespace) -> int | None:
    return _load(args.bench_name).run(args)
