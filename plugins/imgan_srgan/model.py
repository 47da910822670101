"""SRResNet generator and SRGAN discriminator (Ledig et al. 2017, "Photo-realistic single image
super-resolution using a generative adversarial network"), in one file.

Generator (all convolutions at low resolution except the last two stages):
    conv 9x9 -> PReLU                                   (N, C, h, w)
    B x [conv 3x3 -> (BN) -> PReLU -> conv 3x3 -> (BN)] + skip
    conv 3x3 -> (BN), + the output of the first conv     (global skip)
    2 x [conv 3x3 to 4C -> PixelShuffle(2) -> PReLU]     (N, C, 4h, 4w)  (upsample "pixelshuffle")
     or [nearest x2 -> conv 3x3 -> PReLU]                               (upsample "nearest", Real-ESRGAN's)
    conv KxK to RGB                                      (N, 3, 4h, 4w)
One x2 stage per factor 2: scale 2 has one, scale 4 two.
The paper's last convolution is 9x9; here K (tail_kernel) defaults to 3 because on a CPU that
9x9 convolution at full output resolution took 40 % of a training step (oneDNN handles 3 output
channels poorly), time better spent on more steps; EDSR and ESRGAN end with 3x3 too.
    + bicubic upscale of the input                       (bicubic_skip, on by default)
Input and output are RGB in [0, 1] ("rgb01"); the output is not clipped (inference clips).

bicubic_skip is not in the paper: with it the network starts at bicubic quality and only learns
the missing detail, which in a CPU budget of a few thousand steps is worth well over a dB.

The sub-pixel convolutions start ICNR-initialised (icnr, Aitken et al. 2017) in new runs: the four
kernels that PixelShuffle interleaves into one 2x2 output block start equal, so at initialisation
the stage is a nearest-neighbour upscaling of one convolution and draws no checkerboard (PyTorch's
default init starts the four phases different). The grid of the shipped srgan-x4 is not that one,
though (measured, issue 14: L1 training leaves none with either init): it is a fixed pattern of
about one grey level that the perceptual fine-tune draws through the phases of the sub-pixel
convolutions, on flat areas too. With "nearest" every layer after the upscaling is a convolution at
full size, which maps a flat area to a flat result: no fixed pattern can be drawn. 60-step relu2_2
fine-tunes of one small generator: grid2 +22 dB (pixelshuffle), +15 dB (ICNR), +1 dB (nearest,
as bicubic). Both keys are left out of a config at their old values, so older checkpoints and cards
read unchanged; icnr only changes initialisation, so it is not part of the architecture.

Discriminators ("kind"): "vgg", the paper's VGG-style stack of 3x3 convolutions, stride 2 every second layer,
LeakyReLU(0.2), batch norm after all but the first (left out when spectral norm is used);
global average pooling instead of the paper's flatten, so it takes any crop size; then
dense -> LeakyReLU -> dense to one raw logit per image. "unet": Real-ESRGAN's U-Net discriminator
with spectral norm (Wang et al. 2021, UNetDiscriminatorSN): three stride-2 4x4 convolutions down,
three bilinear x2 + 3x3 convolutions up with skip connections, two more 3x3, then one raw logit
per pixel (N, 1, H, W), spectral norm on every convolution but the first and the last.

SPEC (the end of the file) is how the core exports, warm-starts and checks the generator: the card's
running group, the stage's description and licence, and the exported file measured on the run's
--eval-data folder for the card's metrics.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imgan.cards import ModelCard, Running, portable_paths
from imgan.config import JsonConfig
from imgan.errors import UsageError
from imgan.train.run import read_eval_log
from imgan.train.spec import ModelSpec

from . import TASK
from .spec import DISCRIMINATORS, UPSAMPLERS


@dataclass(frozen=True)
class GeneratorConfig(JsonConfig):
    refuse_unknown_keys = True  # a card's or checkpoint's generator must rebuild exactly

    channels: int = 48  # paper: 64
    blocks: int = 8  # paper: 16
    batch_norm: bool = False  # paper: on; off trains faster and exports simpler (as in EDSR)
    scale: int = 4  # a power of two: one x2 PixelShuffle stage per factor 2
    tail_kernel: int = 3  # paper: 9 (see the module docstring)
    bicubic_skip: bool = True  # paper: off (see the module docstring)
    upsample: str = "pixelshuffle"  # or "nearest": nearest x2 then a 3x3 convolution (Real-ESRGAN)
    icnr: bool = False  # ICNR init of the sub-pixel convolutions; False: PyTorch's, as older runs had

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLERS:
            raise UsageError(f"unknown upsample {self.upsample!r}", hint=f"choose one of {', '.join(UPSAMPLERS)}")
        if self.channels < 1 or self.blocks < 0:
            raise UsageError(f"generator needs channels >= 1 and blocks >= 0, got {self.channels}, {self.blocks}")
        if self.tail_kernel < 1 or self.tail_kernel % 2 == 0:
            raise UsageError(f"tail_kernel must be odd and >= 1, got {self.tail_kernel}")
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise UsageError(f"scale must be a power of two >= 2, got {self.scale}")

    def to_dict(self) -> dict[str, Any]:
        """The settings, without the keys that still hold the value every older config meant."""
        return {key: value for key, value in super().to_dict().items()
                if not (key in LEGACY_VALUES and value == LEGACY_VALUES[key])}

    @property
    def upsample_stages(self) -> int:
        return int(math.log2(self.scale))

    def receptive_margin(self) -> float:
        """How far (in input pixels) an output pixel sees beyond its own input pixel.

        First 9x9 conv: 4; each residual block: 2 (two 3x3); the trunk's closing 3x3: 1; the
        upsampling convs: 1 / (resolution at which they run: before the x2 for pixelshuffle, after
        it for nearest); the last conv at full scale: (tail_kernel // 2) / scale.
        """
        after = 1 if self.upsample == "nearest" else 0
        upsampling = sum(1.0 / 2 ** (stage + after) for stage in range(self.upsample_stages))
        return 4 + 2 * self.blocks + 1 + upsampling + (self.tail_kernel // 2) / self.scale


# What configs written before these keys existed meant: such keys are omitted at these values
# (GeneratorConfig.to_dict), so an old run resumes and an old card matches exactly.
LEGACY_VALUES = {"upsample": "pixelshuffle", "icnr": False}


@dataclass(frozen=True)
class DiscriminatorConfig(JsonConfig):
    channels: int = 64  # width of the first layer; vgg: doubles every two layers up to 8x; unet: num_feat
    batch_norm: bool = True  # vgg only (unet has spectral norm instead)
    kind: str = "vgg"  # DISCRIMINATORS

    def __post_init__(self) -> None:
        if self.kind not in DISCRIMINATORS:
            raise UsageError(f"unknown discriminator {self.kind!r}", hint=f"choose one of {', '.join(DISCRIMINATORS)}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, batch_norm: bool):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
        )
        # Start near the identity: a small last conv keeps the deep sum of blocks stable early on.
        with torch.no_grad():
            self.body[3].weight.mul_(0.1)
            self.body[3].bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class UpsampleStage(nn.Module):
    """x2: conv to 4C channels, then PixelShuffle rearranges them into a twice larger map."""

    def __init__(self, channels: int, icnr: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(channels)
        if icnr:
            icnr_init(self.conv, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))  # (N, C, h, w) -> (N, 4C, h, w) -> (N, C, 2h, 2w)


class NearestUpsampleStage(nn.Module):
    """x2: nearest-neighbour upscaling, then a 3x3 conv and PReLU at the larger size (Real-ESRGAN)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest")))  # (N, C, 2h, 2w)


def icnr_init(conv: nn.Conv2d, factor: int) -> None:
    """ICNR (Aitken et al. 2017): the factor² output channels that PixelShuffle(factor) gathers into
    one block get one kernel and bias, drawn by PyTorch's default init for the smaller conv."""
    outputs = conv.out_channels // factor**2
    small = nn.Conv2d(conv.in_channels, outputs, conv.kernel_size, padding=conv.padding)
    with torch.no_grad():  # PixelShuffle: channel c * factor² + phase -> channel c at that phase
        conv.weight.copy_(small.weight.repeat_interleave(factor**2, dim=0))
        conv.bias.copy_(small.bias.repeat_interleave(factor**2, dim=0))


def keys_cubic(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution weight; a = -0.75 is PyTorch's and OpenCV's bicubic."""
    x = abs(distance)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


class BicubicUpsample(nn.Module):
    """×scale bicubic upscaling, equal to F.interpolate(mode="bicubic", align_corners=False).

    Written as edge padding, a fixed grouped 5x5 convolution (one output channel per colour and
    output phase) and PixelShuffle: the same numbers, but ONNX Runtime runs this several times
    faster than its cubic Resize. Edge padding by 2 is interpolate's clamping of the 4 taps.
    """

    RADIUS = 2

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        self.scale, self.channels = scale, channels
        taps = torch.zeros(scale, 2 * self.RADIUS + 1, dtype=torch.float64)  # (phase, tap)
        for phase in range(scale):
            source = (phase + 0.5) / scale - 0.5  # where output phase `phase` samples, from its LR pixel
            first = math.floor(source) - 1
            for offset in range(first, first + 4):
                taps[phase, offset + self.RADIUS] = keys_cubic(source - offset)
        kernel = taps[:, None, :, None] * taps[None, :, None, :]  # (phase_y, phase_x, 5, 5)
        weight = kernel.reshape(1, scale * scale, 5, 5).repeat(channels, 1, 1, 1)
        # Not persistent: a constant of the architecture, not a trained weight (checkpoints omit it).
        self.register_buffer("weight", weight.reshape(channels * scale * scale, 1, 5, 5).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (self.RADIUS,) * 4, mode="replicate")
        phases = F.conv2d(padded, self.weight, groups=self.channels)  # (N, C*s*s, h, w)
        return F.pixel_shuffle(phases, self.scale)  # (N, C, h*s, w*s)


class SRResNet(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        width = config.channels
        self.head = nn.Sequential(nn.Conv2d(3, width, 9, padding=4), nn.PReLU(width))
        self.blocks = nn.Sequential(*[ResidualBlock(width, config.batch_norm) for _ in range(config.blocks)])
        self.trunk_end = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width) if config.batch_norm else nn.Identity(),
        )
        self.upsample = nn.Sequential(*[UpsampleStage(width, config.icnr) if config.upsample == "pixelshuffle"
                                        else NearestUpsampleStage(width) for _ in range(config.upsample_stages)])
        self.tail = nn.Conv2d(width, 3, config.tail_kernel, padding=config.tail_kernel // 2)
        self.bicubic = BicubicUpsample(config.scale) if config.bicubic_skip else None
        if config.bicubic_skip:
            with torch.no_grad():  # start close to plain bicubic
                self.tail.weight.mul_(0.1)
                self.tail.bias.zero_()

    def forward(self, lr: Tensor) -> Tensor:
        # Centre the input: the same function of the image, but easier to learn from zero-mean data.
        features = self.head(lr - 0.5)  # (N, C, h, w)
        features = features + self.trunk_end(self.blocks(features))  # global skip
        detail = self.tail(self.upsample(features))  # (N, 3, h*scale, w*scale)
        return detail + (0.5 if self.bicubic is None else self.bicubic(lr))


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        base = config.channels
        widths = [base, base, base * 2, base * 2, base * 4, base * 4, base * 8, base * 8]
        layers: list[nn.Module] = []
        in_channels = 3
        for index, width in enumerate(widths):
            stride = 2 if index % 2 else 1
            layers.append(nn.Conv2d(in_channels, width, 3, stride=stride, padding=1))
            if config.batch_norm and index > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(in_channels, in_channels * 2), nn.LeakyReLU(0.2), nn.Linear(in_channels * 2, 1)
        )

    def forward(self, image: Tensor) -> Tensor:
        pooled = self.pool(self.features(image - 0.5)).flatten(1)  # (N, 8C)
        return self.classifier(pooled)  # (N, 1) raw logits


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's discriminator (basicsr UNetDiscriminatorSN, skip connections on): (N, 3, H, W) in
    [0, 1] -> (N, 1, H, W) raw logits, one real/fake judgement per pixel. Any H, W: each upscaling
    returns to the size of the skip it is added to."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        width = config.channels
        norm = nn.utils.parametrizations.spectral_norm
        self.conv0 = nn.Conv2d(3, width, 3, 1, 1)
        self.down = nn.ModuleList([norm(nn.Conv2d(width * 2**i, width * 2 ** (i + 1), 4, 2, 1, bias=False))
                                   for i in range(3)])  # C -> 2C -> 4C -> 8C, each half the size
        self.up = nn.ModuleList([norm(nn.Conv2d(width * 2**i, width * 2 ** (i - 1), 3, 1, 1, bias=False))
                                 for i in (3, 2, 1)])  # 8C -> 4C -> 2C -> C, each twice the size
        self.extra = nn.ModuleList([norm(nn.Conv2d(width, width, 3, 1, 1, bias=False)) for _ in range(2)])
        self.last = nn.Conv2d(width, 1, 3, 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        features = [F.leaky_relu(self.conv0(image), 0.2)]  # (N, C, H, W)
        for conv in self.down:
            features.append(F.leaky_relu(conv(features[-1]), 0.2))  # down to (N, 8C, H/8, W/8)
        x = features.pop()
        for conv in self.up:
            skip = features.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x), 0.2) + skip
        for conv in self.extra:
            x = F.leaky_relu(conv(x), 0.2)
        return self.last(x)  # (N, 1, H, W)


def build_discriminator(config: DiscriminatorConfig) -> nn.Module:
    return UNetDiscriminatorSN(config) if config.kind == "unet" else Discriminator(config)


# ----------------------------------------------------------------------------------- export (SPEC)

EXPORT_SIZES = ((40, 32), (23, 57))  # the traced size, then the parity check's
LICENCE = "MIT (imgan). Trained on BSDS500 photos (research use)"
PERCEPTUAL_LICENCE = "; its loss used VGG19 ImageNet weights (CC BY 4.0, VGG authors)"
DESCRIPTIONS = {  # {scale}: the model's
    "srresnet": "×{scale} SRResNet trained with an L1 pixel loss: the highest PSNR, smooth textures",
    "srgan": ("×{scale} SRGAN: SRResNet fine-tuned with VGG perceptual + adversarial losses: more edge contrast "
              "and texture, lower PSNR"),
}
# What a sub-pixel (PixelShuffle) generator's perceptual fine-tune adds (see the module docstring).
DESCRIPTIONS |= {
    "srresnet-real": ("×{scale} restoration of real photos: SRResNet trained with an L1 loss on Real-ESRGAN's "
                      "real-world degradations (blur, resize, noise, JPEG), so it removes noise and JPEG blocks "
                      "instead of sharpening them; softer than srresnet on clean downscales"),
    "srgan-real": ("×{scale} real photos, perceptual: the real-world restoration fine-tuned with VGG perceptual + "
                   "adversarial losses (U-Net critic): sharper texture, lower PSNR"),
}
GRID_NOTE = "; its sub-pixel upsampler lets a faint 2-/4-pixel grid show in flat areas"
LEGACY_RECIPE_FILE = "recipe.json"  # what runs of imgan before run.json wrote


def tile_overlap_for(config: GeneratorConfig) -> int:
    """The receptive-field margin rounded up to a multiple of 8: tiles then equal one pass."""
    return int(math.ceil(config.receptive_margin() / 8.0) * 8)


def running(model_config: Mapping[str, Any]) -> Running:
    config = GeneratorConfig.from_dict(dict(model_config["generator"]))
    return Running(scale=config.scale, pad_multiple=1, tile_overlap=tile_overlap_for(config), input_convention="rgb01",
                   inputs={"input": "NCHW float32 RGB in [0, 1], the low-resolution image"},
                   outputs={"output": f"NCHW float32 RGB, ×{config.scale} the input's height and width "
                                      "(not clipped: clip to [0, 1])"})


def example_inputs(model_config: Mapping[str, Any], height: int, width: int) -> tuple[Tensor, ...]:
    # One image at the traced size, two at the others: the parity check also proves the batch dynamic.
    return (torch.rand(1 if (height, width) == EXPORT_SIZES[0] else 2, 3, height, width),)


def run_description(context: Mapping[str, Any]) -> dict[str, Any]:
    """run.json of the exported run, else the same fields from the recipe.json an older imgan wrote."""
    if context["run"]:
        return dict(context["run"])
    try:
        old = json.loads((Path(context["run_dir"]) / LEGACY_RECIPE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    start = old.get("init_from")
    return {"task": TASK, "command": old.get("command"), "started_at": old.get("started_at"),
            "recipe": {k: v for k, v in old.items() if k not in ("train_config", "command", "started_at",
                                                                   "init_from", "resumed")},
            "train_config": old.get("train_config") or {},
            "init_from": {"from": start.get("checkpoint"), "step": start.get("step", 0),
                          "seconds": start.get("seconds", 0.0)} if isinstance(start, dict) else None,
            "resumptions": [{"step": r.get("at_step"), "at": r.get("at"), "command": r.get("command")}
                            for r in old.get("resumed", ())]}


def finish_card(card: ModelCard, context: Mapping[str, Any]) -> ModelCard:
    """The stage's description and licence; the provenance of a run that predates run.json."""
    from imgan.train.export import provenance_of

    run = run_description(context)
    recipe = run.get("recipe") or {}
    stage = recipe.get("stage", "srresnet")
    licence = LICENCE + (PERCEPTUAL_LICENCE if "perceptual" in recipe else "") + "."
    provenance = card.provenance if context["run"] or not run else provenance_of(portable_paths(run),
                                                                                 context["checkpoint"])
    kind = f"{stage}-real" if recipe.get("degrade") == "real" else stage
    described = DESCRIPTIONS.get(kind, "×{scale} super-resolution").format(scale=card.running.scale)
    upsample = GeneratorConfig.from_dict(dict(card.model_config["generator"])).upsample
    described += GRID_NOTE if stage == "srgan" and upsample == "pixelshuffle" else ""
    return card.replace(description=card.description or described, licence=card.licence or licence,
                        provenance=provenance)


def eval_folder(context: Mapping[str, Any]) -> Path | None:
    """The HR folder the run measured its checkpoints on (--eval-data), where it still is."""
    records = read_eval_log(context["run_dir"])
    given = [records[-1].get("folder")] if records else []
    given.append((run_description(context).get("recipe") or {}).get("eval_data"))
    found = [Path(text).expanduser() for text in given if text]
    return next((folder for folder in found if folder.is_dir()), None)


def measure_export(report, context: Mapping[str, Any]) -> None:
    """The card's metrics: the exported file measured by the evaluation protocol on the run's eval folder."""
    folder = eval_folder(context)
    if folder is not None:
        from .evaluate import record_card_metrics

        scale = GeneratorConfig.from_dict(dict(context["checkpoint"]["model_config"]["generator"])).scale
        record_card_metrics(report.path, folder, scale=scale)


def build_generator(model_config: dict) -> SRResNet:
    """The generator a checkpoint's model_config describes ({"generator": {...}, ...})."""
    return SRResNet(GeneratorConfig.from_dict(model_config["generator"]))


def architecture(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """What two generators must share for one to start from the other: every setting, spelt out,
    but the initialisation (icnr)."""
    config = asdict(GeneratorConfig.from_dict(dict(model_config["generator"])))
    config.pop("icnr")
    return config


# A new upsampler or another scale changes only the upsampling stages: a trained body carries over
# (e.g. sr-srresnet-x2 starts from srresnet-x4's body).
SPEC = ModelSpec(build=build_generator, example_inputs=example_inputs, running=running, export_sizes=EXPORT_SIZES,
                 architecture=architecture, transferable_keys=("upsample", "scale"), finish_card=finish_card,
                 after_export=measure_export)
