"""Training and export of the ×4 models (imports torch; never reached from inference).

Two stages, as in Ledig et al. 2017:
  srresnet  the PSNR model: L1 pixel loss only.
  srgan     starts from a srresnet checkpoint; perceptual loss on VGG19 features (relu2_2, the
            paper's VGG22 variant, with the project's truncated VGG19; relu5_4 = VGG54 with full
            weights) + 1e-3 adversarial + the pixel loss. relu3_4 can be added
            (--perceptual-layers relu2_2,relu3_4) but, measured over 40-step fine-tunes, it drew a
            4-pixel grid (its features sit behind two stride-2 poolings) that a run of a few
            hundred steps does not outgrow; relu2_2 alone added texture without it.
Data: random HR crops (flips, 90° rotations) of an image folder; LR made on the fly by
antialiased bicubic downscaling, rounded to 8 bits like the LR images of the evaluation.
Every training writes RUN_DIR/recipe.json (what was trained, for the model card) and, with
--eval-data, RUN_DIR/eval.jsonl: PSNR/SSIM of each saved checkpoint on that folder.
"""
from __future__ import annotations

import json
import math
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.errors import TrainingError, UsageError
from imgan.train.checkpoint import (LATEST_NAME, generator_from_checkpoint, load_checkpoint, load_state_strict,
                                    start_state, warm_start)
from imgan.train.data import ImageFolderCrops, bicubic_downscale
from imgan.train.export import ExportReport, export_onnx, write_model_card
from imgan.train.loop import Recipe, TrainConfig, fit
from imgan.train.losses import PerceptualLoss, pixel_loss
from imgan.train.vgg import VGGFeatures, VGGWeights, resolve_vgg_weights
from imgan.weights import imgan_home

from . import TASK
from .model import Discriminator, DiscriminatorConfig, GeneratorConfig, build_generator
from .protocol import EvalImage, Quality, load_eval_set, mean_quality, measure

STAGES = ("srresnet", "srgan")
RECIPE_FILE = "recipe.json"
EVAL_LOG = "eval.jsonl"
CALIBRATION_CROPS = 16

# Settings that differ by stage; every one can be overridden on the command line.
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "srresnet": dict(steps=1200, batch_size=16, crop=96, lr=3e-4, lr_schedule="cosine", warmup_steps=50,
                     pixel_weight=1.0, perceptual_weight=0.0, adversarial_weight=0.0, checkpoint_every=100),
    # Smaller crops than stage 1: VGG features up to relu3_4 cost 3x the generator per pixel on a CPU.
    # Weights by gradient size at the generator's output (Adam makes the step size scale-free,
    # so only the balance matters): the calibrated relu2_2 term at 0.3 pulls ~1.5x as hard as
    # the L1 term at 1; 1e-3 adversarial ~1/25 of it, the paper's small share.
    "srgan": dict(steps=300, batch_size=8, crop=64, lr=1e-4, lr_schedule="constant", warmup_steps=0,
                  pixel_weight=1.0, perceptual_weight=0.3, adversarial_weight=1e-3, checkpoint_every=50),
}


# ----------------------------------------------------------------------------------- data


class SRPairs(Dataset):
    """{"hr": (3, crop, crop), "lr": (3, crop/scale, crop/scale)} float32 in [0, 1]."""

    def __init__(self, crops: ImageFolderCrops, scale: int):
        if crops.crop % scale:
            raise UsageError(f"crop {crops.crop} must be a multiple of the scale {scale}")
        self.crops = crops
        self.scale = scale

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        hr = self.crops[index]
        # 8-bit LR, as the LR images every evaluation (and every user) feeds the model.
        lr = bicubic_downscale(hr, self.scale).mul_(255.0).round_().div_(255.0)
        return {"hr": hr, "lr": lr}

    def preload(self) -> None:
        self.crops.preload()


# ----------------------------------------------------------------------------------- recipe


