"""Inference for `imgan upscale`: ONNX Runtime and NumPy only (no torch anywhere below).

--scale: the weights of that scale when they are catalogued (srresnet-x2 for `--scale 2`), else
the ×4 model's result reduced by area averaging (×2, ×3). --tta: the self-ensemble of Lim et al.
2017 (EDSR+): the model runs on the 8 flips and rotations of every tile, each result is turned
back and the 8 are averaged in float, before rounding to the output's bits.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from imgan.errors import UsageError
from imgan.io.images import Picture, resize_plane
from imgan.runtime.model_transform import apply_to_picture
from imgan.runtime.session import load_model
from imgan.weights import Weights, resolve_weights, weights_for_task

from . import TASK
from .spec import DEFAULT_MODEL, DEFAULT_SCALE, MODEL_WEIGHTS, check_options, weights_name

DIHEDRAL = 8  # the symmetries of the square: 4 rotations, each with and without a mirror

Model = Callable[..., np.ndarray]  # (N, C, h, w) float32 -> (N, C, h*s, w*s)


def dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """Symmetry ``index`` (0..7) of the last two axes: rotation by 90° x (index % 4), then a mirror if index >= 4."""
    turned = np.rot90(array, index % 4, axes=(-2, -1))
    return turned[..., ::-1] if index >= 4 else turned


def undo_dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """The inverse of :func:`dihedral`."""
    unmirrored = array[..., ::-1] if index >= 4 else array
    return np.rot90(unmirrored, -(index % 4), axes=(-2, -1))


def self_ensemble(model: Model) -> Model:
    """``model`` averaged over the 8 symmetries of its input, each output turned back (float32)."""
    def ensembled(batch: np.ndarray, *constants: np.ndarray) -> np.ndarray:  # (N, C, h, w)
        total = None
        for index in range(DIHEDRAL):
            output = undo_dihedral(model(np.ascontiguousarray(dihedral(batch, index)), *constants), index)
            total = output.astype(np.float32) if total is None else total + output
        return total / np.float32(DIHEDRAL)

    return ensembled


def weights_transform(weights: Weights, *, device: str = "auto", threads: int | None = None,
                      tile: int | None = None, tta: bool = False) -> Callable[..., Picture]:
    """Picture -> Picture upscaled by the weights' own scale (the core's apply_to_picture), with --tta."""
    model: Model = load_model(weights.verified_path(), device=device, threads=threads)
    if tta:
        model = self_ensemble(model)

    def transform(picture: Picture, progress=None) -> Picture:
        return apply_to_picture(model, picture, weights.running, tile=tile, progress=progress)

    return transform


def default_weights(model: str, scale: int) -> str:
    """The catalogued weights trained for ``scale`` (e.g. srresnet-x2), else the model's ×4 ones."""
    native = weights_name(model, scale)
    return native if native in weights_for_task(TASK) else MODEL_WEIGHTS[model]


def make_transform(*, weights: str | None = None, device: str = "auto", threads: int | None = None,
                   tile: int | None = None, model: str = DEFAULT_MODEL, scale: int | None = None,
                   tta: bool = False) -> Callable[..., Picture]:
    """Picture -> Picture upscaled by ``scale``: the weights' own scale, tiled, or a larger scale's
    result reduced by area averaging (×4 -> ×3 or ×2 when no ×2 weights are catalogued).

    ``weights`` (a catalogue name or .onnx path) overrides the one ``model`` and ``scale`` name;
    ``scale`` None: the weights' own (4 for the models' default weights).
    """
    check_options(model, scale)
    chosen = resolve_weights(TASK, weights, default=default_weights(model, scale or DEFAULT_SCALE))
    scale = scale or chosen.scale
    if chosen.scale < scale:
        raise UsageError(f"weights {chosen.name} upscale ×{chosen.scale}; ×{scale} cannot be made from that",
                         hint="use --scale at most the weights' scale")
    upscale = weights_transform(chosen, device=device, threads=threads, tile=tile, tta=tta)
    if scale == chosen.scale:
        return upscale

    def upscale_then_reduce(picture: Picture, progress=None) -> Picture:
        # Area averaging of the larger result keeps its detail and aliases less than upscaling less.
        large = upscale(picture, progress=progress)
        size = (picture.size[0] * scale, picture.size[1] * scale)
        alpha = None if large.alpha is None else resize_plane(large.alpha, size)
        return large.replace(rgb=resize_plane(large.rgb, size), alpha=alpha)

    return upscale_then_reduce
