"""Random training masks: free-form brush strokes (DeepFill v2's algorithm) and boxes.

Written from the description in Yu et al. 2019 ("Free-Form Image Inpainting with Gated
Convolution", supplementary Algorithm 1): a stroke starts at a random point and walks through a
random number of vertices; each segment has a random angle (every other one mirrored, so strokes
zig-zag instead of curling), a random length and is drawn with a random brush width, with a disc
at every vertex so that the joints are round. Several strokes, and sometimes boxes, are added
until the hole covers a target fraction of the image drawn uniformly from `area`.

NumPy and OpenCV only; all randomness comes from the `rng` passed in, so a mask is a pure
function of its seed. Masks are bool (H, W) arrays, True = hole.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from imgan.errors import UsageError

DEFAULT_AREA = (0.05, 0.6)
_MAX_ATTEMPTS = 60  # strokes or boxes tried before topping up with rectangles


def stroke(height: int, width: int, rng: np.random.Generator, *, max_vertices: int = 12,
           max_length: float = 0.3, brush_width: tuple[float, float] = (0.03, 0.2),
           max_angle: float = 2 * math.pi / 5) -> np.ndarray:
    """One free-form brush stroke, bool (H, W). Lengths and widths are fractions of the shorter side."""
    side = min(height, width)
    canvas = np.zeros((height, width), dtype=np.uint8)
    vertices = int(rng.integers(4, max_vertices + 1))
    thickness = max(1, int(round(rng.uniform(*brush_width) * side)))
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    for index in range(vertices):
        angle = rng.uniform(0, max_angle)
        if index % 2 == 0:
            angle = 2 * math.pi - angle
        length = rng.uniform(0.1, 1.0) * max_length * side
        end_x = float(np.clip(x + length * math.cos(angle), 0, width - 1))
        end_y = float(np.clip(y + length * math.sin(angle), 0, height - 1))
        cv2.line(canvas, (round(x), round(y)), (round(end_x), round(end_y)), 1, thickness)
        cv2.circle(canvas, (round(end_x), round(end_y)), thickness // 2, 1, -1)
        x, y = end_x, end_y
    return canvas.astype(bool)


def box(height: int, width: int, rng: np.random.Generator, *, sides: tuple[float, float] = (0.1, 0.5)) -> np.ndarray:
    """One axis-aligned rectangle, bool (H, W); its sides are fractions of the image's sides."""
    box_h = max(1, int(rng.uniform(*sides) * height))
    box_w = max(1, int(rng.uniform(*sides) * width))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    hole = np.zeros((height, width), dtype=bool)
    hole[top:top + box_h, left:left + box_w] = True
    return hole


def random_mask(height: int, width: int, rng: np.random.Generator, *,
                area: tuple[float, float] = DEFAULT_AREA, box_probability: float = 0.2) -> np.ndarray:
    """Strokes (and with `box_probability` per shape, boxes) until the hole covers a target
    fraction drawn uniformly from `area`; never more than area[1] and never less than area[0]."""
    low, high = area
    if not 0.0 < low <= high < 1.0:
        raise UsageError(f"mask area range must satisfy 0 < low <= high < 1, got {area}")
    target = rng.uniform(low, high)
    hole = np.zeros((height, width), dtype=bool)
    for _ in range(_MAX_ATTEMPTS):
        shape = box(height, width, rng) if rng.random() < box_probability else stroke(height, width, rng)
        candidate = hole | shape
        if candidate.mean() <= high:  # a shape that would overshoot is skipped, not clipped
            hole = candidate
        if hole.mean() >= target:
            return hole
    return _top_up(hole, low, rng)


def _top_up(hole: np.ndarray, low: float, rng: np.random.Generator) -> np.ndarray:
    """Add rectangles no larger than what is missing until the hole covers `low` (rarely needed:
    only when many strokes in a row would have overshot the upper bound)."""
    height, width = hole.shape
    while hole.mean() < low:
        missing = int(math.ceil((low - hole.mean()) * height * width))
        box_h = int(min(height, max(1, math.isqrt(missing))))
        box_w = int(min(width, max(1, math.ceil(missing / box_h))))
        top = int(rng.integers(0, height - box_h + 1))
        left = int(rng.integers(0, width - box_w + 1))
        hole[top:top + box_h, left:left + box_w] = True
    return hole
