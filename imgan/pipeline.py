"""Run one per-image transform over a batch of jobs: images, folders and videos alike.

Before the first image: every output folder is checked (an unusable ``-o DIR`` stops the run with
one error; an unusable folder of some outputs fails just their files). Flow per job: skip or
refuse an existing output → read → transform (outputs above --max-pixels refused before any
computing) → write atomically. A failing file, whatever it raised, is recorded and the batch goes
on (IMGAN_DEBUG=1 prints the traceback too); the caller decides how to report the failures.
Ctrl-C stops the batch with :class:`BatchInterrupted`, which carries the report so far.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from .errors import BatchInterrupted, ImganError, OutputError
from .fs import check_output_folder
from .io.batch import Job, plan_jobs
from .io.images import (DEFAULT_MAX_PIXELS, Picture, from_float, read_image, read_image_bytes, to_float, write_image,
                        write_image_stream)
from .runtime.tiling import output_pixel_limit

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
    strict: bool = False  # video: a file that decodes fewer frames than its header says fails instead of a warning


class Progress:
    """Event sink for a batch; the CLI renders it with rich, the library default is silent."""

    def batch_started(self, jobs: Sequence[Job]) -> None: ...
    def file_started(self, job: Job, unit: str | None = None) -> None: ...  # unit: what file_advanced counts
    def file_advanced(self, done: int, total: int) -> None: ...
    def file_finished(self, job: Job, status: str, message: str | None = None) -> None: ...
    def warned(self, message: str) -> None: ...


@dataclass
class BatchReport:
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # one line each, naming the file
    file_seconds: dict[str, float] = field(default_factory=dict)  # str(job.source) -> seconds, done jobs
    total: int = 0  # jobs in the batch
    interrupted: bool = False  # Ctrl-C stopped the batch before its end
    also_written: list[Path] = field(default_factory=list)  # files a transform wrote besides the outputs

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def finished(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failures)


def frames_through(transform: Transform) -> Callable[[np.ndarray], np.ndarray]:
    """The video path: each RGB uint8 frame goes through the same transform as an image."""

    def frame_fn(frame: np.ndarray) -> np.ndarray:
        result = transform(Picture(rgb=frame, alpha=None))
        return result.rgb if result.rgb.dtype == np.uint8 else from_float(to_float(result.rgb), np.uint8)

    return frame_fn


def _make_mirrored_folder(job: Job) -> None:
    # Folders under -o DIR mirror the input tree; a missing folder for an explicit -o FILE stays an error.
    if not job.single_output:
        try:
            job.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder ({exc.strerror or type(exc).__name__})",
                              path=job.output.parent, hint="check the output path and its permissions") from None


def _run_image(job: Job, transform: Transform, options: RunOptions, progress: Progress) -> list[str]:
    if job.stdin:
        picture = read_image_bytes(sys.stdin.buffer.read(), name=job.source, max_pixels=options.max_pixels)
    else:
        picture = read_image(job.source, max_pixels=options.max_pixels)
    result = transform(picture, progress=progress.file_advanced)
    if job.to_stdout:
        write_image_stream(result, sys.stdout.buffer, ext=job.stdout_ext, quality=options.quality)
        return []
    _make_mirrored_folder(job)
    write_image(result, job.output, quality=options.quality, overwrite=options.overwrite)
    return []


def _run_video(job: Job, transform: Transform, options: RunOptions, progress: Progress) -> list[str]:
    from .io.video import transform_video

    _make_mirrored_folder(job)
    result = transform_video(job.source, job.output, frames_through(transform), start=options.start, end=options.end,
                             max_frames=options.max_frames, overwrite=options.overwrite,
                             keep_audio=options.keep_audio, progress=progress.file_advanced, strict=options.strict)
    return result.warnings


def _will_be_skipped(job: Job, options: RunOptions) -> bool:
    return not job.to_stdout and not options.overwrite and job.output.exists()


def _output_problems(jobs: Sequence[Job], options: RunOptions) -> dict[Job, str]:
    """Before any image: OutputError if the -o folder cannot be used at all (one error, not one per
    file); else the jobs whose own output folder cannot be written, with the reason."""
    if options.output is not None and jobs and not jobs[0].single_output and not jobs[0].to_stdout:
        check_output_folder(options.output)
    reasons: dict[Path, str | None] = {}
    problems: dict[Job, str] = {}
    for job in jobs:
        if job.to_stdout or _will_be_skipped(job, options):
            continue
        folder = job.output.parent
        if folder not in reasons:
            reasons[folder] = _folder_problem(job, folder)
        if reasons[folder] is not None:
            problems[job] = reasons[folder]
    return problems


def _folder_problem(job: Job, folder: Path) -> str | None:
    try:
        if job.single_output and not folder.is_dir():
            raise OutputError("the output folder does not exist", path=job.output,
                              hint=f"create it first (mkdir -p '{folder}')")
        check_output_folder(folder)
    except OutputError as exc:
        return exc.one_line()
    return None


def _naming_the_file(message: str, job: Job) -> str:
    """Every failure line names its input, even when the error itself names a model or an output."""
    return message if str(job.source) in message else f"{job.source}: {message}"


def _debug() -> bool:
    return os.environ.get("IMGAN_DEBUG") == "1"


def _run_one(job: Job, transform: Transform, options: RunOptions, progress: Progress, report: BatchReport,
             problem: str | None) -> None:
    def fail(message: str) -> None:
        report.failures[str(job.source)] = message
        progress.file_finished(job, "failed", message)

    if _will_be_skipped(job, options):
        if job.explicit:
            fail(OutputError("output exists", path=job.output, hint="pass --overwrite to replace it").one_line())
        else:  # folders resume: what is done stays done
            report.skipped.append(job)
            progress.file_finished(job, "skipped")
        return
    if problem is not None:
        return fail(_naming_the_file(problem, job))
    progress.file_started(job, getattr(transform, "progress_unit", None))  # e.g. "steps" for an optimisation
    began = time.perf_counter()
    try:
        with output_pixel_limit(options.max_pixels):
            notes = (_run_video if job.is_video else _run_image)(job, transform, options, progress)
    except ImganError as exc:
        if _debug():
            traceback.print_exc()
        return fail(_naming_the_file(exc.one_line(), job))
    except MemoryError:
        if _debug():
            traceback.print_exc()
        return fail(f"{job.source}: out of memory (try a smaller --tile, fewer --threads, or a smaller picture)")
    except Exception as exc:  # noqa: BLE001 - one file's surprise must not end the batch
        if _debug():
            traceback.print_exc()
        detail = " ".join(str(exc).split()) or "no message"
        return fail(f"{job.source}: unexpected {type(exc).__name__}: {detail} (IMGAN_DEBUG=1 shows the traceback)")
    for note in notes:
        report.warnings.append(_naming_the_file(note, job))
        progress.warned(report.warnings[-1])
    extra = getattr(transform, "also_written", None)  # e.g. stylize --compare sheets
    if isinstance(extra, list):
        report.also_written.extend(extra)
        extra.clear()
    report.done.append(job)
    report.file_seconds[str(job.source)] = time.perf_counter() - began
    progress.file_finished(job, "done")


# What other engines (imgan.engines.ray_engine) reuse, so that every engine checks, skips, fails
# and reports a job exactly as run_jobs does.
output_problems = _output_problems
will_be_skipped = _will_be_skipped


def run_job(job: Job, transform: Transform | None, options: RunOptions, progress: Progress | None = None,
            problem: str | None = None) -> BatchReport:
    """One job as run_jobs runs it (skip or refuse an existing output, read, transform, write
    atomically, any failure recorded naming the file): the report of that one job. `transform`
    may be None for a job that is skipped or has a `problem`: it is not called then."""
    report = BatchReport(total=1)
    _run_one(job, transform, options, progress or Progress(), report, problem)
    return report


def run_jobs(jobs: Sequence[Job], transform: Transform, options: RunOptions, progress: Progress | None = None) -> BatchReport:
    """Run `transform` over `jobs`; see the module docstring for what is checked first and how
    failures and Ctrl-C are reported. `jobs` may carry `warnings` (plan_jobs' JobList)."""
    progress = progress or Progress()
    report = BatchReport(total=len(jobs), warnings=list(getattr(jobs, "warnings", [])))
    started = time.perf_counter()
    problems = _output_problems(jobs, options)
    progress.batch_started(jobs)
    for warning in report.warnings:
        progress.warned(warning)
    try:
        for job in jobs:
            _run_one(job, transform, options, progress, report, problems.get(job))
    except KeyboardInterrupt as exc:
        report.interrupted = True
        report.seconds = time.perf_counter() - started
        raise BatchInterrupted(report, report.finished, len(jobs)) from exc
    report.seconds = time.perf_counter() - started
    return report


def run_task(inputs: Sequence[str | os.PathLike], transform: Transform, *, task: str,
             options: RunOptions | None = None, progress: Progress | None = None) -> BatchReport:
    """Plan the jobs for `inputs` and run `transform` over them."""
    options = options or RunOptions()
    jobs = plan_jobs(inputs, task=task, output=options.output, recursive=options.recursive,
                     output_ext=options.output_ext)
    return run_jobs(jobs, transform, options, progress)
