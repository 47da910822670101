from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgan.errors import TrainingError, UsageError
from imgan.train.losses import (
    ADVERSARIAL_MODES,
    PerceptualLoss,
    content_loss,
    discriminator_loss,
    generator_adversarial_loss,
    gradient_penalty,
    gram_matrix,
    pixel_loss,
    style_loss,
    total_variation,
)
from imgan.train.vgg import VGGFeatures

from .test_vgg import SHARED_VGG, needs_shared_vgg


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# features (N=1, C=2, H=1, W=2): channel 0 = [1, 2], channel 1 = [3, 4]
# F Fᵀ = [[1·1+2·2, 1·3+2·4], [3·1+4·2, 3·3+4·4]] = [[5, 11], [11, 25]]; / (C·H·W = 4)
FEATURES = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
GRAM = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])


def test_gram_matrix_by_hand():
    assert torch.allclose(gram_matrix(FEATURES), GRAM)


def test_style_loss_by_hand():
    # against a zero target: mean of squares = (1.25² + 2·2.75² + 6.25²) / 4 = 55.75 / 4
    zero = {"a": torch.zeros(1, 2, 2)}
    assert style_loss({"a": FEATURES}, zero).item() == pytest.approx(13.9375)
    assert style_loss({"a": FEATURES}, zero, {"a": 2.0}).item() == pytest.approx(27.875)
    two_layers = style_loss({"a": FEATURES, "b": FEATURES}, {"a": GRAM, "b": torch.zeros(1, 2, 2)})
    assert two_layers.item() == pytest.approx(13.9375)
    # one style gram (batch 1) is compared with each image of a batch of two
    batch = torch.cat([FEATURES, FEATURES])
    assert style_loss({"a": batch}, {"a": GRAM}).item() == pytest.approx(0.0)
    with pytest.raises(TrainingError, match="style layer b"):
        style_loss({"a": FEATURES}, {"b": GRAM})


def test_content_loss_is_mse_at_the_layer():
    ones = {"x": torch.ones(1, 2, 2, 2), "y": torch.zeros(1)}
    threes = {"x": torch.full((1, 2, 2, 2), 3.0), "y": torch.ones(1)}
    assert content_loss(ones, threes, "x").item() == pytest.approx(4.0)


def test_total_variation_by_hand():
    # rows [0, 1, 3] and [0, 0, 0]
    # vertical |diffs| = 0, 1, 3 -> mean 4/3; horizontal |diffs| = 1, 2, 0, 0 -> mean 3/4
    image = torch.tensor([[[[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]]]])
    assert total_variation(image).item() == pytest.approx(4 / 3 + 3 / 4)
    assert total_variation(torch.full((2, 3, 5, 5), 0.7)).item() == 0.0


def test_pixel_losses():
    a = torch.tensor([0.0, 0.0])
    b = torch.tensor([3.0, -4.0])
    assert pixel_loss(a, b).item() == pytest.approx(3.5)
    assert pixel_loss(a, b, "l2").item() == pytest.approx(12.5)
    # sqrt(9 + 1e-6) and sqrt(16 + 1e-6), nearly L1; equal inputs give eps, not 0
    assert pixel_loss(a, b, "charbonnier").item() == pytest.approx(3.5, abs=1e-6)
    assert pixel_loss(a, a, "charbonnier").item() == pytest.approx(1e-3)
    with pytest.raises(UsageError, match="l1, l2, charbonnier"):
        pixel_loss(a, b, "l3")


def test_hinge_is_zero_beyond_the_margin():
    real, fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    assert discriminator_loss("hinge", real, fake).item() == 0.0
    # inside the margin: relu(1 - 0.5) + relu(1 + 0) = 1.5
    assert discriminator_loss("hinge", torch.tensor([0.5]), torch.tensor([0.0])).item() == pytest.approx(1.5)
    assert generator_adversarial_loss("hinge", fake).item() == pytest.approx(2.0)


