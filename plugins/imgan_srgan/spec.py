"""Task constants of sr: the two models, the scales, the training stages and their defaults, and the
checks of `imgan upscale`'s and `imgan train sr`'s settings. No typer, no torch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgan.errors import UsageError

MODEL_WEIGHTS = {"srgan": "srgan-x4", "srresnet": "srresnet-x4"}
# The PSNR model by default: the shipped srgan-x4 (a 300-step CPU fine-tune) adds edge contrast
# and texture but also a faint 4-pixel grid in flat areas, which a default must not put on
# people's photos; `--model srgan` is there for those who prefer texture.
DEFAULT_MODEL = "srresnet"
SCALES = (4, 2)
STAGES = ("srresnet", "srgan")
# How training and evaluation make LR images: the literature's clean bicubic downscale, or
# Real-ESRGAN's second-order model of real photos (blur, resize, noise, JPEG; degrade.py).
DEGRADATIONS = ("bicubic", "real")

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


def check_options(model: str, scale: int) -> None:
    if model not in MODEL_WEIGHTS:
        raise UsageError(f"unknown --model {model!r}", hint=f"choose one of {', '.join(MODEL_WEIGHTS)}")
    if scale not in SCALES:
        raise UsageError(f"--scale {scale} is not offered", hint="use 4, or 2 (the ×4 result downscaled)")


def check_degradation(degrade: str) -> None:
    if degrade not in DEGRADATIONS:
        raise UsageError(f"unknown --degrade {degrade!r}", hint=f"choose one of {', '.join(DEGRADATIONS)}")


def validate_options(options: dict) -> None:
    """`imgan upscale`'s own options, checked before any image is read."""
    check_options(options["model"], options["scale"])


@dataclass(frozen=True)
class TrainSettings:
    """What `imgan train sr` was asked for; None: the stage's default (STAGE_DEFAULTS)."""

    stage: str = "srresnet"
    data: Path = Path("photos")
    run_dir: Path | None = None
    steps: int | None = None
    batch_size: int | None = None
    crop: int | None = None
    lr: float | None = None
    channels: int = 48
    blocks: int = 8
    batch_norm: bool = False
    tail_kernel: int = 3
    init_from: Path | None = None
    vgg_weights: str | None = None
    perceptual_layers: str | None = None  # comma-separated VGG19 layer names
    pixel_weight: float | None = None
    perceptual_weight: float | None = None
    adversarial_weight: float | None = None
    d_channels: int = 32
    spectral_norm: bool = False
    degrade: str = "bicubic"
    eval_data: Path | None = None
    checkpoint_every: int | None = None
    threads: int | None = None
    workers: int = 0
    seed: int = 0
    resume: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise UsageError(f"unknown stage {self.stage!r}", hint=f"choose one of {', '.join(STAGES)}")
        check_degradation(self.degrade)

    def setting(self, name: str) -> Any:
        """The value given for ``name``, else the stage's default."""
        given = getattr(self, name, None)
        return STAGE_DEFAULTS[self.stage][name] if given is None else given
