"""Built-in plugin: style transfer.

Fast styles (Johnson et al. 2016) run as ONNX feed-forward nets: `imgan stylize photo.jpg --style
monet`. Any painting applies in one pass by universal style transfer (WCT, Li et al. 2017: VGG19
encoder ONNX -> NumPy whitening/colouring -> decoder ONNX): `--style-image painting.jpg`, or a
painting style by name (`--style munch-the-scream`, blends `--style a:0.6,b:0.4`; `imgan styles`).
`--method optimise` optimises the picture itself instead (Gatys et al., torch). `imgan train style`
adds a fast style; `imgan train style-universal` trains the WCT decoders (task "style-universal").
Hooks only: everything else is named by reference and loaded when used.
"""
from __future__ import annotations

from imgan import Task, hookimpl

from .spec import DEFAULT_STYLE, TASK, UNIVERSAL_TASK


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, verb="stylize", default_weights=DEFAULT_STYLE,
                  summary="Paint images or videos in the style of a painting: a named style (--style NAME, see "
                          "`imgan styles`: fast nets and painting styles, blends a:0.6,b:0.4) or any painting "
                          "(--style-image FILE, one pass; --method optimise for an optimisation).",
                  make_transform="imgan_style.infer:make_transform", verb_options="imgan_style.cli:verb_options",
                  validate="imgan_style.spec:validate_options", model="imgan_style.model:SPEC",
                  train="imgan_style.cli:train", evaluate="imgan_style.cli:evaluate"))
    # The universal path's VGG19 encoders and trained decoders (no verb: `imgan stylize` runs them)
    register(Task(name=UNIVERSAL_TASK, summary="Universal style transfer (WCT): VGG19 encoders and the decoders that "
                                               "invert them, behind `imgan stylize --style-image` and the painting styles.",
                  model="imgan_style.universal:SPEC", train="imgan_style.cli:train_universal",
                  evaluate="imgan_style.cli:evaluate_universal"))


@hookimpl
def register_commands(app):
    from .cli import styles

    app.command("styles")(styles)
