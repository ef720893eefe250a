"""Synthetic multi-view data sets: writer (`keydiff3d synth`) and numpy reader (`SyntheticDataset`).

Layout of DIR:
  meta.json            format_version, config, cameras (Cameras.to_dict at the data set's size),
                       categories, joint_names/parents/bones per category, num_samples, shard_size,
                       counts per category, complete
  shard_00000.npz ...  per sample s of the shard (S samples):
                       images  (S, V, H, W, 3) uint8 on white     masks (S, V, H, W) uint8 (0/255)
                       joints  (S, Jmax, 3) float32, NaN padded    num_joints (S,) int32
                       bones   (S, Emax, 2) int32, -1 padded       category (S,) str
                       seed    (S,) int64 creature seed            index (S,) int64 global index
Sample i is a pure function of (config, i): category = categories[i % K] (balanced), creature
seed = SeedSequence([seed, i]); so a data set is reproducible and an interrupted run resumes by
skipping the shards already written. All creatures share the same orbit cameras (meta.json).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import zlib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..geometry import Cameras
from ..progress import Progress
from .skeletons import CATEGORIES, SKELETONS

DATASET_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SynthConfig:
    """What `keydiff3d synth` renders. detail: creature mesh density (see generate_creature)."""

    n: int
    size: int = 128
    categories: tuple[str, ...] = CATEGORIES
    seed: int = 0
    inconsistency: float = 0.0
    num_views: int = 21
    supersample: int = 1
    detail: float = 0.5
    shard_size: int = 256

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in SKELETONS]
        if unknown:
            raise InputError(f"unknown creature categories {unknown}; choose from {', '.join(CATEGORIES)}")
        if self.n < 1 or self.size < 8 or self.num_views < 1 or self.shard_size < 1 or not self.categories:
            raise InputError("synth needs n >= 1, size >= 8, views >= 1, shard size >= 1 and at least one category")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SynthConfig":
        data = dict(data)
        data["categories"] = tuple(data["categories"])
        return cls(**data)

    def cameras(self) -> Cameras:
        """The SV3D-p orbit (21 views) or, for another count, evenly spaced azimuths ending at 0."""
        from .renderer import orbit_views

        return orbit_views(self.num_views, self.size)


def sample_identity(config: SynthConfig, index: int) -> tuple[str, int]:
    """(category, creature seed) of sample `index`: balanced categories, independent seeds."""
    category = config.categories[index % len(config.categories)]
    seed = int(np.random.SeedSequence([config.seed, index]).generate_state(1, np.uint32)[0])
    return category, seed


def _render_sample(args: tuple[SynthConfig, int]) -> dict:
    """One creature rendered at the data set's cameras (runs in a worker process)."""
    from .creatures import generate_creature
    from .renderer import RenderOptions, render_multiview

    config, index = args
    category, seed = sample_identity(config, index)
    creature = generate_creature(category, seed, detail=config.detail)
    options = RenderOptions(supersample=config.supersample, inconsistency=config.inconsistency, seed=seed)
    result = render_multiview(creature, config.cameras(), options=options)
    return {
        "index": index,
        "images": (np.clip(result.images, 0, 1) * 255 + 0.5).astype(np.uint8),
        "masks": (np.clip(result.masks, 0, 1) * 255 + 0.5).astype(np.uint8),
        "joints": creature.joints,
        "bones": creature.bones,
        "category": category,
        "seed": seed,
    }


def _shard_name(shard: int) -> str:
    return f"shard_{shard:05d}.npz"


