"""Grounded SAM: text-prompted boxes from Grounding DINO (transformers) and masks from SAM (segment-anything).

Both load from user files (see `keydiff3d weights`): Grounding DINO from a transformers folder
(config.json, model.safetensors, tokenizer and processor files), SAM from the official `.pth`
checkpoints. SAM's image-encoder hyper-parameters are read from the checkpoint's tensor shapes, so
vit_h, vit_l, vit_b and smaller test encoders load through the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingWeightsError


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    label: str


def normalise_prompt(prompt: str) -> str:
    """Grounding DINO expects lower-case phrases each ending with a period ("dog. cat.")."""
    phrases = [p.strip().lower() for p in prompt.split(".") if p.strip()]
    if not phrases:
        raise ValueError("the detection prompt is empty")
    return " ".join(p + "." for p in phrases)


class GroundingDetector:
    """Grounding DINO through transformers' zero-shot object detection classes."""

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu") -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(folder)
            self.model = AutoModelForZeroShotObjectDetection.from_pretrained(folder).to(device).eval()
        except (OSError, ValueError) as error:
            raise MissingWeightsError(
                f"could not load Grounding DINO from {folder} ({error}); "
                "download the whole IDEA-Research/grounding-dino-tiny repository"
            ) from error
        self.device = torch.device(device)

    @torch.no_grad()
    def detect(
        self, rgb: np.ndarray, prompt: str, box_threshold: float = 0.3, text_threshold: float = 0.25
    ) -> list[Detection]:
        """rgb: (H, W, 3) uint8 -> detections sorted by score, best first."""
        from PIL import Image

        inputs = self.processor(images=Image.fromarray(rgb), text=normalise_prompt(prompt), return_tensors="pt").to(
            self.device
        )
        outputs = self.model(**inputs)
        result = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=box_threshold,
            text_threshold=text_threshold,
            target_sizes=[rgb.shape[:2]],
        )[0]
        labels = result["text_labels"] if "text_labels" in result else result["labels"]
        detections = [
            Detection(tuple(float(v) for v in box), float(score), str(label))
            for box, score, label in zip(result["boxes"].cpu().numpy(), result["scores"].cpu().numpy(), labels)
        ]
        return sorted(detections, key=lambda d: -d.score)


def build_sam_from_state(state: dict[str, torch.Tensor]):
    """A `segment_anything.modeling.Sam` whose encoder matches the checkpoint's shapes (vit_h/l/b or smaller)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    prefix = "image_encoder."
    embed = state[prefix + "patch_embed.proj.weight"]
    embed_dim, patch = int(embed.shape[0]), int(embed.shape[-1])
    grid = int(state[prefix + "pos_embed"].shape[1])
    depth = 1 + max(int(m[1]) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k)))
    rel_lengths = [int(state[f"{prefix}blocks.{i}.attn.rel_pos_h"].shape[0]) for i in range(depth)]
    head_dim = int(state[f"{prefix}blocks.0.attn.rel_pos_h"].shape[1])
    global_blocks = [i for i, n in enumerate(rel_lengths) if n == 2 * grid - 1]
    windowed = [n for n in rel_lengths if n != 2 * grid - 1]
    window = (windowed[0] + 1) // 2 if windowed else 0
    out_chans = int(state[prefix + "neck.0.weight"].shape[0])
    image_size = grid * patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size,
            patch_size=patch,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=embed_dim // head_dim,
            mlp_ratio=int(state[f"{prefix}blocks.0.mlp.lin1.weight"].shape[0]) // embed_dim,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=global_blocks,
            window_size=window,
            out_chans=out_chans,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=out_chans,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=out_chans, mlp_dim=2048, num_heads=8),
            transformer_dim=out_chans,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


class SamSegmenter:
    """SAM from an official checkpoint; `segment` returns the best mask for a box prompt."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu") -> None:
        from segment_anything import SamPredictor

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        try:
            sam = build_sam_from_state(state)
            sam.load_state_dict(state, strict=True)
        except (KeyError, RuntimeError) as error:
            raise MissingWeightsError(
                f"{checkpoint} is not a Segment Anything checkpoint ({str(error).splitlines()[0]})"
            ) from error
        self.predictor = SamPredictor(sam.to(device).eval())

    @torch.no_grad()
    def segment(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """rgb (H, W, 3) uint8, box x0, y0, x1, y1 -> (H, W) float32 mask in {0, 1}."""
        self.predictor.set_image(rgb)
        masks, scores, _ = self.predictor.predict(box=np.asarray(box, np.float32), multimask_output=True)
        return masks[int(np.argmax(scores))].astype(np.float32)
