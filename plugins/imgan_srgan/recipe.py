"""Training of the ×4 (and ×2) models (imports torch; never reached from inference).

Two stages, as in Ledig et al. 2017:
  srresnet  the PSNR model: L1 pixel loss only.
  srgan     starts from a srresnet checkpoint; perceptual loss on VGG19 features (relu2_2, the
            paper's VGG22 variant, with the project's truncated VGG19; relu5_4 = VGG54 with full
            weights) + 1e-3 adversarial + the pixel loss. relu3_4 can be added
            (--perceptual-layers relu2_2,relu3_4) but, measured over 40-step fine-tunes, it drew a
            4-pixel grid (its features sit behind two stride-2 poolings) that a run of a few
            hundred steps does not outgrow; relu2_2 alone added texture without it. With the
            sub-pixel upsampler relu2_2 still draws a fixed 2-pixel pattern in flat areas (the
            shipped srgan-x4's grid: +11 dB at the 2-px period on Set5; the adversarial term adds
            nothing measurable); a generator with --upsample nearest cannot (model.py).
            The critic: SRGAN's VGG-style one (one logit per image), or with --degrade real by
            default Real-ESRGAN's U-Net with spectral norm (one logit per pixel).
Data: random HR crops (flips, 90° rotations) of an image folder; LR made on the fly by
antialiased bicubic downscaling, rounded to 8 bits like the LR images of the evaluation.
The run's description (SRRecipe.describe) goes to RUN_DIR/run.json through fit; with --eval-data,
RUN_DIR/eval.jsonl gets the PSNR/SSIM of each saved checkpoint on that folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.errors import UsageError
from imgan.train.checkpoint import LATEST_NAME, generator_from_checkpoint
from imgan.train.data import ImageFolderCrops, bicubic_downscale
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit
from imgan.train.losses import PerceptualLoss, pixel_loss
from imgan.train.run import append_eval, default_run_dir, read_eval_log, read_run
from imgan.train.vgg import VGGFeatures, VGGWeights, resolve_vgg_weights

from . import TASK
from .degrade import degrade as real_world_degradation
from .model import SPEC, DiscriminatorConfig, GeneratorConfig, build_discriminator
from .protocol import EvalImage, Quality, load_eval_set, mean_quality, measure
from .spec import TrainSettings

CALIBRATION_CROPS = 16


# ----------------------------------------------------------------------------------- data


class SRPairs(Dataset):
    """{"hr": (3, crop, crop), "lr": (3, crop/scale, crop/scale)} float32 in [0, 1].

    degrade "bicubic": LR by antialiased bicubic; "real": by Real-ESRGAN's second-order model
    (degrade.py), drawn from torch's RNG, which the loop seeds per item: resumable and exact.
    """

    def __init__(self, crops: ImageFolderCrops, scale: int, degrade: str = "bicubic"):
        if crops.crop % scale:
            raise UsageError(f"crop {crops.crop} must be a multiple of the scale {scale}")
        self.crops = crops
        self.scale = scale
        self.degrade = degrade

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        hr = self.crops[index]
        if self.degrade == "real":
            return {"hr": hr, "lr": real_world_lr(hr, self.scale)}
        # 8-bit LR, as the LR images every evaluation (and every user) feeds the model.
        lr = bicubic_downscale(hr, self.scale).mul_(255.0).round_().div_(255.0)
        return {"hr": hr, "lr": lr}

    def preload(self) -> None:
        self.crops.preload()


def real_world_lr(hr: Tensor, scale: int) -> Tensor:
    """(3, H, W) -> (3, H/scale, W/scale): one draw of the real-world degradation, on the 8-bit grid."""
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
    lr = real_world_degradation(hr.permute(1, 2, 0).numpy(), rng, scale=scale)  # (h, w, 3) float32
    return torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))


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
    stage: str = "srresnet"
    eval_data: Path | None = None  # measured at every checkpoint (CheckpointEvaluator), recorded here
    degrade: str = "bicubic"  # how LR crops are made: spec.DEGRADATIONS
    channels_last: bool = False  # NHWC networks: faster convolutions on recent GPUs (and oneDNN)
    task: str = TASK
    model_spec = SPEC  # a class attribute, not a field: fit builds (and warm-starts) the generator with it

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
        return self._memory_format(SPEC.build(self.model_config))

    def build_discriminator(self) -> nn.Module | None:
        return self._memory_format(build_discriminator(self.discriminator_config)) if self.adversarial_weight > 0 else None

    def _memory_format(self, module: nn.Module) -> nn.Module:
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def make_dataset(self) -> SRPairs:
        if self._dataset is None:
            crops = ImageFolderCrops(self.data, self.crop, flips=True, rotations=True, repeats=self.repeats)
            self._dataset = SRPairs(crops, self.scale, self.degrade)
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
        """What this recipe trains, for run.json and the model card."""
        described: dict[str, Any] = {
            "stage": self.stage,
            "generator": self.generator_config.to_dict(),
            "loss_weights": dict(self.loss_weights),
            "pixel_loss": "l1",
            "data": str(self.data),
            "crop": self.crop,
            "augmentation": "random crops, horizontal flips, 90° rotations",
            "lr_images": ("Real-ESRGAN second-order degradation (blur, resize, noise, JPEG, twice; "
                          f"degrade.DegradationConfig defaults), x{self.scale}" if self.degrade == "real"
                          else "antialiased bicubic (a=-0.5) downscale, rounded to 8 bits"),
            "degrade": self.degrade,
        }
        if self.perceptual_weight > 0:
            weights = resolve_vgg_weights(self.vgg_weights)
            layers = self.perceptual_layers or default_perceptual_layers(weights)
            described["perceptual"] = {"layers": list(layers), "vgg19": weights.name,
                                       "criterion": "mse / mean squared activation per layer"}
        if self.adversarial_weight > 0:
            described["discriminator"] = self.discriminator_config.to_dict()
        described["eval_data"] = str(self.eval_data) if self.eval_data else None
        return described


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

    def __init__(self, run_dir: Path, data: Path, scale: int, degrade: str = "bicubic"):
        self.run_dir = run_dir
        self.data = data
        self.scale = scale
        self.degrade = degrade
        self.images = load_eval_set(data, scale, degrade=degrade)
        self.done = {record["step"] for record in read_eval_log(run_dir)}
        self.seen: int | None = None  # st_mtime_ns of the latest.pt last looked at

    def __call__(self, record: dict | None = None) -> None:
        latest = self.run_dir / LATEST_NAME
        if not latest.is_file() or latest.stat().st_mtime_ns == self.seen:
            return  # no new checkpoint: cheap, as this runs at every log line
        self.seen = latest.stat().st_mtime_ns
        generator, meta = generator_from_checkpoint(latest, SPEC.build)
        if meta["step"] in self.done:
            return
        quality = evaluate_generator(generator, self.images, self.scale)
        # "folder": where export finds the data again to measure the exported file for its card
        append_eval(self.run_dir, {"step": meta["step"], "time": round(meta["seconds"], 1), "data": self.data.name,
                                   "degrade": self.degrade,
                                   "psnr_y": round(quality.psnr_y, 4), "ssim_y": round(quality.ssim_y, 5),
                                   "folder": str(self.data.resolve())})
        self.done.add(meta["step"])

    finish = __call__


# ----------------------------------------------------------------------------------- the train command


def default_init_from(settings: TrainSettings) -> Path | None:
    """Where a new run starts when no --init-from is given: srgan from the srresnet run of its scale."""
    if settings.stage != "srgan":
        return None
    start = default_run_dir(TASK, TrainSettings(stage="srresnet", scale=settings.scale).run_name) / LATEST_NAME
    if not start.is_file():
        raise UsageError("srgan starts from a trained srresnet", path=start,
                         hint="train `--stage srresnet` first, or pass --init-from CHECKPOINT")
    return start


def initial_choices(settings: TrainSettings, run_dir: Path, init_from: Path | None) -> tuple[bool, DiscriminatorConfig]:
    """(icnr, the critic) for the run, where the command leaves them open: ICNR for a sub-pixel run
    from scratch (a warm start's weights come from its start); a resumed run keeps what its run.json
    recorded (older runs: no icnr, vgg)."""
    recorded = (read_run(run_dir).get("recipe") or {}) if settings.resume else {}
    icnr = settings.icnr
    if icnr is None:
        icnr = (bool(recorded.get("generator", {}).get("icnr", False)) if settings.resume
                else init_from is None and settings.upsample == "pixelshuffle")
    critic = recorded.get("discriminator") if settings.discriminator is None and settings.d_channels is None else None
    if critic:
        return icnr, DiscriminatorConfig.from_dict(critic)
    kind = settings.discriminator_kind()
    return icnr, DiscriminatorConfig(channels=settings.discriminator_channels(), kind=kind,
                                     batch_norm=kind == "vgg" and not settings.spectral_norm)


def train_sr(settings: TrainSettings, *, progress: bool = True) -> RunResult:
    """Build the recipe for the settings' stage and train it through imgan.train.loop.fit; returns its RunResult."""
    run_dir = settings.run_dir or default_run_dir(TASK, settings.run_name)
    init_from = None if settings.resume else (settings.init_from or default_init_from(settings))
    icnr, critic = initial_choices(settings, run_dir, init_from)
    recipe = SRRecipe(
        data=settings.data,
        generator_config=GeneratorConfig(channels=settings.channels, blocks=settings.blocks,
                                         batch_norm=settings.batch_norm, tail_kernel=settings.tail_kernel,
                                         scale=settings.scale, upsample=settings.upsample, icnr=icnr),
        discriminator_config=critic,
        crop=settings.setting("crop"),
        pixel_weight=settings.setting("pixel_weight"),
        perceptual_weight=settings.setting("perceptual_weight"),
        adversarial_weight=settings.setting("adversarial_weight"),
        vgg_weights=settings.vgg_weights,
        perceptual_layers=tuple(settings.perceptual_layers.split(",")) if settings.perceptual_layers else None,
        stage=settings.stage,
        eval_data=settings.eval_data,
        degrade=settings.degrade,
        channels_last=settings.channels_last,
    )
    learning_rate, every = settings.setting("lr"), settings.setting("checkpoint_every")
    config = TrainConfig(
        run_dir=run_dir, steps=settings.setting("steps"), batch_size=settings.setting("batch_size"),
        lr_g=learning_rate, lr_d=learning_rate, betas=(0.9, 0.999), adversarial="vanilla",
        # The U-Net applies its own spectral norm (not on its first and last convolutions).
        spectral_norm=critic.kind == "vgg" and not critic.batch_norm, amp=settings.amp,
        ema_decay=0.999, lr_schedule=settings.setting("lr_schedule"),
        warmup_steps=settings.setting("warmup_steps"), checkpoint_every=every, sample_every=every, log_every=10,
        seed=settings.seed, workers=settings.workers, device=settings.device, threads=settings.threads,
        init_from=None if init_from is None else str(init_from),
    )
    evaluator = (None if settings.eval_data is None
                 else CheckpointEvaluator(run_dir, settings.eval_data, recipe.scale, settings.degrade))
    result = fit(recipe, config, resume=settings.resume, progress=progress, on_log=evaluator)
    if evaluator is not None:
        evaluator.finish()
    return result
