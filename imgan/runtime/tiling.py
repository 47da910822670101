"""Tiled inference: run an image-to-image model over a large image one tile at a time.

Why tiles: a 4000x3000 x4 upscale in one pass needs tens of GiB of activations. Each tile's model
input is its core box grown by `overlap` pixels of context, and only the core of each output tile
is kept. For a model whose receptive field fits inside `overlap`, every kept pixel saw exactly
the context it sees in one untiled pass, so tiled == untiled with no blending and no seams.

The untiled ("canonical") result, which tile >= image size also produces, is defined as:
reflect-pad the image by `overlap` on every side, reflect-pad bottom/right up to a multiple of
`multiple`, run the model, crop the (scaled) padding away.

Two guards live here too: tiny inputs (a 1x1 picture, a 4000x3 strip) are mirror-padded on the
NumPy side up to MIN_MODEL_SIDE before a model that refuses them sees them, and the outputs are
cropped back (see `pad_small_inputs`); and `output_pixel_limit` refuses, before any computing,
an output larger than the --max-pixels limit (a x4 upscale multiplies the pixels by 16).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from ..errors import InputError, UsageError

Model = Callable[[np.ndarray], np.ndarray]  # (N, C, h, w) float32 in [0,1] -> (N, C_out, h*scale, w*scale)
Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive

DEFAULT_MEMORY_BUDGET = 1 << 30
MIN_TILE = 16
_AUTO_TILE_RANGE = (128, 1024)
_AUTO_TILE_STEP = 32
_ASSUMED_FEATURES = 64  # feature channels a typical SR/GAN generator keeps alive per pixel
# Smallest height/width a model input gets when a model refuses a smaller one (reflect pads of
# a few pixels, several stride-2 layers): a multiple of every usual stride grid (4, 8, 16, 32).
MIN_MODEL_SIDE = 32

_output_limit: ContextVar[int | None] = ContextVar("imgan_output_pixel_limit", default=None)


class _Span(NamedTuple):
    """One tile along one axis."""

    start: int  # core start in the image
    stop: int  # core end in the image (exclusive)
    offset: int  # where the core starts inside the model input window
    source: slice | np.ndarray  # image rows (or columns) that fill the window


def tile_grid(height: int, width: int, tile: int) -> list[Box]:
    """Core boxes of edge `tile` (smaller at the bottom/right) covering the image, row by row."""
    if tile < 1:
        raise UsageError(f"tile must be at least 1, got {tile}")
    return [(y0, x0, y1, x1) for y0, y1 in _core_spans(height, tile) for x0, x1 in _core_spans(width, tile)]


def tile_memory_bytes(tile: int, *, scale: int, channels: int = 3, overlap: int = 16, batch: int = 1) -> int:
    """Rough peak bytes of one batch of tiles in flight.

    Counts the input and output tensors plus two live feature maps of a typical generator, at
    input and at output resolution; real models vary, so this only steers the choice of tile.
    """
    edge = tile + 2 * overlap
    bytes_per_pixel = 4 * (channels + 2 * _ASSUMED_FEATURES) * (1 + scale * scale)
    return batch * edge * edge * bytes_per_pixel


def auto_tile_size(height: int, width: int, *, scale: int, channels: int = 3, overlap: int = 16,
                   multiple: int = 1, batch: int = 1, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> int:
    """A tile edge (a multiple of 32 and of `multiple`, within 128..1024) whose batch fits the
    memory budget (128 if none does), never larger than the image needs.

    Balanced: the largest fitting edge fixes how many tiles each axis needs, then the edge shrinks
    to split the image evenly into that many. A 384-px image under a 288-px limit becomes two
    192-px tiles, not 288 + 96, which would pay the overlap on a mostly empty second tile.
    """
    step = math.lcm(_AUTO_TILE_STEP, max(1, multiple))
    smallest = _round_up(_AUTO_TILE_RANGE[0], step)
    largest = max(smallest, _AUTO_TILE_RANGE[1] // step * step)
    chosen = smallest
    for tile in range(smallest, largest + 1, step):
        if tile_memory_bytes(tile, scale=scale, channels=channels, overlap=overlap, batch=batch) <= memory_budget_bytes:
            chosen = tile
    # A tile beyond the image buys nothing: the whole image already goes through in one pass.
    chosen = min(chosen, max(smallest, _round_up(max(height, width), step)))
    balanced = max(_round_up(-(-size // -(-size // chosen)), step) for size in (height, width))
    return max(smallest, min(chosen, balanced))


def tiled_apply(model: Model, image: np.ndarray, *, scale: int = 1, tile: int = 256, overlap: int = 16,
                multiple: int = 1, batch: int = 1, out_channels: int | None = None, out_dtype=np.float32,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run `model` over `image` (H, W[, C]; uint8, uint16 or float in [0,1]) tile by tile.

    Returns (H*scale, W*scale[, C_out]) of `out_dtype`, equal to the canonical untiled result
    (see the module docstring) whenever the model's receptive field fits inside `overlap`.
    Every model call gets the same input shape, so ONNX Runtime / cuDNN plan only once.
    """
    grayscale = np.ndim(image) == 2
    pixels = _as_hwc(image)  # (H, W, C)
    height, width, channels = pixels.shape
    _check_arguments(scale=scale, tile=tile, overlap=overlap, multiple=multiple, batch=batch,
                     out_channels=out_channels, image_edge=max(height, width))
    out_dtype = _check_out_dtype(out_dtype)
    check_output_pixels(height * scale, width * scale)
    unit = _unit_scale(pixels.dtype)
    out_channels = out_channels or channels

    # Cores on the model's stride grid (a multiple of `multiple`) keep strided models exact too.
    core_edge = _round_up(tile, multiple)
    window_h, rows = _plan_axis(height, core_edge, overlap, multiple)
    window_w, cols = _plan_axis(width, core_edge, overlap, multiple)
    tiles = [(row, col) for row in rows for col in cols]
    batch = min(batch, len(tiles))

    output = np.empty((height * scale, width * scale, out_channels), dtype=out_dtype)
    # One reused input buffer: a short last batch keeps the full N (stale tiles in the spare
    # slots, their results ignored) so the model never sees a second shape.
    inputs = np.zeros((batch, channels, window_h, window_w), dtype=np.float32)  # (N, C, h, w)
    expected = (batch, out_channels, window_h * scale, window_w * scale)
    for first in range(0, len(tiles), batch):
        group = tiles[first:first + batch]
        for slot, (row, col) in enumerate(group):
            window = _read_window(pixels, row.source, col.source)  # (h, w, C), image dtype
            np.divide(window.transpose(2, 0, 1), unit, out=inputs[slot], dtype=np.float32)
        results = _checked_output(model(inputs), expected)  # (N, C_out, h*scale, w*scale)
        for slot, (row, col) in enumerate(group):
            core = results[slot, :,
                           row.offset * scale:(row.offset + row.stop - row.start) * scale,
                           col.offset * scale:(col.offset + col.stop - col.start) * scale]
            _store(core.transpose(1, 2, 0),
                   output[row.start * scale:row.stop * scale, col.start * scale:col.stop * scale])
        if progress is not None:
            progress(first + len(group), len(tiles))
    if grayscale and out_channels == 1:
        return output[:, :, 0]
    return output


