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
from typing import Any

from ..errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


DATA_SOURCES = ("synthetic", "feature_cache")


@dataclass
class DataConfig:
    """Where the training data lives and which items train. View count and image size are the
    model's (`[model] num_views`, `image_size`): one concept, one place.

    source "synthetic": `dir` is a data set written by `keydiff3d synth` (rendered views, CNN features);
    source "feature_cache": `dir` is a cache written by `keydiff3d cache` (SV3D-p views, masks and
    decoder features of photos or of rendered creatures). Evaluation needs ground-truth joints: it
    runs on `eval_dir` when set (a synthetic data set or a cache of creatures, `keydiff3d cache
    --creatures N`), and then every item of `dir` trains; otherwise on the held-out split of `dir`."""

    source: str = "synthetic"         # "synthetic" | "feature_cache"
    dir: str = "data/synth"           # training data folder (relative: to the cwd)
    eval_dir: str = ""                # evaluation data folder; empty = the held-out split of `dir`
    held_out_fraction: float = 0.2    # share of the evaluation folder's items held out from the regressor fit
    split_salt: int = 0               # which items are held out (SyntheticDataset.split, CacheData.split)
    categories: list[str] = field(default_factory=list)  # empty = all categories
    max_items: int = 0                # 0 = all items of the split (small values for tests)
    workers: int = 0                  # DataLoader worker processes


@dataclass
class OptimConfig:
    """Schedule of AdamW over the model's parameter groups (their learning rates - paper: 1e-4, the
    reconstruction network 1e-3 - and weight decay are `[model] lr`, `lr_reconstruction`,
    `weight_decay`; the adjacency's faster learning is its softplus multiplier, see model/structure.py)."""

    steps: int = 2000
    batch_size: int = 4               # global batch (split over processes under DDP)
    warmup_steps: int = 100
    schedule: str = "cosine"          # "cosine" (to 0 at `steps`) or "constant" after warm-up
    grad_clip: float = 1.0            # max global gradient norm; 0 = off
    mixed_precision: str = "no"       # Accelerate: "no", "fp16", "bf16"


@dataclass
class LoggingConfig:
    out_dir: str = "runs"             # run folder = out_dir/name
    log_every: int = 10               # TensorBoard scalars and the curve
    preview_every: int = 250          # preview PNG of keypoints + learned skeleton over the views
    checkpoint_every: int = 500       # resumable state + model checkpoint
    keep_states: int = 2              # resumable states kept (older ones are deleted)
    eval_at_end: bool = True          # run the evaluation protocol and store its numbers in the checkpoint
    eval_train_items: int = 0         # items the end-of-run regressors are fitted on (0 = the whole split)
    eval_test_items: int = 0          # held-out items scored at the end of the run (0 = all)


@dataclass
class TrainConfig:
    name: str = "default"
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "TrainConfig":
        config = _build(cls, data, where)
        _model_config(config.model, where)
        if config.optim.schedule not in ("cosine", "constant"):
            raise ConfigError(f"{where} [optim] schedule must be 'cosine' or 'constant', got {config.optim.schedule!r}")
        if config.optim.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"{where} [optim] mixed_precision must be 'no', 'fp16' or 'bf16'")
        if config.data.source not in DATA_SOURCES:
            choices = ", ".join(DATA_SOURCES)
            raise ConfigError(f"{where} [data] source must be one of {choices}, got {config.data.source!r}")
        if config.model.get("feature_source") == "external" and config.data.source != "feature_cache":
            raise ConfigError(f"{where}: [model] feature_source 'external' reads generator features; "
                              "set [data] source = 'feature_cache'")
        if config.optim.steps < 1 or config.optim.batch_size < 1:
            raise ConfigError(f"{where} [optim] steps and batch_size must be at least 1")
        return config

    def model_config(self):
        """The model's KeyDiff3DConfig built from [model]."""
        return _model_config(self.model, self.name)

    @property
    def run_dir(self) -> Path:
        return Path(self.logging.out_dir) / self.name


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, refusing unknown keys and wrongly typed values."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; allowed keys: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, f"{where} [{name}]")
        else:
            values[name] = _coerce(value, default, f"{where} key {name!r}")
    return cls(**values)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{where} expects a {type(default).__name__}, got {value!r}")
    return value


def _model_config(model: dict[str, Any], where: str):
    """[model] as the model's own KeyDiff3DConfig (its from_dict refuses unknown or ill-typed keys)."""
    from ..model import KeyDiff3DConfig

    try:
        return KeyDiff3DConfig.from_dict(model)
    except ConfigError as error:
        raise ConfigError(f"{where} [model]: {error}") from None


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
        raise ConfigError(f"no training preset named {str(name_or_path)!r}; choose one of {', '.join(preset_names())} or give a .toml/.json file")
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
