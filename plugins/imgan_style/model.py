"""The fast style network (Johnson et al. 2016) with reference-statistics instance norm.

    conv 9x9 -> 2 strided convs (/4) -> residual blocks -> 2x (nearest x2, conv 3x3) -> conv 9x9 -> sigmoid

Every layer runs on two streams: the image (or a tile of it) and a *reference* (a downscaled
copy of the whole image). Each normalisation layer normalises both streams with the mean and std
of the reference's activations at that layer. With reference == image this is exactly instance
norm (how the net trains); at inference every tile of a big image is normalised with the same
statistics, so tiles join without seams. Reflection padding everywhere: no dark borders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imgan.config import JsonConfig

Pair = tuple[Tensor, Tensor | None]  # (image or tile activations, reference activations or None)

PAD_MULTIPLE = 4  # two stride-2 convolutions: sides must divide by 4 for the upsampling to match
EPS = 1e-5


@dataclass(frozen=True)
class StyleNetConfig(JsonConfig):
    """widths: channels at full, 1/2 and 1/4 resolution; residual_blocks run at 1/4 resolution."""

    widths: tuple[int, int, int] = (16, 32, 64)
    residual_blocks: int = 4


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


class ConvLayer(nn.Module):
    """[nearest x2 ->] reflection pad -> conv [-> reference instance norm [-> ReLU]], on both streams."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, upsample: bool = False,
                 norm: bool = True, relu: bool = True):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride)
        self.norm = ReferenceInstanceNorm(c_out) if norm else None
        self.relu = relu and norm

    def _conv(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # resize-then-conv: no checkerboard
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

    H and W must be multiples of PAD_MULTIPLE; so must H' and W' of the reference.
    """

    def __init__(self, config: StyleNetConfig = StyleNetConfig()):
        super().__init__()
        self.config = config
        full, half, quarter = config.widths
        self.layers = nn.ModuleList(
            [ConvLayer(3, full, 9), ConvLayer(full, half, 3, stride=2), ConvLayer(half, quarter, 3, stride=2)]
            + [ResidualBlock(quarter) for _ in range(config.residual_blocks)]
            + [ConvLayer(quarter, half, 3, upsample=True), ConvLayer(half, full, 3, upsample=True),
               ConvLayer(full, 3, 9, norm=False)]
        )

    def forward(self, image: Tensor, reference: Tensor | None = None) -> Tensor:
        x, ref = image, reference
        for layer in self.layers:
            x, ref = layer(x, ref)
        return torch.sigmoid(x)


class StyleNetWithReference(nn.Module):
    """The exported signature: both inputs required (ONNX inputs "input" and "reference")."""

    def __init__(self, net: StyleNet):
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, reference: Tensor) -> Tensor:
        return self.net(image, reference)


def build_style_net(model_config: dict[str, Any]) -> StyleNet:
    return StyleNet(StyleNetConfig.from_dict(model_config))


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def receptive_margin(config: StyleNetConfig) -> int:
    """Pixels of context (at full resolution) one output pixel depends on, each side.

    Used as the tile overlap: with it, a tile's kept core equals the untiled result.
    """
    margin = 4 + 1 + 2  # conv 9x9, then the two strided 3x3 convs (the second at 1/2 resolution)
    margin += 4 * 2 * config.residual_blocks  # two 3x3 convs per block at 1/4 resolution
    margin += 2 + 1 + 4  # the upsampling convs (at 1/2 and full resolution) and the last 9x9
    return margin + 4  # nearest upsampling and the stride grid can shift context by a few pixels
