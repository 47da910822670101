"""Real-ESRGAN's second-order degradation (imgan_srgan.degrade): each stage's effect, the pipeline's
shape, range and 8-bit grid, seeding, and the fixed evaluation protocol. NumPy only, fast."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from imgan.errors import UsageError
from imgan.io.images import to_float
from imgan_srgan.degrade import (
    DegradationConfig, add_gaussian_noise, add_poisson_noise, apply_blur, bessel_j1, bivariate_kernel, degrade,
    degrade_fixed, final_sinc_kernel, jpeg, random_blur_kernel, random_noise, random_resize, resize, sinc_kernel,
)
from tests.conftest import gradient_image

CONFIG = DegradationConfig()


def texture(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth colour image with fine texture, float32 in [0, 1]."""
    return to_float(gradient_image(size, size, seed))


def high_frequency_energy(image: np.ndarray) -> float:
    return float(np.mean(np.diff(image, axis=0) ** 2) + np.mean(np.diff(image, axis=1) ** 2))


# ------------------------------------------------------------------------------------- kernels

def test_isotropic_kernel_is_symmetric_and_sums_to_one():
    kernel = bivariate_kernel(15, 2.0, 2.0)
    assert kernel.shape == (15, 15) and kernel.dtype == np.float32
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    for turned in (kernel.T, kernel[::-1], kernel[:, ::-1], np.rot90(kernel)):
        np.testing.assert_allclose(turned, kernel, atol=1e-7)
    assert kernel.argmax() == kernel.size // 2


def test_anisotropic_kernel_is_not_rotation_symmetric():
    kernel = bivariate_kernel(21, 3.0, 0.8, theta=0.4)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.abs(np.rot90(kernel) - kernel).max() > 0.3 * kernel.max()
    # still point-symmetric, so OpenCV's correlation is the convolution of the paper
    np.testing.assert_allclose(kernel[::-1, ::-1], kernel, atol=1e-7)


def test_generalised_and_plateau_kernels_change_the_tails():
    gaussian = bivariate_kernel(21, 2.0, 2.0)
    sharp_top = bivariate_kernel(21, 2.0, 2.0, beta=3.0)  # generalised Gaussian, beta > 1: flat top, short tails
    plateau = bivariate_kernel(21, 2.0, 2.0, plateau=True, beta=1.0)  # 1 / (1 + q): heavy tails
    for kernel in (sharp_top, plateau):
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    assert sharp_top[10, 0] < gaussian[10, 0] < plateau[10, 0]


def test_random_kernels_have_odd_sizes_in_range_and_sum_to_one():
    rng = np.random.default_rng(0)
    sizes = set()
    for stage in (1, 2):
        for _ in range(60):
            kernel = random_blur_kernel(rng, CONFIG, stage)
            assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
            assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
            sizes.add(kernel.shape[0])
    assert sizes <= set(range(7, 22, 2)) and len(sizes) >= 6


def test_bessel_j1_matches_tabulated_values():
    values = bessel_j1(np.array([0.0, 1.0, 3.8317, 10.0]))
    np.testing.assert_allclose(values, [0.0, 0.4400505857, 0.0, 0.0434727462], atol=2e-5)


def test_sinc_kernel_rings():
    kernel = sinc_kernel(21, math.pi / 4)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    assert kernel.min() < -0.1 * kernel.max()  # negative side lobes
    np.testing.assert_allclose(np.rot90(kernel), kernel, atol=1e-7)
    step = np.zeros((64, 64, 3), np.float32)
    step[:, 32:] = 0.8
    filtered = apply_blur(step, kernel)
    assert filtered.max() > 0.8 + 0.02 and filtered.min() < -0.02  # overshoot and undershoot beside the edge
    gaussian = apply_blur(step, bivariate_kernel(21, 2.0, 2.0))
    assert gaussian.max() <= 0.8 + 1e-6 and gaussian.min() >= -1e-6  # a positive kernel does not ring


def test_final_sinc_kernel_is_sometimes_absent():
    rng = np.random.default_rng(1)
    kernels = [final_sinc_kernel(rng, CONFIG) for _ in range(200)]
    absent = sum(kernel is None for kernel in kernels)
    assert 15 <= absent <= 70  # probability 0.2
    assert final_sinc_kernel(rng, replace(CONFIG, final_sinc_prob=0.0)) is None


def test_blur_lowers_high_frequency_energy():
    image = texture()
    blurred = apply_blur(image, bivariate_kernel(9, 1.5, 1.5))
    assert blurred.shape == image.shape and blurred.dtype == np.float32
    assert high_frequency_energy(blurred) < 0.3 * high_frequency_energy(image)
    assert blurred.mean() == pytest.approx(image.mean(), abs=2e-3)  # the kernel keeps the mean


