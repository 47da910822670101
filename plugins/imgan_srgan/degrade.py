"""Real-ESRGAN's second-order degradation model, in NumPy and OpenCV (no torch).

Wang et al. 2021, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic
Data": an HR image becomes a "real-world" LR image through the classical chain applied twice,

    first order:  blur (k1) -> random resize -> Gaussian or Poisson noise -> JPEG
    second order: blur (k2, with probability 0.8) -> random resize -> noise
    final:        in random order, [resize to HR / scale, then 2-D sinc filter (prob. 0.8)] and JPEG

then clipped to [0, 1] and rounded to 8 bits. Blur kernels are isotropic or anisotropic
Gaussians, generalised Gaussians (exp(-q^beta / 2)) and plateau kernels (1 / (1 + q^beta)), of odd
size 7..21, or (probability 0.1) a circular 2-D sinc (ideal low-pass), which makes ringing and
overshoot. The defaults are the official Real-ESRGAN x4plus training settings, knob names as in
its option files; the second-stage resize probabilities (up/down/keep) are its 0.3/0.4/0.3.

Differences from the torch reference (basicsr): JPEG is OpenCV's encoder (libjpeg, 4:2:0 chroma,
integer quality) instead of the differentiable DiffJPEG, so every JPEG step also rounds to 8 bits;
"area" resizing is OpenCV's INTER_AREA (torch's area mode is nearest-like when enlarging). The
2-D sinc's Bessel function J1 is computed here by its integral (no SciPy in the dependencies).

No torch in this module: it runs in data-loader workers and in the NumPy evaluator.
``degrade`` draws everything from the ``numpy.random.Generator`` it is given, so a seed fixes
the output bytes; ``degrade_fixed`` is the evaluation protocol's seeded degradation per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from imgan.config import JsonConfig
from imgan.errors import UsageError
from imgan.io.images import from_float, to_float

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_RESIZE_DIRECTIONS = ("up", "down", "keep")
# The evaluation protocol's seeds are (EVAL_SEED, image index): changing it changes every table.
EVAL_SEED = 2021
_J1_NODES = 128  # trapezoid nodes over one period: J1 exact to float64 for arguments below ~60


@dataclass(frozen=True)
class Stage:
    """The settings of one degradation order, as ``DegradationConfig.stage(1 or 2)`` gives them."""

    kernel_prob: tuple[float, ...]
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    sinc_prob: float
    resize_prob: tuple[float, float, float]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_range: tuple[float, float]
    poisson_scale_range: tuple[float, float]
    gray_noise_prob: float
    jpeg_range: tuple[int, int]


@dataclass(frozen=True)
class DegradationConfig(JsonConfig):
    """Every knob of the degradation, defaults from Real-ESRGAN (x4plus); a suffix 2 is the second order.

    Ranges are (low, high) drawn uniformly; probabilities of a choice follow the order of
    KERNEL_TYPES (kernel_prob*) or (up, down, keep) (resize_prob*). Noise sigmas are in 0..255
    units; JPEG qualities are integers, both ends included.
    """

    kernel_size_range: tuple[int, int] = (7, 21)  # odd sizes, both ends included
    resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    # first order
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    # second order
    second_blur_prob: float = 0.8
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    sinc_prob2: float = 0.1
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)
    # final: the x`scale` downscale with a sinc filter, and JPEG, in random order
    final_sinc_prob: float = 0.8

    def __post_init__(self) -> None:
        low, high = self.kernel_size_range
        if low < 1 or low % 2 == 0 or high % 2 == 0 or high < low:
            raise UsageError(f"kernel_size_range must be two odd sizes low <= high, got {self.kernel_size_range}")
        unknown = [mode for mode in self.resize_modes if mode not in RESIZE_MODES]
        if not self.resize_modes or unknown:
            raise UsageError(f"unknown resize mode {', '.join(unknown) or '(none given)'}",
                             hint=f"choose from {', '.join(RESIZE_MODES)}")
        for name in ("second_blur_prob", "final_sinc_prob"):
            _check_probability(name, getattr(self, name))
        for number in (1, 2):
            _check_stage(self.stage(number), "" if number == 1 else "2")

    def stage(self, number: int) -> Stage:
        """The settings of the first (1) or second (2) order."""
        if number not in (1, 2):
            raise UsageError(f"the degradation has stages 1 and 2, not {number}")
        suffix = "" if number == 1 else "2"
        return Stage(**{name: getattr(self, name + suffix) for name in Stage.__dataclass_fields__})


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{name} must be a probability in [0, 1], got {value}")


def _check_stage(stage: Stage, suffix: str) -> None:
    for name, choices in (("kernel_prob", len(KERNEL_TYPES)), ("resize_prob", len(_RESIZE_DIRECTIONS))):
        values = getattr(stage, name)
        if len(values) != choices or min(values) < 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise UsageError(f"{name}{suffix} must be {choices} probabilities summing to 1, got {values}")
    for name in ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
        _check_probability(name + suffix, getattr(stage, name))
    positive = ("blur_sigma", "betag_range", "betap_range", "resize_range", "poisson_scale_range", "jpeg_range")
    for name in positive + ("noise_range",):
        low, high = getattr(stage, name)
        if high < low or low < 0 or (low == 0 and name in positive):
            raise UsageError(f"{name}{suffix} must be a range low <= high of positive numbers, got {(low, high)}")
    if not 1 <= stage.jpeg_range[0] <= stage.jpeg_range[1] <= 100:
        raise UsageError(f"jpeg_range{suffix} must be qualities within 1..100, got {stage.jpeg_range}")


DEFAULT_CONFIG = DegradationConfig()


# ------------------------------------------------------------------------------------- kernels

def _kernel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size < 1 or size % 2 == 0:
        raise UsageError(f"a blur kernel needs an odd size >= 1, got {size}")
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    return np.meshgrid(offsets, offsets)  # x varies along columns, y along rows


def bivariate_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0, *,
                     plateau: bool = False, beta: float = 1.0) -> np.ndarray:
    """(size, size) float32 kernel summing to 1, covariance R(theta) diag(sx², sy²) R(theta)ᵀ.

    With q the squared Mahalanobis distance: exp(-q^beta / 2) (beta 1: Gaussian, otherwise the
    generalised Gaussian), or with ``plateau`` 1 / (1 + q^beta).
    """
    if sigma_x <= 0 or sigma_y <= 0 or beta <= 0:
        raise UsageError(f"kernel sigmas and beta must be > 0, got {sigma_x}, {sigma_y}, {beta}")
    x, y = _kernel_grid(size)
    cos, sin = math.cos(theta), math.sin(theta)
    along = cos * x + sin * y  # coordinates in the rotated frame of the principal axes
    across = -sin * x + cos * y
    q = (along / sigma_x) ** 2 + (across / sigma_y) ** 2
    kernel = 1.0 / (1.0 + q ** beta) if plateau else np.exp(-0.5 * q ** beta)
    return (kernel / kernel.sum()).astype(np.float32)


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1: (1/2π) ∫₀^2π cos(τ - x sin τ) dτ (trapezoid)."""
    tau = np.arange(_J1_NODES) * (2.0 * math.pi / _J1_NODES)
    x = np.asarray(x, dtype=np.float64)
    return np.cos(tau - x[..., None] * np.sin(tau)).mean(axis=-1)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """(size, size) float32 circular 2-D sinc (ideal low-pass with ``cutoff`` in radians, π = Nyquist),
    summing to 1: cutoff · J1(cutoff · r) / (2π r), and cutoff² / 4π at the centre."""
    if not 0 < cutoff <= math.pi:
        raise UsageError(f"a sinc cutoff must be in (0, pi], got {cutoff}")
    x, y = _kernel_grid(size)
    radius = np.hypot(x, y)
    centre = radius == 0
    safe = np.where(centre, 1.0, radius)
    kernel = np.where(centre, cutoff ** 2 / (4.0 * math.pi), cutoff * bessel_j1(cutoff * safe) / (2.0 * math.pi * safe))
    return (kernel / kernel.sum()).astype(np.float32)


