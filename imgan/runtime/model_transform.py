"""The standard transform for an image-to-image ONNX model: tiled, alpha and 16-bit aware."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..io.images import Picture, resize_plane
from ..weights import Weights
from .session import OnnxModel, load_model
from .tiling import auto_tile_size, tiled_apply

DEFAULT_OVERLAP = 16


def tile_overlap(weights: Weights) -> int:
    """Context each tile needs: the model card's receptive-field margin, else a safe default."""
    return int(weights.extra.get("tile_overlap", DEFAULT_OVERLAP))


def apply_model(model: Callable[[np.ndarray], np.ndarray], picture: Picture, *, scale: int, multiple: int,
                tile: int | None, overlap: int, progress=None) -> Picture:
    """Run `model` over the picture's RGB in tiles; resize alpha alongside when the size changes."""
    height, width = picture.rgb.shape[:2]
    tile = tile or auto_tile_size(height, width, scale=scale)
    rgb = tiled_apply(model, picture.rgb, scale=scale, tile=tile, overlap=overlap, multiple=multiple,
                      out_dtype=picture.rgb.dtype, progress=progress)
    alpha = picture.alpha
    if alpha is not None and scale != 1:
        alpha = resize_plane(alpha, (width * scale, height * scale))
    return picture.replace(rgb=rgb, alpha=alpha)


def model_transform(weights: Weights, *, device: str = "auto", threads: int | None = None,
                    tile: int | None = None) -> Callable[..., Picture]:
    """A Transform that runs these weights on any picture."""
    model: OnnxModel = load_model(weights.verified_path(), device=device, threads=threads)

    def transform(picture: Picture, progress=None) -> Picture:
        return apply_model(model, picture, scale=weights.scale, multiple=weights.pad_multiple, tile=tile,
                           overlap=tile_overlap(weights), progress=progress)

    return transform
