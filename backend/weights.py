"""Weight files: where they are looked for, whether they are the right files, and where they come from.

`keydiff3d weights [--json]` (weights_cli.py) lists every expected file; `keydiff3d weights --download
NAME...` fetches the entries whose publishers host them on the Hugging Face Hub into the weights folder
(`weights_download`); `require(name)` returns a validated path or raises `MissingWeightsError` with
one actionable sentence. Validation reads headers only (safetensors
header, zip directory, config.json, tensor shapes), so a truncated download, a different model or a
wrong key set is caught in well under a second, before any long work starts.

Search order for each entry: an explicit path (CLI flag / API argument) > its environment variable
(e.g. KEYDIFF3D_SV3D) > `~/.config/keydiff3d/weights.toml` (`[weights]` table, `name = "path"`)
> the weights folder (KEYDIFF3D_WEIGHTS_DIR, default `~/.cache/keydiff3d/weights`) under the usual
file names > the Hugging Face / torch hub caches of the official downloads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, MissingWeightsError

log = logging.getLogger(__name__)
SAFETENSORS_MAX_HEADER = 100 * 2**20


# -- header readers ---------------------------------------------------------------------------------


def safetensors_header(path: Path) -> dict[str, list[int]]:
    """{tensor name: shape} from a safetensors header; MissingWeightsError if the file is cut short or not
    safetensors."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise MissingWeightsError(f"{path} is not a safetensors file (too short); download it again")
        (length,) = struct.unpack("<Q", raw)
        if length > min(SAFETENSORS_MAX_HEADER, size - 8):
            raise MissingWeightsError(f"{path} is not a valid safetensors file (bad header); download it again")
        try:
            header = json.loads(f.read(length))
        except ValueError as error:
            raise MissingWeightsError(f"{path} has a corrupt safetensors header; download it again") from error
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((v["data_offsets"][1] for v in tensors.values()), default=0)
    if 8 + length + end != size:
        raise MissingWeightsError(f"{path} is truncated ({size} of {8 + length + end} bytes); download it again")
    return {k: v["shape"] for k, v in tensors.items()}


