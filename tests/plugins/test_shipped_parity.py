"""Every shipped torch-trained weight is the function its plugin's PyTorch model computes.

Driven by the registry: for each card in weights/ whose task names a ModelSpec, rebuild the model
from the card's own model_config (the one key every task uses), read its weights back from the
ONNX file, and compare ONNX Runtime with PyTorch on the spec's parity inputs (max abs
difference <= 1e-4).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from imgan.cards import read_card
from imgan.plugins import get_tasks
from imgan.weights import shipped_weights_dir

torch = pytest.importorskip("torch")

from imgan.train.checkpoint import check_onnx_parity, weights_from_onnx  # noqa: E402

TRAINABLE = {task.name for task in get_tasks().all() if task.model is not None}
SHIPPED = sorted(path for path in shipped_weights_dir().glob("*.json") if read_card(path).task in TRAINABLE)


def test_every_trainable_task_ships_weights():
    assert {read_card(path).task for path in SHIPPED} >= {"style", "sr", "video", "inpaint"}


@pytest.mark.parametrize("card_path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_shipped_onnx_equals_the_pytorch_model_of_its_card(card_path: Path):
    card = read_card(card_path)
    spec = get_tasks().get(card.task).resolve("model")
    net = spec.build(dict(card.model_config))
    net.load_state_dict(weights_from_onnx(card_path.with_name(card.file), net))
    torch.manual_seed(0)
    inputs = spec.parity_inputs(card.model_config)
    assert check_onnx_parity(spec.exportable(net), card_path.with_name(card.file), inputs, tolerance=1e-4) <= 1e-4
