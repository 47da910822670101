"""Training and export of the inpainting model (imports torch; never reached from inference).

Data: a random crop of a training photo at a random scale (0.67x to 1x: the model sees photos
at about their own resolution, as the inference crops them) and a random mask (masks.py:
strokes and boxes, 5-60 % of the crop), drawn per item from the loop's per-item seed.

Generator losses (the weights are options of `imgan train inpaint`):
  hole        L1 over the hole pixels of the generated image (per hole pixel)
  valid       L1 over the known pixels of the raw generated image (before compositing): keeps the
              net's output consistent with what it was shown, as in Liu et al. 2018
  perceptual  L1 between VGG19 features (relu1_1, relu2_1, relu3_1) of the composite and the photo,
              per layer divided by the photo's mean feature magnitude
  style       Gram-matrix MSE on the same layers (Gatys et al.), composite vs photo, per layer
              divided by the mean squared Gram entry of the photo
  adversarial hinge loss of an SN-PatchGAN that sees composite + mask (the loop's hinge mode)
VGG terms run on 2x-downscaled images: a quarter of the cost, and the CPU budget is small.

Every run writes RUN_DIR/recipe.json (data, loss weights, command line) for the model card.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.errors import TrainingError, UsageError
from imgan.train.checkpoint import LATEST_NAME, generator_from_checkpoint, warm_start
from imgan.train.data import ImageFolderCrops
from imgan.train.export import ExportReport, export_onnx
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit
from imgan.train.losses import gram_matrix, style_loss
from imgan.train.vgg import VGGFeatures
from imgan.weights import imgan_home

from . import DEFAULT_LOSS_WEIGHTS, DEFAULT_WEIGHTS, TASK
from .masks import DEFAULT_AREA, random_mask
from .model import PAD_MULTIPLE, InpaintNet, InpaintNetConfig, PatchDiscriminator, build_generator, composite

RECIPE_FILE = "recipe.json"
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
MIN_SCALE = 2 / 3
# What the inference side reads from the model card (see infer.py).
WORKING_SIZE = 512
MAX_HOLE_RADIUS = 48
TILE_OVERLAP = 64


# ----------------------------------------------------------------------------------- data


class InpaintCrops(Dataset):
    """{"image": (3, crop, crop) in [0, 1], "mask": (1, crop, crop), 1 = hole}."""

    def __init__(self, data: str | Path, crop: int, *, area: tuple[float, float] = DEFAULT_AREA):
        if crop % PAD_MULTIPLE:
            raise UsageError(f"crop {crop} must be a multiple of {PAD_MULTIPLE}")
        self.crop = crop
        self.area = area
        self.photos = ImageFolderCrops(data, int(round(crop / MIN_SCALE)), flips=True)

    def __len__(self) -> int:
        return len(self.photos)

    def preload(self) -> None:
        self.photos.preload()

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        patch = self.photos[index]  # (3, S, S), S = crop / MIN_SCALE
        size = int(torch.randint(self.crop, patch.shape[-1] + 1, ()).item())
        if size != patch.shape[-1]:
            patch = F.interpolate(patch[None], size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)[0].clamp_(0.0, 1.0)
        top, left = (int(torch.randint(0, size - self.crop + 1, ()).item()) for _ in range(2))
        image = patch[:, top:top + self.crop, left:left + self.crop].contiguous()
        # The mask's own RNG, seeded from torch's (which the loop seeds per item): reproducible.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        hole = random_mask(self.crop, self.crop, rng, area=self.area)
        return {"image": image, "mask": torch.from_numpy(hole)[None].float()}


# ----------------------------------------------------------------------------------- recipe


class InpaintRecipe(Recipe):
    task = TASK

    def __init__(self, data: str | Path, *, crop: int = 128, model: InpaintNetConfig = InpaintNetConfig(),
                 loss_weights: dict[str, float] | None = None, vgg_weights: str | Path | None = None,
                 d_width: int = 32, initial_weights: dict[str, Tensor] | None = None):
        self.data = Path(data)
        self.initial_weights = initial_weights  # a warm start's generator state dict (see start_from)
        self.crop = crop
        self.model_config = model.to_dict()
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        unknown = sorted(set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise UsageError(f"unknown loss terms {', '.join(unknown)}", hint=f"known: {', '.join(DEFAULT_LOSS_WEIGHTS)}")
        self.vgg_weights = vgg_weights
        self.d_width = d_width
        self._vgg: VGGFeatures | None = None

    # models ---------------------------------------------------------------------------
    def build_generator(self) -> nn.Module:
        generator = build_generator(self.model_config)
        if self.initial_weights is not None:
            generator.load_state_dict(self.initial_weights)
        # channels_last: oneDNN's convolutions run about 30 % faster on the CPU in that layout
        return generator.to(memory_format=torch.channels_last)

    def build_discriminator(self) -> nn.Module:
        return PatchDiscriminator(self.d_width).to(memory_format=torch.channels_last)

    def make_dataset(self) -> Dataset:
        return InpaintCrops(self.data, self.crop)

    # one step -----------------------------------------------------------------------------
    def generate(self, generator: nn.Module, batch: dict) -> Tensor:
        """The raw generated image (N,3,H,W); the losses composite it themselves."""
        return generator(batch["image"], batch["mask"], raw=True)

    def real(self, batch: dict) -> Tensor:
        return batch["image"]

    def discriminator_input(self, image: Tensor, batch: dict) -> Tensor:
        """D judges the composite (what the user gets) and knows where the hole was: (N,4,H,W)."""
        return torch.cat([composite(batch["image"], image, batch["mask"]), batch["mask"]], dim=1)

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        image, mask = batch["image"], batch["mask"]
        error = (fake - image).abs()  # (N, 3, H, W)
        terms = {
            "hole": (error * mask).sum() / (3.0 * mask.sum()).clamp_min(1.0),
            "valid": (error * (1.0 - mask)).sum() / (3.0 * (1.0 - mask).sum()).clamp_min(1.0),
        }
        if self.loss_weights["perceptual"] > 0 or self.loss_weights["style"] > 0:
            terms.update(self._vgg_terms(composite(image, fake, mask), image))
        return terms

    def _vgg_terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Both terms relative to the photo's own feature (and Gram) magnitudes, per layer: their
        scale, and so their weights, do not depend on the VGG weights' input convention."""
        vgg = self._features(output.device)
        output_features = vgg(F.avg_pool2d(output, 2))  # half resolution: 1/4 of the cost
        with torch.no_grad():
            target_features = vgg(F.avg_pool2d(target, 2))
            targets = {layer: gram_matrix(target_features[layer]) for layer in VGG_LAYERS}
            feature_scale = {layer: target_features[layer].abs().mean().clamp_min(1e-8) for layer in VGG_LAYERS}
            gram_scale = {layer: targets[layer].pow(2).mean().clamp_min(1e-12) for layer in VGG_LAYERS}
        perceptual = sum(F.l1_loss(output_features[layer], target_features[layer]) / feature_scale[layer]
                         for layer in VGG_LAYERS)
        style = style_loss(output_features, targets, weights={layer: 1.0 / gram_scale[layer] for layer in VGG_LAYERS})
        return {"perceptual": perceptual, "style": style}

    def _features(self, device: torch.device) -> VGGFeatures:
        if self._vgg is None:
            self._vgg = VGGFeatures(VGG_LAYERS, self.vgg_weights).to(device)
        return self._vgg

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        image, mask = batch["image"], batch["mask"]
        shown_input = image * (1.0 - mask) + 0.5 * mask  # the hole in mid-gray
        return [shown_input, composite(image, fake, mask), image]


