"""Built-in plugin: video frame prediction with a ConvLSTM (task "video").

`imgan predict CLIP` forecasts the next frames of a clip; `imgan interpolate CLIP` adds in-between
frames (optical flow) and measures them against held-back real frames; `imgan train video` trains on Moving
MNIST (made by code) or on your clips; `imgan eval video` measures the model on the fixed Moving
MNIST test set against trivial baselines; `imgan export video` writes one prediction step as ONNX.
Not a per-frame image transform (each frame depends on the ones before it), so it registers its
own command rather than an image verb. Kept light: heavy modules are imported inside functions.
"""
from __future__ import annotations

from imgan import Task, hookimpl

from . import cli

TASK = "video"


def export(checkpoint, output, name=None):
    from .recipe import export as export_step

    return export_step(checkpoint, output, name)


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="next-frame prediction: ConvLSTM generator + 3-D critic (Moving MNIST, your clips)",
                  default_weights="convlstm-mmnist", train=cli.train, export=export, evaluate=cli.evaluate))


@hookimpl
def register_commands(app):
    app.command("predict")(cli.predict)
    app.command("interpolate")(cli.interpolate)
