"""Training checkpoints: atomic writes, safe loads, and rebuilding a generator from one file.

A checkpoint is a plain dict of tensors and Python builtins (no pickled classes), so it loads with
`torch.load(weights_only=True)`: opening a checkpoint someone sent you cannot run their code.
It carries the `model_config` that rebuilds its generator, so export needs nothing else.

Files in a run directory:
    step_000500.pt, step_001000.pt   the last `keep` checkpoints (older ones are deleted)
    latest.pt                        the newest of them (a hard link where the filesystem allows)
"""
from __future__ import annotations

import os
import pickle
import shutil
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from imgan.errors import TrainingError
from imgan.io.images import atomic_write

CHECKPOINT_FORMAT = 1
LATEST_NAME = "latest.pt"
# The big state dicts; everything else in a checkpoint is metadata (task, configs, step, losses).
STATE_KEYS = (
    "generator",
    "generator_ema",
    "discriminator",
    "optimizer_g",
    "optimizer_d",
    "scaler_g",
    "scaler_d",
)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically: a crash mid-write never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda temp: torch.save(state, temp), overwrite=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with `weights_only=True`; TrainingError if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError("checkpoint not found", path=path, hint="check the path or train first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise TrainingError(
            f"cannot read checkpoint: {str(error).splitlines()[0]}",
            path=path,
            hint="the file is truncated, not a torch checkpoint, or stores pickled classes",
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise TrainingError(
            f"unsupported checkpoint format {found!r} (expected {CHECKPOINT_FORMAT})",
            path=path,
            hint="this file was not written by imgan's training loop, or by an incompatible version",
        )
    return state


def save_run_checkpoint(run_dir: str | Path, state: dict[str, Any], *, keep: int = 2) -> Path:
    """Save `state` as run_dir/step_XXXXXX.pt, point latest.pt at it, keep only the newest `keep`."""
    run_dir = Path(run_dir)
    step_path = save_checkpoint(run_dir / f"step_{state['step']:06d}.pt", state)
    latest = atomic_write(run_dir / LATEST_NAME, partial(_link_or_copy, step_path), overwrite=True)
    for old in sorted(run_dir.glob("step_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    return latest


def _link_or_copy(source: Path, temp: Path) -> None:
    # A hard link costs no disk; copy where the filesystem has none.
    temp.unlink()
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)


def checkpoint_metadata(state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without its state dicts: task, model_config, train_config, step, history."""
    return {key: value for key, value in state.items() if key not in STATE_KEYS}


def load_state_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], *, what: str, path: object) -> None:
    """`module.load_state_dict(strict=True)` with a TrainingError that says what to do on mismatch."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as error:
        raise TrainingError(
            f"{what} weights do not fit the model: {str(error).splitlines()[0]}",
            path=path,
            hint="the model code or its model_config changed since this checkpoint was written",
        ) from error


def generator_from_checkpoint(
    path: str | Path,
    build: Callable[[dict], nn.Module],
    *,
    ema: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained generator from the checkpoint alone: `build(model_config)` + its weights.

    With `ema=True` the averaged weights are used when the run kept them (TrainConfig.ema_decay);
    a run trained without EMA has only its raw weights, and those are what it produced.
    Returns the model in eval mode on the CPU and the checkpoint's metadata (see checkpoint_metadata).
    """
    state = load_checkpoint(path)
    generator = build(state["model_config"])
    use_ema = ema and state.get("generator_ema") is not None
    weights = state["generator_ema"] if use_ema else state["generator"]
    load_state_strict(generator, weights, what="generator EMA" if use_ema else "generator", path=path)
    return generator.eval(), checkpoint_metadata(state)
