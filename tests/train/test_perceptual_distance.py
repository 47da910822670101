"""The unlearned LPIPS-baseline distance on VGG19 relu1_2/relu2_2/relu3_4, on a BSDS500 crop.
Skipped without the shared VGG19 weights file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from imgan.errors import UsageError
from imgan.io.images import read_image, to_float
from imgan.train import vgg
from tests.conftest import SHARED_ASSETS

torch = pytest.importorskip("torch")

from imgan.train.perceptual_distance import PerceptualDistance, unit_normalise  # noqa: E402

VGG_FILE = SHARED_ASSETS / "vgg19" / "vgg19_imagenet_conv1_1-conv3_4.pth"
PHOTO = SHARED_ASSETS / "photos" / "bsds500" / "test" / "103006.jpg"
CROP = 96


@pytest.fixture(scope="module")
def distance() -> PerceptualDistance:
    if not VGG_FILE.is_file():
        pytest.skip(f"shared VGG19 weights not present: {VGG_FILE}")
    return PerceptualDistance(VGG_FILE)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    if not PHOTO.is_file():
        pytest.skip(f"shared BSDS500 photo not present: {PHOTO}")
    rgb = read_image(PHOTO).rgb
    top, left = (rgb.shape[0] - CROP) // 2, (rgb.shape[1] - CROP) // 2
    return to_float(rgb[top:top + CROP, left:left + CROP])


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def test_unit_normalise_gives_unit_channel_vectors():
    features = torch.randn(2, 8, 5, 5) * 3
    norms = unit_normalise(features).square().sum(dim=1).sqrt()
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_distance_to_itself_is_zero_and_uint8_is_the_same_image(distance, photo):
    assert distance(photo, photo) == pytest.approx(0.0, abs=1e-7)
    as_uint8 = read_image(PHOTO).rgb
    top, left = (as_uint8.shape[0] - CROP) // 2, (as_uint8.shape[1] - CROP) // 2
    assert distance(as_uint8[top:top + CROP, left:left + CROP], photo) == pytest.approx(0.0, abs=1e-7)


def test_distance_is_symmetric(distance, photo):
    blurred = blur(photo, 2.0)
    assert distance(photo, blurred) == pytest.approx(distance(blurred, photo), rel=1e-5)


def test_more_blur_is_farther(distance, photo):
    values = [distance(photo, blur(photo, sigma)) for sigma in (0.5, 1.0, 2.0, 4.0)]
    assert values[0] > 0 and all(near < far for near, far in zip(values, values[1:]))


def test_shift_and_light_noise_are_closer_than_heavy_blur(distance, photo):
    heavy_blur = distance(photo, blur(photo, 3.0))
    shifted = distance(photo, np.roll(photo, 1, axis=1))
    noise = np.random.default_rng(0).normal(0.0, 5.0 / 255.0, photo.shape).astype(np.float32)
    noisy = distance(photo, np.clip(photo + noise, 0.0, 1.0))
    assert 0 < shifted < heavy_blur
    assert 0 < noisy < heavy_blur


def test_batched_distances_match_single_calls(distance, photo):
    others = [blur(photo, 1.0), np.roll(photo, 1, axis=0)]
    to_tensor = lambda images: torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())  # noqa: E731
    batched = distance.distances(to_tensor([photo, photo]), to_tensor(others))
    assert batched.shape == (2,)
    for value, other in zip(batched.tolist(), others):
        assert value == pytest.approx(distance(photo, other), rel=1e-4)


def test_refuses_images_of_different_sizes(distance, photo):
    with pytest.raises(UsageError, match="one size"):
        distance(photo, photo[:-4])


def test_weights_come_from_the_environment(monkeypatch, distance, photo):
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(VGG_FILE))
    from_env = PerceptualDistance()
    assert from_env.features.weights.file == VGG_FILE
    assert from_env(photo, blur(photo, 1.0)) == pytest.approx(distance(photo, blur(photo, 1.0)), rel=1e-6)
