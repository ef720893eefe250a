"""One gate for CUDA tests (tests/conftest.py): `@pytest.mark.cuda` is the only marking, `pytest -m cuda`
selects every such test, and without CUDA each is skipped with the gate's reason."""

import re
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent
OWN_GATE = re.compile(r"skipif\(\s*not\s+torch\.cuda\.is_available\(\)")


def test_no_test_module_gates_cuda_itself():
    offenders = [p.name for p in TESTS.glob("test_*.py") if OWN_GATE.search(p.read_text())]
    assert offenders == []  # mark the test @pytest.mark.cuda instead


def test_the_cuda_marker_selects_the_cuda_tests_and_skips_them_without_cuda():
    modules = sorted(str(p) for p in TESTS.glob("test_*.py") if "@pytest.mark.cuda" in p.read_text())
    assert len(modules) >= 4
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider", *modules],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=TESTS.parent,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|skipped|failed|deselected)", done.stdout))
    assert counts.get("failed", 0) == 0 and counts.get("deselected", 0) > 0  # CPU tests of those modules were left out
    selected = counts.get("passed", 0) + counts.get("skipped", 0)
    assert selected >= 8
    if not torch.cuda.is_available():
        assert counts.get("skipped") == selected and "needs a CUDA GPU" in done.stdout
