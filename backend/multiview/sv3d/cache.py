"""On-disk cache of SV3D-p outputs for training: one safetensors shard per source image.

Layout of a cache folder:
    cache.json            format, version, the SV3D settings and tapped layers it was made with
    items/<key>.safetensors
        images   (V, H, W, 3) uint8 views on white     masks (V, H, W) uint8
        K, R, t  (V, 3, 3) / (V, 3, 3) / (V, 3) float64 cameras (geometry.Cameras convention)
        feature.<i> (F, C_i, h_i, w_i) float16, decoder features of the F views in `feature_views`
        joints (J, 3) float64, bones (J-1, 2) int64 - only for renders of synthetic creatures (known skeleton)
        metadata: source, input_view, feature_names, feature_views, azimuth/elevation (JSON strings),
                  category (with joints)
    manifest.jsonl        one line per finished item;  failed.jsonl: images that could not be used

Items are written to a temporary name and renamed, so an interrupted run leaves no partial shard and a
rerun skips exactly the finished images. `FeatureCache` reads K views per sample (the input view
first, then K-1 other views drawn at random among those with features), as the paper trains;
`keydiff3d.training.data.CacheData` turns them into training and evaluation samples.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, InputError
from ...geometry import Cameras
from ..base import MultiViewResult

CACHE_FORMAT = "keydiff3d-sv3d-cache"
CACHE_VERSION = 1


@dataclass(frozen=True)
class GroundTruth:
    """The known skeleton of a rendered synthetic creature, in the frame of the cached views' cameras.

    joints (J, 3) float64, bones (J-1, 2) int64 (parent, child), category (synthetic/skeletons.py).
    """

    joints: np.ndarray
    bones: np.ndarray
    category: str


@dataclass(frozen=True)
class ItemHeader:
    """What an item holds, read without its pixels: cameras of all views (cache size), the input
    frame, the frames with features, the source path and the ground truth (None for photos)."""

    cameras: Cameras
    input_view: int
    feature_views: list[int]
    source: str
    ground_truth: GroundTruth | None


def item_key(relative_source: str) -> str:
    """A file-name-safe, unique key for a source image path (relative to the images folder)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(relative_source).stem)[:48]
    return f"{stem}-{hashlib.sha1(relative_source.encode()).hexdigest()[:10]}"


def open_cache(root: Path, settings: dict) -> None:
    """Create `root/cache.json`, or check that an existing cache was made with the same `settings`."""
    meta_path = root / "cache.json"
    meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "settings": settings}
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        if existing.get("format") != CACHE_FORMAT:
            raise ConfigError(f"{root} is not a KeyDiff3D feature cache; choose an empty --out folder")
        if existing.get("settings") != json.loads(json.dumps(settings)):
            raise ConfigError(f"{root} was made with other SV3D settings; use a new --out folder or the same settings")
        return
    (root / "items").mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=1))


def item_path(root: Path, key: str) -> Path:
    return root / "items" / f"{key}.safetensors"


def write_item(
    root: Path,
    key: str,
    source: str,
    result: MultiViewResult,
    feature_views: Sequence[int] | None = None,
    ground_truth: GroundTruth | None = None,
) -> Path:
    """Store one generator result atomically; features only for `feature_views` (default: all views);
    `ground_truth`: the skeleton of a rendered creature, in the frame of `result.cameras`."""
    import torch
    from safetensors.torch import save_file

    views = list(range(result.num_views)) if feature_views is None else [int(v) for v in feature_views]
    to_u8 = lambda a: torch.from_numpy(np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8))  # noqa: E731
    tensors = {
        "images": to_u8(result.images),
        "masks": to_u8(result.masks),
        "K": torch.from_numpy(np.ascontiguousarray(result.cameras.K, np.float64)),
        "R": torch.from_numpy(np.ascontiguousarray(result.cameras.R, np.float64)),
        "t": torch.from_numpy(np.ascontiguousarray(result.cameras.t, np.float64)),
    }
    for i, feature in enumerate(result.features):
        tensors[f"feature.{i}"] = torch.from_numpy(np.ascontiguousarray(feature[views], np.float16))
    metadata = {
        "source": source,
        "input_view": str(result.input_view),
        "feature_names": json.dumps(result.feature_names),
        "feature_views": json.dumps(views),
        "azimuth_deg": json.dumps(result.cameras.azimuth_deg.tolist()),
        "elevation_deg": json.dumps(result.cameras.elevation_deg.tolist()),
    }
    if ground_truth is not None:
        tensors["joints"] = torch.from_numpy(np.ascontiguousarray(ground_truth.joints, np.float64))
        tensors["bones"] = torch.from_numpy(np.ascontiguousarray(ground_truth.bones, np.int64))
        metadata["category"] = ground_truth.category
    final = item_path(root, key)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(final)
    with open(root / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"key": key, "source": source, "file": final.name}) + "\n")
    return final


def record_failure(root: Path, source: str, error: str) -> None:
    with open(root / "failed.jsonl", "a") as f:
        f.write(json.dumps({"source": source, "error": error}) + "\n")


