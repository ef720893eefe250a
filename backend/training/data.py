"""Training and evaluation samples: a synthetic data set (`keydiff3d synth`) or an SV3D-p feature cache
(`keydiff3d cache`), behind one interface (`TrainingData`, `CacheData`; `open_data` picks).

A sample is one object seen in K views (view 0 = the input view, frame 20 of the SV3D-p orbit; the
others drawn from the rest of the orbit in training, evenly spaced in evaluation), resized to the
model's image size, with its ground-truth joints and bones where they are known (synthetic
creatures; not photos) for supervision and evaluation. Cache samples carry the SV3D-p decoder
features of their K views (the model's feature_source "external").

Data order is a pure function of (seed, step, process), never of a sampler's internal state:
`StepBatches[s]` is the batch of global step s for one process. A resumed run therefore reads the
very batches the uninterrupted run would have read, and every process of a DDP run reads its own
disjoint share of each global batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError
from ..geometry import Cameras
from .config import DataConfig

if TYPE_CHECKING:
    from ..model import KeyDiff3DBatch


@dataclass
class Sample:
    """One creature, K views. batch: KeyDiff3DBatch with B = 1; cameras: the K views at image_size."""

    batch: "KeyDiff3DBatch"
    cameras: Cameras
    joints: np.ndarray | None  # (J, 3) world frame; None when unknown (photos)
    bones: np.ndarray | None  # (J-1, 2) (parent, child)
    category: str


SPLITS = ("train", "test", "all")
PHOTO = "photo"  # the category of cache items without ground truth


class TrainingData:
    """One split of a synthetic data set (`keydiff3d.synthetic.dataset.SyntheticDataset`), filtered
    by category, as model-ready samples."""

    def __init__(self, dataset, num_views: int, image_size: int) -> None:
        self.dataset = dataset
        self.num_views = num_views
        self.image_size = image_size
        self._categories = None

    has_ground_truth = True

    @classmethod
    def open(cls, config: DataConfig, model_config, split: str, folder: str | Path | None = None) -> "TrainingData":
        """Split "train", "test" (held out) or "all" of `folder` (default `config.dir`), with K and the
        image size of `model_config`."""
        from ..synthetic.dataset import SyntheticDataset

        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(folder or config.dir)
        if not (root / "meta.json").is_file():
            raise ConfigError(
                f"no synthetic data set at {root}; write one with `keydiff3d synth --out {root} --n 3000 --size 64`"
            )
        if model_config.feature_source == "external":
            raise ConfigError(
                f"{root} is a synthetic data set without generator features; "
                "this model reads SV3D-p features from a feature cache"
            )
        # training reads in shard_order (one shard at a time), evaluation in index order: a small cache suffices
        full = SyntheticDataset(root)
        if split == "all":
            dataset = full
        else:
            train, test = full.split(config.held_out_fraction, config.split_salt)
            dataset = train if split == "train" else test
        if config.categories:
            unknown = sorted(set(config.categories) - set(full.categories))
            if unknown:
                raise ConfigError(
                    f"data set {root} has no category {unknown[0]!r}; it has {', '.join(full.categories)}"
                )
            dataset = dataset.subset(np.flatnonzero(np.isin(_categories(dataset), config.categories)))
        if config.max_items:
            dataset = dataset.subset(np.arange(min(config.max_items, len(dataset))))
        if len(dataset) == 0:
            raise ConfigError(f"the {split} split of {root} is empty; write more creatures or change held_out_fraction")
        return cls(dataset, model_config.num_views, model_config.image_size)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def categories(self) -> np.ndarray:
        """(I,) category of every item (read once from the shards' labels)."""
        if self._categories is None:
            self._categories = _categories(self.dataset)
        return self._categories

    def category(self, i: int) -> str:
        return str(self.categories[i])

    def joints(self, i: int) -> np.ndarray:
        return np.asarray(self.dataset[i].joints, np.float64)

    def bones(self, i: int) -> np.ndarray:
        return np.asarray(self.dataset[i].bones, np.int64)

    def sample(self, i: int, rng: np.random.Generator | None = None) -> Sample:
        """Item i with random views (`rng`, training) or the fixed evenly spaced ones (None)."""
        from ..model import batch_from_arrays, select_views
        from ..synthetic.renderer import input_view_index

        item = self.dataset[i]
        input_view = input_view_index(item.cameras)  # the azimuth-0 view (SV3D-p frame 20)
        views = select_views(item.cameras, input_view, self.num_views, rng)
        batch = batch_from_arrays(item.images, item.masks, item.cameras, views, self.image_size, joints=item.joints)
        cameras = item.cameras.subset(views).resized(self.image_size, self.image_size)
        return Sample(
            batch, cameras, np.asarray(item.joints, np.float64), np.asarray(item.bones, np.int64), item.category
        )

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """Positions of one epoch: shuffled, one shard at a time (cache friendly); pure in (seed, epoch)."""
        return self.dataset.shard_order(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))

    def preview_samples(self, count: int) -> list[Sample]:
        return [self.sample(i) for i in preview_items(self.categories, count)]