def torch_zip_shapes(path: Path) -> dict[str, list[int]]:
    """{name: shape} of a torch .pth state dict; reads the zip directory and memory-maps the tensors."""
    import torch

    try:
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("data.pkl") for n in archive.namelist()):
                raise MissingWeightsError(f"{path} is not a PyTorch checkpoint; download it again")
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError) as error:
        raise MissingWeightsError(
            f"{path} is truncated or corrupt ({type(error).__name__}); download it again"
        ) from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MissingWeightsError(f"{path} does not hold a state dict; download the official file")
    return {k: list(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def _expect_shape(
    path: Path, shapes: dict[str, list[int]], key: str, check: Callable[[list[int]], bool], what: str
) -> list[int]:
    shape = shapes.get(key)
    if shape is None or not check(shape):
        raise MissingWeightsError(
            f"{path} is not {what} (tensor {key} {'missing' if shape is None else f'has shape {shape}'})"
        )
    return shape


# -- validators (one per entry) --------------------------------------------------------------------


def validate_sv3d(path: Path) -> str:
    """SGM `sv3d_p.safetensors` (full key set of the SV3D-p U-Net) or a diffusers SV3D folder."""
    if path.is_dir():
        unet = path / "unet" if (path / "unet").is_dir() else path
        config = _read_config(unet, "the SV3D-p U-Net")
        if config.get("in_channels") != 8 or config.get("projection_class_embeddings_input_dim") != 1280:
            raise MissingWeightsError(
                f"{unet}/config.json is not an SV3D-p U-Net (needs 8 input channels and 1280-d camera conditioning)"
            )
        _check_weight_files(unet, "the SV3D-p U-Net")
        return "diffusers folder"
    import torch

    from .networks.sv3d_convert import SGM_UNET_PREFIX, convert_sgm_unet, unet_config_from_sgm

    shapes = safetensors_header(path)
    what = "SV3D-p (sv3d_p.safetensors)"
    unet = {k[len(SGM_UNET_PREFIX) :]: v for k, v in shapes.items() if k.startswith(SGM_UNET_PREFIX)}
    if not unet:
        raise MissingWeightsError(f"{path} holds no `model.diffusion_model.` tensors, so it is not {what}")
    _expect_shape(path, shapes, SGM_UNET_PREFIX + "input_blocks.0.0.weight", lambda s: len(s) == 4 and s[1] == 8, what)
    _expect_shape(
        path,
        shapes,
        SGM_UNET_PREFIX + "label_emb.0.0.weight",
        lambda s: len(s) == 2 and s[1] == 1280,
        what + " (SVD has 768-d conditioning)",
    )
    meta = {k: torch.empty(s, device="meta") for k, s in unet.items()}
    try:
        config = unet_config_from_sgm(meta)
        converted = convert_sgm_unet({SGM_UNET_PREFIX + k: v for k, v in meta.items()}, config["layers_per_block"])
    except KeyError as error:
        raise MissingWeightsError(f"{path} is not {what}: {error.args[0]}") from error
    from accelerate import init_empty_weights

    from .networks.sv3d_unet import SV3DUNet

    with init_empty_weights():
        expected = {k: list(v.shape) for k, v in SV3DUNet.from_config(config).state_dict().items()}
    found = {k: list(v.shape) for k, v in converted.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        raise MissingWeightsError(f"{path} has the wrong key set for {what} ({len(wrong)} mismatches, e.g. {wrong[0]})")
    return f"U-Net {tuple(config['block_out_channels'])}"


def validate_svd_xt(path: Path) -> str:
    """A diffusers SVD-xt folder: vae/ (AutoencoderKLTemporalDecoder) and image_encoder/ (CLIP vision + projection)."""
    vae = _read_config(path / "vae", "SVD-xt's VAE")
    if vae.get("_class_name") != "AutoencoderKLTemporalDecoder":
        raise MissingWeightsError(
            f"{path}/vae is a {vae.get('_class_name')}, not SVD-xt's AutoencoderKLTemporalDecoder"
        )
    _check_weight_files(path / "vae", "SVD-xt's VAE")
    encoder = _read_config(path / "image_encoder", "SVD-xt's image encoder")
    if "CLIPVisionModelWithProjection" not in encoder.get("architectures", []):
        raise MissingWeightsError(
            f"{path}/image_encoder is not a CLIPVisionModelWithProjection (SVD-xt's image encoder)"
        )
    _check_weight_files(path / "image_encoder", "SVD-xt's image encoder")
    return f"image embedding {encoder.get('projection_dim')}-d"


SAM_WIDTHS = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}


def validate_sam(path: Path) -> str:
    """A segment-anything checkpoint; returns the variant (vit_h / vit_l / vit_b) or `vit_custom` for test models."""
    shapes = torch_zip_shapes(path)
    shape = _expect_shape(
        path, shapes, "image_encoder.patch_embed.proj.weight", lambda s: len(s) == 4, "a SAM checkpoint"
    )
    for key in ("prompt_encoder.point_embeddings.0.weight", "mask_decoder.iou_token.weight"):
        _expect_shape(path, shapes, key, lambda s: True, "a SAM checkpoint")
    return SAM_WIDTHS.get(shape[0], "vit_custom")


def validate_grounding_dino(path: Path) -> str:
    config = _read_config(path, "Grounding DINO")
    if config.get("model_type") != "grounding-dino":
        raise MissingWeightsError(f"{path}/config.json is a {config.get('model_type')!r} model, not Grounding DINO")
    _check_weight_files(path, "Grounding DINO")
    if not any((path / n).exists() for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise MissingWeightsError(
            f"{path} has no tokenizer files; download the whole IDEA-Research/grounding-dino-tiny repository"
        )
    return "grounding-dino"


def validate_vgg16(path: Path) -> str:
    shapes = safetensors_header(path) if path.suffix == ".safetensors" else torch_zip_shapes(path)
    _expect_shape(path, shapes, "features.0.weight", lambda s: s == [64, 3, 3, 3], "torchvision's VGG16")
    _expect_shape(path, shapes, "features.28.weight", lambda s: s == [512, 512, 3, 3], "torchvision's VGG16")
    return "vgg16"


def _read_config(folder: Path, what: str) -> dict:
    config = folder / "config.json"
    if not config.exists():
        raise MissingWeightsError(f"{folder} has no config.json, so it is not {what}")
    try:
        return json.loads(config.read_text())
    except ValueError as error:
        raise MissingWeightsError(f"{config} is not valid JSON; download {what} again") from error


def _check_weight_files(folder: Path, what: str) -> None:
    files = sorted(folder.glob("*.safetensors"))
    if not files and not list(folder.glob("*.bin")):
        raise MissingWeightsError(f"{folder} has no weight files (*.safetensors) for {what}")
    for file in files:
        safetensors_header(file)


# -- the catalogue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFiles:
    """Files of one Hub repository that make up a weight entry, saved under `folder` in the weights
    folder (the entry's first candidate name; "" when the entry is a single file at its top level)."""

    repo_id: str
    files: tuple[str, ...]
    folder: str = ""
    revision: str = "main"
    gated: bool = False

    @property
    def page(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"


@dataclass(frozen=True)
class WeightSpec:
    name: str
    title: str
    env: str
    candidates: tuple[str, ...]  # file or folder names looked for in the weights folder
    source: str
    licence: str
    validate: Callable[[Path], str]
    hub_globs: tuple[str, ...] = ()  # relative to the user's cache dir (~/.cache)
    download: HubFiles | None = None  # where `keydiff3d weights --download` gets it (None: not on the Hub)


SPECS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            "sv3d_p",
            "SV3D-p U-Net (sv3d_p.safetensors or a diffusers SV3D folder)",
            "KEYDIFF3D_SV3D",
            ("sv3d_p.safetensors", "sv3d-diffusers"),
            "https://huggingface.co/stabilityai/sv3d (gated: accept the licence, then download sv3d_p.safetensors)",
            "Stability AI Community License (free below USD 1M annual revenue)",
            validate_sv3d,
            ("huggingface/hub/models--stabilityai--sv3d/snapshots/*/sv3d_p.safetensors",),
            HubFiles("stabilityai/sv3d", ("sv3d_p.safetensors",), gated=True),
        ),
        WeightSpec(
            "svd_xt",
            "SVD-xt VAE + CLIP image encoder (diffusers folder with vae/ and image_encoder/)",
            "KEYDIFF3D_SVD_XT",
            ("stable-video-diffusion-img2vid-xt", "svd-xt"),
            "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt (folders vae/ and image_encoder/)",
            "Stability AI Community License",
            validate_svd_xt,
            ("huggingface/hub/models--stabilityai--stable-video-diffusion-img2vid-xt/snapshots/*",),
            HubFiles(
                "stabilityai/stable-video-diffusion-img2vid-xt",
                (
                    "vae/config.json",
                    "vae/diffusion_pytorch_model.safetensors",
                    "image_encoder/config.json",
                    "image_encoder/model.safetensors",
                ),
                folder="stable-video-diffusion-img2vid-xt",
                gated=True,
            ),
        ),
        WeightSpec(
            "sam",
            "Segment Anything checkpoint (vit_h, vit_l or vit_b)",
            "KEYDIFF3D_SAM",
            ("sam_vit_h_4b8939.pth", "sam_vit_l_0b3195.pth", "sam_vit_b_01ec64.pth"),
            "https://github.com/facebookresearch/segment-anything#model-checkpoints",
            "Apache-2.0",
            validate_sam,
        ),
        WeightSpec(
            "grounding_dino",
            "Grounding DINO (transformers folder)",
            "KEYDIFF3D_GROUNDING_DINO",
            ("grounding-dino-tiny", "grounding-dino-base"),
            "https://huggingface.co/IDEA-Research/grounding-dino-tiny (whole repository)",
            "Apache-2.0",
            validate_grounding_dino,
            (
                "huggingface/hub/models--IDEA-Research--grounding-dino-tiny/snapshots/*",
                "huggingface/hub/models--IDEA-Research--grounding-dino-base/snapshots/*",
            ),
            HubFiles(
                "IDEA-Research/grounding-dino-tiny",
                (
                    "config.json",
                    "model.safetensors",
                    "preprocessor_config.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                    "added_tokens.json",
                    "vocab.txt",
                ),
                folder="grounding-dino-tiny",
            ),
        ),
        WeightSpec(
            "vgg16",
            "VGG16 ImageNet weights (perceptual loss in training)",
            "KEYDIFF3D_VGG16",
            ("vgg16-397923af.pth",),
            "https://download.pytorch.org/models/vgg16-397923af.pth (torchvision)",
            "BSD-3-Clause (torchvision); trained on ImageNet",
            validate_vgg16,
            ("torch/hub/checkpoints/vgg16-397923af.pth",),
        ),
    )
}


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def weights_dir() -> Path:
    return Path(os.environ.get("KEYDIFF3D_WEIGHTS_DIR") or user_cache_dir() / "keydiff3d" / "weights")


def config_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "keydiff3d" / "weights.toml"


def _configured_paths() -> dict[str, str]:
    path = config_file()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); fix or delete it") from error
    table = data.get("weights", data)
    return {k: str(v) for k, v in table.items() if isinstance(v, str)}


