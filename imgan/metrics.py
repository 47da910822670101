"""Image quality figures in NumPy: PSNR, SSIM, the Y channel and border shaving.

These follow the conventions of the super-resolution literature so that figures compare with
published tables: luma Y of ITU-R BT.601 in the "studio" range [16/255, 235/255] (MATLAB's
``rgb2ycbcr``), a border of ``scale`` pixels shaved before measuring, and SSIM as in Wang et al.
2004 (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, statistics over "valid" windows
only, as the authors' ``ssim_index.m`` does).
"""
from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

# ITU-R BT.601 luma for R, G, B in [0, 1], giving Y in 0..255 studio range (16..235).
_Y_OFFSET = 16.0
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of two same-shape arrays; inf when they are identical."""
    first, second = _same_shape_float(a, b)
    mse = float(np.mean((first - second) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity of two 2-D arrays (Wang et al. 2004), Gaussian-weighted windows.

    Only windows that lie wholly inside the image count (no padding), so the figure matches the
    reference MATLAB code and the SR literature; each side must be at least ``window`` long.
    """
    return float(np.mean(ssim_map(a, b, data_range=data_range, window=window, sigma=sigma, k1=k1, k2=k2)))


def ssim_map(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
             k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """The SSIM of every window lying wholly inside two 2-D (H, W) arrays: (H - window + 1, W - window + 1).

    Entry [i, j] belongs to the window centred on pixel (i + window // 2, j + window // 2), so a
    region's SSIM (e.g. inside an inpainted hole) is the mean over the entries centred in it.
    """
    first, second = _same_shape_float(a, b)
    if first.ndim != 2:
        raise UsageError(f"ssim takes 2-D arrays (one channel), got shape {first.shape}",
                         hint="compare the Y channel (rgb_to_y) or one channel at a time")
    if min(first.shape) < window:
        raise UsageError(f"ssim needs images of at least {window}x{window} pixels, got {first.shape}")
    kernel = gaussian_kernel(window, sigma)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mean_a = _filter_valid(first, kernel)
    mean_b = _filter_valid(second, kernel)
    # Variances and covariance as E[xy] - E[x]E[y] over each window.
    var_a = _filter_valid(first * first, kernel) - mean_a * mean_a
    var_b = _filter_valid(second * second, kernel) - mean_b * mean_b
    covariance = _filter_valid(first * second, kernel) - mean_a * mean_b
    numerator = (2.0 * mean_a * mean_b + c1) * (2.0 * covariance + c2)
    denominator = (mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)
    return numerator / denominator


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of ``size`` taps; its outer product is MATLAB's fspecial('gaussian')."""
    if size < 1 or sigma <= 0:
        raise UsageError(f"a Gaussian window needs size >= 1 and sigma > 0, got {size} and {sigma}")
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(offsets * offsets) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def rgb_to_y(rgb01: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> (...) BT.601 luma Y in [16/255, 235/255], float64.

    Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, as MATLAB's rgb2ycbcr on doubles.
    """
    rgb = np.asarray(rgb01, dtype=np.float64)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise UsageError(f"rgb_to_y takes (..., 3) RGB arrays, got shape {rgb.shape}")
    return (_Y_OFFSET + rgb @ _Y_WEIGHTS) / 255.0


def shave(array: np.ndarray, pixels: int) -> np.ndarray:
    """``array`` (H, W, ...) without ``pixels`` rows and columns at each border (a view)."""
    if pixels < 0:
        raise UsageError(f"shave takes a number of pixels >= 0, got {pixels}")
    height, width = np.shape(array)[:2]
    if 2 * pixels >= min(height, width):
        raise UsageError(f"cannot shave {pixels} pixels from each border of a {height}x{width} image")
    if pixels == 0:
        return array
    return array[pixels:height - pixels, pixels:width - pixels]


def _same_shape_float(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape:
        raise UsageError(f"cannot compare arrays of different shapes {first.shape} and {second.shape}")
    if first.size == 0:
        raise UsageError("cannot compare empty arrays")
    return first, second


def _filter_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation of a 2-D array with ``kernel`` along both axes, 'valid' region only."""
    taps = len(kernel)
    rows = image.shape[0] - taps + 1
    columns = image.shape[1] - taps + 1
    vertical = sum(weight * image[k:k + rows, :] for k, weight in enumerate(kernel))  # (rows, W)
    return sum(weight * vertical[:, k:k + columns] for k, weight in enumerate(kernel))  # (rows, columns)


def periodic_peak(plane: np.ndarray, *, shortest: float = 3.0, longest: float = 10.0) -> tuple[float, float, float]:
    """The strongest regular pattern in a 2-D ``plane`` with a period between ``shortest`` and ``longest`` px:
    (peak power over the band's median power, in dB; its period in px; its angle in degrees, 0 = vertical
    stripes). A Hann window keeps the borders from drawing a cross into the spectrum. A painted texture
    spreads its power over many frequencies (a few dB to ~20 dB); a net that lays one fixed stripe
    pattern over the picture concentrates it in one (30-50 dB)."""
    if plane.ndim != 2 or min(plane.shape) < 4 * longest:
        raise UsageError(f"periodic_peak takes a 2-D plane of at least {4 * longest:g} px a side, got {plane.shape}")
    values = plane.astype(np.float64)
    values = (values - values.mean()) * np.outer(np.hanning(values.shape[0]), np.hanning(values.shape[1]))
    power = np.abs(np.fft.rfft2(values)) ** 2
    fy = np.fft.fftfreq(values.shape[0])[:, None]
    fx = np.fft.rfftfreq(values.shape[1])[None, :]
    radius = np.hypot(fy, fx)
    band = (radius >= 1.0 / longest) & (radius <= 1.0 / shortest)
    in_band = np.where(band, power, 0.0)
    row, column = np.unravel_index(int(np.argmax(in_band)), in_band.shape)
    ratio_db = 10.0 * math.log10(in_band[row, column] / max(float(np.median(power[band])), 1e-30))
    frequency_y, frequency_x = float(fy[row, 0]), float(fx[0, column])
    return ratio_db, 1.0 / float(radius[row, column]), math.degrees(math.atan2(frequency_y, frequency_x))