def _random_kernel_size(rng: np.random.Generator, config: DegradationConfig) -> int:
    low, high = config.kernel_size_range
    return 2 * int(rng.integers(low // 2, high // 2 + 1)) + 1


def _random_beta(rng: np.random.Generator, beta_range: tuple[float, float]) -> float:
    # basicsr's rule: half the time below 1, half the time above (so [1, 2] gives 1 half the time)
    low, high = beta_range
    return float(rng.uniform(low, 1.0)) if rng.random() < 0.5 else float(rng.uniform(1.0, high))


def random_blur_kernel(rng: np.random.Generator, config: DegradationConfig = DEFAULT_CONFIG,
                       stage: int = 1) -> np.ndarray:
    """A random blur kernel of order ``stage``: a sinc (probability sinc_prob), else one of KERNEL_TYPES."""
    settings = config.stage(stage)
    size = _random_kernel_size(rng, config)
    if rng.random() < settings.sinc_prob:
        lowest = math.pi / 3 if size < 13 else math.pi / 5  # small kernels cannot hold a low cutoff
        return sinc_kernel(size, float(rng.uniform(lowest, math.pi)))
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=settings.kernel_prob))]
    sigma_x = float(rng.uniform(*settings.blur_sigma))
    if kind.endswith("aniso"):
        sigma_y = float(rng.uniform(*settings.blur_sigma))
        theta = float(rng.uniform(-math.pi, math.pi))
    else:
        sigma_y, theta = sigma_x, 0.0
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _random_beta(rng, settings.betag_range)
    elif kind.startswith("plateau"):
        beta = _random_beta(rng, settings.betap_range)
    return bivariate_kernel(size, sigma_x, sigma_y, theta, plateau=kind.startswith("plateau"), beta=beta)


