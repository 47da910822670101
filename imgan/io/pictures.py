"""Pictures from and to in-memory images (PIL images, NumPy arrays), for the Python API."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .images import Picture

_DTYPES = (np.uint8, np.uint16)


def picture_from_image(image: Any) -> Picture:
    """A Picture from a PIL image or an (H, W), (H, W, 3) or (H, W, 4) uint8/uint16 array."""
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image, without importing PIL here
        image = np.asarray(image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB"))
    if not isinstance(image, np.ndarray):
        raise InputError(f"cannot read a {type(image).__name__} as an image",
                         hint="pass a path, a PIL image or an (H, W, 3) uint8/uint16 NumPy array")
    if image.dtype not in _DTYPES or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4) uint8 or uint16, "
                         f"not {image.shape} {image.dtype}", hint="convert it, e.g. (array * 255).astype(np.uint8)")
    if image.ndim == 2:
        return Picture(rgb=np.repeat(image[..., None], 3, axis=2), alpha=None, gray=True)
    alpha = np.ascontiguousarray(image[..., 3]) if image.shape[2] == 4 else None
    return Picture(rgb=np.ascontiguousarray(image[..., :3]), alpha=alpha)


def picture_to_like(picture: Picture, like: Any) -> Any:
    """The picture as the kind of image ``like`` was: a PIL image, or an array of its layout."""
    if picture.gray and picture.alpha is None:
        array = picture.rgb[..., 0] if np.ndarray is type(like) and like.ndim == 2 else picture.rgb
    else:
        array = picture.rgb if picture.alpha is None else np.dstack([picture.rgb, picture.alpha])
    if isinstance(like, np.ndarray):
        return array
    from PIL import Image

    if array.dtype == np.uint16:  # PIL has no 16-bit RGB mode: hand back 8 bits
        array = (array // 257).astype(np.uint8)
    return Image.fromarray(array)
