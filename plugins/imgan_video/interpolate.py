"""`imgan interpolate`: in-between frames along the optical flow, and how close they come to real ones.

An in-between frame at time t in (0, 1) between frames A and B is both neighbours warped to time t
and blended by their closeness in time. The flows from t back to A and to B come from the dense
flows A->B and B->A (Farnebäck, OpenCV) under the linear-motion approximation of Jiang et al.
(Super SloMo, 2018):

    F(t->A) = -(1 - t) t F(A->B) + t^2 F(B->A)        F(t->B) = (1 - t)^2 F(A->B) - t (1 - t) F(B->A)
    I(t)    = (1 - t) A(x + F(t->A)) + t B(x + F(t->B))

This is the classical method; the baseline it has to beat itself is the linear blend
(1 - t) A + t B. `--method learned` refines it with a small trained net (refine.py: flow
corrections, visibility, residual; task "video-interp"), run here on ONNX Runtime from the same
Farnebäck flows. `measure_interpolation` holds back the frames between every `factor`-th frame of
a clip, rebuilds them with each method and compares with the real ones.
Inference side: NumPy, OpenCV and ONNX Runtime only.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from imgan.errors import InputError, UsageError

METHODS = ("flow", "blend", "learned")
CAMERA_CLIPS, CAMERA_CLIP_SIZE, CAMERA_SEED = 50, (240, 320), 2026  # measure_camera_motion's fixed clips
Progress = Callable[[int, int], None]
# (a, b, factor) -> the factor - 1 frames between RGB uint8 frames a and b, evenly spaced in time
InBetweens = Callable[[np.ndarray, np.ndarray, int], list[np.ndarray]]


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


def flows_from_t(flow_ab, flow_ba, t):
    """F(t->A), F(t->B) from the flows between the neighbours (linear motion, the formula above).
    Plain arithmetic, so the learned model's graph (refine.py) uses it on tensors too."""
    to_a = -(1.0 - t) * t * flow_ab + t * t * flow_ba
    to_b = (1.0 - t) ** 2 * flow_ab - t * (1.0 - t) * flow_ba
    return to_a, to_b


