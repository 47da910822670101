"""Synthetic camera motion over still photos: clips for training and measuring the natural video model.

We have two real clips; the photos give thousands of scenes. A clip here is a window moving over
a photo like a hand-held camera: a pan with a little random acceleration and a to-and-fro sway,
a steady zoom and a slow roll. Half the clips add a second, flat layer (an elliptical cut-out of
another photo moving on its own), so the model also sees occlusion and content that appears. Each layer is one affine
warp per frame (no parallax), so the motion is smooth and known. NumPy + OpenCV only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imgan.errors import InputError
from imgan.io.images import is_image_path, read_image, resize_plane

ROOM = 1.6  # the photo's short side is this many times the clip's long side: room to pan and zoom


@dataclass(frozen=True)
class CameraMotion:
    """The ranges clips are drawn from (uniform in +-value unless said), in pixels of the clip."""

    shift: float = 2.0  # pan speed per axis, px per frame
    jitter: float = 0.15  # random change of the pan speed, px per frame per frame (std)
    zoom: float = 0.012  # change of scale per frame (1.2 %)
    rotation: float = 0.5  # degrees per frame
    still: float = 0.15  # probability of a fixed camera (only the layer moves, if there is one)
    layer: float = 0.5  # probability of a second, moving layer
    layer_shift: float = 3.0  # its speed per axis, px per frame
    sway: float = 1.5  # amplitude (px, per axis, uniform in 0..sway) of a to-and-fro on top of the pan: wind, a hand
    sway_period: tuple[float, float] = (6.0, 20.0)  # frames


# For in-between frames (refine.py, `imgan interpolate --measure --photos`): the neighbours are up to
# 4 frames apart, so the motion between them is larger than between a predictor's frames.
INTERPOLATION_MOTION = CameraMotion(shift=3.0, layer_shift=4.0)


def load_photos(folder: str | Path, *, long_side: int) -> list[np.ndarray]:
    """Every photo under `folder` (recursively), RGB uint8, resized so its short side is ROOM x long_side."""
    files = sorted(path for path in Path(folder).rglob("*") if path.is_file() and is_image_path(path))
    if not files:
        raise InputError("no photos in the folder", path=folder, hint="pass a folder of .jpg/.png photos")
    photos = []
    for path in files:
        rgb = read_image(path).rgb
        scale = ROOM * long_side / min(rgb.shape[:2])
        photos.append(resize_plane(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))))  # (width, height)
    return photos


def camera_clip(photos: list[np.ndarray], rng: np.random.Generator, *, height: int, width: int, length: int,
                motion: CameraMotion = CameraMotion()) -> np.ndarray:
    """One clip (length, height, width, 3) uint8 over a photo drawn from `photos` (see load_photos)."""
    background = photos[rng.integers(len(photos))]
    still = rng.random() < motion.still
    fixed = CameraMotion(shift=0, jitter=0, zoom=0, rotation=0, sway=0)
    frames = _camera_frames(background, rng, height=height, width=width, length=length,
                            motion=fixed if still else motion)
    if still or rng.random() < motion.layer:
        frames = _with_layer(frames, photos[rng.integers(len(photos))], rng, motion)
    return frames


def fixed_camera_clips(photos: list[np.ndarray], count: int, *, height: int, width: int, length: int,
                       seed: int = 0, motion: CameraMotion = CameraMotion()) -> np.ndarray:
    """The same `count` clips for the same photos and seed: (count, length, height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    return np.stack([camera_clip(photos, rng, height=height, width=width, length=length, motion=motion)
                     for _ in range(count)])


def _camera_frames(photo: np.ndarray, rng: np.random.Generator, *, height: int, width: int, length: int,
                   motion: CameraMotion) -> np.ndarray:
    rows, columns = photo.shape[:2]
    margin = max(height, width) * 0.6
    centre = np.array([rng.uniform(margin, columns - margin), rng.uniform(margin, rows - margin)])
    velocity = rng.uniform(-motion.shift, motion.shift, 2)
    zoom, roll = rng.uniform(-motion.zoom, motion.zoom), math.radians(rng.uniform(-motion.rotation, motion.rotation))
    half = np.array([width / 2.0, height / 2.0])
    # a motion that turns back (not every clip extrapolates in a straight line)
    amplitude = rng.uniform(0.0, motion.sway, 2) if motion.sway else np.zeros(2)
    period, phase = rng.uniform(*motion.sway_period, 2), rng.uniform(0.0, 2 * math.pi, 2)
    frames = []
    for t in range(length):
        scale, angle = (1.0 + zoom) ** t, roll * t
        linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        swayed = centre + amplitude * (np.sin(2 * math.pi * t / period + phase) - np.sin(phase))
        # output pixel p comes from swayed centre + linear @ (p - half): the inverse map warpAffine takes
        matrix = np.hstack([linear, (swayed - linear @ half)[:, None]])
        frames.append(cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT_101))
        velocity = velocity + rng.normal(0.0, motion.jitter, 2) if motion.jitter else velocity
        centre = centre + velocity
    return np.stack(frames)


def _with_layer(frames: np.ndarray, photo: np.ndarray, rng: np.random.Generator, motion: CameraMotion) -> np.ndarray:
    """frames with an elliptical cut-out of `photo` (soft edge) moving over them at its own speed."""
    length, height, width = frames.shape[:3]
    radii = rng.uniform(0.15, 0.3, 2) * min(height, width)
    side_y, side_x = int(2 * radii[1]) + 4, int(2 * radii[0]) + 4
    top, left = rng.integers(0, photo.shape[0] - side_y), rng.integers(0, photo.shape[1] - side_x)
    patch = photo[top : top + side_y, left : left + side_x]
    mask = np.zeros((side_y, side_x), np.float32)
    cv2.ellipse(mask, (side_x // 2, side_y // 2), (int(radii[0]), int(radii[1])), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
    position = np.array([rng.uniform(-side_x / 2, width - side_x / 2), rng.uniform(-side_y / 2, height - side_y / 2)])
    velocity = rng.uniform(-motion.layer_shift, motion.layer_shift, 2)
    out = np.empty_like(frames)
    for t in range(length):
        matrix = np.array([[1.0, 0.0, position[0]], [0.0, 1.0, position[1]]])
        placed = cv2.warpAffine(patch, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        blended = frames[t] * (1.0 - alpha[..., None]) + placed * alpha[..., None]
        out[t] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        position = position + velocity
    return out
