"""Predicting the next frames of a clip with the exported single-step model (NumPy + ONNX Runtime).

The ONNX model is one step of the ConvLSTM: (frame, h0, c0, h1, c1, ...) -> (next frame, new
states). `rollout` feeds the context frames in one by one from all-zero states, then feeds each
prediction back in, so any number of future frames can be generated. Frames are float32 in [0, 1],
(N, C, H, W) with C = 1 (gray models) or 3 (RGB); H and W must be multiples of the card's
pad_multiple (the encoder's downscale).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from imgan.errors import InputError, UsageError
from imgan.fs import atomic_write
from imgan.io.images import Picture, from_float, long_side_size, resize_plane, to_float, write_image
from imgan.weights import Weights, resolve_weights

from . import TASK
from .spec import DEFAULT_CONTEXT, DEFAULT_FUTURE, DEFAULT_WEIGHTS, NATURAL_NAME, WORKING_MULTIPLE

GAP = 2  # pixels between the frames of a sheet
GIF_FRAME_MS = 100


# --------------------------------------------------------------------------- the model


@dataclass
class StepModel:
    """A loaded single-step model: `rollout` is what callers want."""

    weights: Weights
    session: object  # imgan.runtime.session.OnnxModel
    channels: int
    multiple: int
    state_channels: list[int] = field(default_factory=list)  # per state input, in order

    def zero_states(self, batch: int, height: int, width: int) -> list[np.ndarray]:
        return [np.zeros((batch, channels, height // self.multiple, width // self.multiple), np.float32)
                for channels in self.state_channels]

    def step(self, frame: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """frame (N,C,H,W) -> the next frame (N,C,H,W) and the new states."""
        next_frame, *new_states = self.session.run(frame, *states)
        return next_frame, new_states


def load_step_model(weights: str | os.PathLike | None = None, *, device: str = "auto",
                    threads: int | None = None) -> StepModel:
    """The video task's weights by catalogue name or .onnx path (default: the task's default weights)."""
    from imgan.runtime.session import load_model

    chosen = resolve_weights(TASK, weights)
    session = load_model(chosen.verified_path(), device=device, threads=threads)
    inputs = session.session.get_inputs()
    if len(inputs) < 2 or len(inputs[0].shape) != 4:
        raise InputError("not a single-step video model (frame, h0, c0, ... in; next frame, states out)",
                         path=chosen.file, hint="use weights exported by `imgan export video`")
    return StepModel(weights=chosen, session=session, channels=int(inputs[0].shape[1]),
                     multiple=max(1, chosen.pad_multiple), state_channels=[int(i.shape[1]) for i in inputs[1:]])


def rollout(model: StepModel, context: np.ndarray, future: int,
            progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """context (N, T, C, H, W) float32 in [0, 1] -> the next `future` frames (N, future, C, H, W);
    `progress(done, total)` after each of the T + future - 1 model steps."""
    batch, length, channels, height, width = context.shape
    _check_frames(model, channels, height, width)
    if length < 1 or future < 1:
        raise UsageError(f"a rollout needs at least one context frame and one future frame, got {length} and {future}")
    states = model.zero_states(batch, height, width)
    total = length + future - 1

    def stepped(done: int) -> None:
        if progress is not None:
            progress(done, total)

    for t in range(length):
        prediction, states = model.step(context[:, t], states)
        stepped(t + 1)
    forecast = [prediction]
    for index in range(future - 1):
        prediction, states = model.step(prediction, states)
        forecast.append(prediction)
        stepped(length + index + 1)
    return np.stack(forecast, axis=1)


def _check_frames(model: StepModel, channels: int, height: int, width: int, path: object | None = None) -> None:
    if channels != model.channels:
        raise UsageError(f"the model takes {model.channels}-channel frames, got {channels}", path=path)
    if height % model.multiple or width % model.multiple or height < model.multiple or width < model.multiple:
        raise InputError(f"frames of {width}x{height} do not fit the model: sides must be multiples of {model.multiple}",
                         path=path, hint="pass --size N to centre-crop and resize the frames to N x N")


# --------------------------------------------------------------------------- frames


def prepare_frame(rgb: np.ndarray, *, channels: int, size: int | None = None) -> np.ndarray:
    """An RGB uint8 frame (H, W, 3) -> (S, S, channels) uint8: centre-cropped to a square and
    resized to `size` when given; luma (BT.601) when channels == 1."""
    if size is not None:
        height, width = rgb.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        rgb = resize_plane(rgb[top : top + side, left : left + side], (size, size))
    if channels == 1:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
    return rgb


def load_clip(path: str | os.PathLike, *, channels: int, size: int | None = None, start: float | None = None,
              max_frames: int | None = None, working_size: int | None = None) -> np.ndarray:
    """The frames of a video file, prepared for the model: (T, S, S, channels) uint8; with
    `working_size` (and no `size`), whole frames resized to that longer side instead."""
    from imgan.io.video import read_frames

    frames = []
    for rgb in read_frames(path, start=start, max_frames=max_frames):
        if size is None and working_size is not None:
            rgb = resize_plane(rgb, long_side_size(*rgb.shape[:2], working_size, multiple=WORKING_MULTIPLE))
        frames.append(prepare_frame(rgb, channels=channels, size=size))
    if not frames:
        raise InputError("no frames could be read from the clip", path=path, hint="check that the file is a video")
    return np.stack(frames)


def to_model(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) uint8 -> (T, C, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(to_float(frames).transpose(0, 3, 1, 2))


def to_rgb8(frames: np.ndarray) -> np.ndarray:
    """(T, C, H, W) float in [0, 1] -> (T, H, W, 3) uint8 (gray repeated into RGB)."""
    frames = from_float(frames.transpose(0, 2, 3, 1), np.uint8)
    return np.repeat(frames, 3, axis=3) if frames.shape[3] == 1 else frames


# --------------------------------------------------------------------------- sheets and GIFs


def make_sheet(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of frames (each (T, H, W, 3) uint8) stacked into one image, GAP pixels of white between frames."""
    height, width = rows[0].shape[1:3]
    columns = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (height + GAP) - GAP, columns * (width + GAP) - GAP, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            top, left = r * (height + GAP), c * (width + GAP)
            sheet[top : top + height, left : left + width] = frame
    return sheet


