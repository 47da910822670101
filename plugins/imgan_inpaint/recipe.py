"""Training of the inpainting model (imports torch; never reached from inference).

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

The loop (fit) writes RUN_DIR/run.json, with InpaintRecipe.describe() (data, crop, loss weights),
for the model card; it also does the warm start of --init-from and notes each --resume.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.errors import UsageError
from imgan.train.data import ImageFolderCrops
from imgan.train.checkpoint import as_numpy_model, generator_from_checkpoint
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit, fit_in_chunks
from imgan.train.losses import gram_matrix, style_loss
from imgan.train.run import check_run_name, default_run_dir
from imgan.train.vgg import VGGFeatures

from . import TASK
from .evaluate import evaluate_pairs, evaluation_pairs, list_image_files, prior_inpainter, summarize
from .infer import inpainter_for_model
from .masks import DEFAULT_AREA, random_mask
from .model import SPEC, InpaintNetConfig, PatchDiscriminator, composite
from .spec import DEFAULT_LOSS_WEIGHTS, DEFAULT_WEIGHTS, PAD_MULTIPLE

VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
MIN_SCALE = 2 / 3


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
    model_spec = SPEC

    def __init__(self, data: str | Path, *, crop: int = 128, model: InpaintNetConfig = InpaintNetConfig(),
                 loss_weights: dict[str, float] | None = None, vgg_weights: str | Path | None = None,
                 d_width: int = 32):
        self.data = Path(data)
        self.crop = crop
        self.model_config = model.to_dict()
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        unknown = sorted(set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise UsageError(f"unknown loss terms {', '.join(unknown)}", hint=f"known: {', '.join(DEFAULT_LOSS_WEIGHTS)}")
        self.vgg_weights = vgg_weights
        self.d_width = d_width
        self._vgg: VGGFeatures | None = None

    def describe(self) -> dict:
        """What run.json (and so the model card's provenance) records of this recipe."""
        return {"data": str(self.data), "crop": self.crop, "scale_range": [round(MIN_SCALE, 3), 1.0],
                "mask_area": list(DEFAULT_AREA), "loss_weights": self.loss_weights, "vgg_layers": list(VGG_LAYERS),
                "vgg_resolution": "half"}

    # models ---------------------------------------------------------------------------
    def build_generator(self) -> nn.Module:
        # channels_last: oneDNN's convolutions run about 30 % faster on the CPU in that layout
        return SPEC.build(self.model_config).to(memory_format=torch.channels_last)

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


# ----------------------------------------------------------------------------------- measured while training


def checkpoint_measure(images: Path, masks: Path, limit: int | None = None) -> Callable[[Path], dict]:
    """measure(checkpoint) for fit_in_chunks: the checkpoint's net (its EMA) on the dev pairs of
    `imgan eval inpaint --images IMAGES --masks MASKS --limit LIMIT`, through the same Inpainter as
    the exported file: the gain over Telea on 10-40 % holes (and the push-pull prior's, when
    shipped), and per band. The pairs are listed now, so a wrong folder fails before any training."""
    pairs = evaluation_pairs(list_image_files(images, "images"), list_image_files(masks, "masks"), limit)
    prior = prior_inpainter(None, device="cpu")

    def measure(checkpoint: Path) -> dict:
        generator, meta = generator_from_checkpoint(checkpoint, SPEC.build)
        inpainter = inpainter_for_model(as_numpy_model(generator), SPEC.running(meta["model_config"]))
        summary = summarize(evaluate_pairs(pairs, inpainter, prior=prior))
        gain, prior_gain = summary["goal"]["psnr_gain_db_10_40"], summary["goal"].get("prior_psnr_gain_db_10_40")
        return {"step": meta["step"], "train_seconds": round(meta["seconds"], 1), "images": images.name,
                "masks": masks.name, "pairs": summary["pairs"],
                "psnr_gain_db_10_40": None if gain is None else round(gain, 3),
                "prior_psnr_gain_db_10_40": None if prior_gain is None else round(prior_gain, 3),
                "psnr_gain_db_per_band": {band: round(figures["model"]["psnr"] - figures["telea"]["psnr"], 3)
                                          for band, figures in summary["bands"].items()}}

    return measure


# ----------------------------------------------------------------------------------- `imgan train inpaint`


def train_inpaint(*, data: Path, name: str = DEFAULT_WEIGHTS, run_dir: Path | None = None, steps: int = 3000,
                  batch_size: int = 4, crop: int = 128, width: int = 16, fourier_blocks: int = 0,
                  lr: float = 4e-4, loss_weights: dict[str, float] | None = None, vgg_weights: str | None = None,
                  checkpoint_every: int = 100, threads: int | None = None, workers: int = 0, seed: int = 0,
                  resume: bool = False, device: str = "auto", progress: bool = True,
                  init_from: Path | None = None, eval_images: Path | None = None, eval_masks: Path | None = None,
                  eval_limit: int | None = 80, eval_every: int = 200,
                  on_eval: Callable[[dict], None] | None = None) -> RunResult:
    """Train the inpainting GAN through imgan's loop; returns where the checkpoint is.

    `init_from` (a checkpoint, or an exported .onnx with its card) starts the generator of a new
    run from those weights, e.g. to fine-tune the shipped model; the discriminator starts fresh.
    The run folder is `run_dir`, else $IMGAN_HOME/runs/inpaint-NAME (a plain name: UsageError).
    With `eval_images` and `eval_masks`, every `eval_every` steps the checkpoint is measured on
    those dev pairs (checkpoint_measure) into RUN_DIR/eval.jsonl, and passed to `on_eval`."""
    if (eval_images is None) != (eval_masks is None):
        raise UsageError("measuring while training needs both --eval-images and --eval-masks")
    measure = checkpoint_measure(eval_images, eval_masks, eval_limit) if eval_images is not None else None
    check_run_name(name)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(TASK, name)
    recipe = InpaintRecipe(data, crop=crop, model=InpaintNetConfig(width=width, fourier_blocks=fourier_blocks), loss_weights=loss_weights,
                           vgg_weights=vgg_weights)
    # EMA over ~200 steps: runs here are a few thousand steps, and a checkpoint half-way must export well.
    config = TrainConfig(run_dir=run_dir, steps=steps, batch_size=batch_size, lr_g=lr, lr_d=lr,
                         adversarial="hinge", spectral_norm=True, lr_schedule="cosine", warmup_steps=min(100, steps // 10),
                         checkpoint_every=checkpoint_every, sample_every=max(checkpoint_every, 200), seed=seed,
                         ema_decay=0.995, workers=workers, device=device, threads=threads,
                         init_from=str(init_from) if init_from is not None else None)
    if measure is None:
        return fit(recipe, config, resume=resume, progress=progress)
    return fit_in_chunks(recipe, config, resume=resume, every=eval_every, measure=measure, progress=progress,
                         on_eval=on_eval)
