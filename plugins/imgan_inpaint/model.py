"""The inpainting generator (a compact DeepFill v2-style gated-conv net) and its PatchGAN critic.

    image (N,3,H,W) in [0,1], mask (N,1,H,W), 1 = hole
      -> coarse fill: relaxed push-pull over a 6-level pyramid (no weights)  guess (N,3,H,W)
      -> concat(guess, mask)                                              (N,4,H,W)
      -> gated conv (w) -> gated conv /2 (2w) -> gated conv (2w) -> gated conv /2 (4w)
      -> bottleneck at 1/4: gated 3x3 convs dilated 2, 4, 8, 16, then 1, 1   (receptive field ≈ 270 px)
      -> [fourier_blocks x Fourier block: the whole picture in one layer]  (optional, LaMa's idea)
      -> gated conv (2w), x2, gated convs (2w, w), x2, gated conv (w/2) -> conv 3x3 = correction
      -> generated = clamp(guess + correction, 0, 1)                      (N,3,H,W)
      -> composite: image * (1 - mask) + generated * mask                 (N,3,H,W)

A gated convolution (Yu et al. 2019, "Free-Form Image Inpainting with Gated Convolution") computes
features and a soft gate from the same input, ``act(features) * sigmoid(gate)``: the net learns
per pixel and channel how much to trust what it sees, which is what a hole needs.

DeepFill v2 has a learned coarse stage; here the coarse stage is push-pull (Gortler et al. 1996:
average the known pixels down a pyramid, then fill each level's gaps from the level above) with
relaxation sweeps at every level (a multigrid membrane fill), so
the net starts from a smooth, colour-correct fill and its few CPU-hours of training go into the
refinement (edges, texture) only. The last conv starts small: an untrained net returns about the
push-pull fill. Zero "same" padding: the net is fully convolutional and its sides must be
multiples of PAD_MULTIPLE (two stride-2 convolutions); the pyramid rounds odd sides up.

The critic is SN-PatchGAN: strided 5x5 convs on image + mask, one logit per patch (spectral
norm is applied by the training loop, TrainConfig.spectral_norm).

SPEC (imgan.train.spec.ModelSpec) is how the core exports, warm-starts and checks the net: the
exported graph is CompositeOnly, (image, mask) -> the composite.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imgan.cards import ModelCard, Running
from imgan.config import JsonConfig
from imgan.train.spec import ModelSpec

if TYPE_CHECKING:
    from imgan.train.export import ExportReport

from . import TASK
from .masks import random_mask
from .spec import MAX_HOLE_RADIUS, PAD_MULTIPLE, PRIOR_NAME, TILE_OVERLAP, WORKING_SIZE


@dataclass(frozen=True)
class InpaintNetConfig(JsonConfig):
    """width: channels at full resolution (2x at 1/2, 4x at 1/4); dilations: the bottleneck's;
    pyramid_levels: halvings of the push-pull coarse fill (6: blocks of 64 px at the top);
    relax_iterations: smoothing sweeps per pyramid level of that fill."""

    width: int = 16
    dilations: tuple[int, ...] = (2, 4, 8, 16)
    pyramid_levels: int = 6
    relax_iterations: int = 12
    fourier_blocks: int = 0  # residual spectral blocks after the bottleneck (0: the v1 net)
    # False: the push-pull coarse fill alone, no learned layers (the shipped `pushpull`: a fast
    # smooth fill, and the baseline `imgan eval inpaint` measures the net's refinement against)
    refine: bool = True


# Init gain of a gated conv's weights (on He's normal init) that keeps the activations' scale
# through a stack of them. With PyTorch's default init each ELU * sigmoid layer shrinks the signal
# about 3x, and 15 of them starve the first layers of gradient (measured: no learning at all).
GATED_INIT_GAIN = 1.6


class GatedConv(nn.Module):
    """conv -> split into features and gate -> ELU(features) * sigmoid(gate); same size unless strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, *, stride: int = 1, dilation: int = 1,
                 activation: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 2 * c_out, kernel, stride=stride, dilation=dilation,
                              padding=dilation * (kernel // 2))
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")
        with torch.no_grad():
            self.conv.weight.mul_(GATED_INIT_GAIN)
        nn.init.zeros_(self.conv.bias)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)  # (N, c_out, h, w) each
        if self.activation:
            features = F.elu(features)
        return features * torch.sigmoid(gate)


