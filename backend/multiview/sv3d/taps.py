"""Forward hooks that copy the outputs of chosen U-Net decoder modules during one denoiser call.

Default taps: the last resnet of every up block, `up_blocks.{0,1,2,3}.resnets.2`, i.e. the decoder
at latent/8, /4, /2 and /1 (9/18/36/72 px with 1280/1280/640/320 channels at 576 px input).
Under classifier-free guidance the U-Net batch is [uncond frames..., cond frames...]; only the
conditional half is kept (`keep_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_TAPS = ("up_blocks.0.resnets.2", "up_blocks.1.resnets.2", "up_blocks.2.resnets.2", "up_blocks.3.resnets.2")


def decoder_resnet_names(unet: torch.nn.Module) -> list[str]:
    """Names of every decoder resnet of a spatio-temporal U-Net, shallowest (lowest resolution) first."""
    return [f"up_blocks.{i}.resnets.{j}" for i, block in enumerate(unet.up_blocks) for j in range(len(block.resnets))]


class FeatureTaps:
    """Context manager recording `names` outputs while `armed`; results in `features[name]` (rows kept, CPU, fp16).

    rows: the indices of the flattened (B*T) batch to keep, e.g. the conditional frames to tap.
    """

    def __init__(self, unet: torch.nn.Module, names: Sequence[str], dtype: torch.dtype = torch.float16) -> None:
        modules = dict(unet.named_modules())
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ValueError(f"unknown tap layers {unknown}; decoder resnets are {decoder_resnet_names(unet)}")
        self._modules = {n: modules[n] for n in names}
        self._dtype = dtype
        self._handles: list = []
        self.rows: torch.Tensor | None = None
        self.features: dict[str, torch.Tensor] = {}

    def _hook(self, name: str):
        def record(_module, _inputs, output):
            if self.rows is not None:
                rows = self.rows.to(output.device)
                self.features[name] = output.detach().index_select(0, rows).to("cpu", self._dtype)

        return record

    def __enter__(self) -> "FeatureTaps":
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self._modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.rows = None
