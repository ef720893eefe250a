"""Synthetic data set: writer/reader round trip, determinism, resume, split, CLI."""

import json

import numpy as np
import pytest

from keydiff3d.cli import main
from keydiff3d.errors import ConfigError, InputError
from keydiff3d.synthetic import generate_creature
from keydiff3d.synthetic.dataset import SynthConfig, SyntheticDataset, sample_identity, write_dataset

CONFIG = SynthConfig(n=7, size=24, num_views=5, shard_size=3, seed=4, categories=("quadruped", "bird"))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    write_dataset(out, CONFIG)
    return out


def test_round_trip_matches_the_creatures(dataset_dir):
    ds = SyntheticDataset(dataset_dir)
    assert len(ds) == 7 and ds.categories == ["quadruped", "bird"]
    meta = json.loads((dataset_dir / "meta.json").read_text())
    assert meta["complete"] and meta["counts"] == {"quadruped": 4, "bird": 3} and meta["num_shards"] == 3
    for i in (0, 4, 6):
        s = ds[i]
        category, seed = sample_identity(CONFIG, i)
        c = generate_creature(category, seed, detail=CONFIG.detail)
        assert s.category == category == ("quadruped", "bird")[i % 2] and s.seed == seed
        np.testing.assert_array_equal(s.joints, c.joints)
        np.testing.assert_array_equal(s.bones, c.bones)
        assert s.joint_names == c.joint_names
        assert s.images.shape == (5, 24, 24, 3) and s.images.dtype == np.uint8
        assert s.masks.shape == (5, 24, 24) and set(np.unique(s.masks)) <= {0, 255}
        assert len(s.cameras) == 5 and s.cameras.width == 24
        assert (s.masks > 0).sum() > 50
        category2, joints, bones = ds.ground_truth(i)
        assert category2 == category and np.array_equal(joints, s.joints) and np.array_equal(bones, s.bones)
    assert list(ds.sample_categories) == [ds[i].category for i in range(len(ds))]


def test_writing_again_is_identical_and_resumes_missing_shards(dataset_dir, tmp_path):
    write_dataset(tmp_path, CONFIG)
    (tmp_path / "shard_00001.npz").unlink()
    (tmp_path / "shard_00002.npz").write_bytes(b"truncated")
    partial = SyntheticDataset(tmp_path)
    assert len(partial) == 4  # shards 0 and 2 present (2 unreadable until rewritten)
    with pytest.raises(InputError, match="corrupted"):
        partial[3]
    write_dataset(tmp_path, CONFIG)
    a, b = SyntheticDataset(dataset_dir), SyntheticDataset(tmp_path)
    for i in range(7):
        np.testing.assert_array_equal(a[i].images, b[i].images)
        np.testing.assert_array_equal(a[i].joints, b[i].joints)


def test_other_config_in_the_same_folder_is_refused(dataset_dir):
    with pytest.raises(ConfigError, match="another config"):
        write_dataset(dataset_dir, SynthConfig(n=7, size=32, num_views=5, shard_size=3, seed=4))


def test_split_is_disjoint_complete_and_stable(dataset_dir):
    ds = SyntheticDataset(dataset_dir)
    train, held = ds.split(0.4)
    assert len(train) + len(held) == 7 and len(held) > 0 and len(train) > 0
    assert not set(train.indices) & set(held.indices)
    train2, held2 = ds.split(0.4)
    np.testing.assert_array_equal(held.indices, held2.indices)
    assert held[0].index == held.indices[0]
    assert list(held.sample_categories) == [held[i].category for i in range(len(held))]
    order = ds.shard_order(seed=1)
    assert sorted(order) == list(range(7))
    shards = ds.indices[order] // CONFIG.shard_size
    assert (np.diff(shards) != 0).sum() == 2  # each shard visited in one run


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="no meta.json"):
        SyntheticDataset(tmp_path)
    with pytest.raises(InputError, match="unknown creature categories"):
        SynthConfig(n=3, categories=("dragon",))


def test_inconsistent_dataset_differs_from_the_clean_one(dataset_dir, tmp_path):
    jittered = SynthConfig(**{**CONFIG.to_dict(), "categories": CONFIG.categories, "inconsistency": 1.0, "n": 2})
    write_dataset(tmp_path, jittered)
    a, b = SyntheticDataset(dataset_dir)[1], SyntheticDataset(tmp_path)[1]
    np.testing.assert_array_equal(a.joints, b.joints)
    assert np.abs(a.images.astype(int) - b.images.astype(int)).mean() > 0.5


def test_synth_command(tmp_path):
    out = tmp_path / "cli"
    code = main(
        [
            "synth",
            "--out",
            str(out),
            "--n",
            "3",
            "--size",
            "16",
            "--views",
            "3",
            "--categories",
            "biped",
            "--shard-size",
            "2",
            "--workers",
            "2",
        ]
    )
    assert code == 0
    ds = SyntheticDataset(out)
    assert len(ds) == 3 and {ds[i].category for i in range(3)} == {"biped"}


def test_cancelling_stops_the_writer_and_a_rerun_completes(tmp_path):
    from keydiff3d.errors import Cancelled
    from keydiff3d.progress import Progress

    calls = []

    def callback(stage, fraction, message):
        calls.append(fraction)
        if len(calls) == 4:  # after three creatures: shard 0 is on disk, shard 1 is not
            progress.cancel()

    progress = Progress(callback)
    with pytest.raises(Cancelled):
        write_dataset(tmp_path, CONFIG, progress=progress)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert not meta["complete"] and len(SyntheticDataset(tmp_path)) == 3
    write_dataset(tmp_path, CONFIG)
    assert json.loads((tmp_path / "meta.json").read_text())["complete"] and len(SyntheticDataset(tmp_path)) == 7
