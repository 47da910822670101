"""Inference: the exported ONNX file through the core's one image path (numpy + ONNX Runtime)."""
from __future__ import annotations

from imgan.io.images import from_float, to_float
from imgan.runtime.model_transform import model_transform
from imgan.weights import resolve_weights

from . import TASK
from .spec import STRENGTH, validate_options


def make_transform(*, weights=None, device="auto", threads=None, tile=None, strength: float = STRENGTH):
    """Picture -> denoised Picture; ``strength`` < 1 blends the model's output with the input."""
    validate_options({"strength": strength})
    denoise = model_transform(resolve_weights(TASK, weights), device=device, threads=threads, tile=tile)
    if strength == 1.0:
        return denoise

    def blended(picture, progress=None):
        clean, noisy = to_float(denoise(picture, progress=progress).rgb), to_float(picture.rgb)
        return picture.replace(rgb=from_float(noisy + strength * (clean - noisy), picture.rgb.dtype))

    return blended
