"""imgan_denoise, the template task plugin (docs/plugins.md): `imgan denoise`, `imgan train/export/eval denoise`.

Hooks only: every Task field names its function by reference ("module:attr"), imported when first used.
"""
from __future__ import annotations

from imgan import Task, hookimpl

TASK = "denoise"


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="Remove Gaussian noise from images or videos with a tiny residual CNN.",
                  verb="denoise", make_transform="imgan_denoise.infer:make_transform",
                  verb_options="imgan_denoise.cli:verb_options", validate="imgan_denoise.spec:validate_options",
                  model="imgan_denoise.model:SPEC", train="imgan_denoise.cli:train",
                  evaluate="imgan_denoise.cli:evaluate"))
