"""`imgan interpolate`: in-between frames along the optical flow, and how close they come to real ones.

An in-between frame at time t in (0, 1) between frames A and B is both neighbours warped to time t
and blended by their closeness in time. The flows from t back to A and to B come from the dense
flows A->B and B->A (Farnebäck, OpenCV) under the linear-motion approximation of Jiang et al.
(Super SloMo, 2018):

    F(t->A) = -(1 - t) t F(A->B) + t^2 F(B->A)        F(t->B) = (1 - t)^2 F(A->B) - t (1 - t) F(B->A)
    I(t)    = (1 - t) A(x + F(t->A)) + t B(x + F(t->B))

No network: this is the classical method a learned interpolator has to beat. The baseline it has
to beat itself is the linear blend (1 - t) A + t B. `measure_interpolation` holds back the frames
between every `factor`-th frame of a clip, rebuilds them both ways and compares with the real ones.
Inference side: NumPy and OpenCV only.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from imgan.errors import InputError, UsageError

METHODS = ("flow", "blend")
Progress = Callable[[int, int], None]


def dense_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 (dx, dy) with a(x) ~ b(x + flow(x)), for RGB uint8 frames a and b."""
    gray_a, gray_b = (cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in (a, b))
    # 4 pyramid levels with 15-px windows follow motions of tens of pixels at video sizes.
    return cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, pyr_scale=0.5, levels=4, winsize=15, iterations=3,
                                        poly_n=5, poly_sigma=1.2, flags=0)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image sampled at x + flow(x) (bilinear, edges repeated): float32, like image's shape."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image.astype(np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def in_between(a: np.ndarray, b: np.ndarray, t: float, *, method: str = "flow",
               flows: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The frame at time t in (0, 1) between RGB uint8 frames a and b (uint8). `flows`: (A->B, B->A) if known."""
    if method == "blend":
        mixed = (1.0 - t) * a.astype(np.float32) + t * b.astype(np.float32)
    else:
        forward, backward = flows if flows is not None else (dense_flow(a, b), dense_flow(b, a))
        to_a = -(1.0 - t) * t * forward + t * t * backward
        to_b = (1.0 - t) ** 2 * forward - t * (1.0 - t) * backward
        mixed = (1.0 - t) * warp(a, to_a) + t * warp(b, to_b)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def in_betweens(a: np.ndarray, b: np.ndarray, factor: int, method: str) -> list[np.ndarray]:
    """The factor - 1 frames between a and b, evenly spaced in time (flows computed once)."""
    flows = (dense_flow(a, b), dense_flow(b, a)) if method == "flow" else None
    return [in_between(a, b, k / factor, method=method, flows=flows) for k in range(1, factor)]


def interpolate_frames(frames: Iterable[np.ndarray], factor: int, method: str = "flow",
                       progress: Progress | None = None, total: int | None = None) -> Iterator[np.ndarray]:
    """Every input frame, with factor - 1 generated frames between each two neighbours."""
    previous = None
    for index, frame in enumerate(frames):
        if previous is not None:
            yield from in_betweens(previous, frame, factor, method)
        yield frame
        previous = frame
        if progress is not None:
            progress(index + 1, total or index + 1)


def _check_factor(factor: int) -> None:
    if factor < 2:
        raise UsageError(f"--factor must be at least 2, got {factor}", hint="--factor 2 doubles the frame rate")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}", hint=f"use one of: {', '.join(METHODS)}")


def interpolate_clip(clip: str | os.PathLike, output: str | os.PathLike | None = None, *, factor: int = 2,
                     method: str = "flow", overwrite: bool = False, progress: Progress | None = None) -> Path:
    """Write `clip` with factor x the frames at factor x the frame rate (same duration, audio kept).

    Default output: <stem>.x<factor>.mp4 beside the clip."""
    from imgan.io.video import probe_video, read_frames, write_video

    _check_factor(factor)
    _check_method(method)
    info = probe_video(clip)
    if info.frame_count < 2:
        raise InputError("a clip needs at least 2 frames to interpolate between", path=clip)
    output = Path(output) if output is not None else Path(clip).with_name(f"{Path(clip).stem}.x{factor}.mp4")
    frames = interpolate_frames(read_frames(clip), factor, method, progress, info.frame_count)
    return write_video(frames, output, fps=info.fps * factor, overwrite=overwrite,
                       audio_from=clip if info.has_audio else None)


def measure_interpolation(clip: str | os.PathLike, *, factor: int = 2, max_frames: int | None = None,
                          progress: Progress | None = None) -> dict:
    """Hold back the frames between every factor-th frame of `clip`, rebuild them with each method, compare.

    Returns {"source", "factor", "held_back", "methods": {method: {"psnr", "mse"}}}: PSNR in dB over
    all held-back pixels (RGB, 8 bit), and MSE per pixel in [0, 1] units."""
    from imgan.io.video import read_frames

    _check_factor(factor)
    frames = list(read_frames(clip, max_frames=max_frames))
    if len(frames) <= factor:
        raise InputError(f"the clip has {len(frames)} frames; holding back frames at --factor {factor} needs "
                         f"at least {factor + 1}", path=clip, hint="use a longer clip or a smaller --factor")
    return {"source": str(clip), **measure_sequences([frames], factor, progress)}


def measure_mmnist(count: int, *, factor: int = 2, mnist: str | os.PathLike | None = None,
                   progress: Progress | None = None) -> dict:
    """measure_interpolation on the first `count` 20-frame sequences of the fixed Moving MNIST test set."""
    from . import mmnist

    _check_factor(factor)
    sequences = mmnist.fixed_test_set(mmnist.load_digits(mnist), count)  # (N, T, 64, 64) uint8
    clips = [[np.repeat(frame[..., None], 3, axis=2) for frame in sequence] for sequence in sequences]
    return {"source": f"moving-mnist test sequences 0-{count - 1}", **measure_sequences(clips, factor, progress)}


def measure_sequences(clips: list[list[np.ndarray]], factor: int, progress: Progress | None = None) -> dict:
    """Errors of both methods on the frames between every factor-th frame of each clip (RGB uint8 frames)."""
    windows = [(clip, start) for clip in clips for start in range(0, len(clip) - factor, factor)]
    squared = {method: 0.0 for method in METHODS}
    for done, (clip, start) in enumerate(windows):
        truth = clip[start + 1 : start + factor]
        for method in METHODS:
            rebuilt = in_betweens(clip[start], clip[start + factor], factor, method)
            squared[method] += sum(float(np.mean((r.astype(np.float64) - t) ** 2)) for r, t in zip(rebuilt, truth))
        if progress is not None:
            progress(done + 1, len(windows))
    held_back = len(windows) * (factor - 1)
    methods = {}
    for method in METHODS:
        mse = squared[method] / held_back / 255.0**2
        methods[method] = {"psnr": round(10 * math.log10(1.0 / mse), 2) if mse > 0 else math.inf,
                           "mse": round(mse, 6)}
    return {"factor": factor, "held_back": held_back, "methods": methods}