# -------------------------------------------------------------------------------------- resize

def test_resize_changes_the_size():
    image = texture(64)
    for mode in ("area", "bilinear", "bicubic"):
        assert resize(image, (40, 24), mode).shape == (40, 24, 3)
    rng = np.random.default_rng(0)
    up = replace(CONFIG, resize_prob=(1.0, 0.0, 0.0))
    down = replace(CONFIG, resize_prob=(0.0, 1.0, 0.0))
    keep = replace(CONFIG, resize_prob2=(0.0, 0.0, 1.0))
    assert random_resize(image, rng, up).shape[0] >= 64
    small = random_resize(image, rng, down)
    assert small.shape[0] <= 64 and small.shape[:2] == (small.shape[0], small.shape[0])
    assert random_resize(image, rng, keep, stage=2, base=(16, 24)).shape == (16, 24, 3)
    with pytest.raises(UsageError):
        resize(image, (8, 8), "nearest")


# --------------------------------------------------------------------------------------- noise

def test_gaussian_noise_raises_the_residual_std_by_sigma():
    grey = np.full((128, 128, 3), 0.5, np.float32)
    noisy = add_gaussian_noise(grey, np.random.default_rng(0), 10.0)
    assert np.std(noisy - grey) == pytest.approx(10.0 / 255.0, rel=0.03)
    assert noisy.dtype == np.float32


def test_grey_noise_is_equal_across_channels():
    image = 0.25 + 0.5 * texture(64)  # away from 0 and 1, where clipping would differ per channel
    for noisy in (add_gaussian_noise(image, np.random.default_rng(0), 5.0, gray=True),
                  add_poisson_noise(image, np.random.default_rng(0), 1.0, gray=True)):
        residual = noisy - image
        assert np.std(residual) > 1e-3
        np.testing.assert_allclose(residual[..., 1], residual[..., 0], atol=1e-6)
        np.testing.assert_allclose(residual[..., 2], residual[..., 0], atol=1e-6)
    colour = add_gaussian_noise(image, np.random.default_rng(0), 5.0) - image
    assert np.abs(colour[..., 1] - colour[..., 0]).mean() > 1e-3


