"""A perceptual distance between two images: the unlearned "baseline" variant of LPIPS.

Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
compare networks by d(a, b) = sum over layers l of mean over positions (h, w) of
|| w_l * (f_l(a) - f_l(b)) ||², with f_l the layer's features unit-normalised over channels. Their
"baseline" sets every w_l to 1 (no learned linear layer); that is what this is, on this project's
VGG19 truncated at conv3_4 (layers relu1_2, relu2_2, relu3_4), not LPIPS's VGG16 with learned
weights, so its numbers are not comparable with published LPIPS values, only with each other.

The three layer terms are summed, as LPIPS does (not averaged). 0 means identical features; the
distance is symmetric, and (measured on BSDS500 photos) grows with blur strength.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError
from ..io.images import to_float
from .vgg import VGGFeatures, VGGWeights

LAYERS = ("relu1_2", "relu2_2", "relu3_4")
_EPS = 1e-10  # as LPIPS's normalize_tensor


def unit_normalise(features: Tensor) -> Tensor:
    """(N, C, H, W) features divided by their Euclidean norm over channels, at each position."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + _EPS)


class PerceptualDistance:
    """Unlearned LPIPS-baseline distance on VGG19 relu1_2 + relu2_2 + relu3_4 (truncated at conv3_4).

    ``vgg_weights``: a VGG19 weights file or VGGWeights; None follows resolve_vgg_weights
    ($IMGAN_VGG19_WEIGHTS, else torchvision's ImageNet download). Any file holding conv1_1..conv3_4
    will do, such as the shared vgg19_imagenet_conv1_1-conv3_4.pth.
    """

    def __init__(self, vgg_weights: VGGWeights | str | os.PathLike | None = None, device: str = "cpu"):
        self.device = torch.device(device)
        self.features = VGGFeatures(LAYERS, vgg_weights).to(self.device)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """The distance between two (H, W, 3) RGB images in [0, 1] (float, or uint8/uint16) of one size."""
        if np.shape(a) != np.shape(b) or np.ndim(a) != 3 or np.shape(a)[2] != 3:
            raise UsageError(f"PerceptualDistance compares two (H, W, 3) images of one size, "
                             f"got {np.shape(a)} and {np.shape(b)}")
        pair = np.stack([to_float(np.asarray(a)), to_float(np.asarray(b))]).transpose(0, 3, 1, 2)  # (2, 3, H, W)
        images = torch.from_numpy(np.ascontiguousarray(pair)).to(self.device)
        return float(self.distances(images[:1], images[1:])[0])

    @torch.inference_mode()
    def distances(self, a: Tensor, b: Tensor) -> Tensor:
        """(N,) distances between two (N, 3, H, W) batches of RGB in [0, 1], image by image."""
        features = self.features(torch.cat([a, b]).float())
        total = a.new_zeros(a.shape[0], dtype=torch.float32)
        for layer in LAYERS:
            first, second = unit_normalise(features[layer]).chunk(2)
            total = total + (first - second).square().sum(dim=1).mean(dim=(1, 2))
        return total