def _check_arguments(*, scale, tile, overlap, multiple, batch, out_channels, image_edge) -> None:
    def is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(scale) or scale < 1:
        raise UsageError(f"scale must be a whole number >= 1, got {scale!r}")
    # A tile as big as the image is one window, however small the image (a 1x1 picture): fine.
    if not is_int(tile) or tile < min(MIN_TILE, image_edge):
        raise UsageError(f"tile must be a whole number >= {MIN_TILE}, got {tile!r}",
                         hint="tiles this small are mostly overlap; use 128 or more")
    if not is_int(overlap) or overlap < 0:
        raise UsageError(f"overlap must be a whole number >= 0, got {overlap!r}")
    if not is_int(multiple) or multiple < 1:
        raise UsageError(f"multiple must be a whole number >= 1, got {multiple!r}")
    if not is_int(batch) or batch < 1:
        raise UsageError(f"batch must be a whole number >= 1, got {batch!r}")
    if out_channels is not None and (not is_int(out_channels) or out_channels < 1):
        raise UsageError(f"out_channels must be a whole number >= 1, got {out_channels!r}")


def _check_out_dtype(out_dtype) -> np.dtype:
    dtype = np.dtype(out_dtype)
    if dtype.kind != "f" and dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise UsageError(f"out_dtype must be a float type, uint8 or uint16, got {dtype}")
    return dtype


def _as_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3:
        raise InputError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    if 0 in image.shape:
        raise InputError(f"image is empty: shape {image.shape}")
    return image


def _unit_scale(dtype: np.dtype) -> float:
    """What to divide by to bring pixel values into [0, 1]."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype.kind == "f":
        return 1.0
    raise InputError(f"unsupported image dtype {dtype}", hint="use uint8, uint16 or float in [0, 1]")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _core_spans(size: int, tile: int) -> list[tuple[int, int]]:
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def _plan_axis(size: int, tile: int, overlap: int, multiple: int) -> tuple[int, list[_Span]]:
    """The model input length along one axis (the same for every tile) and each tile's span."""
    cores = _core_spans(size, tile)
    # An image smaller than a tile runs as one padded image, not inside a mostly-empty tile.
    window = _round_up(min(tile, size) + 2 * overlap, multiple)
    spans = []
    for start, stop in cores:
        window_start = _window_start(start, window, size, overlap, multiple)
        spans.append(_Span(start, stop, start - window_start, _source_index(window_start, window, size, overlap)))
    return window, spans