def preview_items(categories: np.ndarray, count: int) -> list[int]:
    """Up to `count` fixed items, distinct categories first (the same ones at every preview)."""
    firsts = [int(i) for i in np.unique(categories, return_index=True)[1]]
    rest = [i for i in range(len(categories)) if i not in set(firsts)]
    return sorted(firsts)[:count] + rest[: max(count - len(firsts), 0)]


def _categories(dataset) -> np.ndarray:
    return np.array([dataset[i].category for i in range(len(dataset))])  # in index order: one shard at a time


class CacheData:
    """One split of an SV3D-p feature cache (`multiview.sv3d.cache.FeatureCache`) as model-ready samples.

    Views: the input frame plus K-1 frames with stored features (random with an `rng`, evenly spaced
    in azimuth without). A model with feature_source "external" gets the views' decoder features (their
    channels must equal `[model] external_channels`); a CNN model reads the SV3D-p views alone.
    Ground truth exists for caches of rendered creatures (`keydiff3d cache --creatures N`), not photos.
    """

    def __init__(self, cache, num_views: int, image_size: int, with_features: bool) -> None:
        self.cache = cache
        self.num_views = num_views
        self.image_size = image_size
        self.with_features = with_features
        self._headers: list | None = None

    @classmethod
    def open(cls, config: DataConfig, model_config, split: str, folder: str | Path | None = None) -> "CacheData":
        """Split "train", "test" (held out) or "all" of the cache at `folder` (default `config.dir`)."""
        from ..multiview.sv3d.cache import FeatureCache

        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(folder or config.dir)
        if not (root / "cache.json").is_file():
            raise ConfigError(
                f"no feature cache at {root}; make one with `keydiff3d cache IMAGES --out {root}` (or --creatures N)"
            )
        full = FeatureCache(root, num_views=None)
        external = model_config.feature_source == "external"
        if external and full.feature_channels() != tuple(model_config.external_channels):
            raise ConfigError(
                f"the feature cache {root} has layers of {list(full.feature_channels())} channels; "
                f"set [model] external_channels = {list(full.feature_channels())}"
            )
        data = cls(full, model_config.num_views, model_config.image_size, external)
        if split != "all":
            held = data.held_out(config.held_out_fraction, config.split_salt)
            data = data.subset(np.flatnonzero(held if split == "test" else ~held))
        if config.categories:
            unknown = sorted(set(config.categories) - set(data.categories))
            if unknown:
                present = ", ".join(sorted(set(data.categories)))
                raise ConfigError(f"feature cache {root} has no category {unknown[0]!r}; it has {present}")
            data = data.subset(np.flatnonzero(np.isin(data.categories, config.categories)))
        if config.max_items:
            data = data.subset(np.arange(min(config.max_items, len(data))))
        if len(data) == 0:
            raise ConfigError(
                f"the {split} split of the feature cache {root} is empty; cache more images or change held_out_fraction"
            )
        return data

    def subset(self, positions) -> "CacheData":
        part = CacheData(self.cache.subset(positions), self.num_views, self.image_size, self.with_features)
        if self._headers is not None:
            part._headers = [self._headers[int(p)] for p in positions]
        return part

    def held_out(self, fraction: float, salt: int) -> np.ndarray:
        """(I,) bool: item held out when hash(salt, key) < fraction - stable as the cache grows."""
        if not 0.0 < fraction < 1.0:
            raise ConfigError("held_out_fraction must be between 0 and 1")
        digests = [hashlib.sha1(f"{salt}:{self.cache.key(i)}".encode()).hexdigest() for i in range(len(self))]
        return np.array([int(d[:8], 16) / 2.0**32 for d in digests]) < fraction

    def __len__(self) -> int:
        return len(self.cache)

    @property
    def headers(self) -> list:
        if self._headers is None:
            self._headers = [self.cache.header(i) for i in range(len(self))]
        return self._headers

    @property
    def has_ground_truth(self) -> bool:
        return all(h.ground_truth is not None for h in self.headers)

    @property
    def categories(self) -> np.ndarray:
        """(I,) category of every item (`PHOTO` where no ground truth is stored)."""
        return np.array([self.category(i) for i in range(len(self))])

    def category(self, i: int) -> str:
        truth = self.headers[i].ground_truth
        return truth.category if truth is not None else PHOTO

    def _truth(self, i: int):
        truth = self.headers[i].ground_truth
        if truth is None:
            raise ConfigError(
                f"{self.cache.files[i].name} in {self.cache.root} has no ground-truth joints (a photo); "
                "evaluate on a cache of rendered creatures (`keydiff3d cache --creatures N`) "
                "or a synthetic data set"
            )
        return truth

    def joints(self, i: int) -> np.ndarray:
        return np.asarray(self._truth(i).joints, np.float64)

    def bones(self, i: int) -> np.ndarray:
        return np.asarray(self._truth(i).bones, np.int64)

    def sample(self, i: int, rng: np.random.Generator | None = None) -> Sample:
        """Item i with random views (`rng`, training) or the fixed evenly spaced ones (None)."""
        from ..model import batch_from_result, select_views

        header = self.headers[i]
        frames = header.feature_views
        if self.num_views > len(frames):
            name = self.cache.files[i].name
            raise ConfigError(f"{name} has features for {len(frames)} views; the model needs {self.num_views}")
        chosen = select_views(header.cameras.subset(frames), frames.index(header.input_view), self.num_views, rng)
        result = self.cache.load(i, [frames[c] for c in chosen], features=self.with_features)
        truth = header.ground_truth
        joints = None if truth is None else np.asarray(truth.joints, np.float64)
        bones = None if truth is None else np.asarray(truth.bones, np.int64)
        batch = batch_from_result(result, range(self.num_views), self.image_size, joints)
        cameras = result.cameras.resized(self.image_size, self.image_size)
        return Sample(batch, cameras, joints, bones, self.category(i))

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(len(self))

    def preview_samples(self, count: int) -> list[Sample]:
        return [self.sample(i) for i in preview_items(self.categories, count)]


