from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgan.errors import TrainingError
from imgan.train import export
from imgan.cards import ModelCard, Running, read_card
from imgan.train.export import export_onnx, sha256_file


class ShuffleUp(nn.Module):
    """x2 by sub-pixel convolution; BatchNorm shows the export runs in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.norm = nn.BatchNorm2d(12)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.norm(self.conv(x)))


class BilinearUp(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)


def _run_onnx(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


@pytest.mark.parametrize("make_model", [ShuffleUp, BilinearUp])
def test_export_runs_at_other_sizes_like_torch(tmp_path, make_model):
    torch.manual_seed(0)
    model = make_model()
    model.train()
    model(torch.rand(4, 3, 8, 8))  # moves BatchNorm statistics away from their defaults
    path = tmp_path / "models" / "up.onnx"
    report = export_onnx(model, torch.rand(1, 3, 32, 48), path, parity_inputs=[torch.rand(2, 3, 40, 24)])
    assert model.training  # the caller's model is untouched
    assert report.path == path and report.opset == 17
    assert report.sizes_checked == [(32, 48), (40, 24)]
    assert report.max_abs_diff <= 1e-4
    model.eval()
    for shape in [(1, 3, 32, 48), (3, 3, 40, 24)]:
        x = torch.rand(shape)
        got = _run_onnx(path, x)
        assert got.shape == (shape[0], 3, shape[2] * 2, shape[3] * 2)
        with torch.no_grad():
            assert np.abs(got - model(x).numpy()).max() <= 1e-4


def test_dynamic_dimension_names_are_per_tensor(tmp_path):
    path = tmp_path / "up.onnx"
    export_onnx(BilinearUp(), torch.rand(1, 3, 16, 16), path)
    graph = onnx.load(str(path)).graph
    dims = {value.name: [d.dim_param for d in value.type.tensor_type.shape.dim] for value in [*graph.input, *graph.output]}
    assert dims == {
        "input": ["batch", "", "input_height", "input_width"],
        "output": ["batch", "", "output_height", "output_width"],
    }


def a_card(name: str, scale: int = 2) -> ModelCard:
    return ModelCard(task="sr", name=name, file="-", sha256="-", running=Running(scale=scale))


def test_card_beside_the_model(tmp_path):
    path = tmp_path / "sr-tiny.onnx"
    report = export_onnx(ShuffleUp(), torch.rand(1, 3, 16, 16), path, card=a_card("tiny"))
    card = read_card(report.card_path)
    assert report.card_path == tmp_path / "sr-tiny.json"
    assert card.sha256 == sha256_file(path) == report.sha256
    assert card.file == "sr-tiny.onnx"
    assert (card.name, card.task, card.running.scale, card.export.opset) == ("tiny", "sr", 2, 17)
    assert card.export.parity_max_abs_diff == report.max_abs_diff
    assert card.export.exported_at.endswith("+00:00")


def test_card_records_the_opset_and_sizes_of_the_export(tmp_path):
    path = tmp_path / "m.onnx"
    report = export_onnx(BilinearUp(), torch.rand(1, 3, 8, 8), path, opset=18, card=a_card("m"),
                         parity_inputs=[torch.rand(1, 3, 6, 10)])
    card = read_card(report.card_path)
    assert card.export.opset == 18 and card.sha256 == sha256_file(path)
    assert card.export.parity_sizes == ((8, 8), (6, 10))
    assert export_onnx(BilinearUp(), torch.rand(1, 3, 8, 8), tmp_path / "bare.onnx").card_path is None


def test_failed_parity_leaves_no_file(tmp_path, monkeypatch):
    real_outputs = export.torch_outputs

    def outputs_of_a_different_model(model, inputs):
        return [array + 0.01 for array in real_outputs(model, inputs)]

    monkeypatch.setattr(export, "torch_outputs", outputs_of_a_different_model)
    path = tmp_path / "bad.onnx"
    with pytest.raises(TrainingError, match="differ by 0.01") as caught:
        export_onnx(ShuffleUp(), torch.rand(1, 3, 16, 16), path)
    assert caught.value.path == path
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_size_frozen_while_tracing_is_caught(tmp_path):
    class FrozenSize(nn.Module):
        def forward(self, x):
            # int() turns the traced height into a constant: the export only works at 16x16
            return F.interpolate(x, size=(int(x.shape[2]) * 2, int(x.shape[3]) * 2), mode="nearest")

    with pytest.raises(TrainingError, match="20x12"):
        export_onnx(FrozenSize(), torch.rand(1, 3, 16, 16), tmp_path / "f.onnx", parity_inputs=[torch.rand(1, 3, 20, 12)])
    assert list(tmp_path.iterdir()) == []


def test_fp16_copy_runs_with_float32_io(tmp_path):
    torch.manual_seed(0)
    model = ShuffleUp().eval()
    path = tmp_path / "up.onnx"
    report = export_onnx(model, torch.rand(1, 3, 16, 16), path, fp16=True, parity_inputs=[torch.rand(1, 3, 24, 8)],
                         card=a_card("up"))
    assert report.fp16_path == tmp_path / "up.fp16.onnx"
    assert report.fp16_max_abs_diff < 1e-2
    x = torch.rand(1, 3, 20, 20)
    got = _run_onnx(report.fp16_path, x)
    assert got.dtype == np.float32 and got.shape == (1, 3, 40, 40)
    with torch.no_grad():
        assert np.abs(got - model(x).numpy()).max() < 1e-2
    initializer_types = {init.data_type for init in onnx.load(str(report.fp16_path)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in initializer_types
    card = read_card(report.card_path)
    assert card.export.fp16_file == "up.fp16.onnx" and card.export.fp16_sha256 == sha256_file(report.fp16_path)
    assert card.export.fp16_parity_max_abs_diff == report.fp16_max_abs_diff
