"""`imgan eval video`: the model against three trivial baselines on the fixed Moving MNIST test set.

Figures follow the Moving MNIST literature (Srivastava et al. 2015, Shi et al. 2015, PredRNN):
"MSE" is the per-frame *sum* of squared errors over the 64x64 frame with pixels in [0, 1],
averaged over predicted frames and sequences; MAE likewise sums absolute errors per frame; SSIM
is the mean over frames of imgan.metrics.ssim. The baselines need no model: copy the last context
frame, predict a blank (black) frame, or predict the mean of the context frames. NumPy + ONNX
Runtime only.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from imgan.cards import card_path_for, update_metrics
from imgan.errors import InputError, UsageError
from imgan.io.images import to_float
from imgan.metrics import ssim

from . import mmnist
from .infer import load_step_model, rollout
from .spec import DEFAULT_CONTEXT, DEFAULT_FUTURE

BASELINES = ("copy_last", "blank", "context_mean")
FLOOR_FACTOR = 0.7  # the floor: MSE <= 0.7 x the best trivial baseline
BATCH = 100


def frame_errors(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame sums of squared and of absolute errors: (N, T, ...) -> two (N, T) arrays."""
    difference = prediction.astype(np.float64) - truth
    axes = tuple(range(2, difference.ndim))
    return (difference**2).sum(axis=axes), np.abs(difference).sum(axis=axes)


