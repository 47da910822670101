"""Task constants of sr: the two models, the scales, the training stages and their defaults, the
architecture choices, and the checks of `imgan upscale`'s and `imgan train sr`'s settings. No typer, no torch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgan.errors import UsageError

def weights_name(model: str, scale: int) -> str:
    """The catalogue name of ``model``'s weights trained for ``scale``: srresnet-x4, srresnet-x2..."""
    return f"{model}-x{scale}"


def model_of(stage: str, degrade: str) -> str:
    """The --model a training stage makes: srresnet/srgan on bicubic LR, realnet/real on real-world LR."""
    return {"srresnet": "realnet", "srgan": "real"}[stage] if degrade == "real" else stage


MODEL_WEIGHTS = {model: weights_name(model, 4) for model in ("srgan", "srresnet", "realnet", "real")}
# The PSNR model by default: the shipped srgan-x4 (a 300-step CPU fine-tune) adds edge contrast
# and texture but also a faint 2-/4-pixel grid in flat areas (`imgan eval sr` on Set5: +11 dB at
# the 2-px period, +4 dB at the 4-px one; srresnet-x4 +1.5 / +0.6, as bicubic), which a default
# must not put on people's photos; `--model srgan` is there for those who prefer texture.
# realnet (trained on real-world degradations) wins on noisy/JPEG photos (20 BSDS test photos, real
# protocol: 23.75 dB vs srresnet 22.81, bicubic 23.20) but is softer than bicubic on clean ones
# (25.62 vs 26.87): it stays a choice (`--model realnet`) until a model wins on both. real (realnet
# fine-tuned as a GAN, nearest-upsampling, no grid) is the sharpest on real photos (perceptual distance
# 2.04 vs srresnet 2.36 on the real protocol) but invents some texture: a choice too (`--model real`).
DEFAULT_MODEL = "srresnet"
SCALES = (4, 2, 3)  # `imgan upscale --scale`: ×3 (and ×2 without ×2 weights) reduce the ×4 result
DEFAULT_SCALE = 4  # of the models' default weights
TRAIN_SCALES = (4, 2)  # a generator has one x2 upsampling stage per factor 2
STAGES = ("srresnet", "srgan")
UPSAMPLERS = ("pixelshuffle", "nearest")  # the generator's x2 stages (model.py)
DISCRIMINATORS = ("vgg", "unet")  # SRGAN's VGG-style critic, Real-ESRGAN's U-Net with spectral norm
# How training and evaluation make LR images: the literature's clean bicubic downscale, or
# Real-ESRGAN's second-order model of real photos (blur, resize, noise, JPEG; degrade.py).
DEGRADATIONS = ("bicubic", "real")  # how training makes LR crops
# `imgan eval sr --degrade`: the protocols each choice measures (the literature's always first)
EVAL_DEGRADATIONS = {"bicubic": ("bicubic",), "real": ("bicubic", "real"), "photo": ("bicubic", "photo"),
                     "all": ("bicubic", "real", "photo")}

D_CHANNELS = {"vgg": 32, "unet": 64}  # first-layer widths by default (SRGAN's paper: 64; Real-ESRGAN: 64)

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


def check_options(model: str, scale: int | None) -> None:
    """``scale`` None: the weights' own."""
    if model not in MODEL_WEIGHTS:
        raise UsageError(f"unknown --model {model!r}", hint=f"choose one of {', '.join(MODEL_WEIGHTS)}")
    if scale is not None and scale not in SCALES:
        raise UsageError(f"--scale {scale} is not offered",
                         hint="use 4, 2 (×2 weights, else the ×4 result downscaled) or 3 (the ×4 result downscaled)")


def check_degradation(degrade: str, choices=DEGRADATIONS) -> None:
    if degrade not in choices:
        raise UsageError(f"unknown --degrade {degrade!r}", hint=f"choose one of {', '.join(choices)}")


def validate_options(options: dict) -> None:
    """`imgan upscale`'s own options, checked before any image is read."""
    check_options(options["model"], options["scale"])


@dataclass(frozen=True)
class TrainSettings:
    """What `imgan train sr` was asked for; None: the stage's default (STAGE_DEFAULTS)."""

    stage: str = "srresnet"
    data: Path = Path("photos")
    scale: int = 4
    run_dir: Path | None = None
    steps: int | None = None
    batch_size: int | None = None
    crop: int | None = None
    lr: float | None = None
    channels: int = 48
    blocks: int = 8
    batch_norm: bool = False
    tail_kernel: int = 3
    upsample: str = "pixelshuffle"
    icnr: bool | None = None  # None: on for a new run; a resumed run keeps its own (init only)
    init_from: Path | None = None
    vgg_weights: str | None = None
    perceptual_layers: str | None = None  # comma-separated VGG19 layer names
    pixel_weight: float | None = None
    perceptual_weight: float | None = None
    adversarial_weight: float | None = None
    discriminator: str | None = None  # None: unet for --degrade real, else vgg (a resumed run keeps its own)
    d_channels: int | None = None  # None: vgg 32, unet 64
    spectral_norm: bool = False
    degrade: str = "bicubic"
    eval_data: Path | None = None
    checkpoint_every: int | None = None
    threads: int | None = None
    amp: bool = False
    channels_last: bool = False
    workers: int = 0
    seed: int = 0
    resume: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise UsageError(f"unknown stage {self.stage!r}", hint=f"choose one of {', '.join(STAGES)}")
        check_degradation(self.degrade)
        for name, value, allowed in (("--scale", self.scale, TRAIN_SCALES), ("--upsample", self.upsample, UPSAMPLERS),
                                     ("--discriminator", self.discriminator, DISCRIMINATORS + (None,))):
            if value not in allowed:
                raise UsageError(f"unknown {name} {value!r}",
                                 hint=f"choose one of {', '.join(str(a) for a in allowed if a is not None)}")

    @property
    def run_name(self) -> str:
        """The default run folder's name: the stage, with the scale when it is not 4."""
        return self.stage if self.scale == 4 else f"{self.stage}-x{self.scale}"

    def discriminator_kind(self) -> str:
        return self.discriminator or ("unet" if self.degrade == "real" else "vgg")

    def discriminator_channels(self) -> int:
        return self.d_channels or D_CHANNELS[self.discriminator_kind()]

    def setting(self, name: str) -> Any:
        """The value given for ``name``, else the stage's default."""
        given = getattr(self, name, None)
        return STAGE_DEFAULTS[self.stage][name] if given is None else given