def _meta(config: SynthConfig, complete: bool) -> dict:
    counts = {c: 0 for c in config.categories}
    for i in range(config.n):
        counts[config.categories[i % len(config.categories)]] += 1
    return {
        "format_version": DATASET_FORMAT_VERSION,
        "config": config.to_dict(),
        "cameras": config.cameras().to_dict(),
        "categories": list(config.categories),
        "joint_names": {c: list(SKELETONS[c].joint_names) for c in config.categories},
        "parents": {c: list(SKELETONS[c].parents) for c in config.categories},
        "bones": {c: SKELETONS[c].bones.tolist() for c in config.categories},
        "num_samples": config.n,
        "shard_size": config.shard_size,
        "num_shards": -(-config.n // config.shard_size),
        "counts": counts,
        "complete": complete,
    }


def write_dataset(out: str | Path, config: SynthConfig, *, workers: int = 1, progress: Progress | None = None) -> Path:
    """Render `config.n` creatures into `out` (resuming an interrupted run with the same config)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    if meta_path.is_file():
        existing = json.loads(meta_path.read_text()).get("config")
        if existing != config.to_dict():
            raise ConfigError(
                f"{out} already holds a data set made with another config; choose a new --out or delete it"
            )
    meta_path.write_text(json.dumps(_meta(config, complete=False), indent=1))

    num_shards = -(-config.n // config.shard_size)
    todo = [s for s in range(num_shards) if not _shard_ok(out / _shard_name(s))]
    jobs = [(config, i) for s in todo for i in range(s * config.shard_size, min((s + 1) * config.shard_size, config.n))]
    done, total = 0, len(jobs)
    pending: dict[int, list[dict]] = {}
    if progress is not None:
        progress.update(0.0, f"{config.n - total}/{config.n} already written")
    with _pool(workers) as pool:
        results = pool.imap(_render_sample, jobs, chunksize=4) if pool is not None else map(_render_sample, jobs)
        for sample in results:
            shard = sample["index"] // config.shard_size
            pending.setdefault(shard, []).append(sample)
            expected = min((shard + 1) * config.shard_size, config.n) - shard * config.shard_size
            if len(pending[shard]) == expected:
                _write_shard(out / _shard_name(shard), pending.pop(shard))
            done += 1
            if progress is not None:
                progress.update(done / max(total, 1), f"{config.n - total + done}/{config.n} creatures")
    meta_path.write_text(json.dumps(_meta(config, complete=True), indent=1))
    return out


class _pool:
    """A process pool as a context manager, or None for in-process rendering (workers <= 1)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None

    def __enter__(self):
        if self.workers > 1:
            self.pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(self.workers)
        return self.pool

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()  # also stops the workers on Ctrl-C / cancellation
            self.pool.join()


def _write_shard(path: Path, samples: list[dict]) -> None:
    samples = sorted(samples, key=lambda s: s["index"])
    j_max = max(len(s["joints"]) for s in samples)
    e_max = max(len(s["bones"]) for s in samples)
    joints = np.full((len(samples), j_max, 3), np.nan, np.float32)
    bones = np.full((len(samples), e_max, 2), -1, np.int32)
    for k, s in enumerate(samples):
        joints[k, : len(s["joints"])] = s["joints"]
        bones[k, : len(s["bones"])] = s["bones"]
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        images=np.stack([s["images"] for s in samples]),
        masks=np.stack([s["masks"] for s in samples]),
        joints=joints,
        num_joints=np.array([len(s["joints"]) for s in samples], np.int32),
        bones=bones,
        category=np.array([s["category"] for s in samples]),
        seed=np.array([s["seed"] for s in samples], np.int64),
        index=np.array([s["index"] for s in samples], np.int64),
    )
    os.replace(tmp, path)  # atomic: a shard on disk is always complete


def _shard_ok(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path) as data:
            return "index" in data.files
    except Exception:  # a truncated file from a killed run: render it again
        return False


# --------------------------------------------------------------------------- reader


@dataclass
class SyntheticSample:
    """One creature's views and ground truth (world frame, see geometry).

    images (V, H, W, 3) uint8 on white; masks (V, H, W) uint8 0..255; cameras (shared orbit);
    joints (J, 3) float32; joint_names (J,); bones (E, 2) int32 (parent, child); category; seed.
    """

    images: np.ndarray
    masks: np.ndarray
    cameras: Cameras
    joints: np.ndarray
    joint_names: list[str]
    bones: np.ndarray
    category: str
    seed: int
    index: int