@dataclass
class Located:
    spec: WeightSpec
    path: Path | None
    origin: str  # "argument", "environment", "config file", "weights folder", "hub cache" or "missing"
    searched: list[str]


def locate(name: str, explicit: str | Path | None = None) -> Located:
    """Where the file for `name` is (first hit in the search order) and every place that was searched."""
    if name not in SPECS:
        raise KeyError(f"unknown weight entry {name!r}; known: {', '.join(SPECS)}")
    spec = SPECS[name]
    searched: list[str] = []
    options: list[tuple[str, Path]] = []
    if explicit is not None:
        options.append(("argument", Path(explicit).expanduser()))
    if os.environ.get(spec.env):
        options.append(("environment", Path(os.environ[spec.env]).expanduser()))
    if name in (configured := _configured_paths()):
        options.append(("config file", Path(configured[name]).expanduser()))
    options += [("weights folder", weights_dir() / c) for c in spec.candidates]
    for pattern in spec.hub_globs:
        options += [("hub cache", p) for p in sorted(user_cache_dir().glob(pattern))] or [
            ("hub cache", user_cache_dir() / pattern)
        ]
    for origin, path in options:
        searched.append(str(path))
        if path.exists():
            return Located(spec, path, origin, searched)
        if origin in ("argument", "environment", "config file"):  # an explicit choice that is wrong must not be skipped
            return Located(spec, None, f"{origin} (not found)", searched)
    return Located(spec, None, "missing", searched)


