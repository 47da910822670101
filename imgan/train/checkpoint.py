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
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from imgan.errors import TrainingError
from imgan.fs import atomic_write
from imgan.train.parity import check_onnx_parity

if TYPE_CHECKING:
    from imgan.train.spec import ModelSpec

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
        # torch's own text here is a long FAQ about weights_only: say what it means for this file
        raise TrainingError(
            "cannot read checkpoint: it is not a training checkpoint of plain tensors",
            path=path,
            hint="give a run's latest.pt or step_*.pt; the file is truncated, of another kind, or stores pickled classes",
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


def as_numpy_model(module: nn.Module) -> Callable[..., Any]:
    """A torch module called as the runtime calls an ONNX session: float32 arrays in, an array out, no
    gradients; so a checkpoint is measured through the same inference code as its exported file."""
    def run(*arrays):
        with torch.no_grad():
            return module(*(torch.from_numpy(array) for array in arrays)).numpy()

    return run


# ----------------------------------------------------------------------------------- warm starts


def start_state(path: str | Path) -> dict[str, Any]:
    """What a run may start from: a checkpoint, or an exported .onnx with its model card.

    Shipped weights are ONNX files; a user who wants to fine-tune one (or a later session whose
    run folders are gone) has no checkpoint. torch.onnx names the initializers after the state
    dict's keys, so the weights come back by name (see weights_from_onnx). Returned like a
    checkpoint's metadata (task, model_config, step, seconds: for a checkpoint, with its own start's totals)
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return _with_lineage(load_checkpoint(path))
    from imgan.cards import card_path_for, read_card

    card_path = card_path_for(path)
    if not card_path.is_file():
        raise TrainingError("an ONNX file to start from needs its model card beside it", path=card_path,
                            hint="use the .json that `imgan export` wrote, or start from a checkpoint")
    card = read_card(card_path)
    return {"task": card.task, "model_config": dict(card.model_config), "onnx": path,
            "step": card.provenance.steps, "seconds": card.provenance.seconds, "licence": card.licence}


def _with_lineage(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's step and seconds with those of the weights its own run started from (its
    "init_from"), and that start's licence: a fine-tune of a fine-tune's checkpoint counts the whole
    lineage, as a start from the exported file (whose card has the totals) would."""
    prior = state.get("init_from") or {}
    if not prior:
        return state
    lineage = {"step": int(state["step"]) + int(prior.get("step", 0)),
               "seconds": float(state["seconds"]) + float(prior.get("seconds", 0.0))}
    if prior.get("licence"):
        lineage["licence"] = prior["licence"]
    return {**state, **lineage}


def starting_weights(state: dict[str, Any], module: nn.Module) -> dict[str, torch.Tensor]:
    """The generator weights of a start_state for `module` (EMA weights when the run kept them)."""
    if "onnx" in state:
        return weights_from_onnx(state["onnx"], module)
    return state["generator_ema"] if state.get("generator_ema") is not None else state["generator"]


def warm_start(start: str | Path, generator: nn.Module, *, task: str, spec: "ModelSpec",
               model_config: dict[str, Any]) -> dict[str, Any]:
    """Load a previous run's generator weights (checkpoint, or exported .onnx + card) into `generator`.

    The start must be of the same task and architecture (``spec.architecture`` of both model
    configs), else TrainingError. Weights read from ONNX are confirmed by running the exported
    module against the file (ONNX Runtime parity). Returns {"from", "step", "seconds"}, and the
    start card's "licence" for an ONNX start.
    """
    state = start_state(start)
    ours = _as_plain(spec.architecture(model_config))
    theirs = _as_plain(spec.architecture(state["model_config"])) if state.get("task") == task else None
    partial = theirs is not None and _differ_only_in(ours, theirs, spec.transferable_keys)
    if theirs != ours and not partial:
        raise TrainingError("the weights to start from have a different model", path=start,
                            hint=f"train with their settings: {_differences(theirs, ours)}" if theirs is not None
                            else f"start from {task} weights")
    from imgan.cards import portable_path

    started = {"from": portable_path(start), "step": int(state["step"]), "seconds": round(float(state["seconds"]), 1)}
    if state.get("licence"):  # what the start learnt from binds the fine-tune too: its export's card says so
        started["licence"] = state["licence"]
    # A partial start (e.g. another upsampler on the same body) loads the start into its own model first,
    # so ONNX weights are proven the same way, then carries over every tensor of the same name and shape;
    # the rest keeps its fresh initialisation and is named in run.json's init_from.
    source = spec.build(dict(state["model_config"])) if partial else generator
    source.load_state_dict(starting_weights(state, source))
    if "onnx" in state:
        check_onnx_parity(spec.exportable(source), start,
                          spec.parity_inputs(state["model_config"] if partial else model_config))
    if partial:
        return {**started, "partial": sorted(_load_matching(generator, source.state_dict()))}
    return started


def _differences(theirs: Any, ours: Any, prefix: str = "") -> str:
    """The settings where two architectures differ, the start's value first: "blocks 16 (here 8), ...";
    nested settings by their dotted path."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        parts = [_differences(theirs.get(key), ours.get(key), f"{prefix}{key}.")
                 for key in [*theirs, *(key for key in ours if key not in theirs)] if theirs.get(key) != ours.get(key)]
        return ", ".join(part for part in parts if part)
    return f"{prefix.rstrip('.')} {_as_json(theirs)} (here {_as_json(ours)})"


def _differ_only_in(ours: Any, theirs: Any, keys: tuple[str, ...]) -> bool:
    """Both architectures (dicts, nested) are equal but for the values of ``keys``, and differ in one of them."""
    def without(config: Any) -> Any:
        if isinstance(config, dict):
            return {key: without(value) for key, value in config.items() if key not in keys}
        return config

    return bool(keys) and ours != theirs and without(ours) == without(theirs)


def _load_matching(module: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load the tensors of ``state`` whose name and shape ``module`` has; the names of those left as they were."""
    own = module.state_dict()
    matching = {name: tensor for name, tensor in state.items() if name in own and own[name].shape == tensor.shape}
    module.load_state_dict({**own, **matching})
    return [name for name in own if name not in matching]


def _as_plain(config: Any) -> Any:
    import json

    return json.loads(json.dumps(config))


def _as_json(config: Any) -> str:
    import json

    return json.dumps(config)


def weights_from_onnx(path: str | Path, module: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for `module` read from the initializers of an ONNX file that torch exported.

    Each key matches the initializer of the same name, or the one unique name ending in
    ".KEY" (an export wrapper adds a prefix such as "net."). The exporter renames weights it
    reshapes (a PReLU's (C,) becomes an "onnx::PRelu_N" of shape (C, 1, 1)); those are matched
    in graph order to the keys left over, size for size. Order is a good guess, not a proof:
    callers confirm the result with check_onnx_parity.
    """
    import onnx
    from onnx import numpy_helper

    initializers = {item.name: item for item in onnx.load(str(path)).graph.initializer}
    renamed = [name for name in initializers if name.startswith("onnx::")]
    found: dict[str, torch.Tensor] = {}
    left: list[tuple[str, torch.Tensor]] = []
    for key, tensor in module.state_dict().items():
        names = [key] if key in initializers else [name for name in initializers if name.endswith("." + key)]
        if len(names) == 1:
            found[key] = _onnx_value(numpy_helper.to_array(initializers[names[0]]), tensor, names[0], path)
        elif tensor.dtype.is_floating_point:
            left.append((key, tensor))
        else:  # integer buffers (batch norm's counter) are not exported
            found[key] = tensor
    if len(left) != len(renamed):
        missing = ", ".join(key for key, _ in left[:5])
        raise TrainingError(f"the ONNX file has no weights for {len(left)} parameters ({missing} ...)", path=path,
                            hint="start from a checkpoint of the run, or an ONNX file exported by imgan from the "
                                 "same architecture")
    for (key, tensor), name in zip(left, renamed):
        found[key] = _onnx_value(numpy_helper.to_array(initializers[name]), tensor, name, path)
    return found


def _onnx_value(array, like: torch.Tensor, name: str, path: str | Path) -> torch.Tensor:
    if array.size != like.numel():
        raise TrainingError(f"the ONNX weight {name!r} has shape {tuple(array.shape)}, the model wants "
                            f"{tuple(like.shape)}", path=path, hint="the architecture settings differ")
    return torch.from_numpy(array.copy()).reshape(like.shape).to(like.dtype)
