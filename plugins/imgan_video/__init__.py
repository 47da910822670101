"""Built-in plugin: video frame prediction with a ConvLSTM (task "video").

`imgan predict CLIP` forecasts the next frames of a clip; `imgan interpolate CLIP` adds in-between
frames (optical flow) and measures them against held-back real frames; `imgan train video` trains on Moving
MNIST (made by code) or on your clips; `imgan eval video` measures the model on the fixed Moving
MNIST test set against trivial baselines; `imgan export video` writes one prediction step as ONNX.
Not a per-frame image transform (each frame depends on the ones before it), so it has no image
verb but commands of its own. Hooks only: everything else is named by reference and loaded when used.
"""
from __future__ import annotations

from imgan import Task, hookimpl

TASK = "video"


@hookimpl
def register_tasks(register):
    from .spec import DEFAULT_WEIGHTS

    register(Task(name=TASK, summary="next-frame prediction: ConvLSTM generator + 3-D critic (Moving MNIST, your clips)",
                  default_weights=DEFAULT_WEIGHTS, model="imgan_video.model:SPEC", train="imgan_video.cli:train",
                  evaluate="imgan_video.cli:evaluate"))


@hookimpl
def register_commands(app):
    from . import cli

    app.command("predict")(cli.predict)
    app.command("interpolate")(cli.interpolate)
