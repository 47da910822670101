"""Library entry points: what each CLI verb calls. ``imgan.run("sr", ["a.jpg"])`` = ``imgan upscale a.jpg``."""
from __future__ import annotations

import os
from typing import Any, Sequence

from .pipeline import BatchReport, Progress, RunOptions, run_task
from .plugins import get_task


def build_transform(task: str, *, weights: str | os.PathLike | None = None, device: str = "auto",
                    threads: int | None = None, tile: int | None = None, **task_options: Any):
    """The per-picture transform of a task, with its weights loaded once."""
    descriptor = get_task(task)
    make_transform = descriptor.resolve("make_transform")
    if make_transform is None:
        from .errors import UsageError

        raise UsageError(f"task {task!r} has no image inference")
    return make_transform(weights=weights, device=device, threads=threads, tile=tile, **task_options)


def run(task: str, inputs: Sequence[str | os.PathLike], *, options: RunOptions | None = None,
        progress: Progress | None = None, weights: str | os.PathLike | None = None, device: str = "auto",
        threads: int | None = None, tile: int | None = None, **task_options: Any) -> BatchReport:
    """Run a task over files, folders, globs or videos; returns what was done, skipped and failed."""
    transform = build_transform(task, weights=weights, device=device, threads=threads, tile=tile, **task_options)
    return run_task(inputs, transform, task=get_task(task).name, options=options, progress=progress)


# ----------------------------------------------------------------------------------- one picture or many

# The verbs of the Python API and the task each runs.
VERB_TASKS = {"stylize": "style", "upscale": "sr", "inpaint": "inpaint", "bicubic": "bicubic"}


def process(task: str, source: Any, *, output: str | os.PathLike | None = None, options: RunOptions | None = None,
            weights: str | os.PathLike | None = None, device: str = "auto", threads: int | None = None,
            tile: int | None = None, **task_options: Any):
    """Run a task on ``source``: a PIL image or an (H, W[, 3|4]) uint8/uint16 array returns the same
    kind of image; a path, a folder, a glob or a list of them runs as a batch (like the CLI) and
    returns its BatchReport (``output``: a file or a folder, as ``-o``)."""
    if _is_paths(source):
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        run_options = options or RunOptions()
        if output is not None:
            from dataclasses import replace

            run_options = replace(run_options, output=output)
        return run(task, paths, options=run_options, weights=weights, device=device, threads=threads, tile=tile,
                   **task_options)
    from .io.pictures import picture_from_image, picture_to_like

    transform = build_transform(task, weights=weights, device=device, threads=threads, tile=tile, **task_options)
    return picture_to_like(transform(picture_from_image(source)), source)


def _is_paths(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, (list, tuple)) and all(isinstance(item, (str, os.PathLike)) for item in source)
