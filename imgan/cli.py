"""The `imgan` command line: core commands, plus whatever the plugins register.

Commands parse, call one library function, render. Only `main()` turns ImganError into a
one-line message and an exit code (2 usage, 1 failure); IMGAN_DEBUG=1 shows the traceback.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .cli_support import JsonOpt, print_json, render_export, stderr, stdout
from .errors import ImganError



def _version(value: bool) -> None:
    if value:
        typer.echo(f"imgan {__version__}")
        raise typer.Exit()


def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """imgan: image-to-image deep learning — style transfer, super-resolution, inpainting, video prediction."""


def plugins_command(json: JsonOpt = False) -> None:
    """List the loaded plugins with their tasks, commands and weights."""
    from .plugins import get_state, get_tasks
    from .weights import catalogue

    state = get_state()
    tasks = get_tasks()
    table_weights = catalogue()
    rows = []
    for info in state.infos.values():
        weights = [f"{t}/{n}" for t in info.tasks for n in sorted(table_weights.get(t, {}))]
        verbs = [tasks.get(t).verb for t in info.tasks if tasks.get(t).verb]
        rows.append({"plugin": info.name, "version": info.version, "module": info.module, "tasks": info.tasks,
                     "commands": verbs + info.commands, "weights": weights})
    if json:
        return print_json({"plugins": rows, "warnings": state.warnings})
    from rich.table import Table

    table = Table("plugin", "version", "tasks", "commands", "weights", title="imgan plugins")
    for row in rows:
        table.add_row(row["plugin"], row["version"], ", ".join(row["tasks"]), ", ".join(row["commands"]),
                      ", ".join(row["weights"]) or "-")
    stdout.print(table)


weights_app = typer.Typer(help="List, verify, locate and import model weights.", no_args_is_help=True)


@weights_app.command("list")
def weights_list(task: Annotated[Optional[str], typer.Option(help="Only this task.")] = None,
                 json: JsonOpt = False) -> None:
    """List the weights imgan knows: shipped, from plugins, and your own in $IMGAN_HOME."""
    from .weights import catalogue

    entries = [w for t, by_name in sorted(catalogue().items()) if task in (None, t) for w in by_name.values()]
    imported = [w for w in entries if _imported_from(w)]
    if json:
        return print_json([{"task": w.task, "name": w.name, "version": w.version, "file": str(w.file),
                            "sha256": w.sha256, "origin": "imported" if _imported_from(w) else w.origin,
                            "imported_from": _imported_from(w), "scale": w.scale, "metrics": dict(w.metrics),
                            "description": w.description} for w in entries])
    from rich.table import Table

    table = Table("task", "name", "ver", "origin", "scale", "description")
    for w in entries:
        if w not in imported:
            table.add_row(w.task, w.name, str(w.version), w.origin, f"×{w.scale}", w.description)
    stdout.print(table)
    if imported:  # community models (`imgan weights import`): their architecture, source and licence
        table = Table("task", "name", "scale", "architecture", "imported from", "licence",
                      title="imported models (origin: imported)")
        for w in imported:
            table.add_row(w.task, w.name, f"×{w.scale}", str(w.card.model_config.get("architecture", "?")),
                          _imported_from(w), w.licence)
        stdout.print(table)


def _imported_from(w) -> str | None:
    return w.card.provenance.recipe.get("imported_from")


@weights_app.command("verify")
def weights_verify(json: JsonOpt = False) -> None:
    """Check every weights file against its sha256; exit 1 if any is missing or corrupt."""
    from .weights import verify_all

    results = verify_all()
    bad = [(w, error) for w, error in results if error]
    if json:
        print_json([{"weights": w.id, "file": str(w.file), "origin": w.origin, "ok": error is None, "error": error}
                    for w, error in results])
    else:
        for w, error in results:
            stdout.print(f"{'[red]BAD[/red]' if error else '[green]ok[/green] '} {w.id:28} {error or w.file}",
                         highlight=False)
    if bad:
        raise typer.Exit(1)


@weights_app.command("import")
def weights_import(file: Annotated[Path, typer.Argument(help="A community model: .safetensors, or .pth/.pt/.ckpt of plain tensors (a pickle that would run code is refused).", show_default=False)],
                   name: Annotated[Optional[str], typer.Option(help="Weights name (default: the file name, lower-case).")] = None,
                   task: Annotated[Optional[str], typer.Option(help="sr, restore or inpaint (default: from the model; ×1 models are sr weights of scale 1 unless a restore task is installed).")] = None,
                   licence: Annotated[Optional[str], typer.Option(help="The model's licence, recorded in its card (default: unknown).")] = None,
                   fp16: Annotated[bool, typer.Option("--fp16", help="Also write a float16 copy (for CUDA), parity-checked.")] = False,
                   overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace imported weights of the same name.")] = False,
                   json: JsonOpt = False) -> None:
    """Import a community model (ESRGAN, Real-ESRGAN, SPAN, SwinIR... recognised by spandrel) as ONNX weights in $IMGAN_HOME."""
    from .train.importer import describe, import_model

    report = import_model(file, name=name, task=task, licence=licence, fp16=fp16, overwrite=overwrite)
    if json:
        return print_json(describe(report))
    stdout.print(f"imported {report.task}/{report.name}: {report.architecture_name} ({report.architecture}) ×{report.scale}, "
                 f"{report.parameters / 1e6:.2f} M parameters, in {report.seconds:.1f} s", highlight=False)
    stdout.print(f"wrote {report.path} (+ card), ONNX Runtime vs PyTorch max |diff| {report.parity_max_abs_diff:.2g} "
                 f"at {', '.join(f'{h}x{w}' for h, w in report.parity_sizes)}", highlight=False)
    for note in report.notes:
        stdout.print(f"note: {note}", highlight=False)
    verb = "inpaint IMAGE --mask MASK" if report.task == "inpaint" else "upscale IMAGE"
    stdout.print(f"use it: imgan {verb} --weights {report.name}", highlight=False)


@weights_app.command("path")
def weights_path(name: Annotated[str, typer.Argument(help="TASK/NAME, or NAME if unique.")]) -> None:
    """Print the file of one weights entry."""
    from .errors import UsageError
    from .weights import catalogue

    matches = [w for t, by_name in catalogue().items() for w in by_name.values() if name in (w.id, w.name)]
    if len(matches) != 1:
        options = ", ".join(w.id for w in matches) if matches else "none; see `imgan weights list`"
        raise UsageError(f"{'ambiguous' if matches else 'unknown'} weights {name!r}", hint=f"matches: {options}")
    typer.echo(str(matches[0].file))


def export_command(task: Annotated[str, typer.Argument(help="Task name, e.g. style, sr.")],
                   checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file (a run's latest.pt), or an exported .onnx (+ card) to write again with this version's graph.")],
                   output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
                   name: Annotated[Optional[str], typer.Option(help="Weights name for the model card (default: from the file name).")] = None,
                   fp16: Annotated[bool, typer.Option("--fp16", help="Also write a float16 copy (for CUDA), parity-checked.")] = False,
                   version: Annotated[Optional[int], typer.Option(min=1, help="The weights' version in the model card (retrained weights: the next one; default 1, or the .onnx card's).")] = None,
                   overwrite: Annotated[bool, typer.Option("--overwrite")] = False) -> None:
    """Export a trained checkpoint to ONNX, check ORT/PyTorch parity and write its model card."""
    from .errors import OutputError
    from .train.export import export_checkpoint

    if output.exists() and not overwrite:
        raise OutputError("output exists", path=output, hint="pass --overwrite to replace it")
    render_export(export_checkpoint(task, checkpoint, output, name=name, fp16=fp16, version=version))


def train_plot(run_dir: Annotated[Path, typer.Argument(help="A training run folder.")]) -> None:
    """Draw the loss curves of a run (log.jsonl) to RUN_DIR/losses.png."""
    from .train.plot import plot_losses

    stdout.print(f"wrote {plot_losses(run_dir)}")


def build_app(only: str | None = None, task_named: str | None = None) -> typer.Typer:
    """The whole CLI; with ``only`` (the invoked command) and ``task_named`` (the task of `imgan train
    TASK`), plugin modules behind other commands stay unloaded: one broken plugin cannot break the rest."""
    from .plugins import add_plugin_commands, get_tasks

    app = typer.Typer(name="imgan", no_args_is_help=True, pretty_exceptions_show_locals=False,
                      rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]})
    app.callback()(_root)
    app.command("plugins")(plugins_command)
    app.add_typer(weights_app, name="weights")
    train_app = typer.Typer(help="Train a task's model (PyTorch).", no_args_is_help=True)
    eval_app = typer.Typer(help="Evaluate a task's models and print figures.", no_args_is_help=True)
    train_app.command("plot")(train_plot)
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    app.command("export")(export_command)
    if only == "":  # only root options (--version): no plugin module is needed
        return app
    for task in get_tasks().all():
        _add_task_commands(app, train_app, eval_app, task, only, task_named)
    add_plugin_commands(app)
    return app


def _add_task_commands(app: typer.Typer, train_app: typer.Typer, eval_app: typer.Typer, task,
                       only: str | None, task_named: str | None) -> None:
    """The commands a Task describes: its image verb, `imgan train NAME`, `imgan eval NAME`."""
    from .cli_support import add_image_command
    from .errors import PluginError
    from .plugins import warn_about_plugin

    try:
        if task.verb is not None and only in (None, task.verb):
            add_image_command(app, task.verb, task=task.name, help=task.summary,
                              options=task.resolve("verb_options"), validate=task.resolve("validate"))
        for group, part, command in ((train_app, "train", "train"), (eval_app, "evaluate", "eval")):
            wanted = only in (None, command) and task_named in (None, task.name)
            function = task.resolve(part) if wanted else None
            if function is not None:
                group.command(task.name, help=function.__doc__)(function)
    except PluginError as error:  # one plugin's broken reference must not take the whole CLI down
        warn_about_plugin(task.plugin, error.one_line())


def _invoked_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line, or None when help or completion needs them all."""
    import os

    if any(key.endswith("_COMPLETE") for key in os.environ) or not argv:
        return None
    if argv[0] in ("--help", "-h"):
        return None
    return argv[0] if not argv[0].startswith("-") else ""