def final_sinc_kernel(rng: np.random.Generator, config: DegradationConfig = DEFAULT_CONFIG) -> np.ndarray | None:
    """The last stage's sinc kernel (cutoff in [π/3, π]), or None (probability 1 - final_sinc_prob)."""
    if rng.random() >= config.final_sinc_prob:
        return None
    size = _random_kernel_size(rng, config)
    return sinc_kernel(size, float(rng.uniform(math.pi / 3, math.pi)))


def apply_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) float32 filtered by the centred ``kernel``, mirrored borders; not clipped."""
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


# -------------------------------------------------------------------------------------- resize

def resize(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """``image`` resized to size=(height, width) with ``mode`` "area", "bilinear" or "bicubic"; not clipped."""
    if mode not in RESIZE_MODES:
        raise UsageError(f"unknown resize mode {mode!r}", hint=f"choose from {', '.join(RESIZE_MODES)}")
    height, width = size
    if height < 1 or width < 1:
        raise UsageError(f"resize needs a positive size, got {size}")
    if (height, width) == image.shape[:2]:
        return image
    return cv2.resize(image, (width, height), interpolation=RESIZE_MODES[mode])


def _random_mode(rng: np.random.Generator, config: DegradationConfig) -> str:
    return config.resize_modes[int(rng.integers(len(config.resize_modes)))]


def random_resize(image: np.ndarray, rng: np.random.Generator, config: DegradationConfig = DEFAULT_CONFIG,
                  stage: int = 1, base: tuple[int, int] | None = None) -> np.ndarray:
    """Up, down or keep (resize_prob) by a factor from resize_range, times the size ``base``
    (height, width; default the image's own), in a random mode. Real-ESRGAN's second order
    resizes relative to the final LR size, so that stage passes it as ``base``."""
    settings = config.stage(stage)
    direction = _RESIZE_DIRECTIONS[int(rng.choice(len(_RESIZE_DIRECTIONS), p=settings.resize_prob))]
    low, high = settings.resize_range
    factor = {"up": lambda: rng.uniform(1.0, high), "down": lambda: rng.uniform(low, 1.0), "keep": lambda: 1.0}[direction]()
    mode = _random_mode(rng, config)
    height, width = base if base is not None else image.shape[:2]
    return resize(image, (max(1, int(height * factor)), max(1, int(width * factor))), mode)


# --------------------------------------------------------------------------------------- noise

def add_gaussian_noise(image: np.ndarray, rng: np.random.Generator, sigma: float, *, gray: bool = False) -> np.ndarray:
    """``image`` plus N(0, (sigma/255)²) noise, one plane shared by the channels if ``gray``; clipped to [0, 1]."""
    height, width, channels = image.shape
    noise = rng.standard_normal((height, width, 1) if gray else (height, width, channels), dtype=np.float32)
    return np.clip(image + noise * np.float32(sigma / 255.0), 0.0, 1.0)


def add_poisson_noise(image: np.ndarray, rng: np.random.Generator, scale: float, *, gray: bool = False) -> np.ndarray:
    """``image`` plus ``scale`` times shot noise; clipped to [0, 1].

    As basicsr: the image (its BT.601 luma if ``gray``) rounded to 8 bits counts its distinct
    levels, rounded up to a power of two (``vals``); the noise is Poisson(image · vals) / vals
    minus the image, so its variance is proportional to the intensity.
    """
    source = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if gray else image
    levels = from_float(source, np.uint8)
    vals = 2.0 ** math.ceil(math.log2(max(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)), 1)))
    rounded = levels.astype(np.float64) / 255.0
    noise = (rng.poisson(rounded * vals) / vals - rounded).astype(np.float32)
    if gray:
        noise = noise[..., None]
    return np.clip(image + noise * np.float32(scale), 0.0, 1.0)


def random_noise(image: np.ndarray, rng: np.random.Generator, config: DegradationConfig = DEFAULT_CONFIG,
                 stage: int = 1) -> np.ndarray:
    """Gaussian noise (probability gaussian_noise_prob) or else Poisson noise, grey with gray_noise_prob."""
    settings = config.stage(stage)
    if rng.random() < settings.gaussian_noise_prob:
        sigma = float(rng.uniform(*settings.noise_range))
        return add_gaussian_noise(image, rng, sigma, gray=bool(rng.random() < settings.gray_noise_prob))
    scale = float(rng.uniform(*settings.poisson_scale_range))
    return add_poisson_noise(image, rng, scale, gray=bool(rng.random() < settings.gray_noise_prob))


# ---------------------------------------------------------------------------------------- JPEG

def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (H, W, 3) RGB in [0, 1] through an OpenCV JPEG encode/decode at ``quality`` (1..100)."""
    if not 1 <= quality <= 100:
        raise UsageError(f"JPEG quality must be within 1..100, got {quality}")
    bgr = np.ascontiguousarray(from_float(image, np.uint8)[..., ::-1])
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise UsageError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return to_float(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def random_jpeg(image: np.ndarray, rng: np.random.Generator, config: DegradationConfig = DEFAULT_CONFIG,
                stage: int = 1) -> np.ndarray:
    """JPEG at a quality drawn from jpeg_range (both ends included)."""
    low, high = config.stage(stage).jpeg_range
    return jpeg(image, int(rng.integers(low, high + 1)))


# ------------------------------------------------------------------------------------ pipeline

def degrade(hr: np.ndarray, rng: np.random.Generator, config: DegradationConfig = DEFAULT_CONFIG,
            scale: int = 4) -> np.ndarray:
    """HR (H, W, 3) in [0, 1] (float, or uint8/uint16) -> LR (H/scale, W/scale, 3) float32 in [0, 1],
    on the 8-bit grid (exactly ``from_float(lr, np.uint8) / 255``). H and W must be multiples of scale."""
    if hr.ndim != 3 or hr.shape[2] != 3:
        raise UsageError(f"degrade takes an (H, W, 3) RGB image, got shape {hr.shape}")
    if scale < 1 or hr.shape[0] % scale or hr.shape[1] % scale:
        raise UsageError(f"degrade needs H and W multiples of the scale {scale}, got {hr.shape[0]}x{hr.shape[1]}",
                         hint="crop the HR image first (imgan_srgan.protocol.crop_to_multiple)")
    lr_size = (hr.shape[0] // scale, hr.shape[1] // scale)
    out = np.clip(to_float(hr), 0.0, 1.0)
    # first order
    out = apply_blur(out, random_blur_kernel(rng, config, 1))
    out = random_resize(out, rng, config, 1)
    out = random_noise(out, rng, config, 1)
    out = random_jpeg(out, rng, config, 1)
    # second order
    if rng.random() < config.second_blur_prob:
        out = apply_blur(out, random_blur_kernel(rng, config, 2))
    out = random_resize(out, rng, config, 2, base=lr_size)
    out = random_noise(out, rng, config, 2)
    # final: [resize to the LR size + sinc] and JPEG, in random order
    sinc = final_sinc_kernel(rng, config)
    mode = _random_mode(rng, config)
    low, high = config.jpeg_range2
    quality = int(rng.integers(low, high + 1))

    def shrink(image: np.ndarray) -> np.ndarray:
        image = resize(image, lr_size, mode)
        return image if sinc is None else apply_blur(image, sinc)

    out = jpeg(shrink(out), quality) if rng.random() < 0.5 else shrink(jpeg(out, quality))
    return to_float(from_float(out, np.uint8))


def fixed_rng(index: int) -> np.random.Generator:
    """The evaluation protocol's generator for image ``index`` (>= 0): seeded by (EVAL_SEED, index)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise UsageError(f"a degradation index must be an integer >= 0, got {index!r}")
    return np.random.default_rng([EVAL_SEED, int(index)])


def degrade_fixed(hr: np.ndarray, index: int, config: DegradationConfig = DEFAULT_CONFIG, scale: int = 4) -> np.ndarray:
    """The evaluation protocol's degradation of image number ``index`` (its place in the sorted set):
    the same bytes on every call and machine with the same OpenCV, for ``imgan eval sr --degrade real``."""
    return degrade(hr, fixed_rng(index), config, scale)

