"""The one ONNX export: torch model -> checked .onnx with proven ORT parity -> model card.

A file only appears at its final path after onnx.checker and an ONNX Runtime vs torch
comparison on every given input size passed, so a bad export never reaches the catalogue.
"""
from __future__ import annotations

import copy
import dataclasses
import heapq
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from ..cards import ExportInfo, ModelCard, card_path_for, now_utc, write_card
from ..errors import TrainingError, UsageError
from .parity import ort_parity, torch_outputs
from ..fs import atomic_write
from ..weights import sha256_of

DEFAULT_OPSET = 17
FP16_SUFFIX = ".fp16.onnx"


@dataclass
class ExportReport:
    path: Path
    card_path: Path | None
    sha256: str
    max_abs_diff: float
    sizes_checked: list[tuple[int, int]]
    opset: int
    fp16_path: Path | None = None
    fp16_max_abs_diff: float | None = None


def sha256_file(path: str | os.PathLike) -> str:
    return sha256_of(Path(path))


def export_onnx(
    model: nn.Module,
    example: Tensor | tuple[Tensor, ...],
    path: str | os.PathLike,
    *,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] = ("output",),
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    parity_inputs: Sequence[Tensor | tuple[Tensor, ...]] | None = None,
    tolerance: float = 1e-4,
    card: ModelCard | None = None,
    fp16: bool = False,
    fp16_tolerance: float = 1e-2,
    opset: int = DEFAULT_OPSET,
) -> ExportReport:
    """Export ``model`` (a CPU copy in eval mode) to ``path``; with ``card``, write it beside the file
    (``<stem>.json``) with its file name, sha256 and export group filled in.

    ``dynamic_axes`` default: batch, height and width (dims 0, -2, -1) of every input and
    output are dynamic. ``example`` and each of ``parity_inputs`` (use another size) are run
    through ONNX Runtime and torch; a max abs difference over ``tolerance`` raises
    TrainingError and leaves no file. ``fp16`` also writes ``<stem>.fp16.onnx`` (float16
    weights and arithmetic, float32 inputs/outputs) checked against ``fp16_tolerance``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    cases = [_as_tuple(example)] + [_as_tuple(extra) for extra in parity_inputs or []]
    if len(cases[0]) != len(input_names):
        raise UsageError(f"{len(cases[0])} example inputs but {len(input_names)} input names")
    frozen = copy.deepcopy(model).cpu().float().eval()
    expected = [torch_outputs(frozen, case) for case in cases]
    if len(expected[0]) != len(output_names):
        raise UsageError(f"the model returns {len(expected[0])} outputs but {len(output_names)} output names were given")
    axes = dict(dynamic_axes) if dynamic_axes is not None else _default_axes(input_names, cases[0], output_names, expected[0])

    fp16_final = final.with_name(final.stem + FP16_SUFFIX) if fp16 else None
    parity: dict[str, float] = {}

    def export_checked(temp: Path) -> None:  # a file that fails a check never reaches its final name
        _torch_export(frozen, cases[0], temp, input_names, output_names, axes, opset)
        _check_model(temp, final)
        parity["fp32"] = ort_parity(temp, input_names, cases, expected, tolerance, final)

    def convert_checked(temp: Path) -> None:
        _convert_to_fp16(final, temp)
        parity["fp16"] = ort_parity(temp, input_names, cases, expected, fp16_tolerance, fp16_final)

    atomic_write(final, export_checked, overwrite=True)
    if fp16_final is not None:
        atomic_write(fp16_final, convert_checked, overwrite=True)
    max_diff, fp16_diff = parity["fp32"], parity.get("fp16")

    sizes = [tuple(int(side) for side in case[0].shape[-2:]) for case in cases]
    info = ExportInfo(opset=opset, exported_at=now_utc(), parity_max_abs_diff=max_diff, parity_sizes=tuple(sizes),
                      fp16_file=fp16_final.name if fp16_final else None,
                      fp16_sha256=sha256_file(fp16_final) if fp16_final else None,
                      fp16_parity_max_abs_diff=fp16_diff)
    card_path = None
    if card is not None:
        card_path = write_card(card.replace(file=final.name, sha256=sha256_file(final), export=info),
                               card_path_for(final))
    return ExportReport(
        path=final,
        card_path=card_path,
        sha256=sha256_file(final),
        max_abs_diff=max_diff,
        sizes_checked=sizes,
        opset=opset,
        fp16_path=fp16_final,
        fp16_max_abs_diff=fp16_diff,
    )


def _as_tuple(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    tensors = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    # ONNX Runtime's CPU provider is the reference: float32, whatever the training precision was
    return tuple(t.detach().cpu().float() if t.is_floating_point() else t.detach().cpu() for t in tensors)


def _default_axes(
    input_names: Sequence[str], inputs: tuple[Tensor, ...], output_names: Sequence[str], outputs: list[np.ndarray]
) -> dict[str, dict[int, str]]:
    """Batch, height, width dynamic: dims 0, ndim-2, ndim-1 (so (N,T,C,H,W) clips work too).

    Each tensor gets its own dimension names: an x4 model's output height is not its input's.
    """
    axes: dict[str, dict[int, str]] = {}
    for name, ndim in [(n, t.ndim) for n, t in zip(input_names, inputs)] + [
        (n, a.ndim) for n, a in zip(output_names, outputs)
    ]:
        if ndim >= 3:
            axes[name] = {0: "batch", ndim - 2: f"{name}_height", ndim - 1: f"{name}_width"}
    return axes


def _torch_export(
    model: nn.Module,
    inputs: tuple[Tensor, ...],
    target: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    axes: Mapping[str, Mapping[int, str]],
    opset: int,
) -> None:
    # The TorchScript exporter (dynamo=False) handles dynamic H/W through PixelShuffle and
    # interpolate predictably; its deprecation notice is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # Reversed or stepped Slices (edge padding) are not constant-folded; the exporter says so per
        # node, harmlessly: the ORT-vs-torch parity check below is what proves the file.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        try:
            torch.onnx.export(
                model,
                inputs,
                str(target),
                dynamo=False,
                opset_version=opset,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={name: dict(dims) for name, dims in axes.items()},
                do_constant_folding=True,
            )
        except Exception as exc:
            raise TrainingError(f"ONNX export failed: {exc}", hint="see the exporter message above") from None


def _check_model(onnx_path: Path, reported_path: Path) -> None:
    try:
        onnx.checker.check_model(str(onnx_path))
    except onnx.checker.ValidationError as exc:
        raise TrainingError(f"exported ONNX model is invalid: {exc}", path=reported_path) from None


def _convert_to_fp16(source: Path, target: Path) -> None:
    """Float16 weights and arithmetic, float32 inputs and outputs (so callers need no change)."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise TrainingError(f"float16 conversion is unavailable: {exc}", hint="export without --fp16") from None
    half = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    # the converter appends its input casts at the end of the node list; the checker wants order
    _sort_nodes_topologically(half.graph)
    onnx.save(half, str(target))
    _check_model(target, target)


