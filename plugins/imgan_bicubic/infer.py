"""Inference: the shipped bicubic ONNX file through the core's one image path."""
from __future__ import annotations

from imgan.runtime.model_transform import model_transform
from imgan.weights import resolve_weights

from . import TASK


def make_transform(*, weights=None, device="auto", threads=None, tile=None):
    return model_transform(resolve_weights(TASK, weights), device=device, threads=threads, tile=tile)
