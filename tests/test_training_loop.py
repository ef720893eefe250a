"""The training loop end to end on a tiny synthetic data set: artefacts, exact resume, evaluation."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from keydiff3d.errors import ConfigError
from keydiff3d.evaluation.protocol import train_and_evaluate
from keydiff3d.training.checkpoint import load_model
from keydiff3d.training.config import load_config
from keydiff3d.training.data import StepBatches, TrainingData
from keydiff3d.training.trainer import train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from keydiff3d.synthetic.dataset import SynthConfig, write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, SynthConfig(n=16, size=32, shard_size=8, seed=3))
    return out


def _config(data_dir, out_dir, name, *extra):
    torch.set_num_threads(1)
    return load_config("tiny", [f'data.dir="{data_dir}"', f'logging.out_dir="{out_dir}"', f'name="{name}"', *extra])


def test_data_order_is_a_function_of_the_step(tiny_data):
    config = _config(tiny_data, "unused", "x")
    data = TrainingData.open(config.data, config.model_config(), "train")
    a = StepBatches(data, 4, seed=1)
    b = StepBatches(data, 4, seed=1)
    assert [a.items_of_step(s) for s in range(10)] == [b.items_of_step(s) for s in reversed(range(10))][::-1]
    # two processes of a DDP run read disjoint halves of every global batch
    r0, r1 = StepBatches(data, 4, 1, rank=0, world=2), StepBatches(data, 4, 1, rank=1, world=2)
    assert r0.items_of_step(3) + r1.items_of_step(3) == a.items_of_step(3)
    # within an epoch no item repeats; the next epoch is a different order of the same items
    n = len(data)
    first_epoch = [i for s in range(n) for i in a.items_of_step(s)][:n]
    assert sorted(first_epoch) == list(range(n))
    batch = a[0]
    assert tuple(batch.images.shape) == (4, 2, 3, 32, 32) and batch.joints is not None


def test_splits_are_disjoint_and_categories_filter(tiny_data):
    config = _config(tiny_data, "unused", "x")
    train = TrainingData.open(config.data, config.model_config(), "train")
    test = TrainingData.open(config.data, config.model_config(), "test")
    assert not set(train.dataset.indices) & set(test.dataset.indices)
    only = _config(tiny_data, "unused", "x", 'data.categories=["bird"]', "data.max_items=0")
    birds = TrainingData.open(only.data, only.model_config(), "train")
    assert set(birds.categories) == {"bird"}
    with pytest.raises(ConfigError, match="no category 'dragon'"):
        bad = _config(tiny_data, "unused", "x", 'data.categories=["dragon"]')
        TrainingData.open(bad.data, bad.model_config(), "train")
    with pytest.raises(ConfigError, match="no synthetic data set at"):
        missing = _config(tiny_data / "nope", "unused", "x")
        TrainingData.open(missing.data, missing.model_config(), "train")


@pytest.mark.slow
def test_tiny_run_writes_checkpoint_events_previews_and_eval(tiny_data, tmp_path):
    config = _config(tiny_data, tmp_path, "e2e", "data.max_items=0")
    result, report = train_and_evaluate(config, command="pytest tiny run")
    run = tmp_path / "e2e"
    assert result.step == 4 and result.checkpoint == run / "model.safetensors"
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "previews").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    assert (run / "curve.png").stat().st_size > 1000 and (run / "eval_preview.png").stat().st_size > 1000
    model, loaded_config, metadata = load_model(result.checkpoint)
    assert loaded_config.to_dict() == config.to_dict()
    assert metadata["training_command"] == "pytest tiny run" and metadata["step"] == 4
    assert metadata["perceptual_loss"] == "pyramid" and metadata["feature_source"] == "cnn"
    assert set(metadata["eval"]) >= {"mpjpe", "n_mpjpe", "p_mpjpe", "cd_j2j", "cd_j2b"}
    assert metadata["eval"]["mpjpe"] == pytest.approx(report.poses["mlp"]["all"].mpjpe, abs=0.01)
    saved = json.loads((run / "eval.json").read_text())
    assert saved["poses"]["mlp"]["all"]["count"] == report.num_test
    # the TensorBoard file holds the logged scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/total")] == [1, 2, 3, 4]
    # a finished run is not silently overwritten
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(config)


@pytest.mark.slow
def test_eval_cli_prints_the_report_as_json(tiny_data, tmp_path, capsys):
    from keydiff3d.cli import main

    config = _config(tiny_data, tmp_path, "for_eval", "logging.eval_at_end=false", "optim.steps=2")
    result = train(config)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(result.checkpoint), "--json", "--max-test-items", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_test"] == 3 and set(report["poses"]) == {"linear", "mlp", "mean_pose"}
    assert report["poses"]["mlp"]["all"]["count"] == 3 and report["skeleton"]["all"]["cd_j2b"] > 0
    assert (
        main(["eval", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    )  # one clear sentence, no traceback


@pytest.mark.slow
def test_resume_is_exact(tiny_data, tmp_path):
    extra = ("optim.steps=6", "logging.checkpoint_every=3", "logging.preview_every=100", "logging.eval_at_end=false")
    straight = train(_config(tiny_data, tmp_path, "straight", *extra))
    interrupted = _config(tiny_data, tmp_path, "interrupted", *extra)
    first = train(interrupted, stop_after=3)
    assert first.step == 3
    resumed = train(interrupted, resume=True)
    assert resumed.step == 6
    a, b = load_file(straight.checkpoint), load_file(resumed.checkpoint)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight.history["total"] == resumed.history["total"]
    assert not np.allclose([v for _, v in straight.history["total"]], straight.history["total"][0][1])  # it trained


def test_resume_without_state_is_a_clear_error(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_config(tiny_data, tmp_path, "fresh"), resume=True)


@pytest.mark.slow
def test_same_command_runs_ddp_on_two_cpu_processes(tiny_data, tmp_path):
    """`torchrun --nproc_per_node 2 -m keydiff3d.cli train ...`: a real 2-process (gloo) DDP run."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `python -m torch.distributed.run` is what the `torchrun` script runs (venvs without the script too)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "keydiff3d.cli",
        "train",
        "tiny",
        "--set",
        f'data.dir="{tiny_data}"',
        "--set",
        f'logging.out_dir="{tmp_path}"',
        "--no-eval",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    state = tmp_path / "tiny" / "states" / "step_0000004"
    assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()  # two ranks
    _, _, metadata = load_model(tmp_path / "tiny")
    assert metadata["step"] == 4