# ----------------------------------------------------------------------------------- train


def default_run_dir(name: str) -> Path:
    return imgan_home() / "runs" / f"{TASK}-{name}"


def train_inpaint(*, data: Path, name: str = DEFAULT_WEIGHTS, run_dir: Path | None = None, steps: int = 3000,
                  batch_size: int = 4, crop: int = 128, width: int = 16, lr: float = 4e-4,
                  loss_weights: dict[str, float] | None = None, vgg_weights: str | None = None,
                  checkpoint_every: int = 100, threads: int | None = None, workers: int = 0, seed: int = 0,
                  resume: bool = False, device: str = "auto", progress: bool = True,
                  init_from: Path | None = None) -> RunResult:
    """Train the inpainting GAN through imgan's loop; returns where the checkpoint is.

    `init_from` (a checkpoint, or an exported .onnx with its card) starts the generator from
    those weights, e.g. to fine-tune the shipped model; the discriminator starts fresh."""
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(name)
    model = InpaintNetConfig(width=width)
    start, initial_weights = start_from(init_from, model) if init_from is not None and not resume else (None, None)
    recipe = InpaintRecipe(data, crop=crop, model=model, loss_weights=loss_weights, vgg_weights=vgg_weights,
                           initial_weights=initial_weights)
    # EMA over ~200 steps: runs here are a few thousand steps, and a checkpoint half-way must export well.
    config = TrainConfig(run_dir=run_dir, steps=steps, batch_size=batch_size, lr_g=lr, lr_d=lr,
                         adversarial="hinge", spectral_norm=True, lr_schedule="cosine", warmup_steps=min(100, steps // 10),
                         checkpoint_every=checkpoint_every, sample_every=max(checkpoint_every, 200), seed=seed,
                         ema_decay=0.995, workers=workers, device=device)
    if resume or not (run_dir / LATEST_NAME).exists():  # else fit refuses the run dir: keep its file
        _write_recipe_file(run_dir, recipe, config, crop=crop, start=start)
    return fit(recipe, config, resume=resume, progress=progress)


def start_from(start: Path, model: InpaintNetConfig) -> tuple[dict, dict[str, Tensor]]:
    """A previous run's generator weights (checkpoint, or .onnx + card) for `model`: (where they came from, weights)."""
    net = build_generator(model.to_dict())
    described = warm_start(start, net, task=TASK, config=model, config_of=_net_config_of,
                           parity_inputs=_example(40, 56, 1), exported=_CompositeOnly)
    return described, net.state_dict()


def _net_config_of(state: dict) -> InpaintNetConfig:
    return InpaintNetConfig.from_dict(state["card"]["recipe"]["model_config"] if "card" in state else state["model_config"])


def _write_recipe_file(run_dir: Path, recipe: InpaintRecipe, config: TrainConfig, *, crop: int,
                       start: dict | None = None) -> None:
    description = {
        "data": str(recipe.data), "crop": crop, "scale_range": [round(MIN_SCALE, 3), 1.0], "mask_area": list(DEFAULT_AREA),
        "loss_weights": recipe.loss_weights, "vgg_layers": list(VGG_LAYERS), "vgg_resolution": "half",
        "train_config": {k: v for k, v in config.to_dict().items() if k != "run_dir"},
        "command": shlex.join(sys.argv),
        **({"init_from": start} if start else {}),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RECIPE_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------- export


class _CompositeOnly(nn.Module):
    """The exported graph: (image, mask) -> composite, with no Python flag to trace."""

    def __init__(self, net: InpaintNet):
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.net(image, mask)


def _example(height: int, width: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=generator)
    hole = random_mask(height, width, np.random.default_rng(seed))
    return image, torch.from_numpy(hole)[None, None].float()


def export_inpaint(checkpoint: Path, output: Path, name: str | None = None,
                   metrics: dict[str, Any] | None = None) -> ExportReport:
    """ONNX (inputs image (N,3,H,W) and mask (N,1,H,W), output the composite) + model card."""
    checkpoint = Path(checkpoint)
    net, meta = generator_from_checkpoint(checkpoint, build_generator)
    if meta.get("task") != TASK:
        raise TrainingError(f"this checkpoint is for task {meta.get('task')!r}, not {TASK!r}", path=checkpoint)
    recipe_file = checkpoint.parent / RECIPE_FILE
    recipe = json.loads(recipe_file.read_text(encoding="utf-8")) if recipe_file.is_file() else {}
    earlier = recipe.get("init_from", {}).get("seconds", 0.0)  # a warm start's own training time
    recipe.update(model_config=meta["model_config"], steps=meta["step"], train_seconds=round(meta["seconds"] + earlier))
    card = {
        "name": name or Path(output).stem.removeprefix(f"{TASK}-"), "task": TASK, "version": 1, "scale": 1,
        "pad_multiple": PAD_MULTIPLE, "input_convention": "rgb01",
        "inputs": {"image": "NCHW float32 RGB in [0, 1]", "mask": "N1HW float32, 1 = hole"},
        "output": "the composite: the image outside the hole, the generated fill inside",
        "tile_overlap": TILE_OVERLAP, "working_size": WORKING_SIZE, "max_hole_radius": MAX_HOLE_RADIUS,
        "description": "Gated-conv inpainting (DeepFill v2 style, push-pull coarse fill, SN-PatchGAN), "
                       f"{meta['step']} steps on CPU",
        "licence": "MIT (code); weights trained on BSDS500 train photos (research use)",
        "recipe": recipe, "metrics": metrics or {},
    }
    return export_onnx(_CompositeOnly(net), _example(96, 128, 0), output, input_names=("image", "mask"),
                       output_names=("output",), parity_inputs=[_example(68, 52, 1)], card=card)
