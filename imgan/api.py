"""Library entry points: what each CLI verb calls. ``imgan.run("sr", ["a.jpg"])`` = ``imgan upscale a.jpg``."""
from __future__ import annotations

import os
from typing import Any, Sequence

from .pipeline import BatchReport, Progress, RunOptions, run_task
from .plugins import build_transform, get_task  # noqa: F401  (build_transform: part of the API)


def run(task: str, inputs: Sequence[str | os.PathLike], *, options: RunOptions | None = None,
        progress: Progress | None = None, weights: str | os.PathLike | None = None, device: str = "auto",
        threads: int | None = None, tile: int | None = None, engine: str = "local", ray_address: str | None = None,
        workers: int | None = None, gpus_per_worker: float | None = None, batch_size: int | None = None,
        **task_options: Any) -> BatchReport:
    """Run a task over files, folders, globs or videos; returns what was done, skipped and failed.

    ``engine="ray"`` spreads the images over the workers of a Ray cluster (``pip install 'imgan[ray]'``):
    ``ray_address`` ("auto", "HOST:PORT"; default a local Ray), ``workers`` (actors, one model session
    each, ``threads`` threads each), ``gpus_per_worker``, ``batch_size`` (images per worker call)."""
    from .engines import ray_settings

    settings = ray_settings(engine, ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                            batch_size=batch_size)
    build = {"weights": weights, "device": device, "threads": threads, "tile": tile, **task_options}
    if settings is not None:
        from .engines.ray_engine import run_on_ray

        return run_on_ray(get_task(task).name, inputs, build=build, settings=settings, options=options,
                          progress=progress)
    transform = build_transform(task, **build)
    return run_task(inputs, transform, task=get_task(task).name, options=options, progress=progress)


# ----------------------------------------------------------------------------------- one picture or many

# The verbs of the Python API and the task each runs.
VERB_TASKS = {"stylize": "style", "upscale": "sr", "inpaint": "inpaint", "bicubic": "bicubic"}


def process(task: str, source: Any, *, output: str | os.PathLike | None = None, options: RunOptions | None = None,
            weights: str | os.PathLike | None = None, device: str = "auto", threads: int | None = None,
            tile: int | None = None, **task_options: Any):
    """Run a task on ``source``: a PIL image or an (H, W[, 3|4]) uint8/uint16 array returns the same
    kind of image; a path, a folder, a glob or a list of them runs as a batch (like the CLI) and
    returns its BatchReport (``output``: a file or a folder, as ``-o``; RunOptions fields such as
    ``recursive`` or ``overwrite`` may be given as keywords)."""
    from dataclasses import fields, replace

    batch_keys = {item.name for item in fields(RunOptions)} - {"output"}
    batch_options = {key: task_options.pop(key) for key in list(task_options) if key in batch_keys}
    if _is_paths(source):
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        run_options = replace(options or RunOptions(), **batch_options,
                              **({"output": output} if output is not None else {}))
        return run(task, paths, options=run_options, weights=weights, device=device, threads=threads, tile=tile,
                   **task_options)
    from .engines import ENGINE_KEYWORDS
    from .io.pictures import picture_from_image, picture_to_like

    engine_options = {name: task_options.pop(name) for name in ENGINE_KEYWORDS & task_options.keys()}
    if engine_options.pop("engine", "local") != "local" or any(v is not None for v in engine_options.values()):
        from .errors import UsageError

        raise UsageError("the ray engine runs files and folders; an in-memory image runs in this process",
                         hint="pass paths, or leave out engine= and its options")
    transform = build_transform(task, weights=weights, device=device, threads=threads, tile=tile, **task_options)
    return picture_to_like(transform(picture_from_image(source)), source)


def _is_paths(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, (list, tuple)) and all(isinstance(item, (str, os.PathLike)) for item in source)