def require(name: str, explicit: str | Path | None = None, validate: bool = True) -> Path:
    """The validated path of weight entry `name`; MissingWeightsError (one sentence) if missing or wrong."""
    found = locate(name, explicit)
    spec = found.spec
    if found.path is None:
        where = found.searched[0] if found.origin != "missing" else f"{weights_dir()}/{spec.candidates[0]}"
        raise MissingWeightsError(
            f"{spec.title} not found at {where}: get it from {spec.source} and put it there "
            f"or set {spec.env}=/path/to/it"
        )
    if validate:
        spec.validate(found.path)
    return found.path


def sv3d_has_components(path: Path) -> bool:
    """True when an SV3D folder carries its own vae/ and image_encoder/ (then SVD-xt is not needed)."""
    return (
        path.is_dir() and (path / "vae" / "config.json").exists() and (path / "image_encoder" / "config.json").exists()
    )


# -- checksums (cached by path, size and mtime) -----------------------------------------------------


def _hash_cache_file() -> Path:
    return user_cache_dir() / "keydiff3d" / "sha256.json"


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's weight files (sorted relative names and their hashes)."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".pth", ".json")
        )
        digest = hashlib.sha256()
        for file in files:
            digest.update(f"{file.relative_to(path)}:{sha256_of(file)}\n".encode())
        return digest.hexdigest()
    cache_path = _hash_cache_file()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if key not in cache:
        log.info("computing the sha256 of %s (cached for next time)", path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**22), b""):
                digest.update(block)
        cache[key] = digest.hexdigest()
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=0))
        except OSError:
            pass  # a read-only cache only costs hashing again
    return cache[key]


def _size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def report(checksums: bool = True) -> list[dict]:
    """One row per entry: name, title, present, valid, problem, path, origin, size, sha256, searched, env,
    source, licence, downloadable, gated."""
    rows = []
    for name, spec in SPECS.items():
        found = locate(name)
        row = {
            "name": name,
            "title": spec.title,
            "present": found.path is not None,
            "valid": False,
            "detail": None,
            "problem": None,
            "path": str(found.path) if found.path else None,
            "origin": found.origin,
            "size": None,
            "sha256": None,
            "env": spec.env,
            "searched": found.searched,
            "source": spec.source,
            "licence": spec.licence,
            "downloadable": spec.download is not None,
            "gated": bool(spec.download and spec.download.gated),
        }
        if found.path is not None:
            row["size"] = _size_of(found.path)
            try:
                row["detail"] = spec.validate(found.path)
                row["valid"] = True
            except MissingWeightsError as error:
                row["problem"] = str(error)
            if checksums:
                row["sha256"] = sha256_of(found.path)
        rows.append(row)
    return rows
