"""`keydiff3d bench`: the benchmark list is the benchmarks/ folder, with each file's own first sentence."""

from __future__ import annotations

from keydiff3d.bench import BENCHMARKS_DIR, benchmarks
from keydiff3d.cli import build_parser


def test_every_benchmark_file_is_listed_with_its_docstring():
    found = benchmarks()
    files = {p.stem.removeprefix("bench_") for p in BENCHMARKS_DIR.glob("bench_*.py")}
    assert set(found) == files and {"rigging", "skeleton", "keypoints", "model", "synthetic"} <= files
    assert all(text and not text.startswith("`keydiff3d bench") for text in found.values())
    assert found["rigging"].startswith("our skeleton + skinning vs Blender")


def test_the_bench_command_offers_every_benchmark():
    parser = build_parser("bench")
    sub = next(a for a in parser._subparsers._group_actions[0].choices["bench"]._actions if a.dest == "benchmark")
    assert set(sub.choices) == set(benchmarks())
