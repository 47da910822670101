"""What plugin commands share: common options, one image-command factory, rich progress, reports.

A plugin adds an image verb with :func:`add_image_command`, giving only its own options; the
inputs/outputs/device/tiling/video options and the batch behaviour are the same for every verb.
"""
from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer


class _LazyConsole:
    """A rich Console made on first use: importing rich.console costs start-up time on every call."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console = None

    def get(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


stderr = _LazyConsole(stderr=True)
stdout = _LazyConsole()

# Options shared by train, eval and extra commands: declared once, used as parameter annotations,
# e.g. ``def train(..., device: DeviceOpt = "auto", threads: ThreadsOpt = None)``.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if it really works, else CPU), cpu or cuda.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: OMP_NUM_THREADS or all cores).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of every random draw (runs are reproducible).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in the run folder from its latest checkpoint.")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder (checkpoints, logs, samples, run.json). Default: $IMGAN_HOME/runs/TASK-NAME.")]
InitFromOpt = Annotated[Optional[Path], typer.Option("--init-from", help="Start from a checkpoint, or an exported .onnx with its card (e.g. a shipped weight, to fine-tune it).")]
VggWeightsOpt = Annotated[Optional[str], typer.Option("--vgg-weights", help="VGG19 weights file for the loss network (default: $IMGAN_VGG19_WEIGHTS, else torchvision's download).")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, help="Data loader processes.")]
CheckpointEveryOpt = Annotated[Optional[int], typer.Option("--checkpoint-every", min=1, help="Steps between checkpoints and samples.")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="Weights name from `imgan weights list`, or a path to a compatible .onnx file.")]

# Options every image/video verb has. Names here are the keyword names the factory expects.
_COMMON = {
    "inputs": (list[str], typer.Argument(help="Image or video files, folders or glob patterns.", show_default=False)),
    "output": (Optional[Path], typer.Option("--output", "-o", help="Output file (one input) or folder (mirrors the input tree). Default: <stem>.<task>.<ext> beside each input.")),
    "overwrite": (bool, typer.Option("--overwrite", help="Replace outputs that exist (else: folders skip them, files fail).")),
    "recursive": (bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")),
    "ext": (Optional[str], typer.Option("--ext", help="Output image format by extension, e.g. png, jpg, webp.")),
    "quality": (Optional[int], typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.")),
    "weights": (Optional[str], typer.Option("--weights", help="Weights name from `imgan weights list`, or a path to a compatible .onnx file.")),
    "device": (str, typer.Option("--device", help="auto (CUDA if it really works, else CPU), cpu or cuda.")),
    "threads": (Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: OMP_NUM_THREADS or all cores).")),
    "tile": (Optional[int], typer.Option("--tile", min=16, help="Tile edge in input pixels: the model runs on tiles this big plus their overlap (default: chosen from the image size and memory).")),
    "max_pixels": (int, typer.Option("--max-pixels", help="Refuse images with more pixels than this (decompression-bomb guard).")),
    "start": (Optional[float], typer.Option("--start", help="Video: first second to process.")),
    "end": (Optional[float], typer.Option("--end", help="Video: last second to process.")),
    "max_frames": (Optional[int], typer.Option("--max-frames", min=1, help="Video: at most this many frames.")),
    "no_audio": (bool, typer.Option("--no-audio", help="Video: drop the audio track.")),
    "strict": (bool, typer.Option("--strict", help="Video: a file that decodes fewer frames than its header says fails (default: a warning).")),
    "json": (bool, typer.Option("--json", help="Print one JSON document (done, skipped, failed with reasons, seconds) instead of lines.")),
    # The engine (imgan.engines): these five go to imgan.api.run as they are named here.
    "engine": (str, typer.Option("--engine", metavar="local|ray", rich_help_panel="Engine", help="local: this process; ray: the images spread over a Ray cluster's workers (pip install 'imgan\\[ray]'). Videos run locally.")),
    "ray_address": (Optional[str], typer.Option("--ray-address", rich_help_panel="Engine", help="Ray: the cluster, auto (the one `ray start` joined on this machine) or HOST:PORT. Default: a local Ray for this run.")),
    "workers": (Optional[int], typer.Option("--workers", min=1, rich_help_panel="Engine", help="Ray: workers, each with its own model session of --threads threads (default 1). Default: the cluster's CPUs / threads, or GPUs / --gpus-per-worker.")),
    "gpus_per_worker": (Optional[float], typer.Option("--gpus-per-worker", min=0.01, rich_help_panel="Engine", help="Ray: the GPU share each worker reserves (0.5: two workers per GPU).")),
    "batch_size": (Optional[int], typer.Option("--batch-size", min=1, rich_help_panel="Engine", help="Ray: images per worker call (default 4).")),
}


def _common_defaults() -> dict[str, Any]:
    """Each common option's default: off for flags, unset for optional values, except these four."""
    from .io import DEFAULT_MAX_PIXELS

    given = {"inputs": inspect.Parameter.empty, "device": "auto", "max_pixels": DEFAULT_MAX_PIXELS, "engine": "local"}
    return {name: given.get(name, False if kind is bool else None) for name, (kind, _) in _COMMON.items()}


