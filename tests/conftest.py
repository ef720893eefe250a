"""Shared pytest setup: deterministic, bounded CPU use for the 2-core CI machine; the one CUDA gate."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub in tests


_exit_status = 0


def pytest_collection_modifyitems(config, items):
    """The one gate for CUDA tests: `@pytest.mark.cuda` marks a test as needing a GPU (`pytest -m cuda`
    selects them all, e.g. on the device machine); without a usable CUDA device they are skipped."""
    needs_cuda = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not needs_cuda:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in needs_cuda:
        item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    # bpy 4.5's C++ exit handler can deadlock against its own "delayed close" thread after a test
    # session (seen in CI: the process hangs after the summary). Leave without C exit handlers.
    import sys

    if "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
