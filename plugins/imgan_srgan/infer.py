"""Inference for `imgan upscale`: ONNX Runtime and NumPy only (no torch anywhere below)."""
from __future__ import annotations

from typing import Callable

from imgan.errors import UsageError
from imgan.io.images import Picture, resize_plane
from imgan.runtime.model_transform import model_transform
from imgan.weights import resolve_weights

from . import TASK
from .spec import DEFAULT_MODEL, MODEL_WEIGHTS, check_options


def make_transform(*, weights: str | None = None, device: str = "auto", threads: int | None = None,
                   tile: int | None = None, model: str = DEFAULT_MODEL, scale: int = 4) -> Callable[..., Picture]:
    """Picture -> Picture upscaled by ``scale``: the model's ×4, tiled, or that ×4 result reduced to ×2.

    ``weights`` (a catalogue name or .onnx path) overrides the one ``model`` names.
    """
    check_options(model, scale)
    chosen = resolve_weights(TASK, weights, default=MODEL_WEIGHTS[model])
    if chosen.scale % scale:
        raise UsageError(f"weights {chosen.name} upscale ×{chosen.scale}; ×{scale} cannot be made from that",
                         hint="use --scale equal to the weights' scale, or a divisor of it")
    upscale = model_transform(chosen, device=device, threads=threads, tile=tile)
    if scale == chosen.scale:
        return upscale

    def upscale_then_reduce(picture: Picture, progress=None) -> Picture:
        # Area averaging of the ×4 result keeps its detail and aliases less than upscaling ×2 directly.
        large = upscale(picture, progress=progress)
        size = (picture.size[0] * scale, picture.size[1] * scale)
        alpha = None if large.alpha is None else resize_plane(large.alpha, size)
        return large.replace(rgb=resize_plane(large.rgb, size), alpha=alpha)

    return upscale_then_reduce
