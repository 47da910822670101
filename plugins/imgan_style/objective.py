"""The style-transfer loss, shared by training, Gatys optimisation and evaluation (torch).

    total = style_weight * Σ_l MSE(gram_l(output), gram_l(painting)) / mean(gram_l(painting)²)
          + content_weight * MSE(vgg_content(output), vgg_content(photo))
          + tv_weight * TV(output)

Each style layer's Gram error is divided by the painting's mean squared Gram value at that layer:
raw Gram errors of the Caffe VGG grow by ~10⁴ from relu1_1 to relu3_4, so without it the deepest
layer alone would decide the style, and one style_weight would not suit every painting.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from imgan.errors import InputError
from imgan.train.losses import content_loss, gram_matrix, style_loss, total_variation
from imgan.train.vgg import VGGFeatures, resolve_vgg_weights

from .spec import StyleSettings, scaled_size

TERMS = ("style", "content", "tv")


def load_painting(path: str | os.PathLike, longest_side: int) -> Tensor:
    """(1,3,H,W) float in [0,1], the longest side resized to `longest_side` (area/cubic)."""
    from imgan.io.images import read_image, resize_plane, to_float

    rgb = to_float(read_image(Path(path)).rgb)
    rgb = resize_plane(rgb, scaled_size(*rgb.shape[:2], longest_side))  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


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
        with torch.no_grad():
            found = self.features(painting.float())
        for layer in settings.style_layers:
            self.register_buffer(f"gram_{layer}", gram_matrix(found[layer]))
        self.layer_weights = {
            layer: 1.0 / float(self.target_grams()[layer].pow(2).mean().clamp_min(1e-12))
            for layer in settings.style_layers
        }

    def target_grams(self) -> dict[str, Tensor]:
        return {layer: getattr(self, f"gram_{layer}") for layer in self.settings.style_layers}

    def content_target(self, photo: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return self.content_features(photo)

    def terms(self, output: Tensor, photo: Tensor) -> dict[str, Tensor]:
        return self.terms_with_target(output, self.content_target(photo))

    def terms_with_target(self, output: Tensor, target: dict[str, Tensor]) -> dict[str, Tensor]:
        """terms() with the photo's content features computed once (optimisation reuses them)."""
        found = self.features(output)
        return {
            "style": style_loss(found, self.target_grams(), self.layer_weights),
            "content": content_loss(found, target, self.settings.content_layer),
            "tv": total_variation(output),
        }

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        weights = self.settings.loss_weights()
        return sum(weights[name] * terms[name] for name in TERMS)