class FeatureCache:
    """Training samples from a cache folder: `cache[i]` is a `MultiViewResult` with `num_views` views.

    num_views: K views per sample (the paper: 4 = input + 3 generated); None = every view with features.
    Views are ordered [input view, others...] so `input_view` is 0. seed: None draws new views each
    call (training); an int makes sample i's views fixed (evaluation). files: only these items (`subset`).
    """

    def __init__(
        self, root: str | Path, num_views: int | None = 4, seed: int | None = None, files: Sequence[Path] | None = None
    ) -> None:
        self.root = Path(root)
        meta_path = self.root / "cache.json"
        if not meta_path.exists():
            raise InputError(
                f"{self.root} is not a feature cache (no cache.json); "
                f"create one with `keydiff3d cache IMAGES --out {self.root}`"
            )
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != CACHE_FORMAT or self.meta.get("version") != CACHE_VERSION:
            raise ConfigError(
                f"{self.root} has cache format {self.meta.get('format')} v{self.meta.get('version')}; "
                "rebuild it with this version"
            )
        self.files = sorted((self.root / "items").glob("*.safetensors")) if files is None else list(files)
        if files is None and not self.files:
            raise InputError(f"the feature cache {self.root} holds no items yet")
        self.num_views = num_views
        self.seed = seed
        self._rng = np.random.default_rng()

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, positions: Sequence[int]) -> "FeatureCache":
        """The same cache restricted to some items (positions into this one), e.g. a data split."""
        return FeatureCache(self.root, self.num_views, self.seed, files=[self.files[int(p)] for p in positions])

    def key(self, index: int) -> str:
        return self.files[index].stem

    def feature_channels(self) -> tuple[int, ...]:
        """C_l of every stored feature layer (read from the first item's header), in `feature_names` order."""
        from safetensors import safe_open

        with safe_open(str(self.files[0]), framework="np") as f:
            names = json.loads(f.metadata()["feature_names"])
            return tuple(int(f.get_slice(f"feature.{i}").get_shape()[1]) for i in range(len(names)))

    def header(self, index: int) -> ItemHeader:
        """Cameras, input frame, frames with features, source and ground truth of item `index` (no pixels read)."""
        from safetensors import safe_open

        with safe_open(str(self.files[index]), framework="np") as f:
            meta = f.metadata()
            cameras = self._cameras(f, meta, slice(None))
            truth = None
            if "joints" in f.keys():
                truth = GroundTruth(f.get_tensor("joints"), f.get_tensor("bones"), meta.get("category", ""))
        frames = json.loads(meta["feature_views"])
        return ItemHeader(cameras, int(meta["input_view"]), frames, meta.get("source", ""), truth)

    @staticmethod
    def _cameras(handle, meta: dict, views) -> Cameras:
        K, R, t = (handle.get_tensor(n)[views] for n in ("K", "R", "t"))
        height, width = handle.get_slice("images").get_shape()[1:3]
        azimuth = np.asarray(json.loads(meta["azimuth_deg"]))[views]
        elevation = np.asarray(json.loads(meta["elevation_deg"]))[views]
        return Cameras(K, R, t, int(width), int(height), azimuth, elevation)

    def choose_views(
        self, index: int, input_view: int, available: Sequence[int], rng: np.random.Generator | None = None
    ) -> list[int]:
        others = [v for v in available if v != input_view]
        if self.num_views is None:
            return [input_view, *others]
        if self.num_views - 1 > len(others) or input_view not in available:
            raise ConfigError(
                f"{self.files[index].name} has features for {len(available)} views incl. input; "
                f"cannot give {self.num_views}"
            )
        if rng is None:
            rng = self._rng if self.seed is None else np.random.default_rng([self.seed, index])
        return [input_view, *rng.choice(others, size=self.num_views - 1, replace=False).tolist()]

    def __getitem__(self, index: int) -> MultiViewResult:
        return self.load(index)

    def load(
        self,
        index: int,
        views: Sequence[int] | None = None,
        rng: np.random.Generator | None = None,
        features: bool = True,
    ) -> MultiViewResult:
        """Sample `index` with the given views (absolute frame numbers) or views drawn with `rng`
        (default: as described in the class docstring); a trainer whose data order is a pure function
        of (seed, step) passes its own `rng`. `input_view` of the result is the input frame's
        position among the views (0 when drawn; 0 also when given `views` leave it out).
        features=False skips reading the feature layers (a model that computes its own)."""
        from safetensors import safe_open

        with safe_open(str(self.files[index]), framework="np") as f:
            meta = f.metadata()
            input_view = int(meta["input_view"])
            feature_views = json.loads(meta["feature_views"])
            names = json.loads(meta["feature_names"])
            views = list(views) if views is not None else self.choose_views(index, input_view, feature_views, rng)
            missing = [v for v in views if v not in feature_views]
            if missing:
                raise InputError(f"views {missing} have no cached features in {self.files[index].name}")
            rows = [feature_views.index(v) for v in views]
            images = _take(f, "images", views).astype(np.float32) / 255.0
            masks = _take(f, "masks", views).astype(np.float32) / 255.0
            layers = [_take(f, f"feature.{i}", rows) for i in range(len(names))] if features else []
            cameras = self._cameras(f, meta, views)
        input_index = views.index(input_view) if input_view in views else 0
        return MultiViewResult(images, masks, cameras, input_index, layers, names if features else [])


def _take(handle, name: str, rows: Sequence[int]) -> np.ndarray:
    """Rows of a stored tensor without reading the others (safetensors slices are lazy)."""
    sliced = handle.get_slice(name)
    return np.stack([sliced[r : r + 1][0] for r in rows])