def _sort_nodes_topologically(graph: onnx.GraphProto) -> None:
    """Kahn's algorithm, keeping the original order among nodes that are ready together."""
    producer = {name: index for index, node in enumerate(graph.node) for name in node.output if name}
    consumers: dict[int, list[int]] = {index: [] for index in range(len(graph.node))}
    waiting = [0] * len(graph.node)
    for index, node in enumerate(graph.node):
        for source in {producer[name] for name in node.input if name in producer}:
            consumers[source].append(index)
            waiting[index] += 1
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        ordered.append(index)
        for consumer in consumers[index]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, consumer)
    if len(ordered) != len(graph.node):
        raise TrainingError("float16 conversion produced a cyclic graph", hint="export without --fp16")
    nodes = [copy.deepcopy(graph.node[index]) for index in ordered]
    del graph.node[:]
    graph.node.extend(nodes)


# ----------------------------------------------------------------------------------- from a run


def export_checkpoint(task: str, checkpoint: str | os.PathLike, output: str | os.PathLike, *,
                      name: str | None = None, version: int | None = None, licence: str = "", description: str = "",
                      fp16: bool = False) -> ExportReport:
    """The one export of a trained run: checkpoint (+ its run.json) -> ONNX + parity + model card.

    The generator is rebuilt from the checkpoint's model_config through the task's ModelSpec; the
    card's provenance comes from run.json beside the checkpoint and the checkpoint itself. An
    exported .onnx (+ card) in place of the checkpoint is written again with this code's graph
    (see reexport). version: the card's (default 1).
    """
    from .checkpoint import generator_from_checkpoint
    from .run import read_run
    from .spec import spec_of_task

    spec = spec_of_task(task)
    checkpoint, output = Path(checkpoint), Path(output)
    if checkpoint.suffix.lower() == ".onnx":
        return reexport(task, checkpoint, output, name=name, version=version, fp16=fp16)
    generator, meta = generator_from_checkpoint(checkpoint, spec.build)
    if meta.get("task") != task:
        raise UsageError(f"{checkpoint} is a {meta.get('task')!r} checkpoint, not {task!r}",
                         hint=f"export it with `imgan export {meta.get('task')} ...`")
    model_config = meta["model_config"]
    run = read_run(checkpoint.parent)
    card = ModelCard(task=task, name=name or _name_from_file(output, task), file=output.name, sha256="-",
                     version=version or 1, licence=licence, description=description,
                     running=spec.running(model_config), model_config=model_config,
                     provenance=provenance_of(run, meta))
    context = {"onnx": output, "run": run, "checkpoint": meta, "run_dir": checkpoint.parent}
    if spec.finish_card is not None:
        card = spec.finish_card(card, context)
    card = with_start_licence(card, run.get("init_from"))
    report = _export_generator(spec, generator, model_config, output, card, fp16)
    if spec.after_export is not None:
        spec.after_export(report, context)
    return report