def default_perceptual_layers(weights: VGGWeights) -> tuple[str, ...]:
    """VGG54 with full VGG19 weights (the paper's choice); VGG22 with truncated ones."""
    return ("relu5_4",) if "relu5_4" in weights.available_layers else ("relu2_2",)


def calibrated_layer_weights(features: VGGFeatures, images: Tensor) -> dict[str, float]:
    """1 / mean squared activation of each layer on ``images``.

    The raw feature MSEs differ by orders of magnitude between layers and between weight
    conventions (Caffe features are ~60x larger than torchvision's); so normalised, each layer's
    term is a relative feature error of order 1 and ``perceptual_weight`` means the same thing
    whatever VGG19 file is used.
    """
    with torch.no_grad():
        found = features(images)
    return {layer: 1.0 / float(found[layer].pow(2).mean().clamp_min(1e-12)) for layer in features.layers}


@dataclass
class SRRecipe(Recipe):
    data: Path
    generator_config: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator_config: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    crop: int = 96
    repeats: int = 8
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.0
    adversarial_weight: float = 0.0
    vgg_weights: str | None = None
    perceptual_layers: tuple[str, ...] | None = None  # None: default_perceptual_layers
    init_from: Path | None = None
    task: str = TASK

    def __post_init__(self) -> None:
        self.model_config = {"generator": self.generator_config.to_dict()}
        self.loss_weights = {"pixel": self.pixel_weight}
        if self.perceptual_weight > 0:
            self.loss_weights["perceptual"] = self.perceptual_weight
        if self.adversarial_weight > 0:
            self.loss_weights["adversarial"] = self.adversarial_weight
        self._dataset: SRPairs | None = None
        self._perceptual: PerceptualLoss | None = None

    @property
    def scale(self) -> int:
        return self.generator_config.scale

    def build_generator(self) -> nn.Module:
        generator = build_generator(self.model_config)
        if self.init_from is not None:
            load_state_strict(generator, initial_generator_state(self.init_from, self.model_config),
                              what="initial generator", path=self.init_from)
        return generator

    def build_discriminator(self) -> nn.Module | None:
        return Discriminator(self.discriminator_config) if self.adversarial_weight > 0 else None

    def make_dataset(self) -> SRPairs:
        if self._dataset is None:
            crops = ImageFolderCrops(self.data, self.crop, flips=True, rotations=True, repeats=self.repeats)
            self._dataset = SRPairs(crops, self.scale)
        return self._dataset

    def generate(self, generator: nn.Module, batch: dict) -> Tensor:
        return generator(batch["lr"])  # (N, 3, crop, crop)

    def real(self, batch: dict) -> Tensor:
        return batch["hr"]

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        losses = {"pixel": pixel_loss(fake, batch["hr"], "l1")}
        if self.perceptual_weight > 0:
            losses["perceptual"] = self.perceptual_loss()(fake, batch["hr"])
        return losses

    def perceptual_loss(self) -> PerceptualLoss:
        if self._perceptual is None:
            weights = resolve_vgg_weights(self.vgg_weights)
            features = VGGFeatures(self.perceptual_layers or default_perceptual_layers(weights), weights)
            calibration = self._calibration_crops()
            self._perceptual = PerceptualLoss(features.layers, features=features,
                                              layer_weights=calibrated_layer_weights(features, calibration))
            self._perceptual.to(calibration.device)
        return self._perceptual

    def _calibration_crops(self) -> Tensor:
        dataset = self.make_dataset()
        generator_state = torch.get_rng_state()
        torch.manual_seed(0)  # the same crops, so the weights, in every session of a run
        crops = torch.stack([dataset[index]["hr"] for index in range(min(CALIBRATION_CROPS, len(dataset)))])
        torch.set_rng_state(generator_state)
        return crops

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        return [batch["lr"], fake.clamp(0.0, 1.0), batch["hr"]]

    def describe(self) -> dict[str, Any]:
        """What this recipe trains, for recipe.json and the model card."""
        described: dict[str, Any] = {
            "generator": self.generator_config.to_dict(),
            "loss_weights": dict(self.loss_weights),
            "pixel_loss": "l1",
            "data": str(self.data),
            "crop": self.crop,
            "augmentation": "random crops, horizontal flips, 90° rotations",
            "lr_images": "antialiased bicubic (a=-0.5) downscale, rounded to 8 bits",
        }
        if self.perceptual_weight > 0:
            weights = resolve_vgg_weights(self.vgg_weights)
            layers = self.perceptual_layers or default_perceptual_layers(weights)
            described["perceptual"] = {"layers": list(layers), "vgg19": weights.name,
                                       "criterion": "mse / mean squared activation per layer"}
        if self.adversarial_weight > 0:
            described["discriminator"] = self.discriminator_config.to_dict()
        return described


