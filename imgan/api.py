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
