"""The device check (benchmarks/device_check.sh -> `keydiff3d bench device`): its CPU dry run runs every
step at toy size through the same script the GPU run uses; a step past its time is stopped and the
rest still runs; the pytest step's report is read from its JUnit XML."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keydiff3d.bench import _load

REPO = Path(__file__).resolve().parents[1]
device = _load("device")


def _check(tmp_path, *args, timeout=900):
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "2",
        "KEYDIFF3D_DEVICE_SITE": str(tmp_path / "site"),
    }
    command = [
        "bash",
        str(REPO / "benchmarks" / "device_check.sh"),
        "--cpu-dry-run",
        "--out",
        str(tmp_path / "out"),
        "--work",
        str(tmp_path / "work"),
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    return done, report


@pytest.mark.slow
def test_cpu_dry_run_runs_every_step_and_reports(tmp_path):
    done, report = _check(tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + (tmp_path / "out" / "steps.log").read_text()[-4000:]
    steps = report["steps"]
    assert list(steps) == list(device.STEPS)
    assert steps["gsplat"]["status"] == "skipped" and "CUDA" in steps["gsplat"]["note"]
    assert all(steps[name]["status"] == "ok" for name in device.STEPS[1:])
    assert (
        steps["pytest"]["metrics"]["failed"] == 0 and steps["pytest"]["metrics"]["skipped"] >= 8
    )  # every CUDA test, skipped here
    runs = steps["sv3d"]["metrics"]["runs"]
    assert [(r["steps"], r["offload"]) for r in runs] == [(2, False), (3, False), (2, True), (3, True)]
    assert all(r["features_finite"] and r["per_step_s"] > 0 for r in runs)
    assert runs[0]["feature_shapes"] == [[21, 64, 1, 1], [21, 64, 2, 2], [21, 32, 4, 4], [21, 32, 8, 8]]
    hull, frosting = steps["frosting"]["metrics"]["rows"]
    assert hull["method"] == "hull" and hull["chamfer_pct"] < 5.0 and frosting["note"] == "needs CUDA"
    train = steps["train"]["metrics"]
    assert train["steps"] == 6 and train["steps_per_s"] > 0 and train["num_views"] == 4
    rig = steps["rig"]["metrics"]
    assert len(rig["runs"]) == 2 and "rig.json" in rig["runs"][0]["bundle"] and rig["runs"][0]["bones"] > 0
    assert set(rig["runs"][0]["timings"]) >= {"multiview", "keypoints", "reconstruction", "rig"}
    table = (tmp_path / "out" / "results.md").read_text()
    assert all(f"| {name} |" in table for name in device.STEPS)
    summary = done.stdout[done.stdout.index("device check (cpu-dry-run)") :]
    assert len(summary.splitlines()) <= 12 and all(f"  {name}" in summary for name in device.STEPS)


@pytest.mark.slow
def test_a_step_past_its_time_is_stopped_and_the_rest_is_skipped_not_lost(tmp_path):
    done, report = _check(tmp_path, "--steps", "sv3d,train", "--budget", "3", timeout=120)
    assert done.returncode == 1  # not every step finished
    sv3d, train = report["steps"]["sv3d"], report["steps"]["train"]
    assert sv3d["status"] == "timeout" and "stopped after 3 s" in sv3d["note"] and sv3d["seconds"] < 30
    assert train == {"status": "skipped", "seconds": 0.0, "note": "no time left in the budget", "metrics": {}}
    assert "gsplat" not in report["steps"]


def test_pytest_report_counts_tests_and_names_modules_that_did_not_import(tmp_path):
    xml = tmp_path / "report.xml"
    xml.write_text("""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_model_keydiff3d" name="test_paper_size_on_cuda_with_autocast"/>
<testcase classname="tests.test_sv3d_cuda"
 name="test_half_precision_and_offload_on_cuda[False-fp16]"><failure message="boom">x</failure></testcase>
<testcase classname="tests.test_sv3d_cuda"
 name="test_half_precision_and_offload_on_cuda[True-fp16]"><skipped message="s"/></testcase>
<testcase classname="" name="tests.test_addon_export"><error message="collection failure">
E   ModuleNotFoundError: No module named 'bpy'</error></testcase>
<testcase classname="" name="tests.test_reconstruction_frosting"><error message="collection failure">
E   ModuleNotFoundError: No module named 'gsplat'</error></testcase>
</testsuite></testsuites>""")
    outcome = device.pytest_outcome(xml)
    assert (outcome["passed"], outcome["failed"], outcome["skipped"]) == (1, 1, 1)
    assert outcome["not_collected"] == {
        "test_addon_export": "ModuleNotFoundError: No module named 'bpy'",
        "test_reconstruction_frosting": "ModuleNotFoundError: No module named 'gsplat'",
    }
    assert outcome["cuda_modules_not_collected"] == [
        "test_reconstruction_frosting"
    ]  # its CUDA tests never ran: a failure
    assert "did not import: test_reconstruction_frosting" in device.headline("pytest", {"metrics": outcome})
    assert device.pytest_outcome(tmp_path / "missing.xml") == {"note": "pytest wrote no report"}


def test_bad_requests_fail_with_one_sentence(tmp_path, capsys):
    import torch

    from keydiff3d.cli import main

    assert main(["bench", "device", "--cpu-dry-run", "--steps", "sv3d,warp", "--out", str(tmp_path)]) == 2
    assert "unknown step 'warp'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "device", "--out", str(tmp_path)]) == 2
        assert "--cpu-dry-run" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()