class Upsample(nn.Module):
    """Nearest x2; the gated conv after it smooths the blocks (no transposed conv: no checkerboard)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


def composite(image: Tensor, generated: Tensor, mask: Tensor) -> Tensor:
    """Known pixels from `image`, hole pixels (mask 1) from `generated`."""
    return image * (1.0 - mask) + generated * mask


def push_pull_fill(image: Tensor, known: Tensor, levels: int, iterations: int = 12, eps: float = 1e-6) -> Tensor:
    """Fill the unknown pixels (known 0) of (N,C,H,W) `image` from the known ones (known 1).

    Pull: each level averages the known values of 2x2 blocks (weighted by confidence), a block's
    confidence being min(1, sum of its children's). Push: from the top down, each pixel keeps its
    own average in proportion to its confidence and takes the rest from the bilinearly enlarged
    level above, then `iterations` relaxation sweeps (Jacobi: each pixel moves towards the mean of
    its 3x3 neighbourhood by its lack of confidence) smooth the seams. Together a multigrid
    approximation of the membrane (harmonic) fill: measured on irregular_dev masks, the relaxed
    fill alone beats cv2.inpaint Telea by 0.4-0.9 dB PSNR, the plain push-pull trails it.
    Top-level blocks with no known pixel at all get the image's known mean. Known pixels come
    back exactly (confidence 1).
    """
    values, confidences = [image], [known]
    for _ in range(levels):
        weighted = F.avg_pool2d(values[-1] * confidences[-1], 2, ceil_mode=True)
        weight = F.avg_pool2d(confidences[-1], 2, ceil_mode=True)  # (N, 1, ⌈h/2⌉, ⌈w/2⌉)
        values.append(weighted / weight.clamp_min(eps))
        confidences.append((4.0 * weight).clamp(max=1.0))
    known_mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp_min(eps)
    estimate = confidences[-1] * values[-1] + (1.0 - confidences[-1]) * known_mean
    estimate = _relax(estimate, values[-1], confidences[-1], iterations)
    for value, confidence in zip(reversed(values[:-1]), reversed(confidences[:-1])):
        enlarged = F.interpolate(estimate, size=value.shape[-2:], mode="bilinear", align_corners=False)
        estimate = _relax(confidence * value + (1.0 - confidence) * enlarged, value, confidence, iterations)
    return estimate


def _relax(estimate: Tensor, value: Tensor, confidence: Tensor, iterations: int) -> Tensor:
    for _ in range(iterations):
        neighbours = F.avg_pool2d(F.pad(estimate, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # 3x3 mean
        estimate = confidence * value + (1.0 - confidence) * neighbours
    return estimate


class FourierBlock(nn.Module):
    """A residual Fourier unit (LaMa, Suvorov et al. 2022): a 1x1 conv (+ ReLU) over the real and
    imaginary parts of every channel's 2-D DFT, back to pixels, a 1x1 conv, added to the input. One
    frequency bin mixes every pixel, so each output sees the whole picture: a big hole's fill can
    follow structure from anywhere, where dilated convs reach ~270 px. The DFT is imgan's matmul
    version (imgan.train.spectral), which exports to ONNX; torch.fft does not. The last conv starts
    at zero, so a new block is the identity: a net with them starts exactly where one without was."""

    def __init__(self, channels: int):
        super().__init__()
        self.spectral = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.mix = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x: Tensor) -> Tensor:
        from imgan.train.spectral import irfft2, rfft2

        real, imaginary = rfft2(x)  # (N, C, H, W//2 + 1) each
        real, imaginary = F.relu(self.spectral(torch.cat([real, imaginary], dim=1))).chunk(2, dim=1)
        return x + self.mix(irfft2(real, imaginary, x.shape[-1]))


class InpaintNet(nn.Module):
    def __init__(self, config: InpaintNetConfig = InpaintNetConfig()):
        super().__init__()
        self.config = config
        if not config.refine:
            return
        w = config.width
        self.encoder = nn.Sequential(
            GatedConv(4, w, 3),
            GatedConv(w, 2 * w, 3, stride=2),
            GatedConv(2 * w, 2 * w, 3),
            GatedConv(2 * w, 4 * w, 3, stride=2),
        )
        self.bottleneck = nn.Sequential(
            *[GatedConv(4 * w, 4 * w, 3, dilation=d) for d in config.dilations],
            GatedConv(4 * w, 4 * w, 3),
            GatedConv(4 * w, 4 * w, 3),
        )
        # apart from the bottleneck, so the other layers keep their names: a start from v1 weights loads them
        self.global_blocks = nn.Sequential(*[FourierBlock(4 * w) for _ in range(config.fourier_blocks)])
        # Each convolution that changes the width runs at the lower resolution, before its
        # upsampling: the same layers as conv-after-upsample at a quarter of the cost.
        self.decoder = nn.Sequential(
            GatedConv(4 * w, 2 * w, 3),
            Upsample(),
            GatedConv(2 * w, 2 * w, 3),
            GatedConv(2 * w, w, 3),
            Upsample(),
            GatedConv(w, w // 2, 3),
            nn.Conv2d(w // 2, 3, 3, padding=1),
        )
        # Small, not zero: a zero last layer passes no gradient back, and the layers before it
        # never start learning (measured: a run stuck at the push-pull fill for 400 steps).
        with torch.no_grad():
            self.decoder[-1].weight.mul_(0.1)
            self.decoder[-1].bias.zero_()

    def fill(self, image: Tensor, mask: Tensor) -> Tensor:
        """The raw generated image (N,3,H,W) in [0,1], before compositing."""
        guess = push_pull_fill(image, 1.0 - mask, self.config.pyramid_levels,
                               self.config.relax_iterations)  # hole pixels never read
        if not self.config.refine:
            return guess
        x = torch.cat([guess, mask], dim=1)  # (N, 4, H, W)
        x = self.encoder(x)  # (N, 4w, H/4, W/4)
        x = self.global_blocks(self.bottleneck(x))
        return (guess + self.decoder(x)).clamp(0.0, 1.0)  # (N, 3, H, W)

    def forward(self, image: Tensor, mask: Tensor, raw: bool = False) -> Tensor:
        """The composite (N,3,H,W); `raw=True` (training) returns the generated image itself."""
        generated = self.fill(image, mask)
        return generated if raw else composite(image, generated, mask)


def build_generator(model_config: dict) -> InpaintNet:
    return InpaintNet(InpaintNetConfig.from_dict(model_config))


class PatchDiscriminator(nn.Module):
    """SN-PatchGAN: (N,4,H,W) image + mask -> (N,1,H/32,W/32) logits, one per overlapping patch."""

    def __init__(self, width: int = 32, in_channels: int = 4):
        super().__init__()
        channels = [in_channels, width, 2 * width, 4 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(channels[-1], 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------------- export


class CompositeOnly(nn.Module):
    """The exported graph: (image, mask) -> composite, with no Python flag to trace."""

    def __init__(self, net: InpaintNet):
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.net(image, mask)


def example_inputs(model_config: Mapping[str, Any], height: int, width: int) -> tuple[Tensor, Tensor]:
    """A random image and a random stroke/box mask (1 = hole) of that size, the same every time."""
    seed = 1000 * height + width
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    hole = random_mask(height, width, np.random.default_rng(seed))
    return image, torch.from_numpy(hole)[None, None].float()


def running(model_config: Mapping[str, Any]) -> Running:
    return Running(scale=1, pad_multiple=PAD_MULTIPLE, tile_overlap=TILE_OVERLAP, input_convention="rgb01",
                   inputs={"image": "NCHW float32 RGB in [0, 1]", "mask": "N1HW float32, 1 = hole"},
                   outputs={"output": "the composite: the image outside the hole, the generated fill inside"},
                   inference={"working_size": WORKING_SIZE, "max_hole_radius": MAX_HOLE_RADIUS})


PRIOR_DESCRIPTION = ("push-pull membrane fill alone (the coarse stage of inpaint-gated, no learned weights): a fast "
                     "smooth fill, and the baseline `imgan eval inpaint` measures the trained net against")


def export_prior(output: Path, config: InpaintNetConfig = InpaintNetConfig()) -> "ExportReport":
    """The net's push-pull coarse fill alone as an ONNX file with its card: nothing is trained, so
    this is the one inpaint export that needs no checkpoint (python -m imgan_inpaint.model)."""
    from imgan.train.export import export_onnx

    model_config = dataclasses.replace(config, refine=False).to_dict()
    card = ModelCard(task=TASK, name=PRIOR_NAME, file=output.name, sha256="-", licence="MIT (code; no weights)",
                     description=PRIOR_DESCRIPTION, running=running(model_config), model_config=model_config)
    net = build_generator(model_config)
    sizes = SPEC.export_sizes
    return export_onnx(CompositeOnly(net), example_inputs(model_config, *sizes[0]), output,
                       input_names=SPEC.input_names, output_names=SPEC.output_names,
                       parity_inputs=[example_inputs(model_config, *size) for size in sizes[1:]], card=card)


def finish_card(card: ModelCard, context: dict) -> ModelCard:
    return card.replace(
        description="Gated-conv inpainting (DeepFill v2 style, push-pull coarse fill, SN-PatchGAN), "
                    f"{card.provenance.steps} steps on CPU",  # with those of the weights it started from
        licence="MIT (code); weights trained on BSDS500 train photos (research use)")


def architecture(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The model_config with every default filled in: a card written before a setting existed
    (e.g. `refine`) is the same net as one that states the default."""
    return InpaintNetConfig.from_dict(dict(model_config)).to_dict()


# Sides multiples of PAD_MULTIPLE: the traced example, then the parity check at another shape.
# New Fourier blocks on a trained net: every other tensor carries over (the blocks start as the identity).
SPEC = ModelSpec(build=build_generator, example_inputs=example_inputs, running=running, exportable=CompositeOnly,
                 input_names=("image", "mask"), output_names=("output",), export_sizes=((96, 128), (68, 52)),
                 transferable_keys=("fourier_blocks",), architecture=architecture, finish_card=finish_card)


if __name__ == "__main__":  # python -m imgan_inpaint.model OUTPUT.onnx: (re)make the shipped prior
    import sys

    print(export_prior(Path(sys.argv[1] if len(sys.argv) > 1 else f"weights/{TASK}-{PRIOR_NAME}.onnx")).card_path)
