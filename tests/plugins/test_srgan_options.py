"""The sr plugin's issue-14 options: self-ensemble (--tta), the grid energy of `imgan eval sr`, ICNR
and the nearest upsampler, Real-ESRGAN's U-Net discriminator, true ×2 models and ×3."""
from __future__ import annotations

import json

import numpy as np
import pytest

from imgan.io.images import Picture, read_image
from tests.conftest import gradient_image, run_cli, save_png

torch = pytest.importorskip("torch")

from imgan.train.export import export_checkpoint  # noqa: E402
from imgan_srgan import TASK  # noqa: E402
from imgan_srgan.infer import dihedral, make_transform, self_ensemble, undo_dihedral  # noqa: E402
from imgan_srgan.model import (SPEC, DiscriminatorConfig, GeneratorConfig, SRResNet, UNetDiscriminatorSN,  # noqa: E402
                               UpsampleStage)
from imgan_srgan.protocol import grid_energy  # noqa: E402
from tests.plugins.test_srgan import (VGG_FILE, exported_tiny, random_tiny_generator, run_recipe,  # noqa: E402,F401
                                      tiny_photos, tiny_train, write_checkpoint)


def uint16_picture(height: int, width: int, seed: int) -> Picture:
    return Picture(rgb=gradient_image(height, width, seed=seed).astype(np.uint16) * 257, alpha=None)


# ------------------------------------------------------------------------------------------ --tta


def test_dihedral_symmetries_are_eight_and_undone():
    image = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    turned = [dihedral(image, index) for index in range(8)]
    assert len({t.tobytes() + bytes(t.shape) for t in turned}) == 8
    for index, array in enumerate(turned):
        np.testing.assert_array_equal(undo_dihedral(array, index), image)


def test_tta_of_an_equivariant_model_equals_the_plain_output(tmp_path):
    from imgan.runtime.session import load_model

    generator = random_tiny_generator()
    with torch.no_grad():  # no detail branch: the model is its bicubic skip, which every flip and turn commutes with
        generator.tail.weight.zero_()
        generator.tail.bias.zero_()
    path = export_checkpoint(TASK, write_checkpoint(tmp_path / "run" / "latest.pt", generator),
                             tmp_path / "sr-bicubic.onnx").path
    model = load_model(path, device="cpu", threads=1)
    batch = np.random.default_rng(0).random((1, 3, 9, 14), dtype=np.float32)
    np.testing.assert_allclose(self_ensemble(model)(batch), model(batch), atol=1e-5)
    picture = uint16_picture(10, 13, seed=1)
    plain = make_transform(weights=str(path), device="cpu", threads=1)(picture).rgb.astype(int)
    ensembled = make_transform(weights=str(path), device="cpu", threads=1, tta=True)(picture).rgb.astype(int)
    assert np.abs(plain - ensembled).max() <= 1  # a 16-bit level of float rounding


def test_tta_is_the_mean_of_the_eight_turned_passes(exported_tiny):
    def turned(rgb: np.ndarray, index: int, undo: bool = False) -> np.ndarray:  # (H, W, 3) through dihedral
        return (undo_dihedral if undo else dihedral)(rgb.transpose(2, 0, 1), index).transpose(1, 2, 0)

    report, _ = exported_tiny
    picture = uint16_picture(36, 40, seed=2)
    plain = make_transform(weights=str(report.path), device="cpu", threads=1)
    passes = [turned(plain(Picture(rgb=np.ascontiguousarray(turned(picture.rgb, i)), alpha=None)).rgb, i, undo=True)
              for i in range(8)]
    ensembled = make_transform(weights=str(report.path), device="cpu", threads=1, tta=True)(picture).rgb
    # The mean is taken before clipping to [0, 1]: compare where no pass was clipped.
    inside = np.all([(one > 0) & (one < 65535) for one in passes], axis=0)
    assert inside.mean() > 0.9 and np.abs(ensembled - np.mean(passes, axis=0))[inside].max() <= 1.0  # rounding
    assert np.abs(ensembled.astype(int) - passes[0].astype(int)).max() > 20  # not equivariant: TTA changed it
    tiled = make_transform(weights=str(report.path), device="cpu", threads=1, tta=True, tile=16)(picture).rgb
    assert np.abs(tiled.astype(int) - ensembled.astype(int)).max() <= 1  # per tile = whole image


