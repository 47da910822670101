"""Built-in plugin: style transfer.

Fast styles (Johnson et al. 2016) run as ONNX feed-forward nets: `imgan stylize photo.jpg --style
monet`. Any painting can also be applied by optimising the picture itself (Gatys et al., torch):
`imgan stylize photo.jpg --style-image painting.jpg`. `imgan train style` adds a fast style.
Kept light: numpy, onnxruntime and torch load inside the functions.
"""
from __future__ import annotations

from imgan import Task, hookimpl

from .commands import TASK, eval_command, export, stylize_options, styles_command, train_command, validate_stylize


def make_transform(*, weights=None, device="auto", threads=None, tile=None, style=None, strength=1.0,
                   preserve_color=False, size=None, compare=None, stable=True, style_image=None, steps=300,
                   optimizer="lbfgs", reference_size=None):
    """The per-picture transform: a fast style net, or optimisation when `style_image` is given."""
    from .infer import DEFAULT_REFERENCE_SIZE, StyleOptions, make_fast_transform, painting_thumbnail

    options = StyleOptions(size=size, strength=strength, preserve_color=preserve_color, stable=stable,
                           compare=compare, reference_size=reference_size or DEFAULT_REFERENCE_SIZE)
    if style_image is not None:
        thumbnail = painting_thumbnail(style_image)  # an unreadable painting fails before torch loads
        from .optimise import make_optimisation_transform

        return make_optimisation_transform(style_image, steps=steps, optimizer=optimizer, device=device,
                                           threads=threads, options=options, style=style, weights=weights,
                                           thumbnail=thumbnail)
    return make_fast_transform(style=style, weights=weights, device=device, threads=threads, tile=tile,
                               options=options)


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="style transfer: fast ONNX styles (monet, vangogh, hokusai, kandinsky) "
                                     "and Gatys optimisation with any painting",
                  make_transform=make_transform, default_weights="monet", verb="stylize",
                  train=train_command, export=export, evaluate=eval_command))


@hookimpl
def register_commands(app):
    from imgan.cli_support import add_image_command

    add_image_command(app, "stylize", task=TASK, options=stylize_options, validate=validate_stylize,
                      help="Paint images or videos in the style of a painting (--style NAME, or --style-image FILE).")
    app.command("styles")(styles_command)