def test_vanilla_uses_bce_with_one_sided_smoothing():
    # BCE(x, t) = t·softplus(-x) + (1 - t)·softplus(x); real target 0.9, fake target 0
    expected = 0.9 * softplus(-2.0) + 0.1 * softplus(2.0) + softplus(-1.0)
    got = discriminator_loss("vanilla", torch.tensor([2.0]), torch.tensor([-1.0]), smooth=0.1)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    unsmoothed = discriminator_loss("vanilla", torch.tensor([2.0]), torch.tensor([-1.0]), smooth=0.0)
    assert unsmoothed.item() == pytest.approx(softplus(-2.0) + softplus(-1.0), rel=1e-6)
    # non-saturating generator loss: BCE(fake, 1) = softplus(-fake)
    assert generator_adversarial_loss("vanilla", torch.tensor([-1.0])).item() == pytest.approx(softplus(1.0), rel=1e-6)
    with pytest.raises(UsageError):
        discriminator_loss("vanilla", torch.zeros(1), torch.zeros(1), smooth=1.0)


def test_lsgan_values():
    assert discriminator_loss("lsgan", torch.ones(3), torch.zeros(3)).item() == 0.0
    assert discriminator_loss("lsgan", torch.zeros(3), torch.ones(3)).item() == pytest.approx(1.0)
    assert generator_adversarial_loss("lsgan", torch.zeros(3)).item() == pytest.approx(0.5)


def test_wgan_values():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-3.0)
    assert generator_adversarial_loss("wgan-gp", fake).item() == pytest.approx(1.0)


def test_unknown_mode_names_the_modes():
    with pytest.raises(UsageError, match="wgan-gp"):
        discriminator_loss("ragan", torch.zeros(1), torch.zeros(1))
    with pytest.raises(UsageError):
        generator_adversarial_loss("ragan", torch.zeros(1))
    assert ADVERSARIAL_MODES == ("vanilla", "lsgan", "hinge", "wgan-gp")


class LinearCritic(nn.Module):
    """D(x) = sum(x * w) per sample: its input gradient is w, norm ‖w‖, everywhere."""

    def __init__(self, shape: tuple[int, ...], norm: float):
        super().__init__()
        w = torch.randn(shape)
        self.w = nn.Parameter(w * norm / w.norm())

    def forward(self, x):
        return (x * self.w).flatten(1).sum(dim=1)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5)])  # images and (T,C,H,W) clips
def test_gradient_penalty_is_zero_for_unit_gradient(shape):
    torch.manual_seed(0)
    critic = LinearCritic(shape, norm=1.0)
    real, fake = torch.rand(4, *shape), torch.rand(4, *shape)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-8)


def test_gradient_penalty_of_steep_critic_and_its_gradient():
    torch.manual_seed(0)
    critic = LinearCritic((3, 4, 4), norm=3.0)
    penalty = gradient_penalty(critic, torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), weight=10.0)
    assert penalty.item() == pytest.approx(10.0 * (3.0 - 1.0) ** 2, rel=1e-5)
    penalty.backward()
    # d/dw 10·(‖w‖ - 1)² = 20·(‖w‖ - 1)·w/‖w‖
    expected = 20.0 * 2.0 * critic.w.detach() / 3.0
    assert torch.allclose(critic.w.grad, expected, rtol=1e-4, atol=1e-6)


@needs_shared_vgg
def test_perceptual_loss_matches_feature_mse():
    loss = PerceptualLoss(vgg_weights=SHARED_VGG)
    assert loss.layers == ("relu3_4",)  # the deepest layer of weights cut after conv3_4
    torch.manual_seed(0)
    output = torch.rand(1, 3, 24, 24, requires_grad=True)
    target = torch.rand(1, 3, 24, 24)
    value = loss(output, target)
    reference = VGGFeatures(["relu3_4"], SHARED_VGG)
    expected = F.mse_loss(reference(output)["relu3_4"], reference(target)["relu3_4"])
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss(target, target).item() == 0.0
    value.backward()
    assert output.grad.abs().sum() > 0


@needs_shared_vgg
def test_perceptual_loss_shares_features_and_rejects_missing_layers():
    shared = VGGFeatures(["relu2_2", "relu3_4"], SHARED_VGG)
    l1_loss = PerceptualLoss(["relu2_2"], criterion="l1", features=shared, layer_weights={"relu2_2": 0.5})
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    expected = 0.5 * F.l1_loss(shared(a)["relu2_2"], shared(b)["relu2_2"])
    assert l1_loss(a, b).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(TrainingError, match="relu1_1"):
        PerceptualLoss(["relu1_1"], features=shared)
    with pytest.raises(TrainingError, match="relu5_4"):
        PerceptualLoss(["relu5_4"], features=shared)
