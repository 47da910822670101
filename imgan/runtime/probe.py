"""A card for an ONNX file that came without one: probe it once, remember the result.

Only single-input image models can be probed: the file is run on a small random RGB (or grey)
picture in [0, 1], the scale is read from the output size, and the output range is checked. The
card is stored under $IMGAN_HOME/probed/ keyed by the file's sha256, so the next run is instant.
Models with more inputs (a style reference, an inpainting mask) need the card `imgan export` writes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cards import ModelCard, Running, read_card, write_card
from ..errors import WeightsError
from .session import load_model

PROBE_SIDES = (32, 48)


def probed_card(path: Path, task: str, *, digest: str, store: Path) -> ModelCard:
    """The remembered probe of this exact file (sha256 ``digest``) in ``store``, or a new probe
    (written there for next time)."""
    stored = store / f"{digest[:16]}.json"
    if stored.is_file():
        card = read_card(stored)
        if card.sha256 == digest and card.task == task:
            return card.replace(file=str(path.resolve()))
    card = ModelCard(task=task, name=path.stem, file=str(path.resolve()), sha256=digest,
                     description=f"probed from {path.name} (no model card beside it)",
                     running=_probe_running(path))
    stored.parent.mkdir(parents=True, exist_ok=True)
    write_card(card, stored)
    return card


def _probe_running(path: Path) -> Running:
    model = load_model(path, device="cpu", threads=1)
    inputs = model.session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        names = ", ".join(item.name for item in inputs)
        raise WeightsError(f"cannot probe a model with inputs {names}: only one NCHW image input can be guessed",
                           path=path, hint="put the model card (.json) that `imgan export` wrote beside the file")
    channels = inputs[0].shape[1] if isinstance(inputs[0].shape[1], int) else 3
    if channels not in (1, 3):
        raise WeightsError(f"the model takes {channels} channels; only RGB or grey images can be fed", path=path)
    scales = {_scale_at(model, channels, side, path) for side in PROBE_SIDES}
    if len(scales) != 1:
        raise WeightsError("the model's output size is not a fixed multiple of its input size", path=path,
                           hint="add a model card that gives scale and pad_multiple")
    return Running(scale=scales.pop(), pad_multiple=8, tile_overlap=32,
                   input_convention="gray01" if channels == 1 else "rgb01")


def _scale_at(model, channels: int, side: int, path: Path) -> int:
    picture = np.random.default_rng(side).random((1, channels, side, side), dtype=np.float32)
    try:
        output = model(picture)
    except Exception as error:  # onnxruntime raises its own exception types
        raise WeightsError(f"the model fails on a {side}x{side} picture: {str(error).splitlines()[0]}", path=path,
                           hint="add a model card that gives its input size rules") from None
    if output.ndim != 4 or output.shape[1] != channels or output.shape[2] % side or output.shape[2] != output.shape[3]:
        raise WeightsError(f"a {side}x{side} picture gives an output of shape {tuple(output.shape)}, not an image",
                           path=path, hint="add a model card that describes its outputs")
    outside = float(np.mean((output < -0.05) | (output > 1.05)))
    if outside > 0.01:
        raise WeightsError(f"{outside:.0%} of the output lies outside [0, 1]: the model expects another value range",
                           path=path, hint="imgan feeds RGB in [0, 1]; add a card with the model's convention")
    return output.shape[2] // side