def reexport(task: str, source: Path, output: Path, *, name: str | None = None, version: int | None = None,
             fp16: bool = False) -> ExportReport:
    """An exported file written again with this code's graph (e.g. a model that gained an output),
    from the same weights: they are read back from ``source`` and proven against it (ONNX Runtime
    parity on the outputs both graphs have), and the card keeps everything it said (provenance,
    metrics, licence, version) but its file, sha256, running group and export record. Files the card
    names beside the .onnx (a thumbnail) are copied along when ``output`` lies elsewhere."""
    import shutil

    from ..cards import read_card
    from .checkpoint import start_state, warm_start
    from .spec import spec_of_task

    spec = spec_of_task(task)
    state = start_state(source)  # a missing card is a one-line error here
    if state.get("task") != task:
        raise UsageError(f"{source} holds {state.get('task')!r} weights, not {task!r}",
                         hint=f"export it with `imgan export {state.get('task')} ...`")
    model_config = dict(state["model_config"])
    generator = spec.build(model_config)
    warm_start(source, generator, task=task, spec=spec, model_config=model_config)  # loads them, proven by parity
    card = read_card(card_path_for(source))
    fresh = spec.running(model_config)
    kept = {**fresh.inference, **card.running.inference}  # what the first export added (a thumbnail) stays
    card = card.replace(name=name or card.name, version=version or card.version,
                        running=dataclasses.replace(fresh, inference=kept))
    for value in kept.values():
        beside = source.parent / str(value)
        if isinstance(value, str) and beside.is_file() and beside.parent.resolve() != output.parent.resolve():
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(beside, output.parent / beside.name)
    return _export_generator(spec, generator.eval(), model_config, output, card, fp16)


def _export_generator(spec, generator: nn.Module, model_config: Mapping[str, Any], output: Path,
                      card: ModelCard, fp16: bool) -> ExportReport:
    """export_onnx as the task's ModelSpec says: its exportable module, names, axes and sizes."""
    sizes = spec.export_sizes
    input_names, output_names = spec.names(model_config)
    return export_onnx(spec.exportable(generator), spec.example_inputs(model_config, *sizes[0]), output,
                       input_names=input_names, output_names=output_names,
                       dynamic_axes=spec.dynamic_axes(model_config) if spec.dynamic_axes else None,
                       parity_inputs=[spec.example_inputs(model_config, *size) for size in sizes[1:]],
                       card=card, fp16=fp16)


def with_start_licence(card: ModelCard, init_from: Mapping[str, Any] | None) -> ModelCard:
    """A fine-tune's card also names the licence of the weights it started from (their data binds it too)."""
    start = (init_from or {}).get("licence") or ""
    if not start or start in card.licence:
        return card
    return card.replace(licence=f"{card.licence}; started from weights under: {start}" if card.licence else start)


def provenance_of(run: Mapping[str, Any], meta: Mapping[str, Any]) -> "Provenance":
    """Steps and seconds include those of the weights the run started from (init_from)."""
    from ..cards import Provenance, portable_paths

    run = portable_paths(dict(run))  # run.json holds this machine's command lines; a card travels
    start = run.get("init_from") or {}
    train_config = dict(run.get("train_config") or meta.get("train_config") or {})
    train_config.pop("run_dir", None)
    recipe = dict(run.get("recipe") or {})
    return Provenance(
        steps=int(meta.get("step", 0)) + int(start.get("step", 0)),
        seconds=round(float(meta.get("seconds", 0.0)) + float(start.get("seconds", 0.0)), 1),
        recipe=recipe, train_config=train_config, data=recipe.get("data"), command=run.get("command"),
        init_from=start or None, resumptions=tuple(run.get("resumptions") or ()),
    )


def _name_from_file(output: Path, task: str) -> str:
    stem = output.stem
    return stem[len(task) + 1:] if stem.startswith(task + "-") else stem