def frame_ssim(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """SSIM of each gray frame: (N, T, H, W) twice -> (N, T)."""
    scores = np.empty(prediction.shape[:2])
    for n, t in np.ndindex(*prediction.shape[:2]):
        scores[n, t] = ssim(prediction[n, t], truth[n, t])
    return scores


def baseline_predictions(context: np.ndarray, future: int) -> dict[str, np.ndarray]:
    """context (N, T, H, W) -> {baseline: (N, future, H, W)}."""
    def repeated(frame: np.ndarray) -> np.ndarray:
        return np.repeat(frame[:, None], future, axis=1)

    return {"copy_last": repeated(context[:, -1]), "blank": np.zeros_like(repeated(context[:, -1])),
            "context_mean": repeated(context.mean(axis=1))}


def _model_forecast(model, context: np.ndarray, future: int) -> np.ndarray:
    """Gray context (N, T, H, W) through the model -> gray forecast (N, future, H, W)."""
    clips = np.repeat(context[:, :, None], model.channels, axis=2)  # (N, T, C, H, W)
    return rollout(model, clips, future).mean(axis=2)


def evaluate_mmnist(weights: str | os.PathLike | None = None, *, sequences: int = mmnist.TEST_SEQUENCES,
                    mnist: str | os.PathLike | None = None, context: int = DEFAULT_CONTEXT,
                    future: int = DEFAULT_FUTURE, device: str = "auto", threads: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """MSE, MAE and SSIM (overall and per horizon t+1..t+future) of the model and the baselines
    on the first `sequences` sequences of the fixed test set."""
    started = time.perf_counter()
    model = load_step_model(weights, device=device, threads=threads)
    digits = mmnist.load_digits(mnist)
    methods = ("model", *BASELINES)
    squared = {name: [] for name in methods}
    absolute = {name: [] for name in methods}
    similarity = {name: [] for name in methods}
    for first in range(0, sequences, BATCH):
        count = min(BATCH, sequences - first)
        clips = to_float(mmnist.fixed_test_set(digits, count, start=first, length=context + future))  # (n, T, 64, 64)
        seen, truth = clips[:, :context], clips[:, context:]
        predictions = {"model": _model_forecast(model, seen, future), **baseline_predictions(seen, future)}
        for name, prediction in predictions.items():
            sq, ab = frame_errors(prediction, truth)
            squared[name].append(sq)
            absolute[name].append(ab)
            similarity[name].append(frame_ssim(prediction, truth))
        if progress is not None:
            progress(first + count, sequences)
    table = {name: _summary(np.concatenate(squared[name]), np.concatenate(absolute[name]),
                            np.concatenate(similarity[name])) for name in methods}
    best = min(BASELINES, key=lambda name: table[name]["mse"])
    return {"dataset": "moving-mnist", "sequences": sequences, "context": context, "future": future,
            "weights": model.weights.id, "file": str(model.weights.file), "methods": table,
            "best_baseline": best, "floor_mse": round(FLOOR_FACTOR * table[best]["mse"], 2),
            "seconds": round(time.perf_counter() - started, 1)}


def _summary(squared: np.ndarray, absolute: np.ndarray, similarity: np.ndarray) -> dict:
    """(N, T) per-frame figures -> means overall and per horizon."""
    def rounded(values) -> list[float]:
        return [round(float(value), 4) for value in values]

    return {"mse": round(float(squared.mean()), 2), "mae": round(float(absolute.mean()), 2),
            "ssim": round(float(similarity.mean()), 4), "mse_per_horizon": rounded(squared.mean(axis=0)),
            "mae_per_horizon": rounded(absolute.mean(axis=0)), "ssim_per_horizon": rounded(similarity.mean(axis=0))}


def record_in_card(results: dict) -> Path:
    """Store the figures as the "moving_mnist_test" (or "natural_heldout") metrics of the evaluated
    weights' model card; its path."""
    card_path = card_path_for(results["file"])
    if results["dataset"] == "natural":
        update_metrics(card_path, {"natural_heldout": {
            "context": results["context"], "future": results["future"], "working_size": results["working_size"],
            "psnr_per_horizon": {name: {method: figures["psnr_per_horizon"] for method, figures in data["methods"].items()}
                                 for name, data in results["sets"].items()}}})
        return card_path
    model = results["methods"]["model"]
    update_metrics(card_path, {"moving_mnist_test": {
        "sequences": results["sequences"], "mse": model["mse"], "mae": model["mae"], "ssim": model["ssim"],
        "mse_per_horizon": model["mse_per_horizon"],
        "baselines_mse": {name: results["methods"][name]["mse"] for name in BASELINES}}})
    return card_path


# --------------------------------------------------------------------------- natural video

NATURAL_METHODS = ("model", "copy_last", "flow_extrapolation")
CAMERA_CLIPS = 100  # synthetic camera-motion clips over the held-out photos
CAMERA_SEED = 2026


def evaluate_natural(weights: str | os.PathLike | None = None, *, clips: list[Path] = (), photos: Path | None = None,
                     context: int = DEFAULT_CONTEXT, future: int = 5, stride: int = 2, camera_clips: int = CAMERA_CLIPS,
                     device: str = "auto", threads: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """The RGB model against copy-last-frame and flow extrapolation (the last frame moved on along
    the optical flow from the frame before it, k times for t+k), per horizon, on every window of
    context + future frames (every `stride` frames) of each clip at the model's working size, and
    on `camera_clips` fixed synthetic camera-motion clips over the photos in `photos`.
    MSE is per pixel with values in [0, 1] (PSNR = 10 log10 1/MSE), over all channels."""
    from .camera import fixed_camera_clips, load_photos
    from imgan.io.images import long_side_size

    from .infer import load_clip
    from .spec import CAMERA_DATA, NATURAL_NAME, NATURAL_WORKING_SIZE, WORKING_MULTIPLE

    started = time.perf_counter()
    model = load_step_model(weights or NATURAL_NAME, device=device, threads=threads)
    if model.channels != 3:
        raise UsageError("natural clips need an RGB model; this one reads gray frames", path=model.weights.file,
                         hint="pass --weights convlstm-natural, or leave --clip/--photos out for Moving MNIST")
    working = int(model.weights.inference.get("working_size", NATURAL_WORKING_SIZE))
    length = context + future
    sets: dict[str, np.ndarray] = {}
    for clip in clips:
        frames = load_clip(clip, channels=3, working_size=working)
        if len(frames) < length:
            raise InputError(f"the clip has {len(frames)} frames; --context {context} + --future {future} need {length}",
                             path=clip, hint="use a longer clip or fewer frames")
        sets[Path(clip).name] = np.stack([frames[s : s + length] for s in range(0, len(frames) - length + 1, stride)])
    if photos is not None:
        width, height = long_side_size(3, 4, working, multiple=WORKING_MULTIPLE)  # the 4:3 frame of most clips
        sets[f"{CAMERA_DATA} {Path(photos).name}"] = fixed_camera_clips(
            load_photos(photos, long_side=working), camera_clips, height=height, width=width, length=length,
            seed=CAMERA_SEED)
    if not sets:
        raise UsageError("nothing to measure on", hint="pass --clip FILE (repeatable) and/or --photos DIR")
    total, done, results = sum(len(windows) for windows in sets.values()), 0, {}
    for name, windows in sets.items():
        squared = {method: [] for method in NATURAL_METHODS}
        for first in range(0, len(windows), 8):
            batch = to_float(windows[first : first + 8])  # (n, T, H, W, 3)
            seen, truth = batch[:, :context], batch[:, context:]
            predictions = {"model": rollout(model, np.ascontiguousarray(seen.transpose(0, 1, 4, 2, 3)), future)
                           .transpose(0, 1, 3, 4, 2),
                           "copy_last": np.repeat(seen[:, -1:], future, axis=1),
                           "flow_extrapolation": flow_extrapolation(windows[first : first + 8, :context], future)}
            for method, prediction in predictions.items():
                squared[method].append(((prediction.astype(np.float64) - truth) ** 2).mean(axis=(2, 3, 4)))
            done += len(batch)
            if progress is not None:
                progress(done, total)
        results[name] = {"windows": len(windows), "methods": {
            method: _natural_summary(np.concatenate(values)) for method, values in squared.items()}}
    return {"dataset": "natural", "context": context, "future": future, "working_size": working,
            "weights": model.weights.id, "file": str(model.weights.file), "sets": results,
            "seconds": round(time.perf_counter() - started, 1)}


def flow_extrapolation(context: np.ndarray, future: int) -> np.ndarray:
    """uint8 context (N, T, H, W, 3) -> (N, future, H, W, 3) float in [0, 1]: frame t+k is the last
    frame sampled k flow steps back along the motion from the frame before it (constant velocity)."""
    from .interpolate import dense_flow, warp

    out = np.empty((len(context), future, *context.shape[2:]), np.float32)
    for n, clip in enumerate(context):
        back = dense_flow(clip[-1], clip[-2])  # last(x) ~ previous(x + back(x)): the motion is -back
        for k in range(future):
            out[n, k] = np.clip(warp(clip[-1], (k + 1) * back), 0, 255) / 255.0
    return out


def _natural_summary(squared: np.ndarray) -> dict:
    """(N, future) per-frame MSEs -> MSE and PSNR overall and per horizon."""
    def psnr(mse: float) -> float:
        return round(10.0 * float(np.log10(1.0 / max(mse, 1e-12))), 2)

    per_horizon = squared.mean(axis=0)
    return {"mse": round(float(squared.mean()), 6), "psnr": psnr(float(squared.mean())),
            "mse_per_horizon": [round(float(value), 6) for value in per_horizon],
            "psnr_per_horizon": [psnr(float(value)) for value in per_horizon]}
