"""The ray engine: the local engine's batch, its images spread over the actors of a Ray cluster.

One pipeline, with the local engine's pieces wherever it has them:

    plan_jobs (imgan.io.batch: expand, mirror, collisions)    the same jobs, in the same order
    output_problems, then on the driver: jobs whose output     skip-existing and resume as locally,
        exists or whose folder is unusable (run_job, no model)  no model and no Ray needed for them
    ray.data.from_items(the other image jobs)
      .map_batches(_Worker, ActorPoolStrategy(size=N))          each actor builds ONE transform
                                                               (one ONNX Runtime session) and runs
                                                               run_job per job: read, transform,
                                                               write atomically, failures recorded
    iter_rows on the driver                                    per-file results as they finish:
                                                               the Progress callbacks, one BatchReport
    videos, stdin and stdout: run_job here, after the Ray part  (a video is one long sequential job)

Every node must see the inputs and outputs at the paths the driver planned: a shared filesystem
(NFS, a mounted bucket) and the same working folder for relative paths. A worker that dies (OOM,
a node lost, `ray.kill`) is restarted and its call retried (MAX_RESTARTS, MAX_TASK_RETRIES); the
jobs of that call whose output it had already written are then found done. Importing this module
does not import Ray: that happens when a batch runs.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ..errors import BatchInterrupted, ImganError, UsageError
from ..io.batch import Job, plan_jobs
from ..pipeline import BatchReport, Progress, RunOptions, output_problems, run_job, will_be_skipped
from . import RAY_INSTALL, RaySettings

DEFAULT_BATCH_SIZE = 4  # jobs per actor call: small enough that results stream back file by file
MAX_RESTARTS = 4  # a dead actor is started again this many times...
MAX_TASK_RETRIES = 4  # ...and the call it was running retried this many times, before the jobs fail
# Test hook: a path; the first actor call that creates this file exits its process after its first job.
EXIT_ONCE_VARIABLE = "IMGAN_RAY_TEST_EXIT_ONCE"


def import_ray():
    """Ray and Ray Data, or a one-line UsageError saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--engine ray needs Ray, which is not installed", hint=RAY_INSTALL) from None
    return ray


# ------------------------------------------------------------------------------------------- the driver

def run_on_ray(task: str, inputs: Sequence[str | os.PathLike], *, build: dict[str, Any], settings: RaySettings,
               options: RunOptions | None = None, progress: Progress | None = None) -> BatchReport:
    """Run `task` over `inputs` on Ray; the same BatchReport and Progress events as the local engine.
    `build`: the keyword arguments of imgan.plugins.build_transform (weights, device, threads, tile, task options)."""
    import_ray()  # a missing Ray is an error before anything is done, whatever the jobs are
    options = options or RunOptions()
    progress = progress or Progress()
    jobs = plan_jobs(inputs, task=task, output=options.output, recursive=options.recursive,
                     output_ext=options.output_ext)
    started = time.perf_counter()
    report = BatchReport(total=len(jobs), warnings=list(getattr(jobs, "warnings", [])))
    problems = output_problems(jobs, options)
    progress.batch_started(jobs)
    for warning in report.warnings:
        progress.warned(warning)
    results: dict[int, BatchReport] = {}
    try:
        for i, job in enumerate(jobs):  # no model needed: skipped, refused or failed before any computing
            if job in problems or will_be_skipped(job, options):
                results[i] = run_job(job, None, options, progress, problems.get(job))
        todo = [i for i in range(len(jobs)) if i not in results]
        spread = [(i, jobs[i]) for i in todo if not _runs_here(jobs[i])]
        if spread:
            _run_spread(task, spread, build=build, settings=settings, options=options, progress=progress,
                        results=results)
        here = [i for i in todo if _runs_here(jobs[i])]
        if here:
            from ..plugins import build_transform

            transform = build_transform(task, **build)
            for i in here:
                results[i] = run_job(jobs[i], transform, options, progress)
    except KeyboardInterrupt as exc:
        _merge(report, jobs, results)
        report.interrupted = True
        report.seconds = time.perf_counter() - started
        raise BatchInterrupted(report, report.finished, len(jobs)) from exc
    _merge(report, jobs, results)
    report.seconds = time.perf_counter() - started
    return report


def _runs_here(job: Job) -> bool:
    """Jobs for the driver's local engine: videos (one long sequential job) and stdin/stdout."""
    return job.is_video or job.stdin or job.to_stdout


def _merge(report: BatchReport, jobs: Sequence[Job], results: dict[int, BatchReport]) -> None:
    """The one-job reports into the batch's, in plan order (as the local engine lists them)."""
    for i in sorted(results):
        one = results[i]
        report.done.extend(one.done)
        report.skipped.extend(one.skipped)
        report.failures.update(one.failures)
        report.file_seconds.update(one.file_seconds)
        report.warnings.extend(one.warnings)


