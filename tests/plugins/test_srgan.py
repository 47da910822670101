"""The sr plugin: model shapes, ONNX parity at two sizes, seamless tiles, `imgan upscale` with alpha,
16 bits, ×2 and folder resume, the evaluation protocol, a tiny train -> export, and (with the
shipped weights) that the PSNR model really beats bicubic on Set5."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgan.errors import UsageError
from imgan.io.images import Picture, read_image
from imgan.weights import shipped_weights_dir
from tests.conftest import REPO, SHARED_ASSETS, gradient_image, run_cli, save_png

torch = pytest.importorskip("torch")

from imgan.train.export import export_checkpoint  # noqa: E402
from imgan_srgan import TASK  # noqa: E402
from imgan_srgan.infer import make_transform  # noqa: E402
from imgan_srgan.model import Discriminator, DiscriminatorConfig, GeneratorConfig, SRResNet  # noqa: E402
from imgan_srgan.spec import TrainSettings, check_options  # noqa: E402
from imgan_srgan.protocol import (  # noqa: E402
    bicubic_upscale, load_eval_set, make_eval_image, matlab_imresize, mean_quality, measure,
)

SET5 = SHARED_ASSETS / "sr" / "Set5"
VGG_FILE = SHARED_ASSETS / "vgg19" / "vgg19_imagenet_conv1_1-conv3_4.pth"
TINY = GeneratorConfig(channels=6, blocks=1)


def random_tiny_generator(seed: int = 0) -> SRResNet:
    """An untrained generator whose detail branch is far from zero, so mistakes show in the output."""
    torch.manual_seed(seed)
    generator = SRResNet(TINY)
    with torch.no_grad():
        generator.tail.weight.normal_(0.0, 0.05)
    return generator.eval()


def write_checkpoint(path: Path, generator: SRResNet) -> Path:
    """A checkpoint in the training loop's format, without training."""
    from imgan.train.checkpoint import save_checkpoint

    return save_checkpoint(path, {
        "format": 1, "task": "sr", "model_config": {"generator": generator.config.to_dict()},
        "train_config": {}, "step": 7, "epoch": 0, "position": 0, "seconds": 2.5,
        "generator": generator.state_dict(), "generator_ema": None, "history": [],
    })


@pytest.fixture(scope="module")
def exported_tiny(tmp_path_factory):
    """A random tiny generator exported once per module (ONNX + card), and its torch twin."""
    folder = tmp_path_factory.mktemp("sr_tiny")
    generator = random_tiny_generator()
    report = export_checkpoint(TASK, write_checkpoint(folder / "run" / "latest.pt", generator), folder / "sr-tiny.onnx",
                               name="tiny")
    return report, generator


