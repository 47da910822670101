"""Built-in plugin: a ×2 bicubic upscaler as an ONNX model.

It is the smallest real task: it goes through the same plugin, weights, session, tiling, batch
and video paths as the learned models, so the core can be tested and demonstrated without them.
Hooks only: everything else is named by reference and loaded when used.
"""
from __future__ import annotations

from imgan import Task, hookimpl

TASK = "bicubic"


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="Upscale images or videos ×2 with bicubic interpolation (ONNX Resize, a=-0.75).",
                  verb="bicubic", default_weights="x2", make_transform="imgan_bicubic.infer:make_transform"))
