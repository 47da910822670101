"""imgan: plugin-based image-to-image deep learning (style transfer, SR, inpainting, video).

Library first: each CLI verb is a function here.

    imgan.upscale("photo.jpg", output="photo_x4.png")        # files, folders, globs: a BatchReport
    big = imgan.upscale(pil_image, model="srgan")            # a PIL image or array: the same kind back
    imgan.stylize(array, style="monet:0.6,hokusai:0.4")
    imgan.inpaint("photo.jpg", mask="mask.png", output="clean.png")

Bad input raises the typed errors of imgan.errors. Importing imgan is cheap (no torch, no typer);
heavy modules load when first used.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ImganError  # noqa: E402
from .plugins import hookimpl  # noqa: E402
from .tasks import Task  # noqa: E402

__all__ = ["__version__", "ImganError", "Task", "hookimpl", "run", "get_task", "list_tasks", "stylize", "upscale",
           "inpaint", "bicubic", "predict"]


def run(task, inputs, **kwargs):
    """Run a task over inputs; see :func:`imgan.api.run`."""
    from .api import run as _run

    return _run(task, inputs, **kwargs)


def get_task(name: str) -> Task:
    from .plugins import get_task as _get

    return _get(name)


def list_tasks() -> list[Task]:
    from .plugins import get_tasks

    return get_tasks().all()


def _verb(name: str):
    def verb(source, **kwargs):
        from .api import VERB_TASKS, process

        return process(VERB_TASKS[name], source, **kwargs)

    verb.__name__ = verb.__qualname__ = name
    verb.__doc__ = f"`imgan {name}` as a function; see imgan.api.process for sources, outputs and options."
    return verb


stylize = _verb("stylize")
upscale = _verb("upscale")
inpaint = _verb("inpaint")
bicubic = _verb("bicubic")


def predict(clip, **kwargs):
    """`imgan predict CLIP` as a function: the next frames of a video file (a Prediction with the frames,
    (future, H, W, 3) uint8, and the files written); options as keywords (context, future, output, ...)."""
    get_task("video")  # a one-line UsageError when the video plugin is not installed
    from imgan_video.infer import predict_clip

    return predict_clip(clip, **kwargs)
