"""ModelSpec: how the core builds, exports, warm-starts and checks one task's generator.

A task plugin's ``model.py`` defines one ``SPEC = ModelSpec(...)`` and names it in its Task
(``model="imgan_mytask.model:SPEC"``). With it, `imgan export TASK`, `--init-from`, and the
shipped-parity test work the same for every task, with no per-task table in the core.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from torch import Tensor, nn

from imgan.cards import ModelCard, Running


def _same(module: nn.Module) -> nn.Module:
    return module


def _whole(model_config: Mapping[str, Any]) -> Mapping[str, Any]:
    return model_config


@dataclass(frozen=True)
class ModelSpec:
    """
    build:          model_config -> a fresh generator (random init).
    example_inputs: (model_config, height, width) -> the inputs of the exported module at that size.
    running:        model_config -> the card's Running group (scale, pad multiple, overlap, inputs...).
    exportable:     generator -> the module that is exported (e.g. a wrapper that composites).
    input_names, output_names: the ONNX graph's names, in the exported module's argument order;
                    or model_config -> names, where their number depends on the config (video states).
    dynamic_axes:   model_config -> torch.onnx dynamic_axes; None: batch, height, width of each.
    export_sizes:   (height, width) of the traced example, then of each parity check.
    architecture:   the part of model_config two weights must share for one to start from the
                    other (the default, all of it; style ignores which painting a net learnt).
    transferable_keys: architecture keys in which a start may differ: then the tensors of the same
                    name and shape carry over and the rest starts fresh (sr: "upsample" and "scale",
                    a new upsampler or scale on a trained body).
    finish_card:    (card, context) -> card: task additions (a description, files beside the .onnx).
                    context: {"onnx": Path, "run": run.json dict, "checkpoint": its metadata,
                    "run_dir": the checkpoint's folder}.
    after_export:   (report, context) -> None: work on the written, checked file (e.g. measure it and
                    imgan.cards.update_metrics its card).
    """

    build: Callable[[dict], nn.Module]
    example_inputs: Callable[[Mapping[str, Any], int, int], tuple[Tensor, ...]]
    running: Callable[[Mapping[str, Any]], Running]
    exportable: Callable[[nn.Module], nn.Module] = _same
    input_names: Sequence[str] | Callable[[Mapping[str, Any]], Sequence[str]] = ("input",)
    output_names: Sequence[str] | Callable[[Mapping[str, Any]], Sequence[str]] = ("output",)
    dynamic_axes: Callable[[Mapping[str, Any]], dict] | None = None
    export_sizes: tuple[tuple[int, int], ...] = ((48, 64), (23, 57))
    architecture: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _whole
    transferable_keys: tuple[str, ...] = ()
    finish_card: Callable[[ModelCard, dict], ModelCard] | None = None
    after_export: Callable[[Any, dict], None] | None = None

    def names(self, model_config: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(input names, output names) of the graph exported for this model_config."""
        def of(names):
            return tuple(names(model_config) if callable(names) else names)

        return of(self.input_names), of(self.output_names)

    def parity_inputs(self, model_config: Mapping[str, Any]) -> tuple[Tensor, ...]:
        """Inputs at the last export size, for checking a file against the rebuilt model."""
        height, width = self.export_sizes[-1]
        return self.example_inputs(model_config, height, width)


def spec_of_task(task_name: str) -> ModelSpec:
    """The ModelSpec a registered task names (UsageError if it has none)."""
    from imgan.errors import UsageError
    from imgan.plugins import get_task

    task = get_task(task_name)
    spec = task.resolve("model")
    if spec is None:
        raise UsageError(f"task {task_name!r} has no trainable model", hint="it cannot be exported or fine-tuned")
    return spec
