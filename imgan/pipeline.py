"""Run one per-image transform over a batch of jobs: images, folders and videos alike.

Flow per job: skip or refuse an existing output → read → transform → write atomically. A failing
file is recorded and the batch goes on; the caller decides how to report the failures.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from .errors import ImganError, OutputError
from .io.batch import Job, plan_jobs
from .io.images import DEFAULT_MAX_PIXELS, Picture, from_float, read_image, to_float, write_image

TileProgress = Callable[[int, int], None]


class Transform(Protocol):
    """Picture in, picture out. `progress(done, total)` may be called with sub-steps (tiles)."""

    def __call__(self, picture: Picture, progress: TileProgress | None = None) -> Picture: ...


@dataclass
class RunOptions:
    output: str | os.PathLike | None = None
    overwrite: bool = False
    recursive: bool = False
    output_ext: str | None = None
    quality: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None
    keep_audio: bool = True


class Progress:
    """Event sink for a batch; the CLI renders it with rich, the library default is silent."""

    def batch_started(self, jobs: Sequence[Job]) -> None: ...
    def file_started(self, job: Job) -> None: ...
    def file_advanced(self, done: int, total: int) -> None: ...
    def file_finished(self, job: Job, status: str, message: str | None = None) -> None: ...


@dataclass
class BatchReport:
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def frames_through(transform: Transform) -> Callable[[np.ndarray], np.ndarray]:
    """The video path: each RGB uint8 frame goes through the same transform as an image."""

    def frame_fn(frame: np.ndarray) -> np.ndarray:
        result = transform(Picture(rgb=frame, alpha=None))
        return result.rgb if result.rgb.dtype == np.uint8 else from_float(to_float(result.rgb), np.uint8)

    return frame_fn


def _make_mirrored_folder(job: Job) -> None:
    # Folders under -o DIR mirror the input tree; a missing folder for an explicit -o FILE stays an error.
    if not job.single_output:
        job.output.parent.mkdir(parents=True, exist_ok=True)


def _run_image(job: Job, transform: Transform, options: RunOptions, progress: Progress) -> None:
    picture = read_image(job.source, max_pixels=options.max_pixels)
    result = transform(picture, progress=progress.file_advanced)
    _make_mirrored_folder(job)
    write_image(result, job.output, quality=options.quality, overwrite=options.overwrite)


def _run_video(job: Job, transform: Transform, options: RunOptions, progress: Progress) -> None:
    from .io.video import transform_video

    _make_mirrored_folder(job)
    transform_video(job.source, job.output, frames_through(transform), start=options.start, end=options.end,
                    max_frames=options.max_frames, overwrite=options.overwrite, keep_audio=options.keep_audio,
                    progress=progress.file_advanced)


def run_jobs(jobs: Sequence[Job], transform: Transform, options: RunOptions, progress: Progress | None = None) -> BatchReport:
    progress = progress or Progress()
    report = BatchReport()
    started = time.perf_counter()
    progress.batch_started(jobs)
    for job in jobs:
        if job.output.exists() and not options.overwrite:
            if job.explicit:
                message = OutputError("output exists", path=job.output, hint="pass --overwrite to replace it").one_line()
                report.failures[str(job.source)] = message
                progress.file_finished(job, "failed", message)
            else:  # folders resume: what is done stays done
                report.skipped.append(job)
                progress.file_finished(job, "skipped")
            continue
        progress.file_started(job)
        try:
            (_run_video if job.is_video else _run_image)(job, transform, options, progress)
        except ImganError as exc:
            report.failures[str(job.source)] = exc.one_line()
            progress.file_finished(job, "failed", exc.one_line())
            continue
        except (MemoryError, OSError, ValueError, RuntimeError) as exc:
            if os.environ.get("IMGAN_DEBUG") == "1":
                raise
            message = f"{job.source}: {type(exc).__name__}: {exc}"
            report.failures[str(job.source)] = message
            progress.file_finished(job, "failed", message)
            continue
        report.done.append(job)
        progress.file_finished(job, "done")
    report.seconds = time.perf_counter() - started
    return report


def run_task(inputs: Sequence[str | os.PathLike], transform: Transform, *, task: str,
             options: RunOptions | None = None, progress: Progress | None = None) -> BatchReport:
    """Plan the jobs for `inputs` and run `transform` over them."""
    options = options or RunOptions()
    jobs = plan_jobs(inputs, task=task, output=options.output, recursive=options.recursive,
                     output_ext=options.output_ext)
    return run_jobs(jobs, transform, options, progress)
