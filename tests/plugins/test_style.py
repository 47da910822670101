"""The style plugin: export parity, the colour/strength maths, seamless tiling, alpha, video, errors,
and (when the shipped weights are there) that monet really moves a photo towards the painting."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgan.errors import InputError, UsageError
from imgan.io.images import Picture, read_image, to_float
from tests.conftest import REPO, SHARED_ASSETS, gradient_image, run_cli, save_png

torch = pytest.importorskip("torch")

from imgan_style import infer  # noqa: E402
from imgan_style.model import ReferenceInstanceNorm, StyleNet, StyleNetConfig  # noqa: E402

VGG_FILE = SHARED_ASSETS / "vgg19" / "vgg19_imagenet_conv1_1-conv3_4.pth"
needs_vgg = pytest.mark.skipif(not VGG_FILE.is_file(), reason="the shared VGG19 weights are not beside the checkout")
TINY = StyleNetConfig(widths=(4, 8, 8), residual_blocks=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def random_tiny_net(seed: int = 0, config: StyleNetConfig = TINY) -> StyleNet:
    """A untrained net whose norm layers are far from identity, so reference statistics matter."""
    torch.manual_seed(seed)
    net = StyleNet(config)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, ReferenceInstanceNorm):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
    return net.eval()


def write_checkpoint(path: Path, net: StyleNet, painting: Path, config: StyleNetConfig = TINY) -> Path:
    """A checkpoint in the training loop's format, without training."""
    from imgan.train.checkpoint import save_checkpoint

    style = {"image": str(painting), "style_layers": ["relu1_1", "relu2_1"], "content_layer": "relu2_2",
             "style_size": 64, "style_weight": 1.0, "content_weight": 2e-5, "tv_weight": 0.5}
    return save_checkpoint(path, {
        "format": 1, "task": "style", "model_config": {**config.to_dict(), "style": style},
        "train_config": {"batch_size": 2, "lr_g": 1e-3}, "step": 3, "epoch": 0, "position": 6, "seconds": 1.5,
        "generator": net.state_dict(), "generator_ema": None,
        "history": [{"step": 3, "style": 0.5, "content": 1000.0, "tv": 0.1, "g_total": 0.6}],
    })


@pytest.fixture(scope="module")
def exported_tiny(tmp_path_factory):
    """A random tiny net exported (ONNX, card, thumbnail) once per module, and its torch twin."""
    from imgan.train.export import export_checkpoint

    folder = tmp_path_factory.mktemp("tiny_style")
    net = random_tiny_net()
    painting = save_png(folder / "painting.png", gradient_image(40, 56, seed=3)[:, ::-1].copy())
    checkpoint = write_checkpoint(folder / "run" / "latest.pt", net, painting)
    return net, export_checkpoint("style", checkpoint, folder / "weights" / "style-tiny.onnx", name="tiny")


@pytest.fixture
def tiny_style(exported_tiny, isolated_home):
    """The tiny net installed as the user style "tiny" in this test's $IMGAN_HOME."""
    import shutil

    net, report = exported_tiny
    shutil.copytree(report.path.parent, isolated_home / "weights", dirs_exist_ok=True)
    return net, report


def untiled(weights, rgb: np.ndarray) -> np.ndarray:
    model = __import__("imgan.runtime.session", fromlist=["load_model"]).load_model(weights.file, device="cpu")
    return infer.fast_stylise(model, weights, tile=1024)(rgb, None, False)


# ---------------------------------------------------------------------------------------- the net