def in_between(a: np.ndarray, b: np.ndarray, t: float, *, method: str = "flow",
               flows: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The frame at time t in (0, 1) between RGB uint8 frames a and b (uint8). `flows`: (A->B, B->A) if known."""
    if method == "blend":
        mixed = (1.0 - t) * a.astype(np.float32) + t * b.astype(np.float32)
    else:
        forward, backward = flows if flows is not None else (dense_flow(a, b), dense_flow(b, a))
        to_a, to_b = flows_from_t(forward, backward, t)
        mixed = (1.0 - t) * warp(a, to_a) + t * warp(b, to_b)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def flow_in_betweens(a: np.ndarray, b: np.ndarray, factor: int) -> list[np.ndarray]:
    """--method flow: the frames between a and b along the Farnebäck flows (computed once)."""
    flows = (dense_flow(a, b), dense_flow(b, a))
    return [in_between(a, b, k / factor, method="flow", flows=flows) for k in range(1, factor)]


def blend_in_betweens(a: np.ndarray, b: np.ndarray, factor: int) -> list[np.ndarray]:
    """--method blend: cross-fades."""
    return [in_between(a, b, k / factor, method="blend") for k in range(1, factor)]


METHOD_FUNCTIONS: dict[str, InBetweens] = {"flow": flow_in_betweens, "blend": blend_in_betweens}


def refiner_inputs(a: np.ndarray, b: np.ndarray, factor: int,
                   multiple: int) -> tuple[tuple[np.ndarray, ...], tuple[int, int]]:
    """The learned model's inputs for the factor - 1 frames between a and b, one batch item per t,
    padded (edges repeated) to sides that are multiples of `multiple`; and the (height, width) to crop back to."""
    height, width = a.shape[:2]
    pad = ((0, -height % multiple), (0, -width % multiple), (0, 0))

    def planar(array: np.ndarray) -> np.ndarray:
        padded = np.pad(array.astype(np.float32), pad, mode="edge").transpose(2, 0, 1)
        return np.ascontiguousarray(np.repeat(padded[None], factor - 1, axis=0))

    times = np.array([k / factor for k in range(1, factor)], np.float32).reshape(-1, 1, 1, 1)
    return (planar(a) / 255.0, planar(b) / 255.0, planar(dense_flow(a, b)), planar(dense_flow(b, a)),
            times), (height, width)


def refiner_frames(frames: np.ndarray, crop: tuple[int, int]) -> list[np.ndarray]:
    """The learned model's (N, 3, H, W) output -> N RGB uint8 frames cropped to (height, width)."""
    height, width = crop
    rgb = np.clip(np.rint(frames[:, :, :height, :width].transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
    return list(rgb)


def learned_in_betweens(weights: str | os.PathLike | None = None, *, device: str = "auto",
                        threads: int | None = None) -> InBetweens:
    """--method learned: the trained refiner (task video-interp; default its shipped weights) on ONNX Runtime."""
    from imgan.runtime.session import load_model
    from imgan.weights import resolve_weights

    from .spec import INTERP_INPUTS, INTERP_TASK

    if weights is None and not learned_weights_installed():
        raise UsageError("no learned interpolation weights are installed (none ship yet: see the README)",
                         hint=f"train them with `imgan train {INTERP_TASK}`, export, then pass --weights FILE.onnx")
    chosen = resolve_weights(INTERP_TASK, weights)
    session = load_model(chosen.verified_path(), device=device, threads=threads)
    if tuple(item.name for item in session.session.get_inputs()) != INTERP_INPUTS:
        raise InputError("not a frame-interpolation model (a, b, flow_ab, flow_ba, t in)", path=chosen.file,
                         hint="use weights exported by `imgan export video-interp`")
    multiple = max(1, chosen.pad_multiple)

    def in_betweens(a: np.ndarray, b: np.ndarray, factor: int) -> list[np.ndarray]:
        inputs, crop = refiner_inputs(a, b, factor, multiple)
        return refiner_frames(session.run(*inputs)[0], crop)

    return in_betweens


def method_function(method: str, *, weights: str | os.PathLike | None = None, device: str = "auto",
                    threads: int | None = None) -> InBetweens:
    """The in-between function of a --method (UsageError for an unknown one)."""
    _check_method(method)
    if method == "learned":
        return learned_in_betweens(weights, device=device, threads=threads)
    if weights is not None:
        raise UsageError(f"--weights only goes with --method learned, not {method}")
    return METHOD_FUNCTIONS[method]


def interpolate_frames(frames: Iterable[np.ndarray], factor: int, in_betweens: InBetweens = flow_in_betweens,
                       progress: Progress | None = None, total: int | None = None) -> Iterator[np.ndarray]:
    """Every input frame, with factor - 1 generated frames between each two neighbours."""
    previous = None
    for index, frame in enumerate(frames):
        if previous is not None:
            yield from in_betweens(previous, frame, factor)
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
                     method: str = "flow", weights: str | os.PathLike | None = None, device: str = "auto",
                     threads: int | None = None, overwrite: bool = False, progress: Progress | None = None) -> Path:
    """Write `clip` with factor x the frames at factor x the frame rate (same duration, audio kept).

    Default output: <stem>.x<factor>.mp4 beside the clip. `weights`: --method learned's model."""
    from imgan.io.video import probe_video, read_frames, write_video

    _check_factor(factor)
    in_betweens = method_function(method, weights=weights, device=device, threads=threads)
    info = probe_video(clip)
    if info.frame_count < 2:
        raise InputError("a clip needs at least 2 frames to interpolate between", path=clip)
    output = Path(output) if output is not None else Path(clip).with_name(f"{Path(clip).stem}.x{factor}.mp4")
    frames = interpolate_frames(read_frames(clip), factor, in_betweens, progress, info.frame_count)
    return write_video(frames, output, fps=info.fps * factor, overwrite=overwrite,
                       audio_from=clip if info.has_audio else None)


def method_functions(methods: Iterable[str] | None = None, *, weights: str | os.PathLike | None = None,
                     device: str = "auto", threads: int | None = None) -> dict[str, InBetweens]:
    """{method: its in-between function} for measuring several at once (`weights`: the learned one's).

    methods None: the classical ones, and the learned one when `weights` are given or installed."""
    if methods is None:
        methods = METHODS if weights is not None or learned_weights_installed() else METHOD_FUNCTIONS
    return {method: method_function(method, weights=weights if method == "learned" else None, device=device,
                                    threads=threads) for method in methods}


def learned_weights_installed() -> bool:
    from imgan.weights import weights_for_task

    from .spec import INTERP_TASK

    return bool(weights_for_task(INTERP_TASK))


def measure_interpolation(clip: str | os.PathLike, *, factor: int = 2, max_frames: int | None = None,
                          methods: Iterable[str] | None = None, weights: str | os.PathLike | None = None,
                          device: str = "auto", threads: int | None = None, progress: Progress | None = None) -> dict:
    """Hold back the frames between every factor-th frame of `clip`, rebuild them with each method, compare.

    Returns {"source", "factor", "held_back", "methods": {method: {"psnr", "mse"}}}: PSNR in dB over
    all held-back pixels (RGB, 8 bit), and MSE per pixel in [0, 1] units."""
    from imgan.io.video import read_frames

    _check_factor(factor)
    frames = list(read_frames(clip, max_frames=max_frames))
    if len(frames) <= factor:
        raise InputError(f"the clip has {len(frames)} frames; holding back frames at --factor {factor} needs "
                         f"at least {factor + 1}", path=clip, hint="use a longer clip or a smaller --factor")
    functions = method_functions(methods, weights=weights, device=device, threads=threads)
    return {"source": str(clip), **measure_sequences([frames], factor, progress, methods=functions)}


def measure_mmnist(count: int, *, factor: int = 2, mnist: str | os.PathLike | None = None,
                   methods: Iterable[str] | None = None, weights: str | os.PathLike | None = None, device: str = "auto",
                   threads: int | None = None, progress: Progress | None = None) -> dict:
    """measure_interpolation on the first `count` 20-frame sequences of the fixed Moving MNIST test set."""
    from . import mmnist

    _check_factor(factor)
    functions = method_functions(methods, weights=weights, device=device, threads=threads)
    sequences = mmnist.fixed_test_set(mmnist.load_digits(mnist), count)  # (N, T, 64, 64) uint8
    clips = [[np.repeat(frame[..., None], 3, axis=2) for frame in sequence] for sequence in sequences]
    return {"source": f"moving-mnist test sequences 0-{count - 1}",
            **measure_sequences(clips, factor, progress, methods=functions)}


def measure_camera_motion(photos: str | os.PathLike, *, factor: int = 2, count: int = CAMERA_CLIPS,
                          methods: Iterable[str] | None = None, weights: str | os.PathLike | None = None,
                          device: str = "auto", threads: int | None = None, progress: Progress | None = None) -> dict:
    """measure_interpolation on `count` fixed synthetic camera-motion clips (camera.py) over the photos
    in `photos`, 240 x 320 and two in-between spans long: motion with known in-between frames, over
    photos a model never saw."""
    from .camera import INTERPOLATION_MOTION, fixed_camera_clips, load_photos

    _check_factor(factor)
    functions = method_functions(methods, weights=weights, device=device, threads=threads)
    height, width = CAMERA_CLIP_SIZE
    clips = fixed_camera_clips(load_photos(photos, long_side=width), count, height=height, width=width,
                               length=2 * factor + 1, seed=CAMERA_SEED, motion=INTERPOLATION_MOTION)
    return {"source": f"{count} camera-motion clips over {Path(photos).name}",
            **measure_sequences([list(clip) for clip in clips], factor, progress, methods=functions)}


def measure_sequences(clips: list[list[np.ndarray]], factor: int, progress: Progress | None = None, *,
                      methods: dict[str, InBetweens] | None = None) -> dict:
    """Errors of each method (default: the classical ones) on the frames between every factor-th
    frame of each clip (RGB uint8 frames)."""
    methods = methods if methods is not None else METHOD_FUNCTIONS
    windows = [(clip, start) for clip in clips for start in range(0, len(clip) - factor, factor)]
    squared = {method: 0.0 for method in methods}
    for done, (clip, start) in enumerate(windows):
        truth = clip[start + 1 : start + factor]
        for method, in_betweens in methods.items():
            rebuilt = in_betweens(clip[start], clip[start + factor], factor)
            squared[method] += sum(float(np.mean((r.astype(np.float64) - t) ** 2)) for r, t in zip(rebuilt, truth))
        if progress is not None:
            progress(done + 1, len(windows))
    held_back = len(windows) * (factor - 1)
    figures = {}
    for method in methods:
        mse = squared[method] / held_back / 255.0**2
        figures[method] = {"psnr": round(10 * math.log10(1.0 / mse), 2) if mse > 0 else math.inf,
                           "mse": round(mse, 6)}
    return {"factor": factor, "held_back": held_back, "methods": figures}
