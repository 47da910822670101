"""Built-in plugin: ×4 super-resolution with SRResNet and SRGAN (Ledig et al. 2017).

Task "sr": `imgan upscale` (inference, ONNX Runtime), `imgan train sr`, `imgan export sr`,
`imgan eval sr`. Hooks only: everything else is named by reference and loaded when used.
"""
from __future__ import annotations

from imgan import Task, hookimpl

from .spec import DEFAULT_MODEL, MODEL_WEIGHTS

TASK = "sr"


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, verb="upscale", default_weights=MODEL_WEIGHTS[DEFAULT_MODEL],
                  summary="Upscale images or videos ×4 (or ×2, ×3) with SRResNet (PSNR) or SRGAN (perceptual), "
                          "Ledig et al. 2017; folders resume.",
                  make_transform="imgan_srgan.infer:make_transform", verb_options="imgan_srgan.cli:verb_options",
                  validate="imgan_srgan.spec:validate_options", model="imgan_srgan.model:SPEC",
                  train="imgan_srgan.cli:train", evaluate="imgan_srgan.cli:evaluate"))
