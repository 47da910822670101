"""The video task's constants, defaults and option checks (pure Python: no torch, no typer)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from imgan.errors import UsageError

DEFAULT_WEIGHTS = "convlstm-mmnist"  # also the name of a Moving MNIST run
CLIPS_NAME = "convlstm-clips"  # the name of a run on --videos
NATURAL_NAME = "convlstm-natural"  # the RGB model for real clips: `imgan predict clip.mp4` uses it
CAMERA_DATA = "camera motion over"  # how run.json, cards and eval tables name synthetic clips over a photo folder
NATURAL_LICENCE = ("MIT (trained weights); trained on OpenCV's sample clips (Apache-2.0/BSD) and camera motion "
                   "over BSDS500 photos (research use)")
INTERP_TASK = "video-interp"  # the learned frame interpolator (refine.py): its own task, weights and training
INTERP_NAME = "flow-refine"  # its shipped weights: video-interp-flow-refine.onnx
INTERP_INPUTS = ("a", "b", "flow_ab", "flow_ba", "t")  # its ONNX graph's inputs, in order
NATURAL_WORKING_SIZE = 128  # px, the longer side of the frames the natural model reads and predicts
WORKING_MULTIPLE = 4  # working frames' sides are multiples of the models' downscale: no padding
DEFAULT_CONTEXT = 10  # the Moving MNIST protocol: 10 frames in, 10 out
DEFAULT_FUTURE = 10
MMNIST_DATA = "moving-mnist"  # what run.json and the card record as the data of a Moving MNIST run
MMNIST_LICENCE = "CC BY-SA 3.0 (trained on MNIST digits)"


def parse_channels(text: str, option: str, *, count: int | None = None) -> tuple[int, ...]:
    """"64,64" -> (64, 64); UsageError unless positive integers separated by commas (`count` of them if given)."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    example = ",".join(["64"] * (count or 2))
    if not values or min(values) < 1:
        raise UsageError(f"{option} takes positive integers separated by commas, got {text!r}", hint=f"e.g. {option} {example}")
    if count is not None and len(values) != count:
        raise UsageError(f"{option} takes {count} numbers, got {text!r}", hint=f"e.g. {option} {example}")
    return values


def check_train_options(*, widths: str, hidden: str, motion_kernel: int,
                        loss_weights: Mapping[str, float]) -> tuple[tuple[int, int], tuple[int, ...]]:
    """The options of `imgan train video` that Typer cannot check; the parsed (widths, hidden)."""
    encoder_widths = parse_channels(widths, "--widths")
    if len(encoder_widths) != 2:
        raise UsageError("--widths takes two numbers (channels at 1/2 and 1/4 resolution)", hint="e.g. --widths 32,64")
    if motion_kernel and motion_kernel % 2 == 0:
        raise UsageError(f"--motion-kernel must be odd, got {motion_kernel}", hint="e.g. --motion-kernel 9")
    if not any(weight > 0 for weight in loss_weights.values()):
        raise UsageError("every loss weight is 0: nothing to train", hint="e.g. --l2 1")
    return encoder_widths, parse_channels(hidden, "--hidden")


def check_predict_sources(clip: Path | None, mmnist: int | None) -> None:
    """`imgan predict` takes a clip or --mmnist N."""
    if mmnist is not None and clip is not None:
        raise UsageError("give either a clip or --mmnist N, not both")
    if mmnist is None and clip is None:
        raise UsageError("no clip given", hint="imgan predict CLIP.mp4 -o OUT.mp4, or imgan predict --mmnist N -o DIR")


def check_interpolate_sources(clip: Path | None, mmnist: int | None, measure: bool, photos: Path | None = None) -> None:
    """`imgan interpolate` takes a clip, or --measure with --mmnist N or --photos DIR."""
    if sum(source is not None for source in (clip, mmnist, photos)) != 1:
        raise UsageError("give a clip, or --measure with --mmnist N or --photos DIR",
                         hint="imgan interpolate CLIP.mp4 --factor 2 -o OUT.mp4")
    if clip is None and not measure:
        option = "--mmnist" if mmnist is not None else "--photos"
        raise UsageError(f"{option} only goes with --measure", hint=f"imgan interpolate --measure {option} ...")
