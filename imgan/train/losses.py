"""Loss terms: pixel, perceptual (VGG), Gram style, total variation, adversarial modes, gradient penalty.

Every function returns a scalar tensor averaged over the batch, so loss weights in recipes do
not depend on batch size.
"""
from __future__ import annotations

import os
from typing import Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import TrainingError, UsageError
from .vgg import VGGFeatures, VGGWeights, check_layers, default_layers

ADVERSARIAL_MODES = ("vanilla", "lsgan", "hinge", "wgan-gp")
PIXEL_LOSSES = ("l1", "l2", "charbonnier")


def gram_matrix(features: Tensor) -> Tensor:
    """(N,C,H,W) -> (N,C,C) channel correlations, divided by C*H*W.

    Dividing by C*H*W (not just H*W) keeps the values, and so the style weight, comparable
    across layers of different width and across image sizes.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_loss(
    features: Mapping[str, Tensor],
    target_grams: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
) -> Tensor:
    """Sum over the layers of ``target_grams`` of weight * MSE(gram(features[layer]), target).

    A target gram of batch 1 (one style image) is compared with every image of the batch.
    """
    total: Tensor | None = None
    for layer, target in target_grams.items():
        if layer not in features:
            raise TrainingError(f"style layer {layer} missing from the features", hint="build VGGFeatures with it")
        gram = gram_matrix(features[layer])
        term = F.mse_loss(gram, target.expand_as(gram))
        weight = 1.0 if weights is None else weights.get(layer, 1.0)
        total = weight * term if total is None else total + weight * term
    if total is None:
        raise TrainingError("style_loss needs at least one target layer")
    return total


def content_loss(features: Mapping[str, Tensor], target_features: Mapping[str, Tensor], layer: str) -> Tensor:
    """MSE between the two feature maps at ``layer``."""
    return F.mse_loss(features[layer], target_features[layer])


def total_variation(img: Tensor) -> Tensor:
    """Anisotropic L1 total variation of (...,H,W) images.

    mean |vertical neighbour difference| + mean |horizontal neighbour difference|, each mean
    taken over all elements, so it does not grow with image size.
    """
    vertical = (img[..., 1:, :] - img[..., :-1, :]).abs().mean()
    horizontal = (img[..., :, 1:] - img[..., :, :-1]).abs().mean()
    return vertical + horizontal


def pixel_loss(a: Tensor, b: Tensor, kind: Literal["l1", "l2", "charbonnier"] = "l1", *, eps: float = 1e-3) -> Tensor:
    """Mean pixel distance. Charbonnier is sqrt(d² + eps²): L1-like but smooth at zero."""
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "l2":
        return F.mse_loss(a, b)
    if kind == "charbonnier":
        return torch.sqrt((a - b) ** 2 + eps * eps).mean()
    raise UsageError(f"unknown pixel loss {kind!r}", hint=f"choose one of {', '.join(PIXEL_LOSSES)}")


def _distance(criterion: str) -> Callable[[Tensor, Tensor], Tensor]:
    if criterion == "mse":
        return F.mse_loss
    if criterion == "l1":
        return F.l1_loss
    raise UsageError(f"unknown perceptual criterion {criterion!r}", hint="choose mse or l1")


class PerceptualLoss(nn.Module):
    """Distance between VGG19 features of output and target (both RGB in [0, 1]).

    ``layers`` default to the weights' recommended perceptual layer (relu5_4 for full VGG19,
    relu3_4 for weights cut after conv3_4). Pass ``features`` to share one VGG between losses.
    """

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        *,
        vgg_weights: VGGWeights | str | os.PathLike | None = None,
        criterion: Literal["mse", "l1"] = "mse",
        layer_weights: Mapping[str, float] | None = None,
        features: VGGFeatures | None = None,
    ):
        super().__init__()
        if layers is None:
            source = features.weights if features is not None else vgg_weights
            layers = (str(default_layers(source)["perceptual"]),)
        self.layers = tuple([layers] if isinstance(layers, str) else layers)
        if features is None:
            features = VGGFeatures(self.layers, vgg_weights)
        missing = [name for name in self.layers if name not in features.layers]
        if missing:
            check_layers(missing, features.weights)
            raise TrainingError(f"the shared VGGFeatures does not compute {', '.join(missing)}")
        self.features = features
        self.distance = _distance(criterion)
        self.layer_weights = dict(layer_weights or {})

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        output_features = self.features(output)
        with torch.no_grad():
            target_features = self.features(target)
        total = output.new_zeros(())
        for layer in self.layers:
            weight = self.layer_weights.get(layer, 1.0)
            total = total + weight * self.distance(output_features[layer], target_features[layer])
        return total


def _check_mode(mode: str) -> None:
    if mode not in ADVERSARIAL_MODES:
        raise UsageError(f"unknown adversarial mode {mode!r}", hint=f"choose one of {', '.join(ADVERSARIAL_MODES)}")


def discriminator_loss(mode: str, real_logits: Tensor, fake_logits: Tensor, *, smooth: float = 0.1) -> Tensor:
    """The discriminator's loss on raw (un-sigmoided) outputs for real and generated samples.

    vanilla: BCE(real, 1 - smooth) + BCE(fake, 0); one-sided label smoothing (Salimans et al.).
    lsgan:   0.5 * mean((real - 1)²) + 0.5 * mean(fake²) (Mao et al.).
    hinge:   mean(relu(1 - real)) + mean(relu(1 + fake)).
    wgan-gp: mean(fake) - mean(real); add ``gradient_penalty`` separately.
    ``smooth`` only affects vanilla.
    """
    _check_mode(mode)
    if mode == "vanilla":
        if not 0.0 <= smooth < 1.0:
            raise UsageError(f"label smoothing must be in [0, 1), got {smooth}")
        real_target = torch.full_like(real_logits, 1.0 - smooth)
        return F.binary_cross_entropy_with_logits(real_logits, real_target) + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
    if mode == "lsgan":
        return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()
    if mode == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return fake_logits.mean() - real_logits.mean()


def generator_adversarial_loss(mode: str, fake_logits: Tensor) -> Tensor:
    """The generator's adversarial term on the discriminator's raw outputs for its samples.

    vanilla: non-saturating BCE(fake, 1); lsgan: 0.5 * mean((fake - 1)²);
    hinge and wgan-gp: -mean(fake).
    """
    _check_mode(mode)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if mode == "lsgan":
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()
    return -fake_logits.mean()


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, weight: float = 10.0
) -> Tensor:
    """WGAN-GP: weight * mean((‖∇D(x̂)‖₂ - 1)²) on random interpolates x̂ of real and fake.

    One mixing factor per sample, so it works for images (N,C,H,W) and clips (N,T,C,H,W) alike.
    Builds a graph through the gradient (create_graph) so the penalty trains D.
    """
    real = real.detach()
    fake = fake.detach()
    alpha = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    scores = discriminator(mixed)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    # the epsilon keeps sqrt differentiable where a gradient is exactly zero
    norms = torch.sqrt(grads.flatten(1).pow(2).sum(dim=1) + 1e-12)
    return weight * ((norms - 1.0) ** 2).mean()