def _window_start(core_start: int, window: int, size: int, overlap: int, multiple: int) -> int:
    """Where a tile's input window begins (image coordinates, may be negative).

    Normally `overlap` before the core. Tiles at the bottom/right slide back so the window holds
    real pixels instead of reflections of reflections, but never past the overlap-padded start.
    Rounding keeps (start + overlap) on the `multiple` grid, as in the canonical padded image;
    rounding up never passes core_start - overlap because core_start is itself on that grid.
    """
    start = max(min(core_start - overlap, size + overlap - window), -overlap)
    return _round_up(start + overlap, multiple) - overlap


def _source_index(start: int, length: int, size: int, overlap: int) -> slice | np.ndarray:
    """Image indices for window positions start..start+length.

    Folding twice reproduces the canonical padding exactly: first into the overlap-padded image
    (the bottom/right `multiple` padding reflects that padded image), then into the image.
    """
    if start >= 0 and start + length <= size:
        return slice(start, start + length)  # a view: interior tiles copy nothing extra
    positions = np.arange(start, start + length)
    in_padded = _reflect(positions + overlap, size + 2 * overlap) - overlap
    return _reflect(in_padded, size)


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Fold indices into [0, size) by mirroring without repeating the edge (NumPy's 'reflect'),
    however far outside they lie."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index < size, index, period - index)


def _read_window(pixels: np.ndarray, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
    if isinstance(rows, np.ndarray) and isinstance(cols, np.ndarray):
        return pixels[np.ix_(rows, cols)]
    return pixels[rows, cols]


def _checked_output(result, expected: tuple[int, ...]) -> np.ndarray:
    result = np.asarray(result)
    if result.shape == expected:
        return result

    def shape_text(shape) -> str:
        return "(" + ",".join(str(n) for n in shape) + ")"

    message = f"model returned {shape_text(result.shape)}, expected {shape_text(expected)}"
    if result.ndim != 4:
        raise UsageError(message, hint="the model must return one (N, C, H, W) array")
    if result.shape[2:] != expected[2:]:
        raise UsageError(message + ": wrong --scale for these weights?")
    if result.shape[0] != expected[0]:
        raise UsageError(message, hint="the model must return one result per input tile")
    raise UsageError(message, hint="the model's output channels differ; pass out_channels")


def _store(values: np.ndarray, target: np.ndarray) -> None:
    """Write float values (h, w, C) into a slice of the output, clipped to [0, 1] and, for
    integer outputs, quantised here per tile so no float copy of the whole output ever exists."""
    clipped = np.clip(values, 0.0, 1.0)
    if target.dtype.kind == "f":
        target[...] = clipped
    else:
        target[...] = np.rint(clipped * float(np.iinfo(target.dtype).max))


# ------------------------------------------------------------------------------ output-size guard

@contextmanager
def output_pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """While active (in this thread/context), tiled_apply refuses outputs above `max_pixels`."""
    token = _output_limit.set(max_pixels)
    try:
        yield
    finally:
        _output_limit.reset(token)


def check_output_pixels(height: int, width: int) -> None:
    """InputError if an output of height x width exceeds the active output_pixel_limit."""
    limit = _output_limit.get()
    if limit is not None and height * width > limit:
        raise InputError(f"the output would be {width}x{height} = {width * height:,} pixels, more than the limit "
                         f"of {limit:,}", hint="pass --max-pixels N to allow it")


# ---------------------------------------------------------------------------------- tiny inputs

def pad_small_inputs(inputs: Sequence[np.ndarray], min_side: int = MIN_MODEL_SIDE) -> list[np.ndarray] | None:
    """Every (..., H, W) input (4-D or more) mirror-padded at the bottom/right to at least
    min_side x min_side; None when none needs it. Mirroring repeats the edge (NumPy's
    'symmetric'), so it works for a 1-pixel side too; crop the results with `crop_to_inputs`."""
    if not any(_needs_padding(x, min_side) for x in inputs):
        return None
    padded = []
    for x in inputs:
        x = np.asarray(x)
        if _needs_padding(x, min_side):
            widths = [(0, 0)] * (x.ndim - 2) + [(0, max(0, min_side - side)) for side in x.shape[-2:]]
            x = np.pad(x, widths, mode="symmetric")
        padded.append(x)
    return padded


def crop_to_inputs(outputs: Sequence[np.ndarray], original: np.ndarray, padded: np.ndarray) -> list[np.ndarray]:
    """Outputs of a run on `padded` cut back to what `original` (the first input) would give:
    each (..., H', W') output keeps H' * H / H_padded rows and W' * W / W_padded columns."""
    (height, width), (padded_h, padded_w) = original.shape[-2:], padded.shape[-2:]
    cropped = []
    for y in outputs:
        y = np.asarray(y)
        if y.ndim >= 4:
            y = y[..., : y.shape[-2] * height // padded_h, : y.shape[-1] * width // padded_w]
        cropped.append(np.ascontiguousarray(y))
    return cropped


def _needs_padding(x: np.ndarray, min_side: int) -> bool:
    return np.ndim(x) >= 4 and min(np.shape(x)[-2:]) < min_side
