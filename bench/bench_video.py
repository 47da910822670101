"""How close does transform_video run to the speed of the model alone?

Times a stand-in "model" three ways: "cpu" (an OpenCV resize + blur, roughly 10 ms a frame, that
competes with the encoder for the CPU) and "accelerator" (10 ms of waiting, as a GPU model leaves
the CPU free):
  model only     frame_fn over frames already decoded into memory
  sequential     decode all, then model all, then encode all (what no overlap would cost)
  pipeline       transform_video end to end (decode thread → model → encode thread)
and prints the ratios measured in this one run. Run: .venv/bin/python bench/bench_video.py
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from imgan.io.video import find_ffmpeg, read_frames, transform_video, write_video

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "assets" / "videos" / "vtest.avi"


def cpu_model(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) → (H, W, 3): upsample, blur, downsample; about 10 ms at 768x576 on one core."""
    height, width = frame.shape[:2]
    large = cv2.resize(frame, (width * 3 // 2, height * 3 // 2), interpolation=cv2.INTER_CUBIC)
    blurred = cv2.GaussianBlur(large, (15, 15), 0)
    return cv2.resize(blurred, (width, height), interpolation=cv2.INTER_AREA)


def accelerator_model(frame: np.ndarray) -> np.ndarray:
    """Like a model on a GPU: 10 ms during which the CPU is free for decoding and encoding."""
    time.sleep(0.010)
    return 255 - frame


MODELS = {"cpu": cpu_model, "accelerator": accelerator_model}


def timed(work):
    """(what work() returned, seconds it took)."""
    began = time.perf_counter()
    value = work()
    return value, time.perf_counter() - began


def measure(name: str, model, video: Path, max_frames: int) -> None:
    frames, decode_s = timed(lambda: list(read_frames(video, max_frames=max_frames)))
    count = len(frames)
    outputs, model_s = timed(lambda: [model(frame) for frame in frames])
    with tempfile.TemporaryDirectory() as folder:
        _, encode_s = timed(lambda: write_video(outputs, Path(folder) / "encoded.mp4", fps=10.0))
        result = transform_video(video, Path(folder) / "piped.mp4", model, max_frames=max_frames)
    assert result.frames == count

    model_fps, pipeline_fps = count / model_s, count / result.seconds
    sequential_fps = count / (decode_s + model_s + encode_s)
    print(f"[{name} model] decode only {count / decode_s:.1f} fps, encode only {count / encode_s:.1f} fps")
    print(f"  model only  {model_fps:7.1f} fps  ({1000 * model_s / count:.1f} ms/frame, frames in memory)")
    print(f"  sequential  {sequential_fps:7.1f} fps  (decode, model, encode one after another)")
    print(f"  pipeline    {pipeline_fps:7.1f} fps  (transform_video end to end)")
    print(f"  pipeline / model only = {pipeline_fps / model_fps:.2f}, "
          f"pipeline / sequential = {pipeline_fps / sequential_fps:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", choices=[*MODELS, "both"], default="both")
    parser.add_argument("--cv-threads", type=int, default=1, help="OpenCV threads for the cpu model")
    args = parser.parse_args()
    cv2.setNumThreads(args.cv_threads)
    print(f"{args.video.name}: first {args.frames} frames, encoder {'ffmpeg' if find_ffmpeg() else 'OpenCV'}")
    for name in MODELS if args.model == "both" else [args.model]:
        measure(name, MODELS[name], args.video, args.frames)


if __name__ == "__main__":
    main()
