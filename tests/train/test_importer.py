"""`imgan weights import`: community models (via spandrel) -> checked ONNX weights that every verb finds by name.

Small random-initialised instances of spandrel's own architecture classes stand in for downloaded files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
spandrel = pytest.importorskip("spandrel")
from safetensors.torch import save_file  # noqa: E402  (spandrel depends on safetensors)
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402

from imgan import api  # noqa: E402
from imgan.errors import WeightsError  # noqa: E402
from imgan.io.images import read_image  # noqa: E402
from imgan.pipeline import RunOptions  # noqa: E402
from imgan.train.importer import UNKNOWN_LICENCE, import_model, read_state_dict  # noqa: E402
from imgan.weights import resolve_weights, user_weights_dir  # noqa: E402
from tests.conftest import gradient_image, save_png  # noqa: E402

COMPACT_ZOO_FILE = "realesr-animevideov3-x4.safetensors"

# name -> (network builder, file suffix, scale, pad multiple, tile overlap)
ARCHITECTURES = {
    "esrgan-x4": (lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), ".pth", 4, 1, 32),
    "compact-x4": (lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4), ".safetensors",
                   4, 1, 32),
    # Real-ESRGAN x2plus's layout: pixel-unshuffle by 2, then an x4 RRDBNet; spandrel asks for multiples of 4
    "esrgan-x2": (lambda: ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2),
                  ".pth", 2, 4, 64),
}


def save_model(net: torch.nn.Module, path: Path) -> Path:
    state = {key: value.contiguous() for key, value in net.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def random_net(builder, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = builder()
    with torch.no_grad():  # away from a network that outputs ~0 (clamped): make the parity check count
        for parameter in net.parameters():
            parameter.mul_(1.5)
    return net.eval()


def ort_outputs(onnx_path: Path, image: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image})[0]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_import_card_parity_and_every_verb(arch, tmp_path):
    builder, suffix, scale, multiple, overlap = ARCHITECTURES[arch]
    net = random_net(builder)
    source = save_model(net, tmp_path / f"Community_{arch.upper()}{suffix}")

    report = import_model(source, command="imgan weights import test")
    name = f"community_{arch}"
    assert (report.task, report.name, report.scale) == ("sr", name, scale)
    assert report.path == user_weights_dir() / f"sr-{name}.onnx" and report.card_path.is_file()
    assert report.parity_max_abs_diff <= 1e-4 and len(report.parity_sizes) == 2

    weights = resolve_weights("sr", name)  # found by name, like every catalogue weight
    card = weights.card
    assert weights.origin == "user" and card.provenance.recipe["imported_from"] == source.name
    assert card.provenance.data is None and card.provenance.command == "imgan weights import test"
    assert card.licence == UNKNOWN_LICENCE and card.description
    assert (card.running.scale, card.running.pad_multiple, card.running.tile_overlap) == (scale, multiple, overlap)
    assert card.running.input_convention == "rgb01" and list(card.running.inputs) == ["input"]
    config = card.model_config
    assert config["architecture"] == ("ESRGAN" if arch.startswith("esrgan") else "Compact")
    assert config["source_file"] == source.name and config["spandrel"] == spandrel.__version__
    assert len(config["source_sha256"]) == 64 and config["parameters"] == sum(p.numel() for p in net.parameters())

    # ONNX Runtime vs spandrel's own PyTorch model, at two more sizes (dynamic H/W)
    descriptor = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).eval()
    for height, width in ((36, 44), (20, 28)):
        image = np.random.default_rng(height).random((1, 3, height, width), dtype=np.float32)
        expected = descriptor(torch.from_numpy(image)).numpy()
        got = ort_outputs(weights.file, image)
        assert got.shape == (1, 3, height * scale, width * scale)
        assert np.abs(got - expected).max() <= 1e-4

    # the image verb by name: tiled (tile 16 -> 3x4 tiles) == untiled, then a folder of two
    photo = save_png(tmp_path / "in" / "a.png", gradient_image(40, 56, seed=1))
    save_png(tmp_path / "in" / "b.png", gradient_image(24, 32, seed=2))
    results = {}
    for label, tile in (("whole", None), ("tiled", 16)):
        target = tmp_path / f"{label}.png"
        api.run("sr", [photo], weights=name, tile=tile, options=RunOptions(output=target))  # scale: the weights' own
        results[label] = read_image(target).rgb.astype(np.int16)
    assert results["whole"].shape == (40 * scale, 56 * scale, 3)
    assert np.abs(results["whole"] - results["tiled"]).max() <= 1
    report = api.run("sr", [tmp_path / "in"], weights=name, options=RunOptions(output=tmp_path / "out"))
    assert report.ok and len(report.done) == 2
    assert read_image(tmp_path / "out" / "b.png").rgb.shape == (24 * scale, 32 * scale, 3)


def test_pth_and_safetensors_give_the_same_tensors_and_fp16_becomes_float32(tmp_path):
    net = random_net(ARCHITECTURES["compact-x4"][0]).half()
    from_pth = read_state_dict(save_model(net, tmp_path / "m.pth"))
    from_safetensors = read_state_dict(save_model(net, tmp_path / "m.safetensors"))
    assert from_pth.keys() == from_safetensors.keys() == net.state_dict().keys()
    for key, value in from_pth.items():
        assert value.dtype == torch.float32 and torch.equal(value, from_safetensors[key])
    # a training checkpoint that wraps the weights ({"params_ema": ...}, "module." prefixes) reads the same
    wrapped = tmp_path / "ckpt.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in net.state_dict().items()}, "iter": 5}, wrapped)
    assert read_state_dict(wrapped).keys() == from_pth.keys()


class _Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    net = random_net(ARCHITECTURES["compact-x4"][0])
    evil = tmp_path / "evil-model.pth"
    torch.save({**net.state_dict(), "extra": _Payload(marker)}, evil)

    with pytest.raises(WeightsError) as caught:
        import_model(evil)
    message = caught.value.one_line()
    assert "\n" not in message and str(evil) in message and "refused" in message
    assert not marker.exists(), "the payload ran"
    assert not list(user_weights_dir().glob("*evil*"))
    # the payload is real: a full unpickling (what the importer never does) runs it
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_an_unknown_architecture_is_a_one_line_error_naming_the_file(tmp_path):
    source = tmp_path / "mystery.safetensors"
    save_file({"encoder.weight": torch.randn(8, 3, 3, 3), "decoder.bias": torch.randn(3)}, str(source))
    with pytest.raises(WeightsError) as caught:
        import_model(source)
    message = caught.value.one_line()
    assert "\n" not in message and str(source) in message and "unknown architecture" in message


def test_the_cli_lists_imported_models_apart(tmp_path):
    import json

    from typer.testing import CliRunner

    from imgan.cli import build_app

    source = save_model(random_net(ARCHITECTURES["compact-x4"][0]), tmp_path / "Tiny.safetensors")
    result = CliRunner().invoke(build_app(), ["weights", "import", str(source), "--name", "tiny-x4",
                                              "--licence", "MIT (test)", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["architecture"] == "Compact"
    again = CliRunner().invoke(build_app(), ["weights", "import", str(source), "--name", "tiny-x4"])
    assert again.exit_code != 0  # exists: --overwrite replaces it
    listed = CliRunner().invoke(build_app(), ["weights", "list", "--json"])
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["tiny-x4"]["origin"] == "imported" and rows["tiny-x4"]["imported_from"] == "Tiny.safetensors"
    assert rows["srresnet-x4"]["origin"] == "shipped"
    table = CliRunner().invoke(build_app(), ["weights", "list", "--task", "sr"], terminal_width=200)
    assert "imported models" in table.output and "MIT (test)" in table.output


def test_the_real_realesrgan_compact_model(shared_assets, tmp_path):
    source = shared_assets / "zoo" / COMPACT_ZOO_FILE
    if not source.is_file():
        pytest.skip(f"{source} is not there")
    report = import_model(source, name="animevideov3", licence="BSD-3-Clause (Real-ESRGAN)")
    assert (report.architecture, report.scale) == ("Compact", 4) and report.parity_max_abs_diff <= 1e-4
    assert 0.5e6 < report.parameters < 0.7e6
    photo = save_png(tmp_path / "p.png", gradient_image(32, 40, seed=3))
    api.run("sr", [photo], weights="animevideov3", options=RunOptions(output=tmp_path / "p4.png"))
    assert read_image(tmp_path / "p4.png").rgb.shape == (128, 160, 3)


def test_a_x1_model_is_an_sr_weight_of_scale_1_and_the_task_is_checked(tmp_path):
    from imgan.errors import UsageError
    from imgan.io.images import Picture
    from imgan.runtime.model_transform import model_transform

    net = random_net(lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=1))
    source = save_model(net, tmp_path / "1x_Denoise.safetensors")
    with pytest.raises(UsageError, match="not a model for --task inpaint"):
        import_model(source, task="inpaint")
    report = import_model(source, task="restore", fp16=True)
    assert (report.task, report.name, report.scale) == ("sr", "1x_denoise", 1)
    assert any("no restore task" in note for note in report.notes)
    assert report.fp16_path is not None and report.fp16_path.is_file()
    weights = resolve_weights("sr", "1x_denoise")
    assert weights.card.model_config["purpose"] == "Restoration" and weights.card.export.fp16_file
    picture = Picture(rgb=gradient_image(24, 40), alpha=None)
    assert model_transform(weights, device="cpu")(picture).rgb.shape == (24, 40, 3)
    photo = save_png(tmp_path / "p.png", gradient_image(24, 40))
    api.run("sr", [photo], weights="1x_denoise", options=RunOptions(output=tmp_path / "p1.png"))  # imgan upscale
    assert read_image(tmp_path / "p1.png").rgb.shape == (24, 40, 3)
    x4 = save_model(random_net(ARCHITECTURES["compact-x4"][0]), tmp_path / "x4.safetensors")
    with pytest.raises(UsageError, match="not a restoration"):
        import_model(x4, task="restore")


def test_a_lama_inpainting_model_imports_through_its_fourier_units_and_fills_holes(tmp_path):
    """LaMa (spandrel's class, random weights: 51 M parameters) calls torch.fft, which does not export:
    the importer swaps in the matmul DFT. Parity with spandrel's own model proves the swap."""
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(0)
    net = LaMa(in_nc=4, out_nc=3).eval()
    source = save_model(net, tmp_path / "big-lama.pth")
    report = import_model(source)
    assert (report.task, report.name, report.scale, report.architecture) == ("inpaint", "big-lama", 1, "LaMa")
    assert report.parity_max_abs_diff <= 1e-4
    card = resolve_weights("inpaint", "big-lama").card
    assert list(card.running.inputs) == ["image", "mask"] and card.running.pad_multiple == 8
    assert card.running.inference["working_size"] % 8 == 0

    import onnxruntime as ort

    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    image = rng.random((1, 3, 48, 56), dtype=np.float32)
    mask = np.zeros((1, 1, 48, 56), np.float32)
    mask[..., 8:30, 16:44] = 1.0
    with torch.no_grad():
        expected = net(torch.from_numpy(image), torch.from_numpy(mask)).numpy()
    got = session.run(None, {"image": image, "mask": mask})[0]
    assert np.abs(got - expected).max() <= 1e-4

    # `imgan inpaint --weights big-lama`: white = fill; outside the hole the photo is untouched
    photo = gradient_image(40, 64, seed=4)
    save_png(tmp_path / "photo.png", photo)
    hole = np.zeros((40, 64, 3), np.uint8)
    hole[10:26, 20:40] = 255
    save_png(tmp_path / "mask.png", hole)
    api.run("inpaint", [tmp_path / "photo.png"], weights="big-lama", mask=tmp_path / "mask.png",
            options=RunOptions(output=tmp_path / "filled.png"))
    filled = read_image(tmp_path / "filled.png").rgb.astype(np.int16)
    outside = hole[..., 0] == 0
    assert np.abs(filled[outside] - photo[outside]).max() <= 1
    assert np.abs(filled[~outside] - photo[~outside]).mean() > 1  # the model's fill, not the photo
