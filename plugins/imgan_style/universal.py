"""Universal style transfer (Li et al. 2017, "Universal Style Transfer via Feature Transforms"), torch side.

Per level (relu1_1, relu2_1, relu3_1): a fixed VGG19 *encoder* up to that layer (the project's
VGG weights, reflection padding as in the paper) and a small trained *decoder*, its mirror
(nearest x2 where the encoder pools, reflection padding), that turns the level's features back
into the photo. Between them, at inference, numpy whitens the photo's features and colours them
with a painting's statistics (wct.py); nothing here is needed to run that (universal_infer.py,
ONNX Runtime only).

The decoders train through the shared loop (imgan.train.loop.fit) on photos: a pixel loss plus
a feature-reconstruction loss at the same level, no discriminator. Encoders and decoders export
to ONNX through the task "style-universal" and its ModelSpec (SPEC); model_config says which part
and level a file is: {"part": "encoder" | "decoder", "level": "relu3_1"}.

Features are the VGG activations times FEATURE_SCALE (1/255: the values of RGB in [0, 1] rather
than 0-255), which keeps the exported graphs' numbers small; WCT does not care about the unit.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.cards import ModelCard, Running, portable_paths
from imgan.errors import TrainingError, UsageError
from imgan.train.export import ExportReport, export_checkpoint, export_onnx
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit
from imgan.train.run import default_run_dir
from imgan.train.spec import ModelSpec
from imgan.train.vgg import read_features_state_dict, resolve_vgg_weights, verified_digest, vgg_input

from .spec import LEVEL_MULTIPLE, LEVELS, UNIVERSAL_TASK

FEATURE_SCALE = 1.0 / 255.0
PARTS = ("encoder", "decoder")
METHOD = "Li et al. 2017 WCT decoder: pixel MSE + feature reconstruction at the same VGG19 level"
VGG_LICENCE = "VGG19 weights CC BY 4.0 (Simonyan & Zisserman, Oxford VGG)"
DECODER_LICENCE = "MIT (decoder trained by imgan on BSDS500 photos)"

# VGG19's layers up to relu3_1: (name, input channels, output channels), "pool" between blocks
_VGG_LAYERS = (("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool", ("conv2_1", 64, 128), ("conv2_2", 128, 128),
               "pool", ("conv3_1", 128, 256))
_VGG_INDEX = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10}  # torchvision features.N
OUTPUT_BIAS = 0.45  # about the mean of a photo in [0, 1]
CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256}


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}", hint=f"use one of {', '.join(sorted(LEVELS))}")
    return level


def encoder_layers(level: str) -> tuple:
    """The VGG layers (and pools) up to `level`'s convolution."""
    last = "conv" + check_level(level).removeprefix("relu")
    names = [item if item == "pool" else item[0] for item in _VGG_LAYERS]
    return _VGG_LAYERS[: names.index(last) + 1]


class Encoder(nn.Module):
    """RGB in [0, 1] (N,3,H,W) -> the level's features (N,C,H/m,W/m) times FEATURE_SCALE; m = LEVEL_MULTIPLE.

    `convention`: the VGG weights' input convention ("caffe": BGR 0-255 minus the means). Built
    with random weights; load_vgg fills them (a fresh build is what the parity test compares with).
    """

    def __init__(self, level: str, convention: str = "caffe"):
        super().__init__()
        self.level = level
        self.convention = convention
        self.convs = nn.ModuleDict({item[0]: nn.Conv2d(item[1], item[2], 3) for item in encoder_layers(level)
                                    if item != "pool"})
        self.plan = tuple(item if item == "pool" else item[0] for item in encoder_layers(level))

    def load_vgg(self, weights: str | os.PathLike | None = None) -> "Encoder":
        """The VGG19 weights (a file, or $IMGAN_VGG19_WEIGHTS), frozen."""
        chosen = resolve_vgg_weights(weights)
        if chosen.file is None:
            raise TrainingError("the universal style encoders need a VGG19 weights file",
                                hint="pass --vgg-weights or set IMGAN_VGG19_WEIGHTS")
        verified_digest(chosen.file, chosen.sha256)
        state = read_features_state_dict(chosen.file)
        self.convention = chosen.convention
        with torch.no_grad():
            for name, conv in self.convs.items():
                index = _VGG_INDEX[name]
                conv.weight.copy_(state[f"{index}.weight"])
                conv.bias.copy_(state[f"{index}.bias"])
        self.requires_grad_(False)
        return self.eval()

    def forward(self, rgb01: Tensor) -> Tensor:
        x = vgg_input(rgb01, self.convention)
        for step in self.plan:
            x = F.max_pool2d(x, 2) if step == "pool" else F.relu(self.convs[step](F.pad(x, (1, 1, 1, 1), mode="reflect")))
        return x * FEATURE_SCALE


