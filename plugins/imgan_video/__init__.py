"""Built-in plugin: video frame prediction with a ConvLSTM (task "video").

`imgan predict CLIP` forecasts the next frames of a clip; `imgan interpolate CLIP` adds in-between
frames (optical flow, or flow refined by a trained net: task "video-interp", `imgan train
video-interp`) and measures them against held-back real frames; `imgan train video` trains on Moving
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
    from .spec import DEFAULT_WEIGHTS, INTERP_NAME, INTERP_TASK

    register(Task(name=TASK, summary="next-frame prediction: ConvLSTM generator + 3-D critic (Moving MNIST, your clips)",
                  default_weights=DEFAULT_WEIGHTS, model="imgan_video.model:SPEC", train="imgan_video.cli:train",
                  evaluate="imgan_video.cli:evaluate"))
    # The learned in-between frames behind `imgan interpolate --method learned` (no verb of its own)
    register(Task(name=INTERP_TASK, summary="frame interpolation: Farnebäck flows refined by a small U-Net "
                                            "(flow corrections, visibility, residual), behind `imgan interpolate --method learned`",
                  default_weights=INTERP_NAME, model="imgan_video.refine:SPEC", train="imgan_video.cli:train_interp"))


@hookimpl
def register_commands(app):
    from . import cli

    app.command("predict")(cli.predict)
    app.command("interpolate")(cli.interpolate)
