"""Built-in plugin: style transfer.

Fast styles (Johnson et al. 2016) run as ONNX feed-forward nets: `imgan stylize photo.jpg --style
monet`. Any painting can also be applied by optimising the picture itself (Gatys et al., torch):
`imgan stylize photo.jpg --style-image painting.jpg`. `imgan train style` adds a fast style.
Hooks only: everything else is named by reference and loaded when used.
"""
from __future__ import annotations

from imgan import Task, hookimpl

from .spec import DEFAULT_STYLE, TASK


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, verb="stylize", default_weights=DEFAULT_STYLE,
                  summary="Paint images or videos in the style of a painting: a fast style (--style NAME, see "
                          "`imgan styles`) or an optimisation towards any painting (--style-image FILE).",
                  make_transform="imgan_style.infer:make_transform", verb_options="imgan_style.cli:verb_options",
                  validate="imgan_style.spec:validate_options", model="imgan_style.model:SPEC",
                  train="imgan_style.cli:train", evaluate="imgan_style.cli:evaluate"))


@hookimpl
def register_commands(app):
    from .cli import styles

    app.command("styles")(styles)