def write_sheet(path: str | os.PathLike, context: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray,
                *, overwrite: bool = False) -> Path:
    """A PNG/JPEG strip: context frames | the true future (when known) | the prediction, one row each."""
    rows = [context] + ([truth] if truth is not None and len(truth) else []) + [prediction]
    return write_image(Picture(rgb=make_sheet(rows), alpha=None), path, overwrite=overwrite)


def write_gif(path: str | os.PathLike, context: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray,
              *, overwrite: bool = False) -> Path:
    """An animated GIF: the context, then the truth beside the prediction (prediction alone if no truth)."""
    from PIL import Image

    blank = np.full_like(prediction[0], 255)
    frames = []
    for frame in context:
        frames.append(make_sheet([frame[None], frame[None]] if truth is not None else [frame[None]]))
    for t, predicted in enumerate(prediction):
        if truth is None:
            frames.append(make_sheet([predicted[None]]))
        else:
            frames.append(make_sheet([(truth[t] if t < len(truth) else blank)[None], predicted[None]]))
    images = [Image.fromarray(frame) for frame in frames]

    def save(temp: Path) -> None:
        images[0].save(temp, format="GIF", save_all=True, append_images=images[1:], duration=GIF_FRAME_MS, loop=0)

    return atomic_write(path, save, overwrite=overwrite)


# --------------------------------------------------------------------------- `imgan predict`


@dataclass
class Prediction:
    frames: np.ndarray  # (future, H, W, 3) uint8
    written: list[Path]
    audio_kept: bool = False  # the context part of the video carries the clip's audio; predicted frames are silent
    notes: tuple[str, ...] = ()


