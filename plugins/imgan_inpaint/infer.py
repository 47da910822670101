"""Inpainting inference: which pixels to fill, and filling them at any image size.

NumPy, OpenCV and ONNX Runtime only: nothing here may import torch.

Masks (True = fill):
  * a mask image, white = fill (mean of its channels above half; transparent mask pixels never
    fill). Its size must equal the picture's, unless resize=True (nearest-neighbour stretch);
  * a folder of masks: the mask whose file stem is the picture's stem (or <stem>_mask); the
    transform gets one Picture at a time and finds its mask through ``picture.source``. Video
    frames have no file name: use one mask file or boxes for a video;
  * boxes x,y,w,h in pixels (any number), added to the mask image when both are given;
  * none of these: the picture's alpha channel, transparent (alpha below half) = fill; the
    filled pixels become opaque, the other pixels keep their alpha;
  then grown by `dilate` pixels (an elliptical kernel), to cover the soft edge of an object.

Filling (the Inpainter):
  1. The holes are grouped into regions: each connected hole with a margin of context around it
     (3x its radius, at least 16 px); regions that touch are merged.
  2. A region is processed at full resolution when its thickest hole fits the model (radius =
     distance from the hole's inside to the nearest known pixel <= the card's max_hole_radius);
     thicker holes are processed downscaled by the factor that makes them fit, and the fill is
     enlarged back. The model runs on the region through the core's one image path (run_model):
     in tiles of edge `tile` (--tile, default the card's working_size) plus their overlap (the
     card's tile_overlap), the mask cut into the same tiles as the model's second input. The
     edge is in the model's input pixels: those of the downscaled window when it was downscaled.
  3. Only hole pixels are written back: every other pixel of the output is the input's, bit for
     bit, whatever the model computed there (the ONNX graph composites too; this makes it exact).
So a 24-megapixel photo with a small hole costs a few hundred milliseconds: only the area around
the hole is ever read by the model.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from imgan.cards import Running
from imgan.errors import InputError, UsageError
from imgan.io.images import SUPPORTED_EXTENSIONS, Picture, from_float, read_image, resize_plane, to_float
from imgan.runtime.model_transform import run_model
from imgan.runtime.tiling import MIN_TILE

from . import TASK
from .spec import (COLOR_TOLERANCE, MAX_HOLE_RADIUS, PAD_MULTIPLE, TILE_OVERLAP, WORKING_SIZE, Box, parse_box,
                   parse_color)

Model = Callable[[np.ndarray, np.ndarray], np.ndarray]  # image (N,3,h,w), mask (N,1,h,w) -> (N,3,h,w)

CONTEXT_RADII = 3  # context kept around a hole, in multiples of its radius
MIN_MARGIN = 16
MAX_SEPARATE_REGIONS = 256  # beyond this many holes, one region around all (merging is quadratic)


# ------------------------------------------------------------------------------------- masks


def boxes_hole(boxes: Iterable[Box], height: int, width: int, *, source: Path | None = None) -> np.ndarray:
    """Bool (H, W), True inside any box (clipped to the image); InputError for a box wholly outside."""
    hole = np.zeros((height, width), dtype=bool)
    for x, y, w, h in boxes:
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x0 >= x1 or y0 >= y1:
            raise InputError(f"box {x},{y},{w},{h} lies outside the {width}x{height} image", path=source,
                             hint="boxes are x,y,width,height in pixels from the top-left corner")
        hole[y0:y1, x0:x1] = True
    return hole


def hole_from_mask_picture(mask: Picture) -> np.ndarray:
    """White (mean of the channels above half) and not transparent = fill. (H, W) bool."""
    top = float(np.iinfo(mask.rgb.dtype).max)
    hole = mask.rgb.astype(np.float32).mean(axis=2) > top / 2
    if mask.alpha is not None:
        hole &= mask.alpha > top / 2
    return hole


def hole_from_alpha(picture: Picture) -> np.ndarray | None:
    """Transparent pixels (alpha below half) = fill; None for a picture without alpha."""
    if picture.alpha is None:
        return None
    return picture.alpha < np.iinfo(picture.alpha.dtype).max / 2


def fit_hole(hole: np.ndarray, height: int, width: int, *, resize: bool, mask_path: Path | None = None,
             source: Path | None = None) -> np.ndarray:
    """The hole at the picture's size: the same size, or stretched (nearest) when `resize`."""
    if hole.shape == (height, width):
        return hole
    if not resize:
        where = f" for {source}" if source is not None else ""
        raise InputError(f"the mask is {hole.shape[1]}x{hole.shape[0]} but the image{where} is {width}x{height}",
                         path=mask_path, hint="pass --resize-mask to stretch the mask to the image, "
                                              "or make the mask the image's size")
    return cv2.resize(hole.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def dilate_hole(hole: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the hole by `pixels` in every direction (elliptical kernel)."""
    if pixels <= 0:
        return hole
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(hole.astype(np.uint8), kernel).astype(bool)


def find_mask_by_stem(folder: Path, stem: str) -> Path:
    """The mask in `folder` named <stem>.<ext> or <stem>_mask.<ext>; InputError if none or several."""
    names = {stem, f"{stem}_mask"}
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS and p.stem in names)
    if not found:
        raise InputError(f"no mask for {stem!r} in {folder}", hint=f"put {stem}.png (white = fill) in the mask folder")
    if len(found) > 1:
        raise InputError(f"several masks for {stem!r} in {folder}: {', '.join(p.name for p in found)}",
                         hint="keep one mask per image")
    return found[0]


class MaskSource:
    """Builds each picture's hole from the user's mask options (see the module docstring)."""

    def __init__(self, mask: str | os.PathLike | None = None, boxes: Sequence[Box | str] = (), *, dilate: int = 0,
                 resize: bool = False, color: str | None = None, color_tolerance: int = COLOR_TOLERANCE):
        self.color = parse_color(color) if color is not None else None
        self.color_tolerance = color_tolerance
        self.path = Path(mask) if mask is not None else None
        if self.path is not None and not self.path.exists():
            raise InputError("mask file or folder not found", path=self.path, hint="check the --mask path")
        self.boxes = tuple(parse_box(b) for b in boxes)
        if dilate < 0:
            raise UsageError(f"--dilate must be >= 0, got {dilate}")
        self.dilate = dilate
        self.resize = resize
        self._decoded: dict[Path, np.ndarray] = {}  # one decode per mask file (a video reuses it per frame)

    @property
    def uses_alpha(self) -> bool:
        return self.path is None and not self.boxes and self.color is None

    def hole_for(self, picture: Picture) -> np.ndarray:
        """Bool (H, W) of the pixels to fill in this picture."""
        width, height = picture.size
        if self.uses_alpha:
            hole = hole_from_alpha(picture)
            if hole is None:
                raise InputError("no mask: the image has no transparent pixels and no mask was given",
                                 path=picture.source, hint="pass --mask FILE_OR_FOLDER or --box x,y,w,h")
        else:
            hole = np.zeros((height, width), dtype=bool)
            if self.path is not None:
                mask_path = self._mask_path_for(picture)
                hole |= fit_hole(self._decode(mask_path), height, width, resize=self.resize, mask_path=mask_path,
                                 source=picture.source)
            if self.boxes:
                hole |= boxes_hole(self.boxes, height, width, source=picture.source)
            if self.color is not None:
                hole |= painted_hole(picture, self.color, self.color_tolerance)
        return dilate_hole(hole, self.dilate)

    def _mask_path_for(self, picture: Picture) -> Path:
        if not self.path.is_dir():
            return self.path
        if picture.source is None:
            raise InputError("a mask folder matches masks to image files by name, and video frames have none",
                             path=self.path, hint="pass one mask file (--mask FILE) or --box for a video")
        return find_mask_by_stem(self.path, picture.source.stem)

    def _decode(self, path: Path) -> np.ndarray:
        if path not in self._decoded:
            self._decoded[path] = hole_from_mask_picture(read_image(path))
        return self._decoded[path]


# ------------------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Region:
    """A window of the image to inpaint in one go: rows y0:y1, columns x0:x1."""

    y0: int
    x0: int
    y1: int
    x1: int
    radius: float  # the thickest hole inside: its largest distance to a known pixel

    def overlaps(self, other: Region) -> bool:
        return self.y0 < other.y1 and other.y0 < self.y1 and self.x0 < other.x1 and other.x0 < self.x1

    def union(self, other: Region) -> Region:
        return Region(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1),
                      max(self.x1, other.x1), max(self.radius, other.radius))

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def hole_regions(hole: np.ndarray) -> list[Region]:
    """Windows covering every hole pixel with context around it, none overlapping another."""
    height, width = hole.shape
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    if rows.size == 0:
        return []
    # Work inside the holes' bounding box (a small hole in 24 MP costs nothing), with one known
    # pixel around it except at the image's edges, which count as unknown: a hole touching the
    # border is filled from the inside only.
    top, left = max(0, int(rows[0]) - 1), max(0, int(cols[0]) - 1)
    bottom, right = min(height, int(rows[-1]) + 2), min(width, int(cols[-1]) + 2)
    box = hole[top:bottom, left:right].astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(box, connectivity=8)
    distance = cv2.distanceTransform(box, cv2.DIST_L2, 3)  # of each hole pixel to the nearest known one
    regions = []
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        inside = labels[y:y + h, x:x + w] == label
        radius = float(distance[y:y + h, x:x + w][inside].max())
        margin = max(MIN_MARGIN, math.ceil(CONTEXT_RADII * radius))
        y, x = y + top, x + left
        regions.append(Region(max(0, y - margin), max(0, x - margin), min(height, y + h + margin),
                              min(width, x + w + margin), radius))
    if len(regions) > MAX_SEPARATE_REGIONS:
        return [_merge_all(regions)]
    return _merge_overlapping(regions)


def _merge_all(regions: list[Region]) -> Region:
    merged = regions[0]
    for region in regions[1:]:
        merged = merged.union(region)
    return merged


def _merge_overlapping(regions: list[Region]) -> list[Region]:
    merged: list[Region] = []
    pending = list(regions)
    while pending:
        current = pending.pop()
        grew = True
        while grew:  # a grown region may now reach ones it did not before
            grew = False
            for other in [r for r in pending if r.overlaps(current)]:
                pending.remove(other)
                current = current.union(other)
                grew = True
        merged.append(current)
    return merged


# ------------------------------------------------------------------------------------- filling


class Inpainter:
    """Fills the holes of (H, W, 3) images with `model`; pixels outside the hole stay exactly as given."""

    def __init__(self, model: Model, *, pad_multiple: int = PAD_MULTIPLE, working_size: int = WORKING_SIZE,
                 max_hole_radius: float = MAX_HOLE_RADIUS, overlap: int = TILE_OVERLAP):
        """`working_size`: the tile edge (the model runs on tiles this big plus `overlap`)."""
        self.model = model
        self.running = Running(pad_multiple=pad_multiple, tile_overlap=overlap)
        self.working_size = working_size
        self.max_hole_radius = max_hole_radius

    def __call__(self, rgb: np.ndarray, hole: np.ndarray, progress=None) -> np.ndarray:
        """`rgb` (H, W, 3) uint8, uint16 or float in [0, 1]; `hole` (H, W) bool. Returns a new array."""
        if hole.shape != rgb.shape[:2]:
            raise UsageError(f"hole {hole.shape} and image {rgb.shape[:2]} differ in size")
        result = rgb.copy()
        if not hole.any():
            return result
        if hole.all():
            raise InputError("the mask covers the whole image: there is nothing to fill it from",
                             hint="leave some of the image outside the mask")
        regions = hole_regions(hole)
        for done, region in enumerate(regions, start=1):
            rows, cols = region.slices
            window_hole = hole[rows, cols]
            fill = self._fill_window(to_float(rgb[rows, cols]), window_hole, region.radius)  # (h, w, 3) float
            target = result[rows, cols]  # a view: writing it writes the result
            values = fill[window_hole]
            target[window_hole] = values if target.dtype.kind == "f" else from_float(values, target.dtype)
            if progress is not None:
                progress(done, len(regions))
        return result

    def _fill_window(self, pixels: np.ndarray, hole: np.ndarray, radius: float) -> np.ndarray:
        """The model's composite of one window (h, w, 3) float32, at full or reduced resolution."""
        height, width = hole.shape
        scale = min(1.0, self.max_hole_radius / max(radius, 1e-6))
        if scale < 1.0:
            small = (max(1, round(width * scale)), max(1, round(height * scale)))
            pixels = resize_plane(pixels, small)
            # Any small pixel that a hole pixel reaches is a hole: no hole content leaks in.
            hole = resize_plane(hole.astype(np.float32), small) > 0
        composite = run_model(self.model, pixels, self.running, tile=max(self.working_size, MIN_TILE),
                              planes=hole[..., None], out_channels=3)  # (h', w', 3) in [0, 1]
        if scale < 1.0:
            # Bilinear, not resize_plane's bicubic: no overshoot rings where the fill meets the photo.
            composite = cv2.resize(composite, (width, height), interpolation=cv2.INTER_LINEAR)
        return composite


def inpainter_for_weights(weights, *, device: str = "auto", threads: int | None = None,
                          tile: int | None = None) -> Inpainter:
    """An Inpainter running these weights, set up from their model card; `tile` (--tile) replaces
    the card's working_size as the tile edge."""
    from imgan.runtime.session import load_model

    model = load_model(weights.verified_path(), device=device, threads=threads)
    return inpainter_for_model(model, weights.card.running, tile=tile)


def inpainter_for_model(model: Model, running: Running, *, tile: int | None = None) -> Inpainter:
    """An Inpainter running `model` (an ONNX session, or a checkpoint's net while it trains) as the
    card's `running` section says: padding, tile overlap, working size and the largest hole radius."""
    return Inpainter(model, pad_multiple=running.pad_multiple, overlap=running.tile_overlap,
                     working_size=tile or int(running.inference.get("working_size", WORKING_SIZE)),
                     max_hole_radius=float(running.inference.get("max_hole_radius", MAX_HOLE_RADIUS)))


def inpaint_transform(inpainter: Inpainter, masks: MaskSource) -> Callable[..., Picture]:
    """The per-picture transform for files, folders and video frames alike."""

    def transform(picture: Picture, progress=None) -> Picture:
        hole = masks.hole_for(picture)
        rgb = inpainter(picture.rgb, hole, progress=progress)
        alpha = picture.alpha
        if masks.uses_alpha and hole.any():  # the transparent pixels are filled: make them opaque
            alpha = np.where(hole, np.iinfo(alpha.dtype).max, alpha).astype(alpha.dtype)
        return picture.replace(rgb=rgb, alpha=alpha)

    return transform


def painted_hole(picture: Picture, color: tuple[int, int, int], tolerance: int) -> np.ndarray:
    """The pixels painted in ``color`` (each channel within ``tolerance`` of it, in 8-bit levels).
    A JPEG smears a painted edge: --dilate grows the hole over it."""
    rgb = picture.rgb.astype(np.int32) // (257 if picture.rgb.dtype == np.uint16 else 1)  # (H, W, 3) 8-bit levels
    hole = np.all(np.abs(rgb - np.array(color, dtype=np.int32)) <= tolerance, axis=2)
    if not hole.any():
        raise InputError(f"no pixel has the colour #{''.join(f'{c:02x}' for c in color)} (±{tolerance})",
                         path=picture.source, hint="paint the area to remove in exactly that colour, or pass --mask/--box")
    return hole


def make_transform(*, weights=None, device="auto", threads=None, tile=None, mask=None, box=None, dilate=0,
                   resize_mask=False, mask_from_color=None):
    """`imgan inpaint`: fill each picture's hole (see the module docstring); `tile` is the tile edge."""
    from imgan.weights import resolve_weights

    masks = MaskSource(mask, box or (), dilate=dilate, resize=resize_mask, color=mask_from_color)
    inpainter = inpainter_for_weights(resolve_weights(TASK, weights), device=device, threads=threads, tile=tile)
    return inpaint_transform(inpainter, masks)
