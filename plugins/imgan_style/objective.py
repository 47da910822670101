"""The style-transfer loss, shared by training, Gatys optimisation and evaluation (torch).

    total = style_weight * mean_s Σ_l MSE(gram_l(↓s output), gram_l(↓s painting)) / mean(gram_l(↓s painting)²)
          + content_weight * MSE(vgg_content(output), vgg_content(photo))
          + tv_weight * TV(output)

Each style layer's Gram error is divided by the painting's mean squared Gram value at that layer:
raw Gram errors of the Caffe VGG grow by ~10⁴ from relu1_1 to relu3_4, so without it the deepest
layer alone would decide the style, and one style_weight would not suit every painting.

↓s is an antialiased downscale by each factor s of ``settings.pyramid`` (default 1, 1/2, 1/4): our
VGG stops at conv3_4 (receptive field 48 px), so at full scale the Gram loss sees only fine texture;
on the smaller copies the same layers see the painting's strokes and shapes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from imgan.errors import InputError
from imgan.train.losses import content_loss, gram_matrix, style_loss, total_variation
from imgan.train.vgg import VGGFeatures, resolve_vgg_weights

from .spec import StyleSettings

TERMS = ("style", "content", "tv")


def load_painting(path: str | os.PathLike, longest_side: int) -> Tensor:
    """(1,3,H,W) float in [0,1], the longest side resized to `longest_side` (area/cubic)."""
    from imgan.io.images import long_side_size, read_image, resize_plane, to_float

    rgb = to_float(read_image(Path(path)).rgb)
    rgb = resize_plane(rgb, long_side_size(*rgb.shape[:2], longest_side))  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def check_pyramid(pyramid) -> tuple[float, ...]:
    """The pyramid's scales, full scale first; InputError unless it starts at 1 and each is in (0, 1]."""
    scales = tuple(float(scale) for scale in pyramid)
    if not scales or scales[0] != 1.0 or any(not 0.0 < scale <= 1.0 for scale in scales):
        raise InputError(f"the style pyramid must start at 1 and hold scales in (0, 1], got {list(pyramid)}")
    return scales


def downscale(images: Tensor, scale: float) -> Tensor:
    """(N,3,H,W) shrunk by ``scale`` with an antialiased bilinear filter (a plain resize would alias fine
    texture into the smaller copy's Gram matrices); differentiable. Never below 16 px a side."""
    if scale == 1.0:
        return images
    height, width = images.shape[-2:]
    size = (max(16, round(height * scale)), max(16, round(width * scale)))
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


class StyleObjective(nn.Module):
    """terms(output, photo) -> unweighted {"style", "content", "tv"}; total(terms) weights them.

    output, photo: (N,3,H,W) in [0,1]. The painting's Gram targets are computed once here.
    """

    def __init__(self, painting: Tensor, settings: StyleSettings, vgg_weights: str | os.PathLike | None = None):
        super().__init__()
        if painting.ndim != 4 or painting.shape[:2] != (1, 3):
            raise InputError(f"the painting must be one RGB image, got shape {tuple(painting.shape)}")
        self.settings = settings
        weights = resolve_vgg_weights(vgg_weights)
        layers = list(dict.fromkeys(settings.style_layers + (settings.content_layer,)))
        self.features = VGGFeatures(layers, weights)
        # The content target needs only the shallower content layer: a second, cheaper VGG.
        self.content_features = VGGFeatures([settings.content_layer], weights)
        self.scales = check_pyramid(settings.pyramid)
        with torch.no_grad():
            for level, scale in enumerate(self.scales):
                found = self.features(downscale(painting.float(), scale))
                for layer in settings.style_layers:
                    self.register_buffer(f"gram_{layer}_{level}", gram_matrix(found[layer]))
        self.layer_weights = [
            {layer: 1.0 / float(grams[layer].pow(2).mean().clamp_min(1e-12)) for layer in settings.style_layers}
            for grams in (self.target_grams(level) for level in range(len(self.scales)))
        ]

    def target_grams(self, level: int = 0) -> dict[str, Tensor]:
        """The painting's Gram matrices at pyramid level ``level`` (0: full scale)."""
        return {layer: getattr(self, f"gram_{layer}_{level}") for layer in self.settings.style_layers}

    def content_target(self, photo: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return self.content_features(photo)

    def terms(self, output: Tensor, photo: Tensor) -> dict[str, Tensor]:
        return self.terms_with_target(output, self.content_target(photo))

    def terms_with_target(self, output: Tensor, target: dict[str, Tensor]) -> dict[str, Tensor]:
        """terms() with the photo's content features computed once (optimisation reuses them)."""
        found = self.features(output)
        style = style_loss(found, self.target_grams(0), self.layer_weights[0])
        for level, scale in enumerate(self.scales[1:], start=1):
            smaller = self.features(downscale(output, scale))
            style = style + style_loss(smaller, self.target_grams(level), self.layer_weights[level])
        return {
            "style": style / len(self.scales),
            "content": content_loss(found, target, self.settings.content_layer),
            "tv": total_variation(output),
        }

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        weights = self.settings.loss_weights()
        return sum(weights[name] * terms[name] for name in TERMS)
