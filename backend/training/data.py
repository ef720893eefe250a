"""Training and evaluation samples from a synthetic data set (written by `keydiff3d synth`).

A sample is one creature seen in K views (view 0 = the input view, frame 20 of the SV3D-p orbit;
the others drawn from the rest of the orbit in training, evenly spaced in evaluation), resized to
the model's image size, with its ground-truth joints and bones for supervision and evaluation.

Data order is a pure function of (seed, step, process), never of a sampler's internal state:
`StepBatches[s]` is the batch of global step s for one process. A resumed run therefore reads the
very batches the uninterrupted run would have read, and every process of a DDP run reads its own
disjoint share of each global batch.
"""

from __future__ import annotations

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
    joints: np.ndarray  # (J, 3) world frame
    bones: np.ndarray  # (J-1, 2) (parent, child)
    category: str


SPLITS = ("train", "test")


class TrainingData:
    """One split of a synthetic data set (`keydiff3d.synthetic.dataset.SyntheticDataset`), filtered
    by category, as model-ready samples."""

    def __init__(self, dataset, num_views: int, image_size: int) -> None:
        self.dataset = dataset
        self.num_views = num_views
        self.image_size = image_size
        self._categories = None

    @classmethod
    def open(cls, config: DataConfig, model_config, split: str) -> "TrainingData":
        """Split "train" or "test" (held out) of `config.dir`, with K and the image size of `model_config`."""
        from ..synthetic.dataset import SyntheticDataset

        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(config.dir)
        if not (root / "meta.json").is_file():
            raise ConfigError(f"no synthetic data set at {root}; write one with `keydiff3d synth --out {root} --n 3000 --size 64`")
        # training reads in shard_order (one shard at a time), evaluation in index order: a small cache suffices
        full = SyntheticDataset(root)
        train, test = full.split(config.held_out_fraction, config.split_salt)
        dataset = train if split == "train" else test
        if config.categories:
            unknown = sorted(set(config.categories) - set(full.categories))
            if unknown:
                raise ConfigError(f"data set {root} has no category {unknown[0]!r}; it has {', '.join(full.categories)}")
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
        return Sample(batch, cameras, np.asarray(item.joints, np.float64), np.asarray(item.bones, np.int64), item.category)

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """Positions of one epoch: shuffled, one shard at a time (cache friendly); pure in (seed, epoch)."""
        return self.dataset.shard_order(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))

    def preview_samples(self, count: int) -> list[Sample]:
        """Up to `count` fixed samples of distinct categories (the same ones at every preview)."""
        chosen, seen = [], set()
        for i, category in enumerate(self.categories):
            if category not in seen:
                seen.add(category)
                chosen.append(self.sample(i))
            if len(chosen) == count:
                break
        return chosen


def _categories(dataset) -> np.ndarray:
    return np.array([dataset[i].category for i in range(len(dataset))])  # in index order: one shard at a time


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