# ------------------------------------------------------------------------------------------ grid energy


def test_grid_energy_finds_4_and_2_pixel_patterns_on_flat_areas():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:136, 0:136]
    hr = np.clip(np.dstack([90 + 0.2 * x, 100 + 0.1 * y, 120 + 0 * x]) + rng.normal(0, 1, (136, 136, 3)), 0, 255)
    hr = hr.astype(np.uint8)
    noise = rng.normal(0, 2, hr.shape)
    grid4 = 4.0 * ((y % 4 == 0) & (x % 4 == 0))[..., None]
    checker = 3.0 * ((y + x) % 2)[..., None]
    measured = {name: grid_energy(np.clip(hr + noise + extra, 0, 255).round().astype(np.uint8), hr)
                for name, extra in (("noise", 0.0), ("grid4", grid4), ("checker", checker))}
    assert abs(measured["noise"].period4_db) < 2 and abs(measured["noise"].period2_db) < 2
    assert measured["grid4"].period4_db > 10 and measured["checker"].period2_db > 10
    assert measured["checker"].period4_db < 3 and measured["noise"].windows == 4  # 16 windows of 32, a quarter


def test_eval_reports_the_grid_and_tta_rows(exported_tiny, tmp_path):
    from imgan_srgan.evaluate import evaluate_folder

    report, _ = exported_tiny
    save_png(tmp_path / "hr" / "p0.png", gradient_image(80, 80, seed=4))
    evaluated = evaluate_folder(tmp_path / "hr", [str(report.path)], device="cpu", threads=1, tta=True).to_dict()
    assert list(evaluated["methods"]) == ["bicubic", "tiny", "tiny+tta"]
    assert {"grid4_db", "grid2_db", "grid_windows"} <= set(evaluated["methods"]["tiny"])
    assert evaluated["methods"]["tiny"]["grid_windows"] == 1  # a 72-px shaved image: 4 windows, the flattest


# ------------------------------------------------------------------------------------------ upsamplers


def test_icnr_sub_pixel_conv_draws_no_4px_checkerboard_at_init():
    torch.manual_seed(0)
    stage = UpsampleStage(6, icnr=True)
    out = stage(torch.full((1, 6, 5, 5), 0.3))  # (1, 6, 10, 10)
    blocks = out[..., 2:8, 2:8].reshape(1, 6, 3, 2, 3, 2)
    assert float((blocks - blocks[:, :, :, :1, :, :1]).abs().max()) < 1e-6  # every 2x2 block constant

    def interior_blocks(icnr: bool) -> torch.Tensor:  # (n, 4, n, 4) blocks of the output's middle
        torch.manual_seed(1)
        generator = SRResNet(GeneratorConfig(channels=6, blocks=1, icnr=icnr)).eval()
        with torch.no_grad():
            generator.tail.weight.normal_(0.0, 0.1)
            out = generator(torch.full((1, 3, 32, 32), 0.4))[0, :, 40:88, 40:88]  # beyond the receptive margin
        return out.reshape(3, 12, 4, 12, 4)

    with_icnr, without = interior_blocks(True), interior_blocks(False)
    assert float((with_icnr - with_icnr[:, :, :1, :, :1]).abs().max()) < 1e-5  # each 4x4 block constant
    assert float((without - without[:, :, :1, :, :1]).abs().max()) > 1e-3  # PyTorch's init: a 4-px pattern


