"""Built-in plugin: a ×2 bicubic upscaler as an ONNX model.

It is the smallest real task: it goes through the same plugin, weights, session, tiling, batch
and video paths as the learned models, so the core can be tested and demonstrated without them.
Kept light: heavy modules are imported inside the functions.
"""
from __future__ import annotations

from imgan import Task, hookimpl

TASK = "bicubic"


def make_transform(*, weights=None, device="auto", threads=None, tile=None):
    from imgan.runtime.model_transform import model_transform
    from imgan.weights import resolve_weights

    return model_transform(resolve_weights(TASK, weights, default="x2"), device=device, threads=threads, tile=tile)


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="×2 bicubic upscaling (ONNX Resize, a=-0.75): a baseline and a core test",
                  make_transform=make_transform, default_weights="x2", verb="bicubic"))


@hookimpl
def register_commands(app):
    from imgan.cli_support import add_image_command

    add_image_command(app, "bicubic", task=TASK, help="Upscale images or videos ×2 with bicubic interpolation.")