def _keep_only(app: typer.Typer, name: str) -> None:
    """Drop the commands not invoked: Typer builds every command's parameters, which costs start-up time."""
    app.registered_commands = [c for c in app.registered_commands
                               if (c.name or c.callback.__name__.replace("_", "-")) == name]
    app.registered_groups = [g for g in app.registered_groups if g.name == name]


def _hide_flag_metavars(command) -> None:
    """On/off flags take no value: click would still print a `<bool>` metavar beside them in --help."""
    for param in command.params:  # duck-typed: typer ships its own copy of click's classes
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for child in getattr(command, "commands", {}).values():
        _hide_flag_metavars(child)


def main(argv: list[str] | None = None) -> None:
    import os

    from .cli_support import escape_markup

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        invoked = _invoked_command(argv)
        task_named = argv[1] if invoked in ("train", "eval") and len(argv) > 1 and not argv[1].startswith("-") else None
        app = build_app(only=invoked, task_named=task_named)
        if invoked is not None:
            _keep_only(app, invoked)
        command = typer.main.get_command(app)
        _hide_flag_metavars(command)
        command.main(args=argv, prog_name="imgan", standalone_mode=True)
    except ImganError as exc:
        if os.environ.get("IMGAN_DEBUG") == "1":
            raise
        stderr.print(f"[bold red]error:[/bold red] {escape_markup(exc.one_line())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        _exit_interrupted(exc, argv)
    except SystemExit as exc:
        # Typer turns Ctrl-C into a silent exit 130; the KeyboardInterrupt is still in the chain.
        interrupt = _interrupt_behind(exc)
        if interrupt is None:
            raise
        _exit_interrupted(interrupt, argv)
    except Exception as exc:  # a bug or an unforeseen library error: still one line, not a traceback
        if os.environ.get("IMGAN_DEBUG") == "1":
            raise
        detail = " ".join(str(exc).split()) or "no message"
        stderr.print(f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {escape_markup(detail)} "
                     "(IMGAN_DEBUG=1 shows the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _exit_interrupted(interrupt: KeyboardInterrupt, argv: list[str]) -> None:
    """Ctrl-C: a batch's "interrupted after N of M files" and its summary so far, else one line; exit 130."""
    report = getattr(interrupt, "report", None)
    if report is None:
        stderr.print("[yellow]interrupted[/yellow]")
    else:
        from .cli_support import render_report

        try:
            render_report(report, json="--json" in argv)
        except typer.Exit:
            pass
    sys.exit(130)