def initial_generator_state(start: Path, model_config: dict) -> dict[str, Tensor]:
    """The generator weights of a previous run's checkpoint or exported .onnx, checked to fit ``model_config``."""
    generator = build_generator(model_config)
    warm_start(start, generator, task=TASK, config=model_config["generator"], config_of=_generator_config_of,
               parity_inputs=(torch.rand(1, 3, 20, 24),))
    return generator.state_dict()


def _generator_config_of(state: dict) -> dict | None:
    return state["card"]["architecture"]["generator"] if "card" in state else state["model_config"].get("generator")


# ----------------------------------------------------------------------------------- evaluation during training


def upscale_with_torch(generator: nn.Module, lr: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (h*s, w*s, 3) uint8 through a torch generator, whole image at once."""
    batch = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float().div(255.0)  # (1, 3, h, w)
    with torch.no_grad():
        output = generator(batch)[0].clamp(0.0, 1.0)  # (3, h*s, w*s)
    return output.mul(255.0).round().byte().permute(1, 2, 0).numpy()


def evaluate_generator(generator: nn.Module, images: list[EvalImage], scale: int) -> Quality:
    generator.eval()
    return mean_quality([measure(upscale_with_torch(generator, image.lr), image.hr, border=scale) for image in images])


class CheckpointEvaluator:
    """Measures every new checkpoint of a run on an HR folder; one line per checkpoint in eval.jsonl.

    Called from fit's on_log, so it sees a checkpoint one log interval after it was written (fit
    logs before it saves); `finish` measures the last one.
    """

    def __init__(self, run_dir: Path, data: Path, scale: int):
        self.run_dir = run_dir
        self.data = data
        self.scale = scale
        self.images = load_eval_set(data, scale)
        self.done = {record["step"] for record in read_eval_log(run_dir)}
        self.seen: int | None = None  # st_mtime_ns of the latest.pt last looked at

    def __call__(self, record: dict | None = None) -> None:
        latest = self.run_dir / LATEST_NAME
        if not latest.is_file() or latest.stat().st_mtime_ns == self.seen:
            return  # no new checkpoint: cheap, as this runs at every log line
        self.seen = latest.stat().st_mtime_ns
        generator, meta = generator_from_checkpoint(latest, build_generator)
        if meta["step"] in self.done:
            return
        quality = evaluate_generator(generator, self.images, self.scale)
        entry = {"step": meta["step"], "time": round(meta["seconds"], 1), "data": self.data.name,
                 "psnr_y": round(quality.psnr_y, 4), "ssim_y": round(quality.ssim_y, 5)}
        with (self.run_dir / EVAL_LOG).open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        self.done.add(meta["step"])

    finish = __call__


def read_eval_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / EVAL_LOG
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return records


# ----------------------------------------------------------------------------------- the train command


def default_run_dir(stage: str) -> Path:
    return imgan_home() / "runs" / f"{TASK}-{stage}"


def stage_setting(stage: str, name: str, given: Any) -> Any:
    return STAGE_DEFAULTS[stage][name] if given is None else given


def train_sr(*, stage: str, data: Path, run_dir: Path | None, steps: int | None, batch_size: int | None,
             crop: int | None, lr: float | None, channels: int, blocks: int, batch_norm: bool, tail_kernel: int,
             init_from: Path | None, vgg_weights: str | None, perceptual_layers: str | None,
             pixel_weight: float | None,
             perceptual_weight: float | None, adversarial_weight: float | None, d_channels: int,
             spectral_norm: bool, eval_data: Path | None, checkpoint_every: int | None, threads: int | None,
             workers: int, seed: int, resume: bool, device: str, progress: bool = True):
    """Build the recipe for ``stage`` and train it through imgan.train.loop.fit; returns its RunResult."""
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}", hint=f"choose one of {', '.join(STAGES)}")
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = run_dir or default_run_dir(stage)
    if stage == "srgan" and init_from is None and not resume:
        init_from = default_run_dir("srresnet") / LATEST_NAME
        if not init_from.is_file():
            raise UsageError("srgan starts from a trained srresnet", path=init_from,
                             hint="train `--stage srresnet` first, or pass --init-from CHECKPOINT")
    recipe = SRRecipe(
        data=data,
        generator_config=GeneratorConfig(channels=channels, blocks=blocks, batch_norm=batch_norm,
                                         tail_kernel=tail_kernel),
        discriminator_config=DiscriminatorConfig(channels=d_channels, batch_norm=not spectral_norm),
        crop=stage_setting(stage, "crop", crop),
        pixel_weight=stage_setting(stage, "pixel_weight", pixel_weight),
        perceptual_weight=stage_setting(stage, "perceptual_weight", perceptual_weight),
        adversarial_weight=stage_setting(stage, "adversarial_weight", adversarial_weight),
        vgg_weights=vgg_weights,
        perceptual_layers=tuple(perceptual_layers.split(",")) if perceptual_layers else None,
        init_from=None if resume else init_from,
    )
    learning_rate = stage_setting(stage, "lr", lr)
    every = stage_setting(stage, "checkpoint_every", checkpoint_every)
    config = TrainConfig(
        run_dir=run_dir, steps=stage_setting(stage, "steps", steps),
        batch_size=stage_setting(stage, "batch_size", batch_size), lr_g=learning_rate, lr_d=learning_rate,
        betas=(0.9, 0.999), adversarial="vanilla", spectral_norm=spectral_norm, ema_decay=0.999,
        lr_schedule=STAGE_DEFAULTS[stage]["lr_schedule"], warmup_steps=STAGE_DEFAULTS[stage]["warmup_steps"],
        checkpoint_every=every, sample_every=every,
        log_every=10, seed=seed, workers=workers, device=device,
    )
    if resume:
        note_resumption(run_dir, config)
    else:
        write_recipe_file(run_dir, stage, recipe, config, init_from, eval_data)
    evaluator = CheckpointEvaluator(run_dir, eval_data, recipe.scale) if eval_data is not None else None
    result = fit(recipe, config, resume=resume, progress=progress, on_log=evaluator)
    if evaluator is not None:
        evaluator.finish()
    return result


def write_recipe_file(run_dir: Path, stage: str, recipe: SRRecipe, config: TrainConfig, init_from: Path | None,
                      eval_data: Path | None) -> None:
    if (run_dir / LATEST_NAME).exists():
        return  # fit refuses to start over an existing run; keep that run's description
    run_dir.mkdir(parents=True, exist_ok=True)
    description = {"stage": stage, **recipe.describe(), "eval_data": str(eval_data) if eval_data else None,
                   "train_config": {k: v for k, v in config.to_dict().items() if k != "run_dir"},
                   "command": command_line(),
                   "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if init_from is not None:
        start = start_state(init_from)
        description["init_from"] = {"checkpoint": str(init_from), "step": start["step"],
                                    "seconds": round(start["seconds"], 1)}
    (run_dir / RECIPE_FILE).write_text(json.dumps(description, indent=2) + "\n")


def command_line() -> str:
    return "imgan " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


def note_resumption(run_dir: Path, config: TrainConfig) -> None:
    """Record in recipe.json that the run went on (its card then shows the settings it ended with)."""
    description = read_recipe_file(run_dir)
    if not description:
        return
    state = load_checkpoint(run_dir / LATEST_NAME)
    description.setdefault("resumed", []).append(
        {"at_step": state["step"], "steps": config.steps, "command": command_line(),
         "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    description["train_config"] = {k: v for k, v in config.to_dict().items() if k != "run_dir"}
    (run_dir / RECIPE_FILE).write_text(json.dumps(description, indent=2) + "\n")


# ----------------------------------------------------------------------------------- export


LICENCE = "MIT (imgan). Trained on BSDS500 photos (research use)"
PERCEPTUAL_LICENCE = "; its loss used VGG19 ImageNet weights (CC BY 4.0, VGG authors)"
DESCRIPTIONS = {
    "srresnet": "×4 SRResNet trained with an L1 pixel loss: the highest PSNR, smooth textures",
    "srgan": ("×4 SRGAN: SRResNet fine-tuned with VGG perceptual + adversarial losses: more edge contrast "
              "and texture, lower PSNR; a short fine-tune, so a faint grid shows in flat areas"),
}


def export_sr(checkpoint: Path, output: Path, name: str | None = None, *,
              eval_data: Path | None = None) -> ExportReport:
    """Export a run's checkpoint to ONNX (dynamic batch/height/width, parity at two sizes) with its card.

    The card's metrics are measured on the exported file with the evaluation protocol, on
    ``eval_data`` or else the run's own --eval-data folder.
    """
    checkpoint = Path(checkpoint)
    generator, meta = generator_from_checkpoint(checkpoint, build_generator)
    recipe = read_recipe_file(checkpoint.parent)
    stage = recipe.get("stage", "srresnet")
    config = generator.config
    card = {
        "name": name or f"{stage}-x{config.scale}",
        "task": TASK,
        "version": 1,
        "scale": config.scale,
        "pad_multiple": 1,
        "input_convention": "rgb01",
        "tile_overlap": tile_overlap_for(config),
        "description": DESCRIPTIONS.get(stage, f"×{config.scale} super-resolution"),
        "licence": LICENCE + (PERCEPTUAL_LICENCE if "perceptual" in recipe else "") + ".",
        "architecture": {"generator": config.to_dict(), "parameters": sum(p.numel() for p in generator.parameters())},
        "recipe": recipe,
        "steps": meta["step"],
        "training_seconds": round(meta["seconds"] + recipe.get("init_from", {}).get("seconds", 0.0), 1),
    }
    example = torch.rand(1, 3, 40, 32)
    with warnings.catch_warnings():
        # The edge padding of the bicubic branch exports through a reversed Slice that the
        # exporter cannot constant-fold; it says so three times, harmlessly (parity is checked).
        warnings.filterwarnings("ignore", message="Constant folding")
        report = export_onnx(generator, example, output, parity_inputs=[torch.rand(2, 3, 23, 57)], card=card)
    folder = eval_data or (Path(recipe["eval_data"]) if recipe.get("eval_data") else None)
    if folder is not None:
        from .evaluate import measure_weights_file

        metrics = {Path(folder).name: measure_weights_file(report.path, folder, scale=config.scale)}
        written = json.loads(report.card_path.read_text())
        written["metrics"] = metrics
        write_model_card(report.path, written)
    return report


def tile_overlap_for(config: GeneratorConfig) -> int:
    """The receptive-field margin rounded up to a multiple of 8: tiles then equal one pass."""
    return int(math.ceil(config.receptive_margin() / 8.0) * 8)


def read_recipe_file(run_dir: Path) -> dict:
    path = Path(run_dir) / RECIPE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise TrainingError(f"unreadable {RECIPE_FILE}: {exc}", path=path) from None