def upscaled_by_torch(generator: SRResNet, rgb01: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        output = generator(torch.from_numpy(rgb01.transpose(2, 0, 1)[None].astype(np.float32)))
    return output[0].numpy().transpose(1, 2, 0)


# ------------------------------------------------------------------------------------------ model


def test_generator_upscales_x4_any_size_and_discriminator_takes_any_crop():
    generator = random_tiny_generator()
    assert generator(torch.rand(2, 3, 7, 13)).shape == (2, 3, 28, 52)
    discriminator = Discriminator(DiscriminatorConfig(channels=4))
    assert discriminator(torch.rand(3, 3, 64, 64)).shape == (3, 1)
    assert discriminator(torch.rand(1, 3, 40, 96)).shape == (1, 1)


def test_untrained_generator_is_bicubic_plus_a_small_detail():
    torch.manual_seed(0)
    generator = SRResNet(TINY).eval()
    lr = torch.rand(1, 3, 12, 12)
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert float((generator(lr) - bicubic).abs().mean()) < 0.02


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_skip_is_exactly_torch_bicubic(scale):
    from imgan_srgan.model import BicubicUpsample

    upsample = BicubicUpsample(scale)
    for shape in ((2, 3, 7, 11), (1, 3, 1, 5), (1, 3, 2, 3)):  # 1- and 2-pixel sides: every tap clamped
        lr = torch.rand(shape)
        expected = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
        torch.testing.assert_close(upsample(lr), expected, atol=1e-6, rtol=0)
    assert "bicubic.weight" not in SRResNet(TINY).state_dict()  # a constant, not a trained weight


def test_receptive_margin_counts_every_convolution():
    # 9x9 head 4 + 2 per block + trunk end 1 + upsampling 1 + 1/2 + 3x3 tail at x4: 1/4
    assert GeneratorConfig(blocks=8).receptive_margin() == 4 + 16 + 1 + 1.5 + 0.25
    assert GeneratorConfig(blocks=8, tail_kernel=9).receptive_margin() == 4 + 16 + 1 + 1.5 + 1.0
    with pytest.raises(UsageError):
        GeneratorConfig(scale=3)


# ------------------------------------------------------------------------------------------ export


def test_export_is_dynamic_and_matches_torch_at_two_sizes(exported_tiny):
    import onnxruntime as ort

    report, generator = exported_tiny
    assert len(set(report.sizes_checked)) == 2 and report.max_abs_diff < 1e-4
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    for height, width in ((9, 31), (16, 16)):  # neither was traced: PixelShuffle and Resize stay dynamic
        lr = np.random.default_rng(height).random((height, width, 3), dtype=np.float32)
        onnx_out = session.run(None, {"input": lr.transpose(2, 0, 1)[None]})[0][0].transpose(1, 2, 0)
        assert onnx_out.shape == (4 * height, 4 * width, 3)
        np.testing.assert_allclose(onnx_out, upscaled_by_torch(generator, lr), atol=1e-4)


def test_card_says_how_to_run_the_model(exported_tiny):
    report, _ = exported_tiny
    card = json.loads(report.card_path.read_text())
    margin = TINY.receptive_margin()  # 4 + 2 + 1 + 1.5 + 0.25 = 8.75
    running = card["running"]
    assert card["task"] == "sr" and card["name"] == "tiny" and running["scale"] == 4 and running["pad_multiple"] == 1
    assert running["input_convention"] == "rgb01"
    assert running["tile_overlap"] >= margin and running["tile_overlap"] % 8 == 0
    assert card["provenance"]["steps"] == 7 and card["provenance"]["seconds"] == 2.5
    assert card["model_config"]["generator"] == TINY.to_dict()


def test_tiles_are_seamless_when_overlap_covers_the_receptive_field(exported_tiny):
    report, _ = exported_tiny
    rgb = gradient_image(45, 70, seed=3)
    picture = Picture(rgb=rgb, alpha=None)
    whole = make_transform(weights=str(report.path), device="cpu", tile=128)(picture).rgb
    tiled = make_transform(weights=str(report.path), device="cpu", tile=16)(picture).rgb
    assert whole.shape == (180, 280, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1  # float rounding only


# ------------------------------------------------------------------------------------------ inference


def test_options_are_checked():
    check_options("srresnet", 2)
    with pytest.raises(UsageError, match="--model"):
        check_options("esrgan", 4)
    check_options("srgan", 3)  # the ×4 result reduced by area averaging (issue 14)
    with pytest.raises(UsageError, match="--scale"):
        check_options("srgan", 5)


def test_upscale_keeps_alpha_and_16_bits_and_offers_x2(exported_tiny, tmp_path):
    import cv2

    report, _ = exported_tiny
    rgba = np.dstack([gradient_image(20, 24), np.zeros((20, 24), np.uint8)])
    rgba[:, 12:, 3] = 255  # left half transparent, right half opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    low_byte = np.random.default_rng(5).integers(0, 256, (20, 24, 3))
    deep = (gradient_image(20, 24, seed=5).astype(np.uint16) * 256 + low_byte).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    out = tmp_path / "out"
    result = run_cli("upscale", tmp_path / "rgba.png", tmp_path / "deep.png", "-o", out, "--weights", report.path,
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr

    upscaled = read_image(out / "rgba.png")
    assert upscaled.rgb.shape == (80, 96, 3) and upscaled.alpha is not None
    assert upscaled.alpha[:, :40].max() == 0 and upscaled.alpha[:, 56:].min() == 255
    deep_out = read_image(out / "deep.png")
    assert deep_out.rgb.dtype == np.uint16 and deep_out.rgb.shape == (80, 96, 3)
    assert len(np.unique(deep_out.rgb % 257)) > 10  # real 16-bit values, not 8 bits scaled up

    half = run_cli("upscale", tmp_path / "rgba.png", "-o", tmp_path / "x2.png", "--weights", report.path,
                   "--scale", "2", "--device", "cpu")
    assert half.returncode == 0, half.stderr
    x2 = read_image(tmp_path / "x2.png")
    assert x2.rgb.shape == (40, 48, 3) and x2.alpha is not None
    # The ×2 result is the ×4 one averaged over 2x2 blocks.
    expected = upscaled.rgb.astype(np.float64).reshape(40, 2, 48, 2, 3).mean(axis=(1, 3))
    assert np.abs(x2.rgb - expected).max() <= 1.0


def test_folder_resumes_after_an_interrupted_run(exported_tiny, tmp_path):
    report, _ = exported_tiny
    source, out = tmp_path / "photos", tmp_path / "out"
    save_png(source / "img0.png", gradient_image(16, 20, seed=0))
    # The interrupted run got as far as img0; the rest of the folder is still to do.
    first = run_cli("upscale", source, "-o", out, "--weights", report.path, "--device", "cpu")
    assert first.returncode == 0, first.stderr
    done_before = (out / "img0.png").stat().st_mtime_ns
    for index in (1, 2):
        save_png(source / f"img{index}.png", gradient_image(16, 20, seed=index))
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

    rerun = run_cli("upscale", source, "-o", out, "--weights", report.path, "--device", "cpu")
    assert rerun.returncode == 1  # the broken file is reported...
    assert "broken.png" in rerun.stderr and "2 done, 1 skipped" in rerun.stderr
    assert (out / "img0.png").stat().st_mtime_ns == done_before  # ...what was done stays done
    for index in (1, 2):  # ...and the batch went on
        assert read_image(out / f"img{index}.png").rgb.shape == (64, 80, 3)


def test_inference_imports_no_torch(exported_tiny, tmp_path):
    import subprocess
    import sys

    report, _ = exported_tiny
    source = save_png(tmp_path / "a.png", gradient_image(12, 12))
    code = ("import sys; from imgan.cli import main\n"
            "try: main(sys.argv[1:])\nexcept SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'CLEAN')")
    result = subprocess.run([sys.executable, "-c", code, "upscale", str(source), "--weights", str(report.path),
                             "--device", "cpu"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.stdout.strip().endswith("CLEAN"), result.stderr
    assert read_image(tmp_path / "a.sr.png").rgb.shape == (48, 48, 3)


# ------------------------------------------------------------------------------------------ protocol


def test_matlab_imresize_keeps_flat_and_linear_images():
    flat = np.full((16, 12), 0.3)
    np.testing.assert_allclose(matlab_imresize(flat, 0.25), np.full((4, 3), 0.3))
    # Cubic convolution reproduces straight lines; away from the (mirrored) borders the result
    # is the ramp sampled at the output pixel centres.
    ramp = np.tile(np.arange(64, dtype=np.float64), (8, 1))
    small = matlab_imresize(ramp, 0.25)
    np.testing.assert_allclose(small[:, 3:-3], np.tile(4 * np.arange(16) + 1.5, (2, 1))[:, 3:-3])
    assert matlab_imresize(np.zeros((8, 8, 3), np.uint8), 4).shape == (32, 32, 3)


def test_eval_image_crops_hr_to_a_multiple_of_the_scale():
    image = make_eval_image("x", gradient_image(66, 71), 4)
    assert image.hr.shape == (64, 68, 3) and image.lr.shape == (16, 17, 3) and image.lr.dtype == np.uint8


def test_set5_bicubic_matches_the_published_figure():
    if not SET5.is_dir():
        pytest.skip("Set5 is not beside the checkout")
    images = load_eval_set(SET5)
    quality = mean_quality([measure(bicubic_upscale(image.lr, 4), image.hr, border=4) for image in images])
    assert quality.psnr_y == pytest.approx(28.43, abs=0.01)  # Ledig et al. 2017, Table 2
    assert quality.ssim_y == pytest.approx(0.811, abs=0.002)


def test_eval_reports_bicubic_and_models_and_writes_a_sheet(exported_tiny, tmp_path):
    from imgan_srgan.evaluate import evaluate_folder, write_sheet

    report, _ = exported_tiny
    for index in range(2):
        save_png(tmp_path / "hr" / f"p{index}.png", gradient_image(64, 72, seed=index))
    evaluated = evaluate_folder(tmp_path / "hr", [str(report.path)], device="cpu")
    assert [m.name for m in evaluated.methods] == ["bicubic", "tiny"]
    data = evaluated.to_dict()
    assert set(data["methods"]["tiny"]["per_image"]) == {"p0", "p1"}
    assert 15 < data["methods"]["bicubic"]["psnr_y"] < 60
    sheet = Image.open(write_sheet(evaluated, tmp_path / "sheet.png"))
    assert sheet.size[0] > 4 * 2 * 64  # LR | bicubic | tiny | HR, each crop enlarged ×2
    lr_panel = np.asarray(sheet)[18:18 + 2 * 64, 4:4 + 2 * 64]
    assert np.array_equal(lr_panel[::8, ::8], lr_panel[1::8, 1::8])  # LR pixels as 4x4 blocks, enlarged x2: 8x8



def test_eval_degrade_all_prints_the_three_protocols_in_order(exported_tiny, tmp_path):
    report, _ = exported_tiny
    for index in range(2):
        save_png(tmp_path / "hr" / f"p{index}.png", gradient_image(64, 72, seed=index))
    result = run_cli("eval", "sr", "--data", str(tmp_path / "hr"), "--weights", str(report.path), "--degrade", "all",
                     "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["degrade"] for r in reports] == ["bicubic", "real", "photo"]
    assert "JPEG quality 70" in reports[2]["protocol"] and "second-order" in reports[1]["protocol"]
    bicubic = [r["methods"]["bicubic"]["psnr_y"] for r in reports]
    assert bicubic[0] > bicubic[2] and bicubic[0] > bicubic[1]  # damaged LR is further from HR
    assert run_cli("eval", "sr", "--data", str(tmp_path / "hr"), "--degrade", "phone").returncode == 2


def test_eval_names_two_weights_of_one_name_by_their_files(exported_tiny, tmp_path):
    """A new export measured beside the model of the same name it would replace: two rows, not one."""
    import shutil

    report, _ = exported_tiny
    copy = tmp_path / "candidate.onnx"
    shutil.copy(report.path, copy)
    card = json.loads(report.card_path.read_text())
    copy.with_suffix(".json").write_text(json.dumps({**card, "file": copy.name}))
    save_png(tmp_path / "hr" / "p0.png", gradient_image(64, 72, seed=3))
    result = run_cli("eval", "sr", "--data", str(tmp_path / "hr"), "--weights", str(report.path), "--weights", str(copy),
                     "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)["methods"]) == ["bicubic", report.path.name, "candidate.onnx"]


def test_eval_card_metrics_store_each_protocols_figures_in_the_models_card(exported_tiny, tmp_path):
    import shutil

    report, _ = exported_tiny
    model = tmp_path / "weights" / report.path.name
    model.parent.mkdir()
    shutil.copy(report.path, model)
    shutil.copy(report.card_path, model.with_suffix(".json"))
    before = json.loads(model.with_suffix(".json").read_text())["metrics"]
    for index in range(2):
        save_png(tmp_path / "hr" / f"p{index}.png", gradient_image(64, 72, seed=index))
    result = run_cli("eval", "sr", "--data", str(tmp_path / "hr"), "--weights", str(model), "--degrade", "real",
                     "--tta", "--card-metrics", "--card-label", "Two gradients", "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    printed = {r["degrade"]: r["methods"] for r in json.loads(result.stdout)}
    metrics = json.loads(model.with_suffix(".json").read_text())["metrics"]
    assert {key: metrics[key] for key in before} == before  # other protocols' figures stay
    for key, degrade in (("Two gradients", "bicubic"), ("Two gradients real", "real")):
        assert metrics[key]["psnr_y"] == round(printed[degrade]["tiny"]["psnr_y"], 3)  # not the +tta row
        assert metrics[key]["bicubic_psnr_y"] == round(printed[degrade]["bicubic"]["psnr_y"], 3)
        assert metrics[key]["images"] == 2 and "protocol" in metrics[key]
    assert "second-order" in metrics["Two gradients real"]["protocol"]


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def tiny_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sr_photos")
    for index in range(3):
        save_png(folder / "train" / f"t{index}.png", gradient_image(40, 48, seed=index))
    save_png(folder / "eval" / "e0.png", gradient_image(64, 64, seed=9))
    return folder


def test_eval_measures_a_x4_model_at_x2_as_upscale_does_and_refuses_a_smaller_one(exported_tiny, tiny_photos):
    """`imgan eval sr --scale 2 --weights X4`: the row is the ×4 result area-averaged (what `imgan
    upscale --scale 2 --weights X4` writes), named so; a ×4 eval of it would need a larger model."""
    from imgan_srgan.evaluate import evaluate_folder

    report, _ = exported_tiny
    result = evaluate_folder(tiny_photos / "eval", [str(report.path)], scale=2, device="cpu")
    bicubic, reduced = result.methods
    assert reduced.name == "tiny ×4→×2"
    (image,) = result.images
    upscale = make_transform(weights=str(report.path), scale=2, device="cpu")
    assert np.array_equal(reduced.outputs[0], upscale(Picture(rgb=image.lr, alpha=None)).rgb)
    with pytest.raises(UsageError, match="less than ×8"):
        evaluate_folder(tiny_photos / "eval", [str(report.path)], scale=8, device="cpu")


def tiny_train(run_dir: Path, photos: Path, **overrides):
    from imgan_srgan.recipe import train_sr

    settings = dict(stage="srresnet", data=photos / "train", run_dir=run_dir, steps=2, batch_size=2, crop=16,
                    lr=None, channels=4, blocks=1, batch_norm=False, tail_kernel=3, init_from=None,
                    vgg_weights=None, perceptual_layers=None, pixel_weight=None, perceptual_weight=None, adversarial_weight=None,
                    d_channels=4, spectral_norm=False, eval_data=photos / "eval", checkpoint_every=1,
                    threads=None, workers=0, seed=0, resume=False, device="cpu")
    settings.update(overrides)
    return train_sr(TrainSettings(**settings), progress=False)


def run_recipe(run_dir: Path) -> dict:
    """What run.json records of the run's recipe, with the run's own fields (init_from...) beside it."""
    run = json.loads((run_dir / "run.json").read_text())
    return {**run["recipe"], "init_from": run["init_from"], "train_config": run["train_config"]}


def test_train_logs_psnr_per_checkpoint_and_exports_with_metrics(tiny_photos, tmp_path):
    result = tiny_train(tmp_path / "run", tiny_photos)
    assert result.steps_done == 2
    evaluations = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evaluations] == [1, 2] and all(e["psnr_y"] > 15 for e in evaluations)
    recipe = run_recipe(tmp_path / "run")
    assert recipe["stage"] == "srresnet" and recipe["loss_weights"] == {"pixel": 1.0}

    # The card's name comes from the file name (`imgan export`'s rule): sr-NAME.onnx.
    report = export_checkpoint(TASK, result.checkpoint, tmp_path / "w" / "sr-srresnet-x4.onnx")
    card = json.loads(report.card_path.read_text())
    assert card["name"] == "srresnet-x4" and card["provenance"]["steps"] == 2
    assert card["metrics"]["eval"]["psnr_y"] == pytest.approx(evaluations[-1]["psnr_y"], abs=0.01)
    assert card["provenance"]["train_config"]["batch_size"] == 2


@pytest.mark.skipif(not VGG_FILE.is_file(), reason="the shared VGG19 weights are not beside the checkout")
def test_srgan_stage_starts_from_srresnet_with_perceptual_and_adversarial_terms(tiny_photos, tmp_path):
    from imgan.train.checkpoint import load_checkpoint

    first = tiny_train(tmp_path / "srresnet", tiny_photos, eval_data=None)
    start = load_checkpoint(first.checkpoint)
    second = tiny_train(tmp_path / "srgan", tiny_photos, stage="srgan", steps=1, init_from=first.checkpoint,
                        vgg_weights=str(VGG_FILE), eval_data=None)
    log = [json.loads(line) for line in (tmp_path / "srgan" / "log.jsonl").read_text().splitlines()]
    assert {"pixel", "perceptual", "adversarial", "d_total"} <= set(log[-1])
    assert 0.01 < log[-1]["perceptual"] < 10  # calibrated: a relative feature error, at most of order 1
    recipe = run_recipe(tmp_path / "srgan")
    assert recipe["perceptual"]["layers"] == ["relu2_2"]
    assert recipe["init_from"]["step"] == 2
    assert second.steps_done == 1 and start["step"] == 2
    with pytest.raises(Exception, match="different model") as refused:
        tiny_train(tmp_path / "other", tiny_photos, stage="srgan", steps=1, init_from=first.checkpoint,
                   channels=8, vgg_weights=str(VGG_FILE), eval_data=None)
    # the hint names only what differs, the start's value first
    assert re.fullmatch(r"train with their settings: (generator\.)?channels \d+ \(here 8\)", refused.value.hint)


def test_a_new_upsampler_starts_on_a_trained_body(tiny_photos, tmp_path):
    """--upsample nearest --init-from a pixelshuffle run: the body carries over, the upsampler starts fresh,
    and run.json names what did not carry over; any other difference is still refused."""
    from imgan.train.checkpoint import load_checkpoint

    first = tiny_train(tmp_path / "shuffle", tiny_photos, eval_data=None, channels=4, blocks=2)
    second = tiny_train(tmp_path / "nearest", tiny_photos, eval_data=None, channels=4, blocks=2, steps=1,
                        init_from=first.checkpoint, upsample="nearest")
    fresh = run_recipe(tmp_path / "nearest")["init_from"]["partial"]
    assert fresh and all(name.startswith("upsample.") for name in fresh)
    before, after = load_checkpoint(first.checkpoint)["generator"], load_checkpoint(second.checkpoint)["generator"]
    assert not torch.equal(before["head.0.weight"], torch.zeros_like(before["head.0.weight"]))
    # one step of Adam moves every weight a little: the body is the trained one, not a fresh draw
    assert (after["head.0.weight"] - before["head.0.weight"]).abs().max() < 0.01
    with pytest.raises(Exception, match="different model"):
        tiny_train(tmp_path / "wider", tiny_photos, eval_data=None, channels=8, blocks=2, steps=1,
                   init_from=first.checkpoint, upsample="nearest")


def test_a_x2_model_starts_on_a_x4_body(tiny_photos, tmp_path):
    """--scale 2 --init-from a ×4 run: one upsampling stage instead of two; the body and the first
    stage carry over, the second stage (absent at ×2) is dropped, and the x2 model runs at ×2."""
    from imgan.train.checkpoint import load_checkpoint

    first = tiny_train(tmp_path / "x4", tiny_photos, eval_data=None, channels=4, blocks=2)
    second = tiny_train(tmp_path / "x2", tiny_photos, eval_data=None, channels=4, blocks=2, steps=1, scale=2,
                        init_from=first.checkpoint)
    recipe = run_recipe(tmp_path / "x2")
    assert recipe["generator"]["scale"] == 2 and recipe["init_from"]["partial"] == []
    before, after = load_checkpoint(first.checkpoint)["generator"], load_checkpoint(second.checkpoint)["generator"]
    assert set(after) < set(before)  # the ×4's second upsampling stage has no place in a ×2
    assert (after["head.0.weight"] - before["head.0.weight"]).abs().max() < 0.01
    out = build_generator_for(load_checkpoint(second.checkpoint))(torch.rand(1, 3, 8, 10))
    assert out.shape == (1, 3, 16, 20)


def build_generator_for(state: dict):
    from imgan_srgan.model import build_generator

    generator = build_generator(state["model_config"])
    generator.load_state_dict(state["generator"])
    return generator.eval()


def test_a_run_can_start_from_exported_onnx_weights(tiny_photos, tmp_path):
    """Shipped weights are ONNX: fine-tuning one starts from exactly the exported function."""
    from imgan.train.checkpoint import check_onnx_parity, start_state, starting_weights, warm_start
    from imgan_srgan.model import SPEC, build_generator

    def initial_generator(start: Path, model_config: dict):
        generator = build_generator(model_config)
        warm_start(start, generator, task=TASK, spec=SPEC, model_config=model_config)
        return generator

    first = tiny_train(tmp_path / "a", tiny_photos, eval_data=None, channels=4, blocks=2)
    exported = export_checkpoint(TASK, first.checkpoint, tmp_path / "w" / "sr-a.onnx").path
    model_config = json.loads(exported.with_suffix(".json").read_text())["model_config"]
    generator = initial_generator(exported, {"generator": model_config["generator"]})
    assert check_onnx_parity(generator, exported, (torch.rand(1, 3, 11, 13),)) < 1e-5
    assert "head.1.weight" in generator.state_dict()  # a PReLU: its weight is renamed by the exporter

    second = tiny_train(tmp_path / "b", tiny_photos, eval_data=None, channels=4, blocks=2, steps=1,
                        init_from=exported)
    recipe = run_recipe(tmp_path / "b")
    assert recipe["init_from"]["step"] == 2 and second.steps_done == 1

    wrong = dict(starting_weights(start_state(exported), generator))
    wrong["head.1.weight"] = torch.ones_like(wrong["head.1.weight"])  # a PReLU read wrongly must be noticed
    generator.load_state_dict(wrong)
    with pytest.raises(Exception, match="do not reproduce"):
        check_onnx_parity(generator, exported, (torch.rand(1, 3, 11, 13),))
    with pytest.raises(Exception, match="different model"):
        initial_generator(exported, {"generator": {**model_config["generator"], "channels": 8}})


def test_train_init_from_takes_the_start_model_options_the_command_line_leaves_out(tiny_photos, tmp_path):
    """`imgan train sr --init-from W.onnx` fine-tunes W's own model (its width and depth, not the
    command's defaults); an option typed on the command line still wins and is refused if W cannot load."""
    first = tiny_train(tmp_path / "a", tiny_photos, eval_data=None, channels=4, blocks=2, upsample="nearest")
    exported = export_checkpoint(TASK, first.checkpoint, tmp_path / "w" / "sr-a.onnx").path
    common = ("train", "sr", "--data", tiny_photos / "train", "--init-from", exported, "--steps", "1",
              "--batch-size", "2", "--crop", "16", "--device", "cpu", "--threads", "1")
    tuned = run_cli(*common, "--run-dir", tmp_path / "b")
    assert tuned.returncode == 0, tuned.stderr
    generator = run_recipe(tmp_path / "b")["generator"]
    assert (generator["channels"], generator["blocks"], generator["upsample"]) == (4, 2, "nearest")
    refused = run_cli(*common, "--run-dir", tmp_path / "c", "--channels", "8")
    assert refused.returncode != 0 and "different model" in refused.stderr
    assert "channels 4 (here 8)" in refused.stderr and "Traceback" not in refused.stderr


# ------------------------------------------------------------------------------------------ shipped weights


def test_shipped_psnr_model_beats_bicubic_on_set5():
    weights = shipped_weights_dir() / "sr-srresnet-x4.onnx"
    if not weights.is_file() or not SET5.is_dir():
        pytest.skip("needs weights/sr-srresnet-x4.onnx and Set5")
    images = [image for image in load_eval_set(SET5) if image.name in ("bird", "butterfly", "head")]
    upscale = make_transform(weights="srresnet-x4", device="cpu")
    model = mean_quality([measure(upscale(Picture(rgb=i.lr, alpha=None)).rgb, i.hr, border=4) for i in images])
    bicubic = mean_quality([measure(bicubic_upscale(i.lr, 4), i.hr, border=4) for i in images])
    assert model.psnr_y >= bicubic.psnr_y + 1.5
    assert model.ssim_y > bicubic.ssim_y


def test_scale_2_uses_the_shipped_x2_model_which_beats_bicubic_and_the_x4_fallback():
    """`imgan upscale --scale 2` picks srresnet-x2 (a true ×2); models without ×2 weights fall back to
    their ×4 result area-averaged. On Set5's bird the ×2 model is above both."""
    from imgan_srgan.infer import default_weights

    if not (shipped_weights_dir() / "sr-srresnet-x2.onnx").is_file() or not SET5.is_dir():
        pytest.skip("needs weights/sr-srresnet-x2.onnx and Set5")
    assert default_weights("srresnet", 2) == "srresnet-x2" and default_weights("real", 2) == "real-x4"
    (bird,) = [image for image in load_eval_set(SET5, scale=2) if image.name == "bird"]
    picture = Picture(rgb=bird.lr, alpha=None)
    native = measure(make_transform(scale=2, device="cpu")(picture).rgb, bird.hr, border=2)
    fallback = measure(make_transform(weights="srresnet-x4", scale=2, device="cpu")(picture).rgb, bird.hr, border=2)
    bicubic = measure(bicubic_upscale(bird.lr, 2), bird.hr, border=2)
    assert native.psnr_y > fallback.psnr_y > bicubic.psnr_y + 2


def test_both_shipped_models_are_catalogued_and_srresnet_is_the_default():
    from imgan.plugins import get_task
    from imgan.weights import weights_for_task

    assert get_task("sr").default_weights == "srresnet-x4"
    shipped = weights_for_task("sr")
    if not {"srresnet-x4", "srgan-x4"} <= set(shipped):
        pytest.skip("the sr weights are not in weights/")
    for name in ("srresnet-x4", "srgan-x4"):
        card = shipped[name]
        assert card.scale == 4 and card.tile_overlap >= GeneratorConfig(
            **card.card.model_config["generator"]).receptive_margin()
        assert card.metrics["Set5"]["psnr_y"] > card.metrics["Set5"]["bicubic_psnr_y"]

