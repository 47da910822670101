"""Every shipped torch-trained weight is the function its plugin's PyTorch model computes.

For each card in weights/: rebuild the model from the card's own config with the plugin's code,
read its weights back from the ONNX file, and compare ONNX Runtime with PyTorch on random inputs
at a size the export never saw (max abs difference <= 1e-4, outputs in [0, 1]).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgan.weights import shipped_weights_dir

torch = pytest.importorskip("torch")

from imgan.train.checkpoint import check_onnx_parity, weights_from_onnx  # noqa: E402


def style_case(card: dict):
    from imgan_style.model import StyleNetWithReference, build_style_net

    net = build_style_net(card["recipe"]["net"])
    return net, StyleNetWithReference(net), (torch.rand(2, 3, 36, 44), torch.rand(1, 3, 28, 32))


def sr_case(card: dict):
    from imgan_srgan.model import build_generator

    net = build_generator({"generator": card["architecture"]["generator"]})
    return net, net, (torch.rand(1, 3, 19, 27),)


def video_case(card: dict):
    from imgan_video.model import OneStep, build_generator, state_channels

    net = build_generator(card["model_config"])
    states = [torch.rand(2, channels, 6, 5) - 0.5 for channels in state_channels(net.config)]
    return net, OneStep(net), (torch.rand(2, net.config.channels, 24, 20), *states)


def inpaint_case(card: dict):
    from imgan_inpaint.model import build_generator

    net = build_generator(card["recipe"]["model_config"])
    mask = torch.zeros(1, 1, 52, 60)
    mask[..., 10:30, 20:44] = 1.0
    return net, net, (torch.rand(1, 3, 52, 60), mask)


CASES = {"style": style_case, "sr": sr_case, "video": video_case, "inpaint": inpaint_case}
SHIPPED = sorted(path for path in shipped_weights_dir().glob("*.json")
                 if json.loads(path.read_text()).get("task") in CASES)


def test_every_torch_task_ships_weights():
    assert {json.loads(path.read_text())["task"] for path in SHIPPED} >= {"style", "sr", "video"}


@pytest.mark.parametrize("card_path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_shipped_onnx_equals_the_pytorch_model_of_its_card(card_path: Path):
    card = json.loads(card_path.read_text())
    onnx_path = card_path.with_name(card["file"])
    net, exported, inputs = CASES[card["task"]](card)
    net.load_state_dict(weights_from_onnx(onnx_path, net))
    assert check_onnx_parity(exported, onnx_path, inputs, tolerance=1e-4) <= 1e-4