def test_poisson_noise_variance_scales_with_intensity():
    # 256 grey levels in a ramp (so 256 counting levels), and two flat patches at 0.2 and 0.8
    image = np.zeros((256, 512, 3), np.float32)
    image[:16] = (np.arange(512) // 2 / 255.0)[None, :, None]
    image[16:, :256] = 0.2
    image[16:, 256:] = 0.8
    residual = add_poisson_noise(image, np.random.default_rng(0), 1.0) - image
    dark, bright = np.var(residual[16:, :256]), np.var(residual[16:, 256:])
    assert bright / dark == pytest.approx(4.0, rel=0.1)
    assert dark == pytest.approx(0.2 / 256, rel=0.1)  # variance = intensity / levels


def test_random_noise_stays_in_range():
    image = texture(48)
    rng = np.random.default_rng(3)
    for stage in (1, 2):
        for _ in range(10):
            noisy = random_noise(image, rng, CONFIG, stage)
            assert noisy.shape == image.shape and 0.0 <= noisy.min() and noisy.max() <= 1.0


# ---------------------------------------------------------------------------------------- JPEG

def blockiness(image: np.ndarray) -> float:
    """Mean jump across 8x8 block boundaries over the mean jump elsewhere (1 for no blocks)."""
    jumps = np.abs(np.diff(image.mean(axis=2), axis=1))  # jumps[:, c] is between columns c and c+1
    at_boundary = np.arange(jumps.shape[1]) % 8 == 7
    return float(jumps[:, at_boundary].mean() / jumps[:, ~at_boundary].mean())


def test_jpeg_q30_makes_stronger_block_boundaries_than_q95():
    image = apply_blur(texture(128), bivariate_kernel(7, 1.0, 1.0))
    low, high = jpeg(image, 30), jpeg(image, 95)
    assert low.shape == image.shape and low.dtype == np.float32
    assert blockiness(low) > 1.3 * blockiness(high)
    assert np.abs(low - image).mean() > 2 * np.abs(high - image).mean()
    with pytest.raises(UsageError):
        jpeg(image, 0)


# ------------------------------------------------------------------------------------ pipeline

def test_degrade_gives_hr_over_scale_float32_on_the_8_bit_grid():
    hr = texture(96)[:, :64]
    for seed in range(8):
        lr = degrade(hr, np.random.default_rng(seed), CONFIG, scale=4)
        assert lr.shape == (24, 16, 3) and lr.dtype == np.float32
        assert 0.0 <= lr.min() and lr.max() <= 1.0
        np.testing.assert_array_equal(np.rint(lr * 255) / np.float32(255), lr)
    assert degrade(hr, np.random.default_rng(0), CONFIG, scale=2).shape == (48, 32, 3)


def test_degrade_needs_multiples_of_the_scale():
    with pytest.raises(UsageError, match="multiples"):
        degrade(texture(50), np.random.default_rng(0), CONFIG, scale=4)
    with pytest.raises(UsageError):
        degrade(texture(48)[..., 0], np.random.default_rng(0), CONFIG)


def test_degrade_is_deterministic_under_a_seed_and_seeds_differ():
    hr = texture(64)
    first = degrade(hr, np.random.default_rng(7), CONFIG)
    assert degrade(hr, np.random.default_rng(7), CONFIG).tobytes() == first.tobytes()
    others = [degrade(hr, np.random.default_rng(seed), CONFIG) for seed in (8, 9)]
    assert all(other.tobytes() != first.tobytes() for other in others)
    # uint8 input is the same picture as its float version
    uint8 = gradient_image(64, 64, 0)
    assert degrade(uint8, np.random.default_rng(7), CONFIG).tobytes() == first.tobytes()


def test_fixed_protocol_is_the_same_across_calls_and_differs_per_image():
    hr = texture(64)
    first = degrade_fixed(hr, 3, CONFIG, 4)
    assert degrade_fixed(hr, 3, CONFIG, 4).tobytes() == first.tobytes()
    assert degrade_fixed(hr, 4, CONFIG, 4).tobytes() != first.tobytes()
    with pytest.raises(UsageError):
        degrade_fixed(hr, -1, CONFIG, 4)


# -------------------------------------------------------------------------------------- config

def test_config_defaults_and_json_round_trip():
    assert CONFIG.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert CONFIG.stage(2).blur_sigma == (0.2, 1.5) and CONFIG.stage(1).noise_range == (1.0, 30.0)
    stored = json.loads(json.dumps(CONFIG.to_dict()))
    assert DegradationConfig.from_dict(stored) == CONFIG


@pytest.mark.parametrize("change", [
    {"kernel_prob": (0.5, 0.5, 0.0, 0.0, 0.0, 0.1)},
    {"resize_prob2": (0.5, 0.5)},
    {"kernel_size_range": (8, 21)},
    {"jpeg_range": (30, 101)},
    {"blur_sigma2": (1.5, 0.2)},
    {"final_sinc_prob": 1.5},
    {"resize_modes": ("nearest",)},
])
def test_config_refuses_bad_settings(change):
    with pytest.raises(UsageError):
        replace(CONFIG, **change)


def test_the_photo_protocol_is_the_literature_lr_plus_blur_noise_and_jpeg_fixed_per_image():
    from imgan_srgan.protocol import PhotoDegradation, degrade_photo_fixed, make_eval_image, matlab_imresize

    import cv2

    hr = cv2.resize(gradient_image(24, 32, seed=5), (128, 96), interpolation=cv2.INTER_CUBIC)  # photo-smooth
    first = degrade_photo_fixed(hr, 2)
    assert first.shape == (24, 32, 3) and first.dtype == np.float32
    assert degrade_photo_fixed(hr, 2).tobytes() == first.tobytes()            # seeded by the image's index
    assert degrade_photo_fixed(hr, 3).tobytes() != first.tobytes()
    clean = to_float(matlab_imresize(hr, 0.25))
    residual = first - clean
    assert 2.0 / 255 < residual.std() < 30.0 / 255                            # blur, noise, JPEG: damage, not another image
    assert abs(float(residual.mean())) < 2.0 / 255
    grey = np.full((128, 128, 3), 128, np.uint8)  # on a flat picture only the noise is left (sigma 4/255;
    # JPEG 100 still averages the chroma over 2x2 pixels, which takes part of the colour noise)
    noise_only = degrade_photo_fixed(grey, 0, PhotoDegradation(jpeg_quality=100)) - 128 / 255
    assert 2.5 / 255 < noise_only.std() < 4.5 / 255
    assert degrade_photo_fixed(grey, 0).std() < noise_only.std()  # JPEG 70 smooths part of it away
    pair = make_eval_image("x", hr, 4, degrade="photo", index=2)
    assert np.array_equal(pair.lr, np.rint(first * 255).astype(np.uint8))