def test_reference_equal_to_input_is_instance_norm():
    norm = ReferenceInstanceNorm(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(3, 5, 9, 11) * 3 + 2
    expected = torch.nn.functional.instance_norm(x, weight=norm.weight.flatten(), bias=norm.bias.flatten(), eps=1e-5)
    alone, _ = norm(x, None)
    with_reference, _ = norm(x[:1], x[:1])
    assert torch.allclose(alone, expected, atol=1e-5)
    assert torch.allclose(with_reference, expected[:1], atol=1e-5)


def test_net_with_itself_as_reference_matches_training_mode():
    net = random_tiny_net()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.allclose(net(x, x), net(x), atol=1e-5)
        assert net(x).shape == x.shape and 0.0 <= float(net(x).min()) and float(net(x).max()) <= 1.0


def test_export_has_parity_and_a_full_card(tiny_style):
    net, report = tiny_style
    assert report.max_abs_diff < 1e-4
    card = json.loads(report.card_path.read_text())
    running, style = card["running"], card["model_config"]["style"]
    assert card["task"] == "style" and card["name"] == "tiny" and list(running["inputs"]) == ["input", "reference"]
    assert running["pad_multiple"] == 4 and running["tile_overlap"] >= 26
    assert style["style_layers"] == ["relu1_1", "relu2_1"] and style["content_weight"] == 2e-5
    assert card["metrics"]["final_losses"]["style"] == 0.5 and card["provenance"]["steps"] == 3
    assert (report.path.parent / running["inference"]["thumbnail"]).is_file()


def test_a_net_card_names_a_known_painting_by_its_artist_and_title():
    from imgan_style.model import net_description

    shipped = "../shared/assets/styles/vangogh_starry_night.jpg"
    assert net_description(shipped, "vangogh") == "Vincent van Gogh, The Starry Night (1889)"
    assert net_description("/elsewhere/monet_water_lilies.jpg", "monet") == "Claude Monet, Water Lilies"
    assert net_description("/my/holiday_snap.png", "mine") == "fast style transfer: holiday snap"
    assert net_description(None, "mine") == "fast style transfer: mine"


def test_onnx_runtime_matches_torch_with_a_different_reference(tiny_style):
    from imgan.runtime.session import load_model

    net, report = tiny_style
    image, reference = np.random.default_rng(0).random((2, 3, 40, 52), dtype=np.float32), \
        np.random.default_rng(1).random((1, 3, 24, 32), dtype=np.float32)
    ours = load_model(report.path, device="cpu")(image, reference)
    with torch.no_grad():
        theirs = net(torch.from_numpy(image), torch.from_numpy(reference)).numpy()
    assert np.abs(ours - theirs).max() < 1e-4


# ---------------------------------------------------------------------------------------- the maths


def test_strength_blends_linearly():
    rng = np.random.default_rng(0)
    original, styled = rng.random((6, 5, 3), dtype=np.float32), rng.random((6, 5, 3), dtype=np.float32)
    assert np.array_equal(infer.blend(original, styled, 1.0), styled)
    assert np.allclose(infer.blend(original, styled, 0.0), original)
    assert np.allclose(infer.blend(original, styled, 0.25), 0.75 * original + 0.25 * styled)
    with pytest.raises(UsageError, match="between 0 and 1"):
        infer.blend(original, styled, 1.5)


def test_preserve_colour_keeps_chroma_and_takes_luma():
    rng = np.random.default_rng(1)
    original = 0.2 + 0.6 * rng.random((8, 8, 3), dtype=np.float32)
    styled = 0.3 + 0.4 * rng.random((8, 8, 3), dtype=np.float32)
    result = infer.preserve_colour(original, styled)
    assert np.allclose(infer.luma(result), infer.luma(styled), atol=1e-5)  # brightness from the style
    # chroma (each channel minus the luma) from the original, as in YCbCr
    assert np.allclose(result - infer.luma(result)[..., None], original - infer.luma(original)[..., None], atol=1e-5)
    gray = np.repeat(original[..., :1], 3, axis=2)
    assert np.allclose(np.ptp(infer.preserve_colour(gray, styled), axis=2), 0.0, atol=1e-6)  # gray stays gray


def test_working_size_caps_by_default_and_follows_size():
    assert infer.working_size(3000, 4000, None) == (1024, 768)
    assert infer.working_size(300, 400, None) == (400, 300)
    assert infer.working_size(300, 400, 800) == (800, 600)


def test_flicker_is_relative_to_the_input():
    frames = [np.full((4, 4, 3), value, np.uint8) for value in (10, 30, 20, 40)]
    assert infer.flicker(frames, frames) == pytest.approx(1.0)
    doubled = [np.full((4, 4, 3), 2 * value, np.uint8) for value in (10, 30, 20, 40)]
    assert infer.flicker(frames, doubled) == pytest.approx(2.0)
    assert infer.flicker(frames, [frames[0]] * 4) == 0.0


def test_reference_smoother_averages_and_restarts_on_a_cut():
    smoother = infer.ReferenceSmoother(decay=0.75, cut_threshold=0.2)
    first = np.zeros((1, 3, 4, 4), np.float32)
    assert np.array_equal(smoother.update(first), first)
    assert np.allclose(smoother.update(first + 0.1), 0.025)  # 0.75 * 0 + 0.25 * 0.1
    cut = first + 0.9
    assert np.array_equal(smoother.update(cut), cut)


def test_flow_blending_lowers_flicker_without_smearing_motion():
    """A textured scene panning 2 px per frame, "stylised" with fresh noise each frame (the flicker)."""
    import cv2

    rng = np.random.default_rng(4)
    blocks = np.kron(rng.random((16, 40, 3)), np.ones((4, 4, 1))).astype(np.float32)
    scene = cv2.GaussianBlur(blocks, (0, 0), 1.0)  # (64, 160, 3) texture the optical flow can follow
    clean = [np.ascontiguousarray(scene[:, 2 * index:2 * index + 96]) for index in range(8)]
    noisy = [np.clip(frame + rng.normal(0, 0.08, frame.shape).astype(np.float32), 0, 1) for frame in clean]
    blender = infer.FlowBlender()
    blended = [blender.blend(frame, styled) for frame, styled in zip(clean, noisy)]
    inner = (slice(8, -8), slice(8, -8))  # away from the edge where new content enters

    def error(a, b):
        return float(np.abs(a - b)[inner].mean())

    assert error(blended[-1], clean[-1]) < 0.7 * error(noisy[-1], clean[-1])  # the per-frame noise is damped
    assert error(blended[-1], clean[-1]) < 0.5 * error(blended[-1], clean[-2])  # and it follows the motion


def test_compare_sheet_puts_three_panels_side_by_side():
    original = np.zeros((60, 80, 3), np.uint8)
    painting = np.full((30, 30, 3), 128, np.uint8)
    styled = np.full((60, 80, 3), 255, np.uint8)
    sheet = infer.compare_sheet(original, painting, styled, gap=4)
    assert sheet.shape == (60, 80 + 60 + 80 + 8, 3)
    assert sheet[:, :80].max() == 0 and np.all(sheet[:, 84:144] == 128) and sheet[:, -80:].min() == 255


# ---------------------------------------------------------------------------------------- inference


def test_tiles_join_without_seams(tiny_style):
    from imgan.runtime.session import load_model
    from imgan.weights import resolve_weights

    weights = resolve_weights("style", "tiny")
    rgb = to_float(gradient_image(100, 136, seed=5))
    whole = untiled(weights, rgb)
    tiled = infer.fast_stylise(load_model(weights.file, device="cpu"), weights, tile=32)(rgb, None, False)
    assert psnr(tiled, whole) > 40
    # Across tile borders the picture changes no more than between any other neighbouring columns.
    steps = np.abs(np.diff(tiled, axis=1)).mean(axis=(0, 2))  # step from column x to x + 1
    borders = steps[[31, 63, 95]]
    assert borders.mean() <= 1.5 * steps.mean()


class CallRecorder:
    """An ONNX model that notes the input shapes of each call (the runtime's view of the net)."""

    def __init__(self, model, hide_outputs: bool = False):
        self.model, self.calls = model, []
        if not hide_outputs:  # hidden: a file exported before the "styled_reference" output existed
            self.output_names = model.output_names

    def __call__(self, *inputs):
        return self.run(*inputs)[0]

    def run(self, *inputs):
        self.calls.append([array.shape[-2:] for array in inputs])
        return self.model.run(*inputs)


def test_a_picture_no_larger_than_the_reference_runs_in_one_stream(exported_tiny):
    """A picture that is its own reference goes through the net once, as the reference beside a tiny
    probe: the result is the net with plain instance norm on the reflect-padded picture, the same as
    the two-stream run of a file without the one-stream output; a bigger picture keeps two streams."""
    from imgan.runtime.session import load_model
    from imgan.weights import Weights

    net, report = exported_tiny
    weights = Weights.from_card(report.card_path)
    model = load_model(report.path, device="cpu")
    assert model.output_names == ["output", "styled_reference"]
    rgb = to_float(gradient_image(50, 70, seed=4))  # sides not multiples of 4
    one = CallRecorder(model)
    result = infer.fast_stylise(one, weights)(rgb, None, False)
    assert one.calls == [[(infer.PROBE_SIDE, infer.PROBE_SIDE), (52, 72)]]
    padded = torch.from_numpy(np.pad(rgb, ((0, 2), (0, 2), (0, 0)), mode="reflect").transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        expected = net(padded, None)[0, :, :50, :70].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(result, expected, atol=1e-4)
    two = CallRecorder(model, hide_outputs=True)
    np.testing.assert_allclose(infer.fast_stylise(two, weights)(rgb, None, False), result, atol=1e-5)
    assert two.calls == [[(52, 72), (52, 72)]]
    bigger = CallRecorder(model)
    infer.fast_stylise(bigger, weights, reference_size=32)(rgb, None, False)
    assert bigger.calls == [[(52, 72), (24, 32)]]  # shrunk to 32 px: the picture is not its own reference


def test_an_exported_file_is_written_again_with_the_new_graph_and_its_card(exported_tiny, tmp_path):
    """`imgan export style OLD.onnx -o NEW.onnx`: a file from before the one-stream output gets it,
    from the same weights (parity against the old file on the output both have), and the card keeps
    its provenance, metrics, version and thumbnail; only the file, checksum, outputs and export change."""
    import onnxruntime as ort

    from imgan.cards import read_card
    from imgan.train.export import export_onnx
    from imgan_style.model import SPEC

    net, report = exported_tiny
    old_card = json.loads(report.card_path.read_text())
    card = read_card(report.card_path).replace(version=3)
    old_card["version"] = 3

    class OneOutput(torch.nn.Module):  # the graph the v1/v2 files have: "output" only
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image, reference):
            return self.net(image, reference)

    old = tmp_path / "old" / "style-tiny.onnx"
    export_onnx(OneOutput(), SPEC.example_inputs({}, 64, 96), old, input_names=("input", "reference"), card=card)
    (old.parent / "style-tiny.png").write_bytes(report.path.with_suffix(".png").read_bytes())
    new = tmp_path / "new" / "style-tiny.onnx"
    done = run_cli("export", "style", old, "-o", new)
    assert done.returncode == 0, done.stderr
    assert [item.name for item in ort.InferenceSession(str(new)).get_outputs()] == ["output", "styled_reference"]
    card_after = json.loads(new.with_suffix(".json").read_text())
    for key in ("name", "version", "licence", "description", "provenance", "metrics", "model_config"):
        assert card_after[key] == old_card[key], key
    assert card_after["sha256"] != json.loads(old.with_suffix(".json").read_text())["sha256"]
    assert "styled_reference" in card_after["running"]["outputs"] and (new.parent / "style-tiny.png").is_file()
    assert run_cli("export", "style", old, "-o", new).returncode != 0  # exists: never overwritten silently


def test_the_antialiased_net_passes_no_checkerboard_from_low_resolution():
    """v2 nets blur before each upsampling: a checkerboard in the 1/4-resolution features (what made
    the v1 nets' diagonal 5.7-px stripes) does not reach the next resolution; without the blur it does."""
    from imgan_style.model import ConvLayer

    torch.manual_seed(0)
    checkerboard = torch.tensor([[(-1.0) ** (y + x) for x in range(16)] for y in range(16)]).expand(1, 4, 16, 16)
    spread = {}
    for antialias in (False, True):
        layer = ConvLayer(4, 4, 3, upsample=True, norm=False, antialias=antialias)
        with torch.no_grad():
            out = layer(checkerboard, None)[0][..., 4:-4, 4:-4]  # away from the reflected border
        spread[antialias] = float(out.std(dim=(2, 3)).mean())
    assert spread[False] > 0.1 and spread[True] < 1e-5


def test_blurring_after_the_nearest_copy_leaves_no_2x2_blocks():
    """Blurred before a nearest x2 (v2 nets), every 2x2 block of the upsampled features is one value:
    the edges the v2 nets turn into a fine axis-aligned grid; blurred after it, none is."""
    from imgan_style.model import ConvLayer

    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    flat_blocks = {}
    for after in (False, True):
        layer = ConvLayer(1, 1, 3, upsample=True, norm=False, relu=False, antialias=True, blur_after=after)
        with torch.no_grad():
            layer.conv.weight.zero_()
            layer.conv.weight[0, 0, 1, 1] = 1.0  # the conv passes its input through: what is left is the resize
            layer.conv.bias.zero_()
            out = layer(ramp, None)[0][0, 0, 4:-4, 4:-4]
        pairs = out.reshape(out.shape[0], -1, 2)  # horizontal neighbours inside each 2x2 block
        flat_blocks[after] = bool(torch.allclose(pairs[..., 0], pairs[..., 1]))
    assert flat_blocks == {False: True, True: False}


@pytest.mark.parametrize("blur_after", [False, True])
def test_an_antialiased_net_exports_and_its_tiles_join(tmp_path, isolated_home, blur_after):
    """The blur is part of the exported graph (parity at export) and of the tile overlap."""
    from dataclasses import replace

    from imgan.runtime.session import load_model
    from imgan.train.export import export_checkpoint
    from imgan.weights import resolve_weights

    import imgan_style.model as style_model

    config = replace(TINY, antialias=True, blur_after_upsample=blur_after)
    net = random_tiny_net(1, config)
    assert not any("kernel" in name for name in net.state_dict())  # a constant, not a weight
    painting = save_png(tmp_path / "painting.png", gradient_image(40, 56, seed=3))
    checkpoint = write_checkpoint(tmp_path / "run" / "latest.pt", net, painting, config=config)
    report = export_checkpoint("style", checkpoint, isolated_home / "weights" / "style-smooth.onnx", name="smooth")
    weights = resolve_weights("style", "smooth")
    assert weights.card.model_config["antialias"] is True
    assert weights.card.model_config["blur_after_upsample"] is blur_after
    assert weights.running.tile_overlap >= style_model.receptive_margin(config)
    rgb = to_float(gradient_image(100, 136, seed=5))
    tiled = infer.fast_stylise(load_model(report.path, device="cpu"), weights, tile=32)(rgb, None, False)
    assert psnr(tiled, untiled(weights, rgb)) > 40


def test_per_tile_statistics_would_show_seams(tiny_style):
    """The control: each tile normalised by itself (plain instance norm) differs visibly from the whole."""
    from imgan.runtime.session import load_model
    from imgan.runtime.tiling import tiled_apply
    from imgan.weights import resolve_weights

    weights = resolve_weights("style", "tiny")
    model = load_model(weights.file, device="cpu")
    rgb = to_float(gradient_image(100, 136, seed=5))
    per_tile = tiled_apply(lambda tiles: np.concatenate([model(t[None], t[None]) for t in tiles]), rgb, tile=32,
                           overlap=28, multiple=4)
    assert psnr(per_tile, untiled(weights, rgb)) < 40


def test_transform_keeps_alpha_size_and_dtype(tiny_style):
    from imgan_style.infer import make_transform

    rgb16 = (gradient_image(30, 42).astype(np.uint16) * 257)
    alpha16 = np.linspace(0, 65535, 30 * 42).reshape(30, 42).astype(np.uint16)
    transform = make_transform(style="tiny", device="cpu")
    result = transform(Picture(rgb=rgb16, alpha=alpha16, source=Path("x.png")))
    assert result.rgb.dtype == np.uint16 and result.rgb.shape == rgb16.shape
    assert result.alpha is alpha16
    styled8 = make_transform(style="tiny", device="cpu")(Picture(rgb=gradient_image(30, 42), alpha=None))
    assert np.abs(result.rgb / 65535.0 - styled8.rgb / 255.0).max() < 0.02


def test_size_option_styles_at_another_scale_and_keeps_the_input_size(tiny_style):
    from imgan_style.infer import make_transform

    picture = Picture(rgb=gradient_image(64, 96), alpha=None, source=Path("x.png"))
    small = make_transform(style="tiny", device="cpu", size=48)(picture)
    full = make_transform(style="tiny", device="cpu")(picture)
    assert small.rgb.shape == full.rgb.shape == picture.rgb.shape
    assert np.abs(small.rgb.astype(int) - full.rgb.astype(int)).mean() > 1


def test_strength_zero_returns_the_original(tiny_style):
    from imgan_style.infer import make_transform

    picture = Picture(rgb=gradient_image(32, 40), alpha=None, source=Path("x.png"))
    assert np.array_equal(make_transform(style="tiny", device="cpu", strength=0.0)(picture).rgb, picture.rgb)


def test_unknown_style_lists_the_available_ones(tiny_style):
    from imgan_style.infer import make_transform

    with pytest.raises(UsageError, match="unknown style 'nope'") as caught:
        make_transform(style="nope")
    assert "tiny" in caught.value.hint


def test_cli_errors_are_one_line_with_exit_codes(tiny_style, tmp_path, isolated_home):
    photo = save_png(tmp_path / "p.png", gradient_image(32, 40))
    env = {"IMGAN_HOME": str(isolated_home)}
    unknown = run_cli("stylize", photo, "--style", "nope", "-o", tmp_path / "o.png", env=env)
    assert unknown.returncode == 2 and "available styles:" in unknown.stderr and "tiny" in unknown.stderr
    strength = run_cli("stylize", photo, "--style", "tiny", "--strength", "1.5", "-o", tmp_path / "o.png", env=env)
    assert strength.returncode == 2 and "--strength must be between 0 and 1" in strength.stderr
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    bad = run_cli("stylize", photo, "--style-image", tmp_path / "bad.jpg", "-o", tmp_path / "o.png", env=env)
    assert bad.returncode == 1 and "bad.jpg" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_cli_stylizes_with_compare_sheet_and_lists_styles(tiny_style, tmp_path, isolated_home):
    photo = save_png(tmp_path / "p.png", gradient_image(48, 64))
    env = {"IMGAN_HOME": str(isolated_home)}
    done = run_cli("stylize", photo, "--style", "tiny", "-o", tmp_path / "o.png", "--compare", tmp_path / "c.png",
                   "--preserve-color", env=env)
    assert done.returncode == 0, done.stderr
    out, sheet = read_image(tmp_path / "o.png"), read_image(tmp_path / "c.png")
    assert out.rgb.shape == (48, 64, 3) and sheet.rgb.shape[0] == 48 and sheet.rgb.shape[1] > 2 * 64
    listed = run_cli("styles", "--json", env=env)
    assert [row["name"] for row in json.loads(listed.stdout)] == ["tiny"] or \
        "tiny" in [row["name"] for row in json.loads(listed.stdout)]


def test_video_round_trip_with_stable_statistics(tiny_style, tmp_path):
    import imgan
    from imgan.io.video import read_frames, write_video
    from imgan.pipeline import RunOptions

    frames = [np.roll(gradient_image(48, 64, seed=1), 3 * index, axis=1) for index in range(6)]
    clip = write_video(frames, tmp_path / "clip.mp4", fps=6.0)
    report = imgan.run("style", [clip], options=RunOptions(output=tmp_path / "out.mp4"), style="tiny", device="cpu")
    assert report.ok and not report.failures
    styled = list(read_frames(tmp_path / "out.mp4"))
    assert len(styled) == 6 and styled[0].shape == (48, 64, 3)
    assert np.abs(styled[0].astype(int) - frames[0].astype(int)).mean() > 5  # it was stylised


def test_inference_does_not_import_torch(tiny_style, isolated_home):
    code = ("import sys, numpy as np; from imgan.io.images import Picture; from imgan_style.infer import make_transform; "
            "t = make_transform(style='tiny', device='cpu'); t(Picture(rgb=np.zeros((20, 24, 3), np.uint8), alpha=None)); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**__import__("os").environ, "IMGAN_HOME": str(isolated_home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- torch paths


@needs_vgg
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_loss(optimizer):
    from imgan_style.objective import StyleObjective
    from imgan_style.optimise import optimise_image
    from imgan_style.spec import StyleSettings

    settings = StyleSettings(style_layers=("relu1_1", "relu2_1"), content_layer="relu1_1", style_size=32)
    painting = torch.from_numpy(to_float(gradient_image(32, 32, seed=9)[::-1].copy()).transpose(2, 0, 1).copy())[None]
    objective = StyleObjective(painting, settings, VGG_FILE)
    photo = torch.from_numpy(to_float(gradient_image(24, 24)).transpose(2, 0, 1).copy())[None]
    before = float(objective.total(objective.terms(photo, photo)))
    after_image = optimise_image(photo, objective, steps=5, optimizer=optimizer)
    assert float(objective.total(objective.terms(after_image, photo))) < 0.8 * before
    assert after_image.shape == photo.shape and float(after_image.min()) >= 0 and float(after_image.max()) <= 1


def test_unreadable_style_image_is_an_input_error(tmp_path):
    from imgan_style.infer import make_transform

    (tmp_path / "broken.png").write_bytes(b"\x89PNG nonsense")
    with pytest.raises(InputError) as caught:
        make_transform(style_image=tmp_path / "broken.png")
    assert "broken.png" in caught.value.one_line()


@needs_vgg
def test_train_command_adds_a_style_the_catalogue_finds(tmp_path, isolated_home):
    """`imgan train style` as a user types it: every loss setting has its option (--pyramid too),
    the card records them, and the catalogue finds the new style."""
    from imgan.weights import resolve_weights

    photos = tmp_path / "photos"
    for index in range(2):
        save_png(photos / f"{index}.png", gradient_image(40, 40, seed=index))
    painting = save_png(tmp_path / "painting.png", gradient_image(40, 40, seed=7)[::-1].copy())
    result = run_cli("train", "style", "--style-image", painting, "--data", photos, "--name", "mine", "--steps", "2",
                     "--batch-size", "1", "--crop", "32", "--widths", "4,8,8", "--blocks", "1",
                     "--style-layers", "relu1_1,relu2_1", "--style-size", "40", "--pyramid", "1,0.5",
                     "--vgg-weights", VGG_FILE, "--threads", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    weights = resolve_weights("style", "mine")
    assert weights.file == isolated_home / "weights" / "style-mine.onnx" and weights.origin == "user"
    assert weights.metrics["final_losses"]["style"] > 0
    card = json.loads(weights.file.with_suffix(".json").read_text())
    assert card["model_config"]["style"]["pyramid"] == [1.0, 0.5]
    assert card["model_config"]["style"]["style_layers"] == ["relu1_1", "relu2_1"]
    bad = run_cli("train", "style", "--style-image", painting, "--data", photos, "--name", "bad", "--pyramid", "1,half")
    assert bad.returncode != 0 and "--pyramid" in bad.stderr and "Traceback" not in bad.stderr


@needs_vgg
def test_eval_compares_the_fast_net_with_an_optimisation_and_reports_each_row(tiny_style, tmp_path, monkeypatch):
    from imgan_style.evaluate import evaluate_styles

    monkeypatch.setenv("IMGAN_VGG19_WEIGHTS", str(VGG_FILE))
    photos = tmp_path / "test_photos"
    save_png(photos / "a.png", gradient_image(44, 60, seed=5))
    seen = []
    steps = []
    rows = evaluate_styles(styles=["tiny"], data=photos, images=1, size=48, steps=3, on_row=seen.append,
                           progress=lambda done, total: steps.append((done, total)), card_metrics=True)
    assert seen == rows and len(rows) == 1
    assert steps == [(1, 3), (2, 3), (3, 3)]  # the optimisation's steps
    from imgan.weights import resolve_weights

    stored = resolve_weights("style", "tiny").metrics["vs_optimisation"]
    assert stored["total_ratio"] == pytest.approx(rows[0]["total_ratio"], rel=1e-3) and stored["photos"] == ["a.png"]
    assert stored["universal_ratio"] == pytest.approx(rows[0]["universal_ratio"], rel=1e-3)
    row = rows[0]
    assert row["style"] == "tiny" and row["photo"] == "a.png" and row["size"] == [32, 48]
    assert row["total_ratio"] == pytest.approx(row["fast"]["total"] / row["optimised"]["total"])
    assert row["optimised"]["total"] < row["fast"]["total"]  # an untrained net is far from the optimum
    # the universal model on the same painting, scored by the same objective: closer than an untrained net
    assert row["universal_ratio"] == pytest.approx(row["universal"]["total"] / row["optimised"]["total"])
    assert row["universal"]["style"] < row["fast"]["style"]
    assert row["stripes_db"] is None  # 32x48: too small to measure a 3-10 px pattern
    with pytest.raises(Exception, match="unknown style nope"):
        evaluate_styles(styles=["nope"], data=photos)


@needs_vgg
def test_eval_measures_the_universal_model_on_any_painting_and_writes_a_sheet(tiny_style, tmp_path):
    """`imgan eval style --painting FILE --sheet S`: universal-only rows for a painting no net learnt,
    through the CLI, and a sheet with a row per style and photo (5 labelled columns)."""
    photos = tmp_path / "test_photos"
    save_png(photos / "a.png", gradient_image(44, 60, seed=5))
    painting = SHARED_ASSETS / "styles" / "munch_the_scream.jpg"
    sheet = tmp_path / "sheet.png"
    result = run_cli("eval", "style", "--style", "tiny", "--painting", painting, "--data", photos, "--images", "1",
                     "--size", "48", "--steps", "2", "--sheet", sheet, "--vgg-weights", VGG_FILE, "--json",
                     "--threads", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(row["style"], row["fast"] is None, row["universal"] is None) for row in rows] == [
        ("tiny", False, False), ("munch_the_scream", True, False)]
    assert rows[1]["painting"] == "munch_the_scream.jpg" and rows[1]["universal_ratio"] > 0
    picture = read_image(sheet).rgb
    assert picture.shape[0] > 2 * 48 and picture.shape[1] >= 5 * 48  # two rows of five cells
    missing = run_cli("eval", "style", "--painting", tmp_path / "nope.jpg", "--data", photos)
    assert missing.returncode != 0 and "nope.jpg" in missing.stderr and "Traceback" not in missing.stderr


@needs_vgg
def test_eval_measures_an_exported_file_in_place_and_steps_0_skips_the_optimisation(exported_tiny, tmp_path,
                                                                                  isolated_home):
    """A net just exported (not installed) is measured by its path; --steps 0 gives its losses and
    stripes in seconds, without the optimisation or its ratios; --card-metrics then is refused."""
    _, report = exported_tiny
    photos = tmp_path / "test_photos"
    save_png(photos / "a.png", gradient_image(44, 60, seed=5))
    common = ("--data", photos, "--images", "1", "--size", "48", "--vgg-weights", VGG_FILE, "--threads", "1")
    result = run_cli("eval", "style", "--style", report.path, "--steps", "0", "--no-universal", "--json", *common,
                     timeout=300)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["style"] == "style-tiny.onnx" and row["optimised"] is None and row["total_ratio"] is None
    assert row["fast"]["total"] > row["fast"]["style"] > 0 and row["universal"] is None
    table = run_cli("eval", "style", "--style", report.path, "--steps", "0", "--no-universal", *common, timeout=300)
    assert table.returncode == 0 and "no optimisation" in table.stdout and "Traceback" not in table.stderr
    assert "a.png" in table.stdout  # each row names its photo, with no optimisation row to carry it
    refused = run_cli("eval", "style", "--style", report.path, "--steps", "0", "--card-metrics", *common)
    assert refused.returncode == 2 and "--card-metrics" in refused.stderr and "Traceback" not in refused.stderr
    missing = run_cli("eval", "style", "--style", tmp_path / "none.onnx", *common)
    assert missing.returncode != 0 and "none.onnx" in missing.stderr and "Traceback" not in missing.stderr


# ---------------------------------------------------------------------------------------- shipped weights


@needs_vgg
def test_monet_moves_colour_and_texture_towards_the_painting():
    from imgan.io.images import long_side_size, resize_plane
    from imgan.weights import shipped_weights_dir
    from imgan_style.infer import make_transform
    from imgan_style.objective import StyleObjective, load_painting
    from imgan_style.spec import StyleSettings

    if not (shipped_weights_dir() / "style-monet.onnx").is_file():
        pytest.skip("weights/style-monet.onnx is not trained yet")
    card = json.loads((shipped_weights_dir() / "style-monet.json").read_text())
    painting_path = SHARED_ASSETS / "styles" / card["running"]["inference"]["style_image"]
    photo_path = SHARED_ASSETS / "photos" / "bsds500" / "test"
    if not painting_path.is_file() or not photo_path.is_dir():
        pytest.skip("the shared assets are not beside the checkout")
    photo = read_image(sorted(photo_path.glob("*.jpg"))[0])  # a photo the net never trained on
    photo = Picture(rgb=resize_plane(photo.rgb, long_side_size(*photo.rgb.shape[:2], 160)), alpha=None)
    styled = make_transform(style="monet", device="cpu")(photo)

    # The card's layers and weights; the painting's Grams at a smaller scale keep the test quick.
    settings = StyleSettings.from_dict({**card["model_config"]["style"], "style_size": 256})
    objective = StyleObjective(load_painting(painting_path, settings.style_size), settings, VGG_FILE)

    def as_tensor(rgb):
        return torch.from_numpy(to_float(rgb).transpose(2, 0, 1).copy())[None]

    with torch.no_grad():
        before = float(objective.terms(as_tensor(photo.rgb), as_tensor(photo.rgb))["style"])
        after = float(objective.terms(as_tensor(styled.rgb), as_tensor(photo.rgb))["style"])
    assert after < 0.5 * before  # Gram (texture) distance to the painting at least halves

    painting = load_painting(painting_path, 256)[0].permute(1, 2, 0).numpy().reshape(-1, 3)

    def colour_distance(rgb):
        pixels = to_float(rgb).reshape(-1, 3)
        return np.abs(pixels.mean(0) - painting.mean(0)).sum() + np.abs(np.cov(pixels.T) - np.cov(painting.T)).sum()

    assert colour_distance(styled.rgb) < colour_distance(photo.rgb)


def test_compare_sheets_are_listed_with_the_outputs(tmp_path):
    from ..conftest import gradient_image, run_cli, save_png

    source = save_png(tmp_path / "p.png", gradient_image(40, 48))
    result = run_cli("stylize", source, "--style", "monet", "-o", tmp_path / "out.png", "--compare",
                     tmp_path / "side.png", "--json")
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["also_written"] == [str(tmp_path / "side.png")] and (tmp_path / "side.png").is_file()


def test_eval_without_data_or_default_photos_is_one_line(monkeypatch):
    import imgan_style.cli as style_cli

    from imgan.errors import UsageError

    monkeypatch.setattr(style_cli, "DEFAULT_TEST_PHOTOS", Path("/nonexistent/photos"))
    with pytest.raises(UsageError, match="pass --data DIR"):
        style_cli.test_photos(None)
