"""The training run folder, owned by the core: one layout and one description for every task.

    $IMGAN_HOME/runs/<task>-<name>/   (or any --run-dir)
        run.json          what was trained: task, recipe description, model_config, train config,
                          the command, start time, init_from, and one entry per resumption
        log.jsonl         training losses (the loop)
        eval.jsonl        figures measured at checkpoints (append_eval / read_eval_log)
        latest.pt, step_*.pt, samples/, losses.png

`fit` writes run.json when a run starts and notes each resumption; export reads it back (through
read_run) to fill the model card's provenance. Nothing here imports torch.
"""
from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping

from imgan.cards import now_utc, portable_paths
from imgan.errors import UsageError
from imgan.fs import atomic_write
from imgan.weights import imgan_home

RUN_FILE = "run.json"
EVAL_LOG = "eval.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_run_name(name: str) -> str:
    """A run or weights name that is one plain path component (no '/', no '..')."""
    if not _NAME.match(name) or ".." in name:
        raise UsageError(f"invalid name {name!r}",
                         hint="use up to 64 letters, digits, '.', '-' or '_', starting with a letter or digit")
    return name


def default_run_dir(task: str, name: str) -> Path:
    return imgan_home() / "runs" / f"{task}-{check_run_name(name)}"


def command_line() -> str:
    """The command that started this process, as a user would retype it."""
    program = Path(sys.argv[0]).name if sys.argv else "imgan"
    return shlex.join([program, *sys.argv[1:]])


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """run.json of a run folder; {} when there is none (a run of an older imgan, or a bare checkpoint)."""
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_run(run_dir: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(run_dir / RUN_FILE, lambda temp: temp.write_text(text, encoding="utf-8"), overwrite=True)


def record_start(run_dir: str | Path, *, task: str, recipe: Mapping[str, Any], model_config: Mapping[str, Any],
                 train_config: Mapping[str, Any], init_from: Mapping[str, Any] | None) -> None:
    """A new run: write its run.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_run(run_dir, {
        "task": task,
        "recipe": portable_paths(recipe),
        "model_config": dict(model_config),
        "train_config": portable_paths({k: v for k, v in train_config.items() if k != "run_dir"}),
        "command": command_line(),
        "started_at": now_utc(),
        "init_from": dict(init_from) if init_from else None,
        "resumptions": [],
    })


def record_resumption(run_dir: str | Path, *, step: int, train_config: Mapping[str, Any]) -> None:
    """A resumed run: keep everything recorded at the start, add when/how it went on."""
    run_dir = Path(run_dir)
    data = read_run(run_dir)
    data.setdefault("resumptions", []).append({"step": step, "at": now_utc(), "command": command_line()})
    data["train_config"] = portable_paths({k: v for k, v in train_config.items() if k != "run_dir"})
    _write_run(run_dir, data)


# ----------------------------------------------------------------------------------- eval log


def append_eval(run_dir: str | Path, record: Mapping[str, Any]) -> None:
    """Add one measurement ({"step", ...figures}) to RUN_DIR/eval.jsonl."""
    with (Path(run_dir) / EVAL_LOG).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(record)) + "\n")


def read_eval_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete record of RUN_DIR/eval.jsonl; a line cut short by a crash is skipped."""
    path = Path(run_dir) / EVAL_LOG
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
