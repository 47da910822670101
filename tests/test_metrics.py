from __future__ import annotations

import math

import numpy as np
import pytest

from imgan.errors import UsageError
from imgan.metrics import gaussian_kernel, periodic_peak, psnr, rgb_to_y, shave, ssim


def reference_ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, window: int = 11,
                   sigma: float = 1.5) -> float:
    """SSIM the slow, obvious way: every valid window, its Gaussian-weighted statistics."""
    offsets = np.arange(window) - (window - 1) / 2
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for top in range(a.shape[0] - window + 1):
        for left in range(a.shape[1] - window + 1):
            x = a[top:top + window, left:left + window].astype(np.float64)
            y = b[top:top + window, left:left + window].astype(np.float64)
            mx, my = (weights * x).sum(), (weights * y).sum()
            vx = (weights * (x - mx) ** 2).sum()
            vy = (weights * (y - my) ** 2).sum()
            cov = (weights * (x - mx) * (y - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_psnr_of_identical_arrays_is_infinite():
    image = np.random.default_rng(0).random((8, 9, 3))
    assert psnr(image, image.copy()) == math.inf


def test_psnr_of_a_known_mse():
    # MSE 0.01 with peak 1 -> 10 * log10(1 / 0.01) = 20 dB
    assert psnr(np.zeros((10, 10)), np.full((10, 10), 0.1)) == pytest.approx(20.0)
    # Same on the 0..255 scale: an error of 25.5 everywhere -> MSE 650.25 -> 20 dB
    assert psnr(np.zeros((4, 4)), np.full((4, 4), 25.5), data_range=255.0) == pytest.approx(20.0)
    # Half the pixels off by 0.2: MSE 0.02 -> 16.9897 dB
    a = np.zeros((2, 2))
    b = np.array([[0.2, 0.0], [0.2, 0.0]])
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / 0.02))


def test_psnr_refuses_different_shapes():
    with pytest.raises(UsageError, match="different shapes"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(1).random((24, 30))
    assert ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_is_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.random((20, 25)), rng.random((20, 25))
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert ssim(a, b) < 0.2  # independent noise is barely similar


def test_ssim_matches_a_window_by_window_reference():
    rng = np.random.default_rng(3)
    a = rng.random((19, 23))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    assert ssim(a, b) == pytest.approx(reference_ssim(a, b), abs=1e-10)
    a255, b255 = a * 255, b * 255
    assert ssim(a255, b255, data_range=255.0) == pytest.approx(reference_ssim(a255, b255, data_range=255.0), abs=1e-10)


def test_ssim_of_two_flat_images_is_the_luminance_term():
    # No variance: SSIM = (2 x y + C1) / (x² + y² + C1), with C1 = 0.01² = 1e-4
    value = ssim(np.full((16, 16), 0.2), np.full((16, 16), 0.4))
    assert value == pytest.approx((2 * 0.2 * 0.4 + 1e-4) / (0.2**2 + 0.4**2 + 1e-4))


def test_ssim_takes_only_two_dimensional_images_larger_than_the_window():
    with pytest.raises(UsageError, match="2-D"):
        ssim(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)))
    with pytest.raises(UsageError, match="at least 11x11"):
        ssim(np.zeros((10, 40)), np.zeros((10, 40)))


def test_gaussian_kernel_is_normalised_and_symmetric():
    kernel = gaussian_kernel(11, 1.5)
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, kernel[::-1])
    assert kernel.argmax() == 5


def test_rgb_to_y_uses_the_bt601_studio_range():
    rgb = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = np.array([16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255.0
    np.testing.assert_allclose(rgb_to_y(rgb), expected, atol=1e-12)
    assert rgb_to_y(np.zeros((3, 5, 3))).shape == (3, 5)


def test_shave_drops_each_border():
    array = np.arange(10 * 12).reshape(10, 12)
    shaved = shave(array, 2)
    assert shaved.shape == (6, 8)
    assert shaved[0, 0] == array[2, 2]
    assert shave(array, 0) is array
    with pytest.raises(UsageError, match="cannot shave"):
        shave(array, 5)


def test_periodic_peak_finds_a_stripe_pattern_its_period_and_angle_and_not_noise():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:160, 0:200]
    texture = rng.normal(0, 1, (160, 200))  # a broad spectrum, like a painted texture
    stripes = 0.5 * np.sin(2 * np.pi * (x + y) / (6 * math.sqrt(2)))  # period 6 px along the diagonal
    ratio, period, angle = periodic_peak(texture + stripes)
    assert ratio > 25 and abs(period - 6) < 0.3 and abs(abs(angle) - 45) < 4
    assert periodic_peak(texture)[0] < 20
    # a slow content gradient and long periods are outside the band
    assert periodic_peak(texture + np.sin(2 * np.pi * x / 40) * 5)[0] < 20
    with pytest.raises(UsageError):
        periodic_peak(np.zeros((20, 20)))