def predict_clip(clip: str | os.PathLike, *, output: str | os.PathLike | None = None, context: int = DEFAULT_CONTEXT,
                 future: int = DEFAULT_FUTURE, only_future: bool = False, sheet: str | os.PathLike | None = None,
                 size: int | None = None, start: float | None = None, weights: str | os.PathLike | None = None,
                 device: str = "auto", threads: int | None = None, overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> Prediction:
    """Predict `future` frames after the first `context` frames of `clip` (from `start` seconds).

    Writes `output` (default <stem>.video.mp4 beside the clip unless only a sheet is asked for):
    the context frames followed by the prediction, or the prediction alone with `only_future`.
    The context part keeps the clip's audio (of those very frames); the predicted frames are
    silent: the model predicts pictures, not sound. `sheet` writes an image: context | the clip's
    true next frames (when it has them) | prediction. `progress(done, total)` after each frame the
    model reads or predicts.
    """
    from imgan.io.video import find_ffmpeg, first_frame_at_or_after, probe_video, write_video

    if context < 1 or future < 1:
        raise UsageError(f"--context and --future must be at least 1, got {context} and {future}")
    model = load_step_model(weights or NATURAL_NAME, device=device, threads=threads)
    info = probe_video(clip)
    working = None if size is not None else model.weights.inference.get("working_size")
    frames = load_clip(clip, channels=model.channels, size=size, start=start, max_frames=context + future,
                       working_size=working)
    if len(frames) < context:
        raise InputError(f"the clip has {len(frames)} frames from the start point; --context {context} needs {context}",
                         path=clip, hint="use a longer clip, an earlier --start or a smaller --context")
    seen = to_model(frames[:context])  # (context, C, H, W)
    _check_frames(model, *seen.shape[1:], path=clip)
    forecast = to_rgb8(rollout(model, seen[None], future, progress=progress)[0])
    shown_context = to_rgb8(seen)
    truth = to_rgb8(to_model(frames[context:])) if len(frames) > context else None
    written, notes = [], []
    if working:
        notes.append(f"frames: {frames.shape[2]}x{frames.shape[1]}, the model's working size (the clip is "
                     f"{info.width}x{info.height}); --size N runs N x N centre crops instead")
    if output is None and sheet is None:
        output = Path(clip).with_name(f"{Path(clip).stem}.{TASK}.mp4")
    audio_kept = output is not None and not only_future and info.has_audio and find_ffmpeg() is not None
    if output is not None:
        video = forecast if only_future else np.concatenate([shown_context, forecast])
        audio = dict(audio_from=clip, audio_start=first_frame_at_or_after(clip, start),
                     audio_duration=context / info.fps) if audio_kept else {}
        written.append(write_video(iter(video), output, fps=info.fps, overwrite=overwrite, **audio))
        if audio_kept:
            notes.append(f"audio: the clip's, under the {context} context frames; the {future} predicted frames are silent")
        elif info.has_audio:
            notes.append("audio: none (" + ("--only-future: predicted frames only" if only_future else "no ffmpeg") + ")")
    if sheet is not None:
        written.append(write_sheet(sheet, shown_context, truth, forecast, overwrite=overwrite))
    return Prediction(frames=forecast, written=written, audio_kept=audio_kept, notes=tuple(notes))


def predict_mmnist(count: int, output_dir: str | os.PathLike, *, mnist: str | os.PathLike | None = None,
                   context: int = DEFAULT_CONTEXT, future: int = DEFAULT_FUTURE, weights: str | os.PathLike | None = None,
                   device: str = "auto", threads: int | None = None, overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Sheets (PNG) and GIFs of the first `count` sequences of the fixed Moving MNIST test set;
    progress(done, count) after each."""
    from . import mmnist

    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError("--mmnist writes a folder of sheets; -o names a file", path=folder, hint="pass -o DIR")
    folder.mkdir(parents=True, exist_ok=True)
    model = load_step_model(weights or DEFAULT_WEIGHTS, device=device, threads=threads)
    digits = mmnist.load_digits(mnist)
    written = []
    for index in range(count):
        clip = to_float(mmnist.fixed_test_set(digits, 1, start=index, length=context + future))[:, :, None]
        clip = np.repeat(clip, model.channels, axis=2)  # (1, T, C, 64, 64)
        forecast = rollout(model, clip[:, :context], future)[0]
        shown, truth, predicted = to_rgb8(clip[0, :context]), to_rgb8(clip[0, context:]), to_rgb8(forecast)
        stem = folder / f"mmnist-{index:04d}"
        written.append(write_sheet(stem.with_suffix(".png"), shown, truth, predicted, overwrite=overwrite))
        written.append(write_gif(stem.with_suffix(".gif"), shown, truth, predicted, overwrite=overwrite))
        if progress is not None:
            progress(index + 1, count)
    return written