def test_old_configs_read_unchanged_and_icnr_is_not_architecture():
    old = {"channels": 48, "blocks": 8, "batch_norm": False, "scale": 4, "tail_kernel": 3, "bicubic_skip": True}
    config = GeneratorConfig.from_dict(old)
    assert (config.upsample, config.icnr) == ("pixelshuffle", False) and config.to_dict() == old
    assert SPEC.architecture({"generator": old}) == SPEC.architecture({"generator": {**old, "icnr": True}})
    assert SPEC.architecture({"generator": old}) != SPEC.architecture({"generator": {**old, "upsample": "nearest"}})
    assert GeneratorConfig(upsample="nearest").receptive_margin() == 4 + 16 + 1 + 0.5 + 0.25 + 0.25


def test_nearest_upsampler_exports_with_parity(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    generator = SRResNet(GeneratorConfig(channels=6, blocks=1, upsample="nearest")).eval()
    with torch.no_grad():
        generator.tail.weight.normal_(0.0, 0.05)
    report = export_checkpoint(TASK, write_checkpoint(tmp_path / "run" / "latest.pt", generator),
                               tmp_path / "sr-nearest.onnx")
    assert len(set(report.sizes_checked)) == 2 and report.max_abs_diff < 1e-4
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    lr = np.random.default_rng(3).random((1, 3, 13, 7), dtype=np.float32)
    with torch.no_grad():
        expected = generator(torch.from_numpy(lr)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": lr})[0], expected, atol=1e-4)
    assert json.loads(report.card_path.read_text())["model_config"]["generator"]["upsample"] == "nearest"


# ------------------------------------------------------------------------------------------ U-Net discriminator


def test_unet_discriminator_judges_every_pixel_with_spectral_norm():
    from torch.nn.utils.parametrize import is_parametrized

    critic = UNetDiscriminatorSN(DiscriminatorConfig(channels=4, kind="unet"))
    assert critic(torch.rand(2, 3, 64, 64)).shape == (2, 1, 64, 64)
    assert critic(torch.rand(1, 3, 37, 50)).shape == (1, 1, 37, 50)  # any size: upscaling meets each skip
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10 and [is_parametrized(c, "weight") for c in convs] == [False] + [True] * 8 + [False]


def test_real_world_srgan_runs_default_to_the_unet_critic(tmp_path):
    from imgan_srgan.recipe import initial_choices
    from imgan_srgan.spec import TrainSettings

    def critic(**given):
        return initial_choices(TrainSettings(stage="srgan", **given), tmp_path, None)[1]

    assert (critic(degrade="real").kind, critic(degrade="real").channels) == ("unet", 64)
    assert (critic().kind, critic().channels, critic(spectral_norm=True).batch_norm) == ("vgg", 32, False)
    assert critic(degrade="real", discriminator="vgg").kind == "vgg"


@pytest.mark.skipif(not VGG_FILE.is_file(), reason="the shared VGG19 weights are not beside the checkout")
def test_srgan_trains_two_steps_with_the_unet_critic(tiny_photos, tmp_path):
    from imgan.train.checkpoint import load_checkpoint

    first = tiny_train(tmp_path / "srresnet", tiny_photos, eval_data=None)
    second = tiny_train(tmp_path / "srgan", tiny_photos, stage="srgan", steps=2, init_from=first.checkpoint,
                        vgg_weights=str(VGG_FILE), eval_data=None, discriminator="unet", d_channels=4)
    assert second.steps_done == 2
    log = [json.loads(line) for line in (tmp_path / "srgan" / "log.jsonl").read_text().splitlines()]
    assert {"adversarial", "d_total", "d_real", "d_fake"} <= set(log[-1])
    assert run_recipe(tmp_path / "srgan")["discriminator"] == {"channels": 4, "batch_norm": False, "kind": "unet"}
    state = load_checkpoint(second.checkpoint)["discriminator"]
    assert any(key.endswith("parametrizations.weight.original") for key in state)  # spectral norm, saved as such


# ------------------------------------------------------------------------------------------ ICNR default, resume


def test_icnr_is_on_from_scratch_and_a_run_without_it_resumes(tiny_photos, tmp_path):
    tiny_train(tmp_path / "new", tiny_photos, eval_data=None, steps=1)
    assert run_recipe(tmp_path / "new")["generator"]["icnr"] is True
    tiny_train(tmp_path / "old", tiny_photos, eval_data=None, steps=1, icnr=False)  # as an older imgan wrote it
    assert "icnr" not in run_recipe(tmp_path / "old")["generator"]
    resumed = tiny_train(tmp_path / "old", tiny_photos, eval_data=None, steps=2, resume=True)
    assert resumed.steps_done == 2


# ------------------------------------------------------------------------------------------ ×2 and ×3


def test_a_true_x2_model_trains_exports_and_serves_upscale_scale_2(tiny_photos, tmp_path):
    from imgan_srgan.evaluate import evaluate_folder

    home = tmp_path / "home"
    result = tiny_train(tmp_path / "x2", tiny_photos, scale=2, eval_data=None)
    report = export_checkpoint(TASK, result.checkpoint, home / "weights" / "sr-srresnet-x2.onnx")
    card = json.loads(report.card_path.read_text())
    assert card["running"]["scale"] == 2 and card["model_config"]["generator"]["scale"] == 2
    assert card["description"].startswith("×2 SRResNet")

    source = save_png(tmp_path / "in.png", gradient_image(14, 18, seed=6))
    env = {"IMGAN_HOME": str(home)}
    chosen = run_cli("upscale", source, "-o", tmp_path / "auto.png", "--scale", "2", "--device", "cpu", env=env)
    assert chosen.returncode == 0, chosen.stderr
    direct = run_cli("upscale", source, "-o", tmp_path / "direct.png", "--weights", report.path, "--device", "cpu",
                     env=env)
    assert direct.returncode == 0, direct.stderr
    auto = read_image(tmp_path / "auto.png").rgb
    assert auto.shape == (28, 36, 3)
    np.testing.assert_array_equal(auto, read_image(tmp_path / "direct.png").rgb)  # the ×2 weights themselves

    evaluated = evaluate_folder(tiny_photos / "eval", [str(report.path)], scale=2, device="cpu", threads=1)
    assert [m.name for m in evaluated.methods] == ["bicubic", "srresnet-x2"] and evaluated.scale == 2


def test_scale_3_reduces_the_x4_result(exported_tiny, tmp_path):
    report, _ = exported_tiny
    picture = Picture(rgb=gradient_image(12, 16, seed=7), alpha=None)
    x4 = make_transform(weights=str(report.path), device="cpu", threads=1)(picture).rgb
    x3 = make_transform(weights=str(report.path), device="cpu", threads=1, scale=3)(picture).rgb
    assert x3.shape == (36, 48, 3)
    from imgan.io.images import resize_plane

    np.testing.assert_array_equal(x3, resize_plane(x4, (48, 36)))


def test_card_descriptions_name_the_degradation_and_the_grid(exported_tiny, tmp_path):
    from imgan.cards import read_card
    from imgan_srgan.model import finish_card

    report, _ = exported_tiny
    blank = read_card(report.card_path).replace(description="")

    def described(recipe: dict, **generator) -> str:
        card = blank.replace(model_config={"generator": {**blank.model_config["generator"], **generator}})
        return finish_card(card, {"run": {"recipe": recipe}, "checkpoint": {}, "run_dir": tmp_path}).description

    assert "grid" in described({"stage": "srgan"}) and "real-world" not in described({"stage": "srgan"})
    assert "grid" not in described({"stage": "srgan"}, upsample="nearest")
    assert "real-world" in described({"stage": "srresnet", "degrade": "real"})


def test_each_training_stage_names_the_model_it_makes():
    from imgan_srgan.spec import MODEL_WEIGHTS, model_of, weights_name

    made = {(stage, degrade): model_of(stage, degrade) for stage in ("srresnet", "srgan") for degrade in ("bicubic", "real")}
    assert made == {("srresnet", "bicubic"): "srresnet", ("srgan", "bicubic"): "srgan",
                    ("srresnet", "real"): "realnet", ("srgan", "real"): "real"}
    assert weights_name(made[("srresnet", "real")], 4) == MODEL_WEIGHTS["realnet"]  # what `train sr` tells you to export