class Decoder(nn.Module):
    """The encoder's mirror: (N,C,h,w) features -> (N,3,h*m,w*m) RGB, about [0, 1] (not clipped).

    Each encoder convolution (a -> b) becomes one (b -> a) with ReLU, but the last; each pool
    becomes nearest x2 upsampling; reflection padding everywhere.
    """

    def __init__(self, level: str):
        super().__init__()
        self.level = level
        steps = []
        for item in reversed(encoder_layers(level)):
            steps.append("up" if item == "pool" else (item[0], item[2], item[1]))
        self.convs = nn.ModuleDict({step[0]: nn.Conv2d(step[1], step[2], 3) for step in steps if step != "up"})
        self.plan = tuple(step if step == "up" else step[0] for step in steps)
        with torch.no_grad():  # start at mid-grey: Adam's small steps would take long to move the bias there
            self.convs[self.plan[-1]].bias.fill_(OUTPUT_BIAS)

    def forward(self, features: Tensor) -> Tensor:
        x = features
        last = self.plan[-1]
        for step in self.plan:
            if step == "up":
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                continue
            x = self.convs[step](F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if step != last:
                x = F.relu(x)
        return x


# ----------------------------------------------------------------------------------- ModelSpec


def _config(model_config: Mapping[str, Any]) -> tuple[str, str]:
    part, level = model_config.get("part"), model_config.get("level")
    if part not in PARTS:
        raise UsageError(f"a style-universal model_config needs part encoder or decoder, got {part!r}")
    return part, check_level(level)


def build(model_config: Mapping[str, Any]) -> nn.Module:
    part, level = _config(model_config)
    if part == "encoder":
        return Encoder(level, model_config.get("convention", "caffe"))
    return Decoder(level)


def example_inputs(model_config: Mapping[str, Any], height: int, width: int) -> tuple[Tensor]:
    part, level = _config(model_config)
    if part == "encoder":
        return (torch.rand(2, 3, height, width),)
    factor = LEVEL_MULTIPLE[level]
    return (torch.rand(2, CHANNELS[level], height // factor, width // factor) * 2.0,)


def running(model_config: Mapping[str, Any]) -> Running:
    part, level = _config(model_config)
    factor = LEVEL_MULTIPLE[level]
    channels = CHANNELS[level]
    features = f"NCHW float32 {channels} VGG19 {level} features x {FEATURE_SCALE:.6g}, 1/{factor} of the picture's sides"
    if part == "encoder":
        return Running(pad_multiple=factor, tile_overlap=0, inputs={"input": "NCHW float32 RGB in [0, 1], sides multiples of "
                                                                               f"{factor}"},
                       outputs={"output": features}, inference={"part": part, "level": level})
    return Running(scale=factor, pad_multiple=1, tile_overlap=0, inputs={"input": features},
                   outputs={"output": "NCHW float32 RGB about [0, 1] (clip it)"}, inference={"part": part, "level": level})


def finish_card(card: ModelCard, context: dict) -> ModelCard:
    part, level = _config(card.model_config)
    history = (context.get("checkpoint") or {}).get("history") or [{}]
    final = {key: history[-1][key] for key in ("pixel", "feature", "g_total") if key in history[-1]}
    metrics = {**card.metrics, "parameters": sum(p.numel() for p in build(card.model_config).parameters())}
    if final:
        metrics["final_losses"] = final
    return card.replace(
        description=card.description or f"universal style transfer (WCT): {part} at VGG19 {level}",
        licence=card.licence or (VGG_LICENCE if part == "encoder" else DECODER_LICENCE),
        metrics=metrics,
        # run.json keeps the command as typed; a card travels, so no absolute paths in it
        provenance=dataclasses.replace(card.provenance, command=portable_paths(card.provenance.command),
                                       resumptions=tuple(portable_paths(list(card.provenance.resumptions)))),
    )


SPEC = ModelSpec(build=build, example_inputs=example_inputs, running=running, export_sizes=((64, 96), (128, 80)),
                 finish_card=finish_card)


def export_encoder(level: str, output: str | os.PathLike, *, vgg_weights: str | os.PathLike | None = None) -> ExportReport:
    """The fixed VGG19 encoder of `level` as ONNX + card (nothing to train: no checkpoint)."""
    encoder = Encoder(level).load_vgg(vgg_weights)
    chosen = resolve_vgg_weights(vgg_weights)
    model_config = {"part": "encoder", "level": level, "convention": encoder.convention}
    output = Path(output)
    name = output.stem.removeprefix(UNIVERSAL_TASK + "-")
    card = ModelCard(task=UNIVERSAL_TASK, name=name, file=output.name, sha256="-", running=running(model_config),
                     model_config=model_config)
    card = finish_card(card, {"onnx": output})
    card = card.replace(provenance=dataclasses.replace(card.provenance, data=f"VGG19 {chosen.name} (sha256 "
                                                                             f"{(chosen.sha256 or '')[:16]}…)"))
    sizes = SPEC.export_sizes
    return export_onnx(encoder, example_inputs(model_config, *sizes[0]), output,
                       parity_inputs=[example_inputs(model_config, *size) for size in sizes[1:]], card=card)


# ----------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class DecoderSettings:
    """How one level's decoder trains (the Typer signature of `imgan train style-universal` mirrors it)."""

    level: str
    data: Path
    steps: int = 1000
    batch_size: int = 4
    crop: int = 128
    lr: float = 1e-3
    pixel_weight: float = 1.0
    feature_weight: float = 0.1
    vgg_weights: str | None = None
    run_dir: Path | None = None
    output: Path | None = None
    resume: bool = False
    threads: int | None = None
    seed: int = 0
    checkpoint_every: int = 100


class DecoderRecipe(Recipe):
    """Photo -> fixed encoder -> decoder -> photo again; pixel MSE + the features' relative MSE."""

    task = UNIVERSAL_TASK
    model_spec = SPEC

    def __init__(self, *, level: str, data: Path, crop: int, pixel_weight: float = 1.0, feature_weight: float = 0.1,
                 vgg_weights: str | os.PathLike | None = None):
        if crop % LEVEL_MULTIPLE[check_level(level)]:
            raise UsageError(f"--crop must be a multiple of {LEVEL_MULTIPLE[level]} for {level}, got {crop}")
        self.level = level
        self.data = Path(data)
        self.crop = crop
        self.model_config = {"part": "decoder", "level": level}
        self.loss_weights = {"pixel": pixel_weight, "feature": feature_weight}
        self.encoder = Encoder(level).load_vgg(vgg_weights)

    def describe(self) -> dict:
        return {"method": METHOD, "data": str(self.data), "crop": self.crop, "level": self.level,
                "loss_weights": self.loss_weights, "feature_loss": "MSE divided by the mean square of the photo features"}

    def build_discriminator(self) -> None:
        return None

    def make_dataset(self) -> Dataset:
        from .recipe import PhotoCrops

        return PhotoCrops(self.data, self.crop)

    def generate(self, generator: nn.Module, batch: dict) -> Tensor:
        self.encoder.to(batch["photo"].device)
        with torch.no_grad():
            batch["features"] = self.encoder(batch["photo"])
        return generator(batch["features"])

    def real(self, batch: dict) -> Tensor:
        return batch["photo"]

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        wanted = batch["features"]
        feature = F.mse_loss(self.encoder(fake), wanted) / wanted.pow(2).mean().clamp_min(1e-8)
        return {"pixel": F.mse_loss(fake, batch["photo"]), "feature": feature}

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        return [batch["photo"], fake.clamp(0.0, 1.0)]


@dataclass
class TrainedDecoder:
    run: RunResult
    decoder: ExportReport
    encoder: ExportReport


def default_output(level: str) -> Path:
    from imgan.weights import user_weights_dir

    return user_weights_dir() / f"{UNIVERSAL_TASK}-decoder-{level}.onnx"


def train_decoder(settings: DecoderSettings, *, progress: bool = True) -> TrainedDecoder:
    """Train one level's decoder and export the pair: decoder (from the run) and encoder (VGG) beside it."""
    level = check_level(settings.level)
    recipe = DecoderRecipe(level=level, data=settings.data, crop=settings.crop, pixel_weight=settings.pixel_weight,
                           feature_weight=settings.feature_weight, vgg_weights=settings.vgg_weights)
    every = min(settings.checkpoint_every, settings.steps)
    config = TrainConfig(run_dir=settings.run_dir or default_run_dir(UNIVERSAL_TASK, f"decoder-{level}"),
                         steps=settings.steps, batch_size=settings.batch_size, lr_g=settings.lr, betas=(0.9, 0.999),
                         lr_schedule="cosine", warmup_steps=min(50, settings.steps // 10), ema_decay=None, seed=settings.seed, checkpoint_every=every,
                         sample_every=every, log_every=min(10, settings.steps), threads=settings.threads)
    run = fit(recipe, config, resume=settings.resume, progress=progress)
    if run.interrupted:
        raise TrainingError("training was interrupted; nothing was exported", path=run.checkpoint,
                            hint="resume with --resume, or export the checkpoint with `imgan export style-universal`")
    output = Path(settings.output or default_output(level))
    decoder = export_checkpoint(UNIVERSAL_TASK, run.checkpoint, output, name=f"decoder-{level}")
    encoder = export_encoder(level, output.with_name(f"{UNIVERSAL_TASK}-encoder-{level}.onnx"),
                             vgg_weights=settings.vgg_weights)
    return TrainedDecoder(run=run, decoder=decoder, encoder=encoder)
