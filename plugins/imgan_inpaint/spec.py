"""The inpainting task's constants, defaults and option checks (pure Python: no torch, no typer)."""
from __future__ import annotations

from typing import Sequence

from imgan.errors import UsageError

DEFAULT_WEIGHTS = "gated"
# Generator loss weights of `imgan train inpaint` (terms explained in recipe.py). Chosen by the
# gradient norms each term sends into G: hole L1 dominates (PSNR is the measure), style, VGG and
# GAN terms each add 5-10 %; the valid L1, whose gradient never fades (L1 at zero), is kept small.
DEFAULT_LOSS_WEIGHTS = {"hole": 1.0, "valid": 0.01, "perceptual": 0.01, "style": 0.03, "adversarial": 0.01}

PAD_MULTIPLE = 4  # the generator's total stride: its sides must be multiples of this
# What the model card's running group says (written by the export, read by infer.py):
WORKING_SIZE = 512  # running.inference: the tile edge the model runs on (plus the overlap)
PRIOR_NAME = "pushpull"  # the shipped push-pull prior (weights/inpaint-pushpull.onnx, model.export_prior)
MAX_HOLE_RADIUS = 48  # running.inference: thicker holes are filled downscaled
TILE_OVERLAP = 64  # running.tile_overlap: context around each tile

Box = tuple[int, int, int, int]  # x, y, width, height: how users write boxes


def parse_box(text: str | Sequence[int]) -> Box:
    """"x,y,w,h" (or a 4-sequence) -> Box; UsageError unless four integers with w, h > 0."""
    parts = text.replace(" ", "").split(",") if isinstance(text, str) else list(text)
    try:
        x, y, w, h = (int(part) for part in parts)
    except (TypeError, ValueError):
        raise UsageError(f"--box {text!r} is not x,y,w,h", hint="e.g. --box 10,20,100,50 (pixels)") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"--box {text!r} has a width or height <= 0", hint="x,y,w,h with w, h > 0")
    return x, y, w, h


def validate_options(options: dict) -> None:
    """The verb's own options, checked before any file is read (UsageError)."""
    if options.get("mask_from_color") is not None:
        parse_color(options["mask_from_color"])
    for text in options.get("box") or ():
        parse_box(text)


COLOR_TOLERANCE = 24  # 8-bit levels per channel around --mask-from-color (JPEG moves a flat colour a little)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#ff00ff', 'ff00ff' or 'f0f' -> (255, 0, 255); UsageError otherwise."""
    digits = text.strip().lstrip("#")
    if len(digits) == 3:
        digits = "".join(2 * digit for digit in digits)
    try:
        if len(digits) != 6:
            raise ValueError
        return tuple(int(digits[index:index + 2], 16) for index in (0, 2, 4))
    except ValueError:
        raise UsageError(f"--mask-from-color {text!r} is not a colour", hint="give it as #rrggbb, e.g. '#ff00ff'") from None
