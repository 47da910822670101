"""ONNX Runtime against PyTorch: the one parity check, for exports and for weights read back."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from imgan.errors import TrainingError


def torch_outputs(model: nn.Module, inputs: tuple[Tensor, ...]) -> list[np.ndarray]:
    with torch.no_grad():
        result = model(*inputs)
    tensors = [result] if isinstance(result, Tensor) else list(result)
    return [t.float().numpy() for t in tensors]


def ort_parity(
    onnx_path: Path,
    input_names: Sequence[str] | None,
    cases: list[tuple[Tensor, ...]],
    expected: list[list[np.ndarray]],
    tolerance: float,
    reported_path: Path,
) -> float:
    """Largest |ORT - torch| over all cases and outputs; TrainingError beyond ``tolerance``.
    ``input_names`` None: the file's own inputs, in order."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_names = input_names or [item.name for item in session.get_inputs()]
    worst = 0.0
    for inputs, wanted in zip(cases, expected):
        shape = "x".join(str(side) for side in inputs[0].shape)
        try:
            got = session.run(None, {name: t.numpy() for name, t in zip(input_names, inputs)})
        except Exception as exc:
            raise TrainingError(
                f"exported model fails on input {shape}: {exc}",
                path=reported_path,
                hint="a size may have been frozen while tracing; avoid Python ints from tensor shapes",
            ) from None
        for index, (ort_out, torch_out) in enumerate(zip(got, wanted)):
            if ort_out.shape != torch_out.shape:
                raise TrainingError(
                    f"output {index} on input {shape}: ONNX shape {ort_out.shape} != torch {torch_out.shape}",
                    path=reported_path,
                    hint="a size was frozen while tracing; check dynamic_axes",
                )
            diff = float(np.max(np.abs(ort_out.astype(np.float64) - torch_out))) if ort_out.size else 0.0
            if not diff <= tolerance:  # also catches NaN
                raise TrainingError(
                    f"ONNX Runtime and torch differ by {diff:.3g} (> {tolerance:g}) on input {shape}",
                    path=reported_path,
                    hint="the exported graph does not compute what the model does; nothing was written",
                )
            worst = max(worst, diff)
    return worst


def check_onnx_parity(module: nn.Module, path: str | Path, inputs: tuple[torch.Tensor, ...],
                      tolerance: float = 1e-4) -> float:
    """Raise unless `module` computes what the ONNX file computes on `inputs`; the max abs difference."""
    was_training = module.training
    expected = torch_outputs(module.eval(), inputs)
    module.train(was_training)
    try:
        return ort_parity(Path(path), None, [inputs], [expected], tolerance, Path(path))
    except TrainingError as error:
        raise TrainingError(f"the weights read from the ONNX file do not reproduce it: {error.message}",
                            path=path, hint="start from a checkpoint of the run instead") from None
