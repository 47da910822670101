"""Built-in plugin: inpainting with free-form masks (a DeepFill v2-style gated-conv GAN).

Task "inpaint": `imgan inpaint` (inference, ONNX Runtime), `imgan train inpaint`,
`imgan export inpaint`, `imgan eval inpaint`. Hooks only: everything else is named by reference
and loaded when used (spec.py options and constants, cli.py commands, infer.py inference,
model.py the net and its SPEC, recipe.py training, evaluate.py the evaluation, masks.py masks).

    imgan inpaint photo.jpg --mask mask.png -o out.png       white = fill
    imgan inpaint photos/ --mask masks/ -o out/              masks matched by file stem
    imgan inpaint cutout.png                                 transparent pixels = fill
    imgan inpaint clip.mp4 --box 20,20,160,60                one fixed mask for every frame
"""
from __future__ import annotations

from imgan import Task, hookimpl

TASK = "inpaint"


@hookimpl
def register_tasks(register):
    from .spec import DEFAULT_WEIGHTS

    register(Task(name=TASK, verb="inpaint", default_weights=DEFAULT_WEIGHTS,
                  summary="Fill masked regions of images or videos (mask image, mask folder, alpha or boxes) "
                          "with a gated-conv inpainting GAN.",
                  make_transform="imgan_inpaint.infer:make_transform", verb_options="imgan_inpaint.cli:verb_options",
                  validate="imgan_inpaint.spec:validate_options", model="imgan_inpaint.model:SPEC",
                  train="imgan_inpaint.cli:train", evaluate="imgan_inpaint.cli:evaluate"))