def _parameters(names_and_defaults: dict[str, Any], specs: dict[str, tuple]) -> list[inspect.Parameter]:
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=Annotated[specs[name][0], specs[name][1]])
            for name, default in names_and_defaults.items()]


def _task_parameters(options: Callable[..., Any] | None) -> list[inspect.Parameter]:
    if options is None:
        return []
    hints = typing.get_type_hints(options, include_extras=True)
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(options).parameters.values()]


def add_image_command(app: typer.Typer, verb: str, *, task: str, help: str,
                      options: Callable[..., Any] | None = None,
                      validate: Callable[[dict], None] | None = None) -> None:
    """Add `imgan VERB INPUTS... [common options] [task options]` running `task` over the inputs.

    `options` is a function whose (annotated) parameters are the task's own options; their values
    are passed to the task's `make_transform`. `validate(task_options)` may raise UsageError.
    """
    common = _parameters(_common_defaults(), _COMMON)
    extra = _task_parameters(options)
    extra_names = [p.name for p in extra]

    def command(**values: Any) -> None:
        from .api import run
        from .engines import ENGINE_KEYWORDS
        from .pipeline import RunOptions

        task_options = {name: values.pop(name) for name in extra_names}
        if validate is not None:
            validate(task_options)
        run_options = RunOptions(output=values["output"], overwrite=values["overwrite"], recursive=values["recursive"],
                                 output_ext=values["ext"], quality=values["quality"], max_pixels=values["max_pixels"],
                                 start=values["start"], end=values["end"], max_frames=values["max_frames"],
                                 keep_audio=not values["no_audio"], strict=values["strict"])
        with RichProgress() as progress:
            report = run(task, values["inputs"], options=run_options, progress=progress, weights=values["weights"],
                         device=values["device"], threads=values["threads"], tile=values["tile"], **task_options,
                         **{name: values[name] for name in ENGINE_KEYWORDS})
        render_report(report, json=values["json"])

    command.__signature__ = inspect.Signature(common[:1] + extra + common[1:])
    command.__name__ = verb.replace("-", "_")
    command.__doc__ = help
    app.command(name=verb, help=help)(command)


