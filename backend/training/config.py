"""Training configuration: plain data (TOML or JSON files, presets in training/presets/).

A config file has the sections below; every key is optional (defaults here), unknown keys are an
error that names the key and the section, so a typo never silently trains the wrong thing.

    name = "default"          # run name (folder under [logging].out_dir)
    seed = 0
    [model]                   # keydiff3d.model.KeyDiff3DConfig fields (validated against it)
    [data]                    # DataConfig
    [optim]                   # OptimConfig
    [logging]                 # LoggingConfig

`load_config("default")` loads a preset by name, `load_config("path/to/run.toml")` a file;
`overrides` ("optim.steps=200") change single values, e.g. from the command line.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from keydiff3d_addon.rigcore.config import at_least, load

from ..errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


DATA_SOURCES = ("synthetic", "feature_cache")


@dataclass(frozen=True)
class DataConfig:
    """Where the training data lives and which items train. View count and image size are the
    model's (`[model] num_views`, `image_size`): one concept, one place.

    source "synthetic": `dir` is a data set written by `keydiff3d synth` (rendered views, CNN features);
    source "feature_cache": `dir` is a cache written by `keydiff3d cache` (SV3D-p views, masks and
    decoder features of photos or of rendered creatures). Evaluation needs ground-truth joints: it
    runs on `eval_dir` when set (a synthetic data set or a cache of creatures, `keydiff3d cache
    --creatures N`), and then every item of `dir` trains; otherwise on the held-out split of `dir`."""

    source: Literal[DATA_SOURCES] = "synthetic"
    dir: str = "data/synth"  # training data folder (relative: to the cwd)
    eval_dir: str = ""  # evaluation data folder; empty = the held-out split of `dir`
    held_out_fraction: float = 0.2  # share of the evaluation folder's items held out from the regressor fit
    split_salt: int = 0  # which items are held out (SyntheticDataset.split, CacheData.split)
    categories: list[str] = field(default_factory=list)  # empty = all categories
    max_items: int = 0  # 0 = all items of the split (small values for tests)
    workers: int = 0  # DataLoader worker processes


@dataclass(frozen=True)
class OptimConfig:
    """Schedule of AdamW over the model's parameter groups (their learning rates - paper: 1e-4, the
    reconstruction network 1e-3 - and weight decay are `[model] lr`, `lr_reconstruction`,
    `weight_decay`; the adjacency's faster learning is its softplus multiplier, see model/structure.py)."""

    steps: Annotated[int, at_least(1)] = 2000
    batch_size: Annotated[int, at_least(1)] = 4  # global batch (split over processes under DDP)
    warmup_steps: int = 100
    schedule: Literal["cosine", "constant"] = "cosine"  # "cosine" (to 0 at `steps`) or "constant" after warm-up
    grad_clip: float = 1.0  # max global gradient norm; 0 = off
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # Accelerate's setting


@dataclass(frozen=True)
class LoggingConfig:
    out_dir: str = "runs"  # run folder = out_dir/name
    log_every: int = 10  # TensorBoard scalars and the curve
    preview_every: int = 250  # preview PNG of keypoints + learned skeleton over the views
    checkpoint_every: int = 500  # resumable state + model checkpoint
    keep_states: int = 2  # resumable states kept (older ones are deleted)
    eval_at_end: bool = True  # run the evaluation protocol and store its numbers in the checkpoint
    eval_train_items: int = 0  # items the end-of-run regressors are fitted on (0 = the whole split)
    eval_test_items: int = 0  # held-out items scored at the end of the run (0 = all)


@dataclass(frozen=True)
class TrainConfig:
    name: str = "default"
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)  # KeyDiff3DConfig fields that differ from its defaults
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        if self.model.get("feature_source") == "external" and self.data.source != "feature_cache":
            raise ConfigError(
                "[model] feature_source 'external' reads generator features; set [data] source = 'feature_cache'"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        """The config of a table; every key is checked, [model] against the model's own fields
        (`where` names the source in messages: `t.toml: optim.steps must be int, got 'many'`)."""
        config = load(cls, data, source=where, error=ConfigError)
        _model_config(config.model, where)
        return config

    def model_config(self):
        """The model's KeyDiff3DConfig built from [model]."""
        return _model_config(self.model, f"training config {self.name!r}")

    @property
    def run_dir(self) -> Path:
        return Path(self.logging.out_dir) / self.name


def _model_config(model: dict[str, Any], where: str):
    """[model] as the model's own KeyDiff3DConfig (unknown or ill-typed keys: ConfigError naming `where`)."""
    from ..model import KeyDiff3DConfig

    return KeyDiff3DConfig.from_dict(model, source=where, path="model")


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot parse {path}: {error}") from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json"):
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    preset = PRESETS_DIR / f"{name_or_path}.toml"
    if not preset.is_file():
        raise ConfigError(
            f"no training preset named {str(name_or_path)!r}; choose one of {', '.join(preset_names())} "
            "or give a .toml/.json file"
        )
    return preset


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.steps=200' -> (['optim', 'steps'], 200); the value is parsed as TOML (strings may be bare)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key!r} is not a section")
        node[keys[-1]] = value
    return data


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """A preset name ("default", "tiny", "bench") or a .toml/.json file, plus 'a.b=value' overrides."""
    path = resolve_config_path(name_or_path)
    data = apply_overrides(_read(path), overrides or [])
    return TrainConfig.from_dict(data, where=str(path.name))
