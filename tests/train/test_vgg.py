from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imgan.errors import TrainingError
from imgan.train import vgg
from imgan.train.vgg import (
    TORCHVISION_IMAGENET,
    VGG19_LAYERS,
    VGGFeatures,
    default_layers,
    resolve_vgg_weights,
    vgg_input,
)

SHARED_VGG = Path(__file__).resolve().parents[3] / "shared/assets/vgg19/vgg19_imagenet_conv1_1-conv3_4.pth"
needs_shared_vgg = pytest.mark.skipif(not SHARED_VGG.is_file(), reason="shared VGG19 weights not present")


@pytest.fixture(autouse=True)
def no_env_weights(monkeypatch):
    monkeypatch.delenv(vgg.WEIGHTS_ENV, raising=False)


def _tiny_vgg_file(folder: Path) -> Path:
    """A file with conv1_1 only (random numbers): enough to test loading logic cheaply."""
    path = folder / "tiny_vgg.pth"
    torch.save({"features.0.weight": torch.randn(64, 3, 3, 3), "features.0.bias": torch.randn(64)}, path)
    return path


def test_layer_names_follow_torchvision_indices():
    assert len(VGG19_LAYERS) == 37  # 16 convs + 16 relus + 5 pools
    assert VGG19_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert VGG19_LAYERS.index("conv3_4") == 16 and VGG19_LAYERS.index("relu5_4") == 35
    assert VGG19_LAYERS[-1] == "pool5"


def test_caffe_conversion_of_grey_and_red():
    grey = torch.full((1, 3, 2, 2), 0.5)
    # BGR * 255 - (103.939, 116.779, 123.68): 127.5 - mean per channel
    expected = torch.tensor([127.5 - 103.939, 127.5 - 116.779, 127.5 - 123.68])
    assert torch.allclose(vgg_input(grey, "caffe")[0, :, 0, 0], expected, atol=1e-4)
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    # red lands in the last (R) channel after the RGB -> BGR swap
    assert torch.allclose(vgg_input(red, "caffe").flatten(), torch.tensor([-103.939, -116.779, 255 - 123.68]), atol=1e-4)


def test_torchvision_conversion_uses_imagenet_mean_std():
    grey = torch.full((1, 3, 1, 1), 0.5)
    expected = torch.tensor([(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225])
    assert torch.allclose(vgg_input(grey, "torchvision").flatten(), expected, atol=1e-6)


def test_file_needs_a_known_convention(tmp_path):
    path = _tiny_vgg_file(tmp_path)
    with pytest.raises(TrainingError, match="convention") as caught:
        resolve_vgg_weights(path)
    assert caught.value.path == path
    (tmp_path / "tiny_vgg.pth.json").write_text(json.dumps({"convention": "torchvision"}))
    weights = resolve_vgg_weights(path)
    assert weights.convention == "torchvision"
    assert weights.available_layers == ("conv1_1", "relu1_1")
    assert resolve_vgg_weights(path, convention="caffe").convention == "caffe"


def test_path_beats_env_beats_torchvision(tmp_path, monkeypatch):
    path = _tiny_vgg_file(tmp_path)
    assert resolve_vgg_weights() is TORCHVISION_IMAGENET
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(path))
    assert resolve_vgg_weights(convention="caffe").file == path
    with pytest.raises(TrainingError, match="not found"):
        resolve_vgg_weights(tmp_path / "other.pth", convention="caffe")


def test_failed_download_is_an_error_with_a_hint(monkeypatch, tmp_path):
    import torch.hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the weights must be downloaded
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(TrainingError) as caught:
        VGGFeatures(["relu1_1"])
    assert "network unreachable" in str(caught.value)
    assert vgg.WEIGHTS_ENV in caught.value.hint


def test_unknown_layer_name_lists_valid_names(tmp_path):
    with pytest.raises(TrainingError, match="unknown VGG19 layer relu9_9") as caught:
        VGGFeatures(["relu9_9"], resolve_vgg_weights(_tiny_vgg_file(tmp_path), convention="caffe"))
    assert "relu5_4" in caught.value.hint


@needs_shared_vgg
def test_shared_file_is_caffe_up_to_conv3_4():
    weights = resolve_vgg_weights(SHARED_VGG)
    assert weights.convention == "caffe"
    assert weights.available_layers[-3:] == ("conv3_4", "relu3_4", "pool3")
    assert "conv4_1" not in weights.available_layers
    assert len(weights.sha256) == 64
    assert default_layers(weights) == {
        "style": ("relu1_1", "relu2_1", "relu3_1", "relu3_4"),
        "content": "relu2_2",
        "perceptual": "relu3_4",
    }


def test_default_layers_of_full_vgg():
    assert default_layers(TORCHVISION_IMAGENET) == {
        "style": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        "content": "relu4_2",
        "perceptual": "relu5_4",
    }


@needs_shared_vgg
def test_missing_layer_error_lists_available_layers():
    with pytest.raises(TrainingError) as caught:
        VGGFeatures(["relu2_1", "relu4_1"], SHARED_VGG)
    message = str(caught.value)
    assert "relu4_1" in message and "relu2_1 " not in message.split("available")[0]
    assert "available layers: conv1_1, relu1_1" in message and "relu3_4" in message
    assert vgg.WEIGHTS_ENV in caught.value.hint


@needs_shared_vgg
def test_output_shapes_per_layer():
    features = VGGFeatures(["relu1_1", "relu2_2", "conv3_4", "relu3_4", "pool3"], SHARED_VGG)
    assert len(features.body) == 19  # built up to pool3 only
    out = features(torch.rand(2, 3, 32, 48))
    assert {name: tuple(t.shape) for name, t in out.items()} == {
        "relu1_1": (2, 64, 32, 48),
        "relu2_2": (2, 128, 16, 24),
        "conv3_4": (2, 256, 8, 12),
        "relu3_4": (2, 256, 8, 12),
        "pool3": (2, 256, 4, 6),
    }
    # the ReLU must not overwrite the conv output it was asked for alongside
    assert torch.equal(out["relu3_4"], out["conv3_4"].clamp(min=0))
    assert out["conv3_4"].min() < 0


@needs_shared_vgg
def test_network_sees_caffe_input():
    features = VGGFeatures(["relu1_1"], SHARED_VGG)
    seen = {}
    features.body[0].register_forward_pre_hook(lambda module, args: seen.setdefault("input", args[0]))
    features(torch.full((1, 3, 4, 4), 0.5))
    expected = torch.tensor([23.561, 10.721, 3.82]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(seen["input"], expected, atol=1e-3)


@needs_shared_vgg
def test_frozen_deterministic_and_differentiable_in_input():
    features = VGGFeatures(["relu2_2"], SHARED_VGG)
    features.train()
    assert not features.training and not features.body.training
    assert all(not p.requires_grad for p in features.parameters())
    torch.manual_seed(0)
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    first = features(image)["relu2_2"]
    again = VGGFeatures(["relu2_2"], SHARED_VGG)(image)["relu2_2"]
    assert torch.equal(first, again)
    first.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in features.parameters())