def _run_spread(task: str, indexed: list[tuple[int, Job]], *, build: dict[str, Any], settings: RaySettings,
                options: RunOptions, progress: Progress, results: dict[int, BatchReport]) -> None:
    """The image jobs on the actors of a Ray Dataset; each result recorded as its row arrives."""
    ray = import_ray()
    jobs = dict(indexed)
    batch_size = settings.batch_size or DEFAULT_BATCH_SIZE
    blocks = math.ceil(len(indexed) / batch_size)
    threads = build.get("threads") or 1  # per actor: one core each by default, as many actors as cores
    with ray_runtime(settings.ray_address):
        workers = worker_count(ray, settings, threads=threads, most=blocks)
        dataset = ray.data.from_items([{"index": i, "job": job} for i, job in indexed], override_num_blocks=blocks)
        dataset = _map_batches(
            dataset, _Worker, batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
            fn_constructor_kwargs={"task": task, "build": {**build, "threads": threads}, "options": options,
                                   "cwd": os.getcwd(), "exit_once": os.environ.get(EXIT_ONCE_VARIABLE)},
            num_cpus=threads, num_gpus=settings.gpus_per_worker or None)
        try:
            for row in dataset.iter_rows():
                index = int(row["index"])
                if row["status"] == "fatal":
                    raise _fatal_error(row)
                if index in jobs and index not in results:
                    results[index] = _replay(jobs[index], row, progress)
        except (ImganError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - Ray gave up (a worker died too often): fail what is left
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            for index, job in indexed:
                if index not in results:
                    message = f"{job.source}: the Ray worker failed ({type(exc).__name__}: {detail})"
                    results[index] = _one_report(job, "failed", message=message)
                    progress.file_finished(job, "failed", message)


def _map_batches(dataset, fn, **arguments):
    """map_batches with the retry options set explicitly. Ray Data takes them only as (deprecated)
    ray_remote_args; a Ray without them applies its own defaults (restart and retry without limit)."""
    retries = {"max_restarts": MAX_RESTARTS, "max_task_retries": MAX_TASK_RETRIES}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return dataset.map_batches(fn, **arguments, **retries)
    except TypeError:
        return dataset.map_batches(fn, **arguments)


def worker_count(ray, settings: RaySettings, *, threads: int, most: int) -> int:
    """--workers, else as many as the cluster holds (its CPUs / threads, or GPUs / --gpus-per-worker),
    never more than `most` (the number of calls); a UsageError when the cluster cannot hold them."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    per_gpu = settings.gpus_per_worker or 0
    if per_gpu and not gpus:
        raise UsageError("--gpus-per-worker was given but the Ray cluster has no GPU",
                         hint="start the GPU nodes with `ray start`, or drop --gpus-per-worker")
    fits = int(cpus // threads)
    if per_gpu:
        fits = min(fits, int(gpus // per_gpu + 1e-9))
    wanted = settings.workers or max(1, fits)
    if wanted > fits:
        need = f"{wanted} × {threads} CPU" + (f" and {wanted} × {per_gpu:g} GPU" if per_gpu else "")
        have = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if per_gpu else "")
        raise UsageError(f"--workers {wanted} needs {need}; the Ray cluster has {have}",
                         hint="lower --workers or --threads (CPUs per worker), or add nodes")
    return max(1, min(wanted, most))


@contextmanager
def ray_runtime(address: str | None) -> Iterator[None]:
    """Ray for one batch: the caller's if it is initialised already (left running), else the cluster
    at `address` ("auto", "HOST:PORT"), else a local Ray sized to this machine; shut down after."""
    ray = import_ray()
    if ray.is_initialized():
        _quiet_ray_data(ray)
        yield
        return
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        _check_reachable(address)
        with _quiet_core_logs():
            if address is None:
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
            else:
                ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray" if address is None else f"connect to the Ray cluster at {address}"
        detail = " ".join(str(exc).split())[:300]
        hint = ("see `ray status`; IMGAN_DEBUG=1 shows Ray's own messages" if address is None else
                "start the head node with `ray start --head`, or omit --ray-address for a local Ray")
        raise ImganError(f"cannot {where} ({detail})", hint=hint) from None
    try:
        _quiet_ray_data(ray)
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str | None, seconds: float = 5.0) -> None:
    """A ConnectionError at once for a HOST:PORT nobody answers on (ray.init would retry for minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address}: {exc.strerror or exc}") from None


@contextmanager
def _quiet_core_logs() -> Iterator[None]:
    """Ray's C++ core in this process logs only fatal errors (else it prints a line on every actor
    start, about its constructor arguments in the object store). Its one line saying so, written
    while ray.init starts it, goes to /dev/null with the rest of that moment's stderr. IMGAN_DEBUG=1:
    everything as Ray prints it."""
    if os.environ.get("IMGAN_DEBUG") == "1" or "RAY_BACKEND_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        del os.environ["RAY_BACKEND_LOG_LEVEL"]


def _quiet_ray_data(ray) -> None:
    """No Ray Data progress bars, execution banners or stats: imgan's progress reports the files."""
    with warnings.catch_warnings():  # Ray Data's own deprecated settings, warned about as it makes its context
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    if os.environ.get("IMGAN_DEBUG") != "1":
        logging.getLogger("ray.data").setLevel(logging.ERROR)


def _one_report(job: Job, status: str, *, message: str | None = None, seconds: float = 0.0,
                warnings: Sequence[str] = ()) -> BatchReport:
    report = BatchReport(total=1, warnings=list(warnings))
    if status == "done":
        report.done.append(job)
        report.file_seconds[str(job.source)] = seconds
    elif status == "skipped":
        report.skipped.append(job)
    else:
        report.failures[str(job.source)] = message or "failed"
    return report


def _replay(job: Job, row: dict[str, Any], progress: Progress) -> BatchReport:
    """A worker's row as the local engine would have reported that job: its Progress events, its report."""
    warnings = json.loads(row["warnings"])
    if row["started"]:
        progress.file_started(job)
    for warning in warnings:
        progress.warned(warning)
    message = row["message"] or None
    progress.file_finished(job, row["status"], message)
    return _one_report(job, row["status"], message=message, seconds=float(row["seconds"]), warnings=warnings)


def _fatal_error(row: dict[str, Any]) -> ImganError:
    """The error that kept a worker from building its transform (bad weights, no CUDA...), as raised."""
    from .. import errors

    error_class = getattr(errors, row["error_type"], ImganError)
    if not (isinstance(error_class, type) and issubclass(error_class, ImganError)):
        error_class = ImganError
    try:
        return error_class(row["message"])
    except TypeError:  # an error class with other arguments: the same line, as a plain ImganError
        return ImganError(row["message"])


# ------------------------------------------------------------------------------------------- the actors

class _Recorder(Progress):
    """What the local engine's Progress would have been told about one job, to replay on the driver."""

    def __init__(self) -> None:
        self.started = False

    def file_started(self, job: Job, unit: str | None = None) -> None:
        self.started = True


class _Worker:
    """One Ray actor: one transform (one ONNX Runtime session, `threads` threads), many jobs."""

    def __init__(self, *, task: str, build: dict[str, Any], options: RunOptions, cwd: str,
                 exit_once: str | None = None) -> None:
        if os.path.isdir(cwd):  # relative paths mean what they mean on the driver (a shared filesystem)
            os.chdir(cwd)
        self._options = options
        self._exit_once = exit_once
        self._error: tuple[str, str] | None = None
        self._transform: Callable | None = None
        try:
            from ..plugins import build_transform

            self._transform = build_transform(task, **build)
        except ImganError as exc:
            self._error = (type(exc).__name__, exc.one_line())
        except Exception as exc:  # noqa: BLE001 - reported by the driver as one line, like the local engine
            detail = " ".join(str(exc).split()) or "no message"
            self._error = ("ImganError", f"unexpected {type(exc).__name__}: {detail} (IMGAN_DEBUG=1 shows the traceback)")

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = []
        for index, job in zip(batch["index"], batch["job"]):
            rows.append(self._run(int(index), job))
            if self._exit_once and _claim(self._exit_once):
                os._exit(3)  # the test hook: this process dies with the call unfinished
        return {key: [row[key] for row in rows] for key in rows[0]} if rows else {}

    def _run(self, index: int, job: Job) -> dict[str, Any]:
        row = {"index": index, "status": "done", "message": "", "seconds": 0.0, "warnings": "[]", "started": True,
               "error_type": ""}
        if self._error is not None:
            return {**row, "status": "fatal", "error_type": self._error[0], "message": self._error[1]}
        if will_be_skipped(job, self._options):
            # Only jobs whose output did not exist when the batch was planned come here: this one was
            # written by an earlier try of this same call, before its worker died. It is done.
            return row
        recorder = _Recorder()
        one = run_job(job, self._transform, self._options, recorder)
        status = "done" if one.done else "skipped" if one.skipped else "failed"
        return {**row, "status": status, "message": next(iter(one.failures.values()), ""),
                "seconds": one.file_seconds.get(str(job.source), 0.0), "warnings": json.dumps(one.warnings),
                "started": recorder.started}


def _claim(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except OSError:
        return False
