"""The ×4 evaluation protocol of the super-resolution literature, in NumPy (no torch).

HR images are cropped to a multiple of the scale; LR images are made with MATLAB's
``imresize(hr, 1/scale, 'bicubic')`` (a = -0.5 cubic, widened by the scale factor for
antialiasing, symmetric borders, rounded to uint8), which is what published tables (Set5 bicubic
28.43 dB) use and what this module reimplements; the bicubic baseline upscales the LR image with
the same function. PSNR and SSIM are then taken on the BT.601 Y channel after shaving ``scale``
pixels from each border.

The grid energy (grid_energy) measures the faint periodic pattern a model can lay over flat areas:
the power of the residual (result - HR) at the 4- and 2-pixel periods, on the flattest windows of
HR, relative to the frequencies next to them.

Training makes its LR crops with torch's antialiased bicubic (imgan.train.data.bicubic_downscale),
the same a = -0.5 kernel; only the border handling differs, and the borders are shaved here.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgan.errors import InputError, UsageError
from imgan.io.images import from_float, is_image_path, read_image, to_float
from imgan.metrics import psnr, rgb_to_y, shave, ssim


@dataclass(frozen=True)
class EvalImage:
    name: str
    hr: np.ndarray  # (H, W, 3) uint8, H and W multiples of the scale
    lr: np.ndarray  # (H / scale, W / scale, 3) uint8


@dataclass(frozen=True)
class Quality:
    psnr_y: float
    ssim_y: float


GRID_WINDOW = 32  # px: 8 periods of 4, 16 of 2; periods 4 and 2 fall exactly on FFT bins
FLAT_FRACTION = 0.25  # the flattest quarter of an image's windows (by HR gradient) are measured


@dataclass(frozen=True)
class GridEnergy:
    """10·log10 of the residual's mean power at the grid frequencies over that at their neighbours:
    0 dB no grid (noise-like residual), +3 dB twice the power, and so on."""

    period4_db: float  # frequencies (a, b)·W/4, a or b odd: patterns that repeat every 4 px only
    period2_db: float  # (a, b)·W/2 but not (0, 0): every 2 px (a checkerboard, stripes)
    windows: int  # flat windows measured


def flat_residual_power(sr: np.ndarray, hr: np.ndarray, *, border: int, window: int = GRID_WINDOW,
                        flat_fraction: float = FLAT_FRACTION) -> tuple[np.ndarray, int]:
    """(window, window) power spectrum of the Y residual sr - hr summed over the flattest windows, and
    their number. Windows tile the shaved image; each residual has its mean removed (no taper: the
    grid frequencies are exact bins, and the neighbours share whatever leaks)."""
    sr_y = shave(rgb_to_y(to_float(sr)), border) * 255.0
    hr_y = shave(rgb_to_y(to_float(hr)), border) * 255.0
    rows, cols = hr_y.shape[0] // window, hr_y.shape[1] // window
    if rows * cols == 0:
        return np.zeros((window, window)), 0
    def tiles(y: np.ndarray) -> np.ndarray:  # (rows * cols, window, window)
        return y[:rows * window, :cols * window].reshape(rows, window, cols, window).swapaxes(1, 2).reshape(
            -1, window, window)

    hr_tiles, residual = tiles(hr_y), tiles(sr_y - hr_y)
    gradient = np.abs(np.diff(hr_tiles, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(hr_tiles, axis=2)).mean(axis=(1, 2))
    flat = np.argsort(gradient, kind="stable")[:max(1, int(round(flat_fraction * len(gradient))))]
    chosen = residual[flat] - residual[flat].mean(axis=(1, 2), keepdims=True)
    return (np.abs(np.fft.fft2(chosen)) ** 2).sum(axis=0), len(flat)


def grid_ratios(power: np.ndarray, windows: int) -> GridEnergy:
    """GridEnergy of a summed (W, W) residual power spectrum (W a multiple of 4)."""
    size = power.shape[0]
    quarter = size // 4
    period4 = [(a * quarter, b * quarter) for a in range(4) for b in range(4) if a % 2 or b % 2]
    period2 = [(a * quarter, b * quarter) for a in (0, 2) for b in (0, 2) if a or b]
    grid = set(period4) | set(period2) | {(0, 0)}

    def ratio_db(bins: list[tuple[int, int]]) -> float:
        near = {((y + dy) % size, (x + dx) % size) for y, x in bins for dy in (-1, 0, 1) for dx in (-1, 0, 1)} - grid
        at = np.mean([power[b] for b in bins])
        around = np.mean([power[b] for b in near])
        return float(10.0 * np.log10(max(at, 1e-12) / max(around, 1e-12)))

    return GridEnergy(period4_db=ratio_db(period4), period2_db=ratio_db(period2), windows=windows)


def grid_energy(sr: np.ndarray, hr: np.ndarray, *, border: int = 4, window: int = GRID_WINDOW,
                flat_fraction: float = FLAT_FRACTION) -> GridEnergy:
    """The 4- and 2-pixel grid in ``sr`` (H, W, 3 uint8) on HR's flat areas (see GridEnergy)."""
    return grid_ratios(*flat_residual_power(sr, hr, border=border, window=window, flat_fraction=flat_fraction))


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and Pillow's "bicubic")."""
    distance = np.abs(x)
    near = (1.5 * distance - 2.5) * distance * distance + 1.0
    far = ((-0.5 * distance + 2.5) * distance - 4.0) * distance + 2.0
    return np.where(distance <= 1.0, near, np.where(distance <= 2.0, far, 0.0))


