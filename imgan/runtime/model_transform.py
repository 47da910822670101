"""The one image-inference path: an ONNX model run over a picture as its model card says.

Every task's per-image function goes through :func:`run_model`: the card's pad multiple and
tile overlap, the tiling policy (one pass for small images, else overlapping tiles whose edge
``--tile`` sets), extra constant inputs (a style reference) and extra per-pixel planes (an
inpainting mask) handed to the model beside each tile, and the output channels.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..cards import Running
from ..io.images import Picture, resize_plane, to_float
from ..weights import Weights
from .session import OnnxModel, load_model
from .tiling import auto_tile_size, tiled_apply

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


def run_model(model: Callable[..., np.ndarray], pixels: np.ndarray, running: Running, *, tile: int | None = None,
              whole_pass_pixels: int = 0, constants: Sequence[np.ndarray] = (), planes: np.ndarray | None = None,
              out_channels: int | None = None, out_dtype=np.float32, progress=None) -> np.ndarray:
    """``model`` over ``pixels`` (H, W[, C]) -> (H*scale, W*scale[, C_out]) of ``out_dtype``.

    tile:              the tile edge (``--tile``); None: one pass when the image has at most
                       ``whole_pass_pixels`` pixels, else an edge chosen from the memory budget.
    constants:         arrays passed to the model after every tile, unchanged (e.g. a reference).
    planes:            (H, W, k) per-pixel planes cut into tiles with the image and passed as the
                       model's second input (e.g. an inpainting mask).
    """
    height, width = pixels.shape[:2]
    image_channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    stacked = pixels if planes is None else np.dstack([to_float(pixels), planes.astype(np.float32)])
    overlap, multiple, scale = running.tile_overlap, running.pad_multiple, running.scale
    if tile is None and height * width <= whole_pass_pixels:
        edge, overlap = max(height, width), 0  # one window: tiles would only add overlap
    else:
        edge = tile or auto_tile_size(height, width, scale=scale, overlap=overlap, multiple=multiple)

    def call(batch: np.ndarray) -> np.ndarray:  # (N, C[+k], h, w)
        if planes is None:
            return model(batch, *constants)
        return model(batch[:, :image_channels], batch[:, image_channels:], *constants)

    return tiled_apply(call, stacked, scale=scale, tile=edge, overlap=overlap, multiple=multiple,
                       out_channels=out_channels or image_channels,
                       out_dtype=out_dtype, progress=progress)


def apply_to_picture(model: Callable[..., np.ndarray], picture: Picture, running: Running, *,
                     tile: int | None = None, progress=None, **options) -> Picture:
    """run_model on the picture's colour (or its luma, for a grey model); alpha resized alongside."""
    height, width = picture.rgb.shape[:2]
    if running.input_convention == "gray01":
        luma = to_float(picture.rgb) @ LUMA  # (H, W)
        grey = run_model(model, luma, running, tile=tile, out_channels=1, progress=progress, **options)
        rgb = _from_unit(np.repeat(grey[..., None], 3, axis=2), picture.rgb.dtype)
    else:
        rgb = run_model(model, picture.rgb, running, tile=tile, out_dtype=picture.rgb.dtype, progress=progress,
                        **options)
    alpha = picture.alpha
    if alpha is not None and running.scale != 1:
        alpha = resize_plane(alpha, (width * running.scale, height * running.scale))
    return picture.replace(rgb=rgb, alpha=alpha)


def _from_unit(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    from ..io.images import from_float

    return values if np.dtype(dtype).kind == "f" else from_float(np.clip(values, 0.0, 1.0), dtype)


def model_transform(weights: Weights, *, device: str = "auto", threads: int | None = None,
                    tile: int | None = None) -> Callable[..., Picture]:
    """A Transform that runs these single-input weights on any picture."""
    model: OnnxModel = load_model(weights.verified_path(), device=device, threads=threads)

    def transform(picture: Picture, progress=None) -> Picture:
        return apply_to_picture(model, picture, weights.running, tile=tile, progress=progress)

    return transform
