"""imgan: plugin-based image-to-image deep learning (style transfer, SR, inpainting, video).

Library first: ``imgan.run("sr", ["photo.jpg"])`` does what ``imgan upscale photo.jpg`` does.
Importing imgan is cheap; heavy modules load when first used.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ImganError  # noqa: E402
from .plugins import hookimpl  # noqa: E402
from .tasks import Task  # noqa: E402

__all__ = ["__version__", "ImganError", "Task", "hookimpl", "run", "get_task", "list_tasks"]


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