def _resize_weights(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(out_length, taps) source indices and weights along one axis, as MATLAB's contributions()."""
    # Shrinking widens the kernel by 1/scale, which low-pass filters (antialiasing).
    stretch = min(scale, 1.0)
    width = 4.0 / stretch
    centres = np.arange(1, out_length + 1) / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based, like MATLAB
    left = np.floor(centres - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # (out, taps), 1-based
    weights = stretch * cubic(stretch * (centres[:, None] - indices))
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric borders: index 0 is index 1, -1 is 2, in_length + 1 is in_length, ...
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0.0, axis=0)
    return indices[:, keep], weights[:, keep]


def _resize_axis(array: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    indices, weights = _resize_weights(array.shape[axis], out_length, scale)
    moved = np.moveaxis(array, axis, 0)  # (in, ...)
    gathered = moved[indices]  # (out, taps, ...)
    weights = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * weights).sum(axis=1), 0, axis)


def matlab_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's ``imresize(image, scale, 'bicubic')`` of an (H, W[, C]) array.

    uint8 in -> uint8 out (rounded, clipped), like MATLAB; float in -> float64 out. Rows are
    resized first, then columns (MATLAB's order when both scales are equal).
    """
    if scale <= 0:
        raise UsageError(f"resize scale must be positive, got {scale}")
    height, width = image.shape[:2]
    out_height, out_width = int(math.ceil(height * scale)), int(math.ceil(width * scale))
    values = image.astype(np.float64)
    values = _resize_axis(values, 0, out_height, scale)
    values = _resize_axis(values, 1, out_width, scale)
    if image.dtype == np.uint8:
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return values


# ------------------------------------------------------------------------- the "photo" protocol

@dataclass(frozen=True)
class PhotoDegradation:
    """One fixed first-order chain, the one issue 14 measured on ("blur, x4 downscale, noise, JPEG 70"):
    the mild damage of a phone photo or a web JPEG, where the second-order training chain (``degrade``)
    spans far worse. Blur sigma in HR pixels; noise sigma on the 0..255 scale, colour Gaussian."""

    blur_sigma: float = 1.2
    noise_sigma: float = 4.0
    jpeg_quality: int = 70


PHOTO_DEGRADATION = PhotoDegradation()


def degrade_photo_fixed(hr: np.ndarray, index: int, settings: PhotoDegradation = PHOTO_DEGRADATION,
                        scale: int = 4) -> np.ndarray:
    """HR (H, W, 3) -> LR by the "photo" protocol: Gaussian blur, MATLAB-style bicubic x1/scale (the
    literature's LR), Gaussian noise seeded by image ``index``, JPEG; float32 on the 8-bit grid."""
    from .degrade import add_gaussian_noise, apply_blur, bivariate_kernel, fixed_rng, jpeg

    size = 2 * math.ceil(3 * settings.blur_sigma) + 1
    blurred = apply_blur(np.clip(to_float(hr), 0.0, 1.0),
                         bivariate_kernel(size, settings.blur_sigma, settings.blur_sigma))
    lr = to_float(matlab_imresize(from_float(blurred, np.uint8), 1.0 / scale))
    noisy = add_gaussian_noise(lr, fixed_rng(index), settings.noise_sigma)
    return to_float(from_float(jpeg(noisy, settings.jpeg_quality), np.uint8))


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    height, width = image.shape[:2]
    return image[: height - height % multiple, : width - width % multiple]


def make_eval_image(name: str, rgb: np.ndarray, scale: int, *, degrade: str = "bicubic", index: int = 0) -> EvalImage:
    """The protocol's pair: LR by MATLAB bicubic, or (``degrade="real"``) by the fixed, seeded
    real-world degradation of image number ``index`` (degrade.degrade_fixed), or (``"photo"``) by
    the fixed mild chain ``degrade_photo_fixed``."""
    hr = crop_to_multiple(_as_uint8(rgb), scale)
    if min(hr.shape[:2]) < 2 * scale + 11 * scale:
        raise InputError(f"image {name} is too small to evaluate at ×{scale}")
    if degrade == "real":
        from .degrade import degrade_fixed

        return EvalImage(name=name, hr=hr, lr=from_float(degrade_fixed(hr, index, scale=scale), np.uint8))
    if degrade == "photo":
        return EvalImage(name=name, hr=hr, lr=from_float(degrade_photo_fixed(hr, index, scale=scale), np.uint8))
    return EvalImage(name=name, hr=hr, lr=matlab_imresize(hr, 1.0 / scale))


def load_eval_set(folder: str | os.PathLike, scale: int = 4, *, degrade: str = "bicubic") -> list[EvalImage]:
    """Every image in ``folder`` (not recursive, sorted) prepared by the protocol."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("evaluation folder not found", path=root, hint="pass --data DIR with HR images, e.g. Set5")
    files = sorted(p for p in root.iterdir() if p.is_file() and is_image_path(p))
    if not files:
        raise InputError("no images in the evaluation folder", path=root)
    return [make_eval_image(path.stem, read_image(path).rgb, scale, degrade=degrade, index=index)
            for index, path in enumerate(files)]


def measure(sr: np.ndarray, hr: np.ndarray, *, border: int) -> Quality:
    """Y-channel PSNR/SSIM of an (H, W, 3) result against the HR image, both uint8, after shaving."""
    if sr.shape != hr.shape:
        raise UsageError(f"result {sr.shape} and reference {hr.shape} differ in size")
    sr_y = shave(rgb_to_y(to_float(sr)), border) * 255.0
    hr_y = shave(rgb_to_y(to_float(hr)), border) * 255.0
    return Quality(psnr_y=psnr(sr_y, hr_y, data_range=255.0), ssim_y=ssim(sr_y, hr_y, data_range=255.0))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    return matlab_imresize(lr, float(scale))


def mean_quality(results: list[Quality]) -> Quality:
    return Quality(psnr_y=float(np.mean([r.psnr_y for r in results])), ssim_y=float(np.mean([r.ssim_y for r in results])))


def _as_uint8(rgb: np.ndarray) -> np.ndarray:
    # 16-bit references are compared at 8 bits, like every published figure.
    return rgb if rgb.dtype == np.uint8 else from_float(to_float(rgb), np.uint8)