class RichProgress:
    """Overall (files) and per-file (tiles or frames) bars with ETA and throughput, on stderr."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                             TextColumn("eta"), TimeRemainingColumn(), console=stderr.get(), transient=False)
        self._overall = None
        self._current = None
        self._unit = "tiles"

    def __enter__(self) -> "RichProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def batch_started(self, jobs) -> None:
        if len(jobs) > 1:
            self._overall = self._bar.add_task("files", total=len(jobs), rate="")

    def file_started(self, job, unit: str | None = None) -> None:
        self._unit = "frames" if job.is_video else unit or "tiles"
        label = job.source.name if len(job.source.name) < 40 else job.source.name[:37] + "…"
        self._current = self._bar.add_task(label, total=None, rate="")

    def file_advanced(self, done: int, total: int) -> None:
        if self._current is None:
            return
        task = self._bar.tasks[self._current] if self._current < len(self._bar.tasks) else None
        speed = task.speed if task is not None and task.speed else None
        rate = f"{speed:.1f} {self._unit}/s" if speed else ""
        self._bar.update(self._current, completed=done, total=total, rate=rate)

    def file_finished(self, job, status: str, message: str | None = None) -> None:
        if self._current is not None:
            self._bar.remove_task(self._current)
            self._current = None
        if status == "failed" and message:
            self._bar.console.print(f"[red]failed[/red] {escape_markup(message)}", highlight=False, soft_wrap=True)
        if self._overall is not None:
            self._bar.advance(self._overall)

    def warned(self, message: str) -> None:
        self._bar.console.print(f"[yellow]warning[/yellow] {escape_markup(message)}", highlight=False, soft_wrap=True)


def escape_markup(text: str) -> str:
    """`text` printed as is by rich, even with [brackets] in a file name or message."""
    from rich.markup import escape

    return escape(text)


def report_json(report) -> dict:
    """The BatchReport as one JSON-able document (what `--json` prints)."""
    return {
        "done": [{"input": str(job.source), "output": "-" if job.to_stdout else str(job.output),
                  "seconds": round(report.file_seconds.get(str(job.source), 0.0), 3)} for job in report.done],
        "skipped": [{"input": str(job.source), "output": str(job.output)} for job in report.skipped],
        "failed": [{"input": source, "error": message} for source, message in report.failures.items()],
        "warnings": list(report.warnings),
        "also_written": [str(path) for path in report.also_written],
        "interrupted": report.interrupted,
        "seconds": round(report.seconds, 3),
    }


def render_report(report, *, json: bool = False) -> None:
    """One summary line (stderr); `wrote` lines, or with `json` one JSON document, on stdout
    (on stderr when the image itself went to stdout); failures listed again at the end.
    Exits 130 for an interrupted batch, 1 when anything failed."""
    image_on_stdout = any(job.to_stdout for job in report.done)
    out = stderr if image_on_stdout else stdout
    if json:
        import json as json_module

        typer.echo(json_module.dumps(report_json(report), indent=2), err=image_on_stdout)
    if report.interrupted:
        stderr.print(f"[yellow]interrupted[/yellow] after {report.finished} of {report.total} files", highlight=False)
    parts = [f"{len(report.done)} done"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped (output exists; --overwrite to redo)")
    if report.failures:
        parts.append(f"{len(report.failures)} failed")
    if report.warnings:
        parts.append(f"{len(report.warnings)} warning{'s' if len(report.warnings) > 1 else ''}")
    stderr.print(f"{', '.join(parts)} in {report.seconds:.1f} s", highlight=False)
    if not json:
        for job in report.done:
            out.print(f"wrote {'stdout' if job.to_stdout else job.output}", highlight=False, soft_wrap=True,
                      markup=False)
        for path in report.also_written:
            out.print(f"wrote {path}", highlight=False, soft_wrap=True, markup=False)
    if report.failures:
        stderr.print("[red]failures:[/red]")
        for message in report.failures.values():
            stderr.print(f"  {escape_markup(message)}", highlight=False, soft_wrap=True)
    if report.interrupted:
        raise typer.Exit(130)
    if report.failures:
        raise typer.Exit(1)


def start_options(ctx: typer.Context, init_from: Path | None, options_of_start: Callable[[dict], dict[str, Any]],
                  *, resume: bool = False) -> dict[str, Any]:
    """The model options a `train` command line left at their defaults, set to those of its --init-from start.

    So `imgan train sr --init-from weights/sr-srresnet-x4.onnx` fine-tunes that model as it is,
    without the user repeating its width and depth. `options_of_start` maps the start's model_config
    to the command's option names and values. An option typed on the command line wins (warm_start
    then loads what fits, or refuses naming the difference); a resumed run keeps its own settings.
    """
    if init_from is None or resume:
        return {}
    from imgan.train.checkpoint import start_state

    def left_out(name: str) -> bool:  # by name: typer ships its own copy of click's ParameterSource
        source = ctx.get_parameter_source(name)
        return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")

    return {name: value for name, value in options_of_start(start_state(init_from)["model_config"]).items()
            if left_out(name)}


def render_run_result(result, *, task: str, output: str) -> None:
    """After `imgan train TASK`: where the run stopped and the command that exports it."""
    state = "interrupted at" if result.interrupted else "reached"
    stdout.print(f"{state} step {result.steps_done} in {result.seconds:.0f} s; checkpoint {result.checkpoint}",
                  highlight=False, soft_wrap=True)
    stdout.print(f"export: imgan export {task} {result.checkpoint} -o {output}", highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, indent=2, default=str))



def render_export(report) -> None:
    """After `imgan export`: what was written and its parity figure."""
    stdout.print(f"wrote {report.path} (parity max |Δ| {report.max_abs_diff:.2e}) and {report.card_path}",
                 highlight=False, soft_wrap=True)


class StepProgress:
    """One rich bar for a library call that reports ``progress(done, total)`` (evaluations, sheets).

        with StepProgress("measuring") as progress:
            figures = evaluate(..., progress=progress)
    """

    def __init__(self, description: str) -> None:
        self._description = description
        self._bar = None
        self._task = None

    def __enter__(self) -> "StepProgress":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("eta"), TimeRemainingColumn(), console=stderr.get(), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(self._description, total=None)
        return self

    def __call__(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        self._bar.stop()