class SyntheticDataset:
    """Random access to a data set written by `write_dataset`; numpy only (no torch needed).

    Shards are decompressed whole and the most recent `cache_shards` are kept, so read in
    `shard_order(...)` order (shuffled shards, shuffled within each) for fast epochs.
    """

    def __init__(self, path: str | Path, indices: np.ndarray | None = None, cache_shards: int = 4) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise InputError(
                f"{self.path} is not a synthetic data set (no meta.json); write one with `keydiff3d synth`"
            )
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format_version") != DATASET_FORMAT_VERSION:
            raise ConfigError(
                f"{self.path} has data set format {self.meta.get('format_version')}, expected {DATASET_FORMAT_VERSION}"
            )
        self.config = SynthConfig.from_dict(self.meta["config"])
        self.cameras = Cameras.from_dict(self.meta["cameras"])
        available = self._available_indices()
        self.indices = available if indices is None else np.asarray(indices, np.int64)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()  # shard -> arrays read so far
        self._cache_shards = cache_shards

    def _available_indices(self) -> np.ndarray:
        """Indices of samples whose shard exists (all of them once the writer has finished)."""
        size, n = self.config.shard_size, self.config.n
        shards = [s for s in range(-(-n // size)) if (self.path / _shard_name(s)).is_file()]
        return (
            np.concatenate([np.arange(s * size, min((s + 1) * size, n)) for s in shards])
            if shards
            else np.zeros(0, np.int64)
        )

    @property
    def joint_names(self) -> dict[str, list[str]]:
        return self.meta["joint_names"]

    @property
    def categories(self) -> list[str]:
        return self.meta["categories"]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> SyntheticSample:
        index, shard, row = self._locate(item)
        category, joints, bones = self._truth(shard, row)
        return SyntheticSample(
            images=self._array(shard, "images")[row],
            masks=self._array(shard, "masks")[row],
            cameras=self.cameras,
            joints=joints,
            joint_names=list(self.meta["joint_names"][category]),
            bones=bones,
            category=category,
            seed=int(self._array(shard, "seed")[row]),
            index=index,
        )

    def ground_truth(self, item: int) -> tuple[str, np.ndarray, np.ndarray]:
        """(category, joints (J, 3), bones (E, 2)) of sample `item` without decompressing its images."""
        _, shard, row = self._locate(item)
        return self._truth(shard, row)

    @property
    def sample_categories(self) -> np.ndarray:
        """(len,) category of every sample, from the indices alone (no shard is read)."""
        cats = np.array(self.config.categories)
        return cats[self.indices % len(cats)]

    def _locate(self, item: int) -> tuple[int, int, int]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"sample {item} outside 0..{len(self) - 1}")
        index = int(self.indices[item])
        shard, row = divmod(index, self.config.shard_size)
        return index, shard, row

    def _truth(self, shard: int, row: int) -> tuple[str, np.ndarray, np.ndarray]:
        category = str(self._array(shard, "category")[row])
        joints = self._array(shard, "joints")[row, : int(self._array(shard, "num_joints")[row])]
        bones = self._array(shard, "bones")[row]
        return category, joints, bones[bones[:, 0] >= 0]

    def _array(self, shard: int, key: str) -> np.ndarray:
        """One array of a shard; each is decompressed on first use and the last few shards are kept."""
        if shard in self._cache:
            self._cache.move_to_end(shard)
        else:
            self._cache[shard] = {}
            while len(self._cache) > self._cache_shards:
                self._cache.popitem(last=False)
        arrays = self._cache[shard]
        if key not in arrays:
            path = self.path / _shard_name(shard)
            try:
                with np.load(path) as npz:
                    arrays[key] = npz[key]
            except (OSError, ValueError, KeyError, zlib.error) as error:
                raise InputError(f"data set shard {path} is missing or corrupted: {error}") from error
        return arrays[key]

    def subset(self, positions) -> "SyntheticDataset":
        """A view on some of this data set's samples (positions into this data set)."""
        return SyntheticDataset(self.path, self.indices[np.asarray(positions, np.int64)], self._cache_shards)

    def split(self, held_out_fraction: float = 0.2, salt: int = 0) -> tuple["SyntheticDataset", "SyntheticDataset"]:
        """(train, held_out) by a hash of the sample index: stable, disjoint, independent of len.

        A sample is held out when hash(salt, index) < fraction, so growing the data set never moves
        a sample between the splits.
        """
        if not 0.0 < held_out_fraction < 1.0:
            raise InputError("held_out_fraction must be between 0 and 1")
        u = (
            np.array(
                [np.random.SeedSequence([salt, 0xC0FFEE, int(i)]).generate_state(1, np.uint32)[0] for i in self.indices]
            )
            / 2.0**32
        )
        held = u < held_out_fraction
        return self.subset(np.flatnonzero(~held)), self.subset(np.flatnonzero(held))

    def shard_order(self, seed: int = 0) -> np.ndarray:
        """Positions in a shuffled order that visits one shard at a time (cache-friendly epochs)."""
        rng = np.random.default_rng(seed)
        shards = self.indices // self.config.shard_size
        order = []
        for shard in rng.permutation(np.unique(shards)):
            order.append(rng.permutation(np.flatnonzero(shards == shard)))
        return np.concatenate(order) if order else np.zeros(0, np.int64)
