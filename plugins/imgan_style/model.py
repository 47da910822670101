"""The fast style network (Johnson et al. 2016) with reference-statistics instance norm.

    conv 9x9 -> 2 strided convs (/4) -> residual blocks -> 2x (nearest x2, conv 3x3) -> conv 9x9 -> sigmoid

With ``antialias`` (v2 nets) a fixed [1,2,1]x[1,2,1] blur comes before each strided conv and each
nearest upsampling. Without it, the v1 nets' residual blocks at 1/4 resolution learnt a checkerboard
(the cheapest fine texture a Gram loss rewards) that the upsampling turns into a diagonal colour
pattern of period 4*sqrt(2) = 5.7 px at 45 degrees: the stripes `imgan eval style` measures. The blur
has no response at the low-resolution grid's Nyquist frequency, so no checkerboard gets through.
Blurring before a nearest x2 still leaves the 2x2 blocks the copy draws, and the v2 nets turn them
into a fine grid of strokes along the pixel axes (hokusai v2: 34 dB at 6 px, 0/90 degrees); with
``blur_after_upsample`` the upsampling blur comes after the copy instead, smoothing the blocks.

Every layer runs on two streams: the image (or a tile of it) and a *reference* (a downscaled
copy of the whole image). Each normalisation layer normalises both streams with the mean and std
of the reference's activations at that layer. With reference == image this is exactly instance
norm (how the net trains); at inference every tile of a big image is normalised with the same
statistics, so tiles join without seams. Reflection padding everywhere: no dark borders.
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

from imgan.cards import ModelCard, Running
from imgan.config import JsonConfig
from imgan.train.spec import ModelSpec

from .spec import MULTIPLE, REPO, THUMBNAIL_SIDE
from .style_stats import known_painting_description

Pair = tuple[Tensor, Tensor | None]  # (image or tile activations, reference activations or None)

EPS = 1e-5
PAINTING_LICENCE = "public domain (the painting); trained weights MIT"


@dataclass(frozen=True)
class StyleNetConfig(JsonConfig):
    """widths: channels at full, 1/2 and 1/4 resolution; residual_blocks run at 1/4 resolution."""

    widths: tuple[int, int, int] = (16, 32, 64)
    residual_blocks: int = 4
    antialias: bool = False  # v1 nets: False; see the module's docstring
    blur_after_upsample: bool = False  # v2 nets: False (the blur comes before each nearest x2); see the docstring


class ReferenceInstanceNorm(nn.Module):
    """Affine instance norm whose statistics come from the reference stream.

    x: (N,C,h,w), reference: (1 or N,C,H',W') or None (= x itself, plain instance norm).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor, reference: Tensor | None) -> Pair:
        source = x if reference is None else reference
        mean = source.mean(dim=(2, 3), keepdim=True)  # (1 or N, C, 1, 1)
        scale = self.weight * torch.rsqrt(((source - mean) ** 2).mean(dim=(2, 3), keepdim=True) + EPS)
        shift = self.bias - mean * scale
        return x * scale + shift, None if reference is None else reference * scale + shift


