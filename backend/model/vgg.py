"""VGG16 perceptual features (relu1_2, relu2_2, relu3_3, relu4_3) from a user-supplied weights file.

The architecture is VGG16's convolutional trunk, built here with torchvision's exact layer indices
(`vgg16().features[i]`) so its state dict keys match; nothing is ever downloaded. The weights
come from a local file in torchvision's key layout (`vgg16-397923af.pth`: `features.N.weight`,
`features.N.bias`; classifier keys are ignored), a `.pth`/`.pt` state dict or a `.safetensors` file
with the same keys. Looked up from an explicit path, else $KEYDIFF3D_VGG16. Without a file the
model falls back to the documented substitute in losses.py (see `resolve_perceptual_loss`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import MissingWeightsError

VGG16_ENV = "KEYDIFF3D_VGG16"
VGG16_TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}  # indices in vgg16().features
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)  # up to relu4_3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def find_vgg16_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The VGG16 weights file to use: `path` if given (must exist), else $KEYDIFF3D_VGG16 if set and present."""
    if path:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise MissingWeightsError(
                f"the VGG16 weights file {candidate} does not exist; "
                "fix the path or leave it empty to use the substitute loss"
            )
        return candidate
    env = os.environ.get(VGG16_ENV, "")
    if env and Path(env).expanduser().is_file():
        return Path(env).expanduser()
    return None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the user's file problem
        raise MissingWeightsError(
            f"could not read the VGG16 weights file {path} ({error.__class__.__name__}); "
            "supply torchvision's vgg16-397923af.pth"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MissingWeightsError(f"{path} does not hold a state dict; supply torchvision's vgg16-397923af.pth")
    return state


class VGG16Features(nn.Module):
    """Frozen VGG16 trunk up to relu4_3: images (N, 3, H, W) in [0, 1] -> [relu1_2, relu2_2, relu3_3, relu4_3]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG16Features":
        return super().train(False)  # always a fixed feature extractor

    def load_file(self, path: str | os.PathLike) -> "VGG16Features":
        """Load torchvision-layout weights; raises MissingWeightsError naming what is wrong."""
        path = Path(path)
        state = _read_state_dict(path)
        prefix = "features."
        wanted = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        own = self.features.state_dict()
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise MissingWeightsError(
                f"{path} is not a torchvision VGG16 state dict (missing {', '.join(missing[:3])}); "
                "supply vgg16-397923af.pth"
            )
        for key, tensor in own.items():
            if wanted[key].shape != tensor.shape:
                raise MissingWeightsError(
                    f"{path} has {key} of shape {tuple(wanted[key].shape)}, VGG16 needs {tuple(tensor.shape)}"
                )
        self.features.load_state_dict({k: wanted[k] for k in own})
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - self.mean) / self.std
        taps = []
        stops = set(VGG16_TAPS.values())
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in stops:
                taps.append(x)
        return taps


class VGGPerceptualLoss(nn.Module):
    """Sum over the four taps of the mean L1 distance between VGG16 features: (N, 3, H, W) x2 -> scalar."""

    def __init__(self, weights_path: str | os.PathLike) -> None:
        super().__init__()
        self.vgg = VGG16Features().load_file(weights_path)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_taps = self.vgg(target)
        loss = prediction.new_zeros(())
        for a, b in zip(self.vgg(prediction), target_taps):
            loss = loss + (a - b).abs().mean()
        return loss