def folder_source(folder: str | Path) -> str:
    """The data source a folder holds: "feature_cache" (cache.json) or "synthetic" (meta.json)."""
    root = Path(folder)
    if (root / "cache.json").is_file():
        return "feature_cache"
    if (root / "meta.json").is_file():
        return "synthetic"
    raise ConfigError(
        f"{root} is neither a synthetic data set (`keydiff3d synth`) nor a feature cache (`keydiff3d cache`)"
    )


def open_data(
    config: DataConfig, model_config, split: str, folder: str | Path | None = None
) -> "TrainingData | CacheData":
    """A split of `folder` (default: `config.dir`, which must hold `config.source`); the kind of an
    explicit folder (an evaluation folder) is read from its contents."""
    if folder is None:
        folder = config.dir
        if Path(folder).is_dir() and folder_source(folder) != config.source:
            held = folder_source(folder).replace("_", " ")
            raise ConfigError(
                f"[data] source is {config.source!r} but {folder} holds a {held}; set [data] source to match the folder"
            )
        source = config.source
    else:
        source = folder_source(folder)
    kind = CacheData if source == "feature_cache" else TrainingData
    return kind.open(config, model_config, split, folder)


def training_split(config: DataConfig) -> str:
    """Which split of `config.dir` trains: all of it when evaluation has its own folder."""
    return "all" if config.eval_dir else "train"


class StepBatches(torch.utils.data.Dataset):
    """Map-style data set indexed by global step: item s = this process's share of batch s."""

    def __init__(self, data: TrainingData, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise ConfigError(f"batch_size {batch_size} must be divisible by the number of processes ({world})")
        self.data, self.batch_size, self.seed, self.rank, self.world = data, batch_size, seed, rank, world
        self.local = batch_size // world
        self._epoch, self._order = -1, np.zeros(0, np.int64)

    def __len__(self) -> int:
        return 2**62  # indexed by step; the sampler bounds it

    def items_of_step(self, step: int) -> list[int]:
        """Data indices of this process's samples at `step`: epochs are seeded permutations."""
        n = len(self.data)
        first = step * self.batch_size + self.rank * self.local
        out = []
        for g in range(first, first + self.local):
            epoch, offset = divmod(g, n)
            if self._epoch != epoch:
                self._order, self._epoch = self.data.epoch_order(self.seed, epoch), epoch
            out.append(int(self._order[offset]))
        return out

    def __getitem__(self, step: int):
        from ..model import collate

        samples = []
        for b, index in enumerate(self.items_of_step(step)):
            rng = np.random.default_rng([self.seed, step, self.rank, b, 7])  # view choice of this slot
            samples.append(self.data.sample(index, rng).batch)
        return collate(samples)