class Blur(nn.Module):
    """A fixed binomial [1,2,1]x[1,2,1]/16 blur of each channel, reflection padded (size kept)."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = (taps[:, None] * taps[None, :]) / 16.0
        # not a parameter and not in the state dict: a constant of the graph, never trained
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self.pad(x), self.kernel, groups=x.shape[1])


class ConvLayer(nn.Module):
    """[blur ->] [nearest x2 ->] reflection pad -> conv [-> reference instance norm [-> ReLU]], on both
    streams. The blur (antialias) only where the resolution changes: before a strided conv or an upsampling."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, upsample: bool = False,
                 norm: bool = True, relu: bool = True, antialias: bool = False, blur_after: bool = False):
        super().__init__()
        self.upsample = upsample
        self.blur = Blur(c_in) if antialias and (upsample or stride > 1) else None
        self.blur_after = blur_after and upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride)
        self.norm = ReferenceInstanceNorm(c_out) if norm else None
        self.relu = relu and norm

    def _conv(self, x: Tensor) -> Tensor:
        if self.blur is not None and not self.blur_after:
            x = self.blur(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # resize-then-conv: no checkerboard
        if self.blur is not None and self.blur_after:
            x = self.blur(x)  # smooths the 2x2 blocks the nearest copy draws
        return self.conv(self.pad(x))

    def forward(self, x: Tensor, reference: Tensor | None) -> Pair:
        x = self._conv(x)
        reference = None if reference is None else self._conv(reference)
        if self.norm is not None:
            x, reference = self.norm(x, reference)
        if self.relu:
            x = F.relu(x)
            reference = None if reference is None else F.relu(reference)
        return x, reference


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.first = ConvLayer(channels, channels, 3)
        self.second = ConvLayer(channels, channels, 3, relu=False)

    def forward(self, x: Tensor, reference: Tensor | None) -> Pair:
        y, y_reference = self.second(*self.first(x, reference))
        return x + y, None if reference is None else reference + y_reference


class StyleNet(nn.Module):
    """forward(image (N,3,H,W) in [0,1], reference (1,3,H',W') or None) -> (N,3,H,W) in [0,1].

    H and W must be multiples of MULTIPLE (spec.py); so must H' and W' of the reference.
    """

    def __init__(self, config: StyleNetConfig = StyleNetConfig()):
        super().__init__()
        self.config = config
        full, half, quarter = config.widths
        smooth, after = config.antialias, config.blur_after_upsample
        self.layers = nn.ModuleList(
            [ConvLayer(3, full, 9), ConvLayer(full, half, 3, stride=2, antialias=smooth),
             ConvLayer(half, quarter, 3, stride=2, antialias=smooth)]
            + [ResidualBlock(quarter) for _ in range(config.residual_blocks)]
            + [ConvLayer(quarter, half, 3, upsample=True, antialias=smooth, blur_after=after),
               ConvLayer(half, full, 3, upsample=True, antialias=smooth, blur_after=after),
               ConvLayer(full, 3, 9, norm=False)]
        )

    def forward(self, image: Tensor, reference: Tensor | None = None) -> Tensor:
        return self.both_streams(image, reference)[0]

    def both_streams(self, image: Tensor, reference: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(the image styled, the reference styled): the reference stream is normalised by its own
        statistics, so its output is the net run on the reference alone, with plain instance norm."""
        x, ref = image, reference
        for layer in self.layers:
            x, ref = layer(x, ref)
        return torch.sigmoid(x), None if ref is None else torch.sigmoid(ref)


class StyleNetWithReference(nn.Module):
    """The exported signature: both inputs required (ONNX inputs "input" and "reference"), two
    outputs: "output" (the image or tile) and "styled_reference". A picture no larger than the
    reference is its own reference; the runtime then feeds it as the reference beside a tiny
    input and reads "styled_reference": one stream instead of two, half the work."""

    def __init__(self, net: StyleNet):
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.both_streams(image, reference)


def build_style_net(model_config: Mapping[str, Any]) -> StyleNet:
    """The net of a model_config: its shape (widths, residual_blocks); the "style" settings beside
    it say which painting it learnt and are not needed to build it."""
    return StyleNet(StyleNetConfig.from_dict(dict(model_config)))


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def receptive_margin(config: StyleNetConfig) -> int:
    """Pixels of context (at full resolution) one output pixel depends on, each side.

    Used as the tile overlap: with it, a tile's kept core equals the untiled result.
    """
    margin = 4 + 1 + 2  # conv 9x9, then the two strided 3x3 convs (the second at 1/2 resolution)
    margin += 4 * 2 * config.residual_blocks  # two 3x3 convs per block at 1/4 resolution
    margin += 2 + 1 + 4  # the upsampling convs (at 1/2 and full resolution) and the last 9x9
    if config.antialias:
        margin += 1 + 2 + 4 + 2  # a 3x3 blur at full and 1/2 resolution (down), at 1/4 and 1/2 (up)
    return margin + 4  # nearest upsampling and the stride grid can shift context by a few pixels


# ----------------------------------------------------------------------------------- ModelSpec


def architecture(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The net's shape only: a monet net can start from a vangogh one (--init-from)."""
    return StyleNetConfig.from_dict(dict(model_config)).to_dict()


def example_inputs(model_config: Mapping[str, Any], height: int, width: int) -> tuple[Tensor, Tensor]:
    """Two tiles of height x width and one reference of another shape (width x height), as the runtime feeds them."""
    return torch.rand(2, 3, height, width), torch.rand(1, 3, width, height)


def running(model_config: Mapping[str, Any]) -> Running:
    config = StyleNetConfig.from_dict(dict(model_config))
    painting = dict(model_config.get("style") or {}).get("image")
    return Running(
        scale=1, pad_multiple=MULTIPLE, input_convention="rgb01",
        tile_overlap=-(-receptive_margin(config) // MULTIPLE) * MULTIPLE,
        inputs={"input": "NCHW float32 RGB in [0, 1]: the image or tiles of it, sides multiples of 4",
                "reference": "1x3xhxw float32 RGB in [0, 1]: the whole image, small; its statistics normalise "
                             "every tile"},
        outputs={"output": "NCHW float32 RGB in [0, 1]",
                 "styled_reference": "1x3xhxw float32 RGB in [0, 1]: the reference styled by its own statistics "
                                     "(a picture no larger than the reference: the result in one stream)"},
        inference={"style_image": Path(painting).name} if painting else {},
    )


def finish_card(card: ModelCard, context: dict) -> ModelCard:
    """The painting's thumbnail PNG beside the .onnx, a description after the painting, the final
    training losses, and the painting's path made repository-relative."""
    style = dict(card.model_config.get("style") or {})
    painting = style.get("image")
    thumbnail = _write_thumbnail(painting, Path(context["onnx"]).with_suffix(".png"))
    history = context["checkpoint"].get("history") or [{}]
    final = {key: history[-1][key] for key in ("style", "content", "tv", "g_total") if key in history[-1]}
    if painting:
        style["image"] = recorded_path(painting)
    return card.replace(
        description=card.description or net_description(painting, card.name),
        licence=card.licence or PAINTING_LICENCE,
        running=dataclasses.replace(card.running, inference={**card.running.inference,
                                                             **({"thumbnail": thumbnail.name} if thumbnail else {})}),
        model_config={**card.model_config, "style": style},
        metrics={**card.metrics, "final_losses": final,
                 "parameters": parameter_count(build_style_net(card.model_config))},
    )


def net_description(painting: str | None, name: str) -> str:
    """A fast net's card description: the painting's artist, title and year when it is one of the
    shipped paintings (as `imgan styles` shows the painting styles), else its file name."""
    if not painting:
        return f"fast style transfer: {name}"
    return known_painting_description(painting) or f"fast style transfer: {Path(painting).stem.replace('_', ' ')}"


def recorded_path(path: str) -> str:
    """A painting's path for the card: relative to the repository when it lies beside it (the
    shared assets), so shipped cards hold no machine-specific paths."""
    absolute = Path(path).resolve()
    if absolute.is_relative_to(REPO.parent):
        return os.path.relpath(absolute, REPO)
    return str(absolute)


def _write_thumbnail(painting: str | None, target: Path) -> Path | None:
    """A small PNG of the painting beside the ONNX file, when the painting is at hand."""
    if not painting or not Path(painting).is_file():
        return None
    from imgan.io.images import Picture, write_image

    from .infer import painting_thumbnail

    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(Picture(rgb=painting_thumbnail(painting, THUMBNAIL_SIDE), alpha=None), target, overwrite=True)
    return target


SPEC = ModelSpec(build=build_style_net, example_inputs=example_inputs, running=running,
                 exportable=StyleNetWithReference, input_names=("input", "reference"),
                 output_names=("output", "styled_reference"),
                 export_sizes=((64, 96), (128, 80)), architecture=architecture, finish_card=finish_card)
