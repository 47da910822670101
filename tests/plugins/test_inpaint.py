"""The inpainting plugin: masks, exact compositing, crop-and-paste, ONNX parity, CLI, evaluation."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from imgan.errors import InputError, UsageError
from imgan.io.images import Picture, read_image

from ..conftest import gradient_image, run_cli, save_png

pytest.importorskip("imgan_inpaint")

from imgan_inpaint import evaluate as inpaint_eval  # noqa: E402
from imgan_inpaint.infer import (  # noqa: E402
    Inpainter,
    MaskSource,
    boxes_hole,
    dilate_hole,
    hole_regions,
    inpaint_transform,
)
from imgan_inpaint.masks import random_mask  # noqa: E402
from imgan_inpaint.spec import parse_box  # noqa: E402


class SpyModel:
    """A stand-in for the ONNX model: fills the hole with a constant, composites like the real
    graph (unless `composite` is off: then garbage everywhere) and records its input shapes."""

    def __init__(self, value: float = 0.25, composite: bool = True):
        self.value = value
        self.composite = composite
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert image.shape[1] == 3 and mask.shape[1] == 1 and image.shape[2:] == mask.shape[2:]
        self.shapes.append(image.shape)
        fill = np.full(image.shape, self.value, dtype=np.float32)
        return image * (1 - mask) + fill * mask if self.composite else fill


def save_mask(path: Path, hole: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), hole.astype(np.uint8) * 255)
    return path


# ------------------------------------------------------------------------------- training masks


@pytest.mark.parametrize("shape, area", [((64, 64), (0.05, 0.6)), ((48, 80), (0.05, 0.6)), ((64, 64), (0.1, 0.2))])
def test_random_masks_cover_the_requested_area_range(shape, area):
    fractions = [random_mask(*shape, np.random.default_rng(seed), area=area).mean() for seed in range(150)]
    assert min(fractions) >= area[0] and max(fractions) <= area[1]
    # the range is used, not one corner of it
    assert np.percentile(fractions, 90) - np.percentile(fractions, 10) > 0.3 * (area[1] - area[0])


def test_random_masks_are_deterministic_per_seed():
    first = random_mask(64, 64, np.random.default_rng(7))
    assert first.dtype == bool and first.shape == (64, 64)
    assert np.array_equal(first, random_mask(64, 64, np.random.default_rng(7)))
    assert not np.array_equal(first, random_mask(64, 64, np.random.default_rng(8)))


def test_random_mask_rejects_a_bad_area_range():
    with pytest.raises(UsageError):
        random_mask(32, 32, np.random.default_rng(0), area=(0.5, 0.2))


# ------------------------------------------------------------------------------- user masks


def test_parse_box_and_box_holes():
    assert parse_box("10, 20,30,40") == (10, 20, 30, 40)
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,5"):
        with pytest.raises(UsageError):
            parse_box(bad)
    hole = boxes_hole([(2, 1, 3, 2), (8, 8, 10, 10)], 10, 10)  # the second is clipped to the image
    assert hole.sum() == 6 + 4 and hole[1:3, 2:5].all() and hole[8:, 8:].all()
    with pytest.raises(InputError, match="outside"):
        boxes_hole([(20, 20, 5, 5)], 10, 10)


def test_dilate_grows_the_hole_by_n_pixels():
    hole = np.zeros((21, 21), bool)
    hole[10, 10] = True
    grown = dilate_hole(hole, 3)
    assert grown[10, 7:14].all() and grown[7:14, 10].all() and grown.sum() < 49 and not grown[10, 14]


def test_mask_polarity_white_fills_and_black_keeps(tmp_path):
    rgb = gradient_image(32, 40)
    hole = np.zeros((32, 40), bool)
    hole[8:16, 10:30] = True
    picture = Picture(rgb=rgb, alpha=None, source=tmp_path / "p.png")
    transform = inpaint_transform(Inpainter(SpyModel(0.0)), MaskSource(save_mask(tmp_path / "m.png", hole)))
    result = transform(picture).rgb
    assert (result[hole] == 0).all() and np.array_equal(result[~hole], rgb[~hole])

    black = MaskSource(save_mask(tmp_path / "black.png", np.zeros((32, 40), bool)))
    spy = SpyModel()
    unchanged = inpaint_transform(Inpainter(spy), black)(picture)
    assert np.array_equal(unchanged.rgb, rgb) and spy.shapes == []  # nothing to fill: the model never runs


def test_mask_size_mismatch_is_an_error_unless_resized(tmp_path):
    small = np.zeros((16, 20), bool)
    small[4:8, 5:10] = True  # 2x smaller than the image
    mask_path = save_mask(tmp_path / "m.png", small)
    picture = Picture(rgb=gradient_image(32, 40), alpha=None, source=tmp_path / "p.png")
    with pytest.raises(InputError, match="20x16 but the image") as error:
        MaskSource(mask_path).hole_for(picture)
    assert "--resize-mask" in error.value.one_line()
    stretched = MaskSource(mask_path, resize=True).hole_for(picture)
    expected = np.zeros((32, 40), bool)
    expected[8:16, 10:20] = True
    assert np.array_equal(stretched, expected)


def test_alpha_is_the_mask_when_none_is_given(tmp_path):
    rgb = gradient_image(24, 24)
    alpha = np.full((24, 24), 255, np.uint8)
    alpha[5:10, 5:12] = 0  # transparent: fill
    alpha[15:20, 15:20] = 200  # mostly opaque: keep
    result = inpaint_transform(Inpainter(SpyModel(1.0)), MaskSource())(Picture(rgb=rgb, alpha=alpha))
    assert (result.rgb[5:10, 5:12] == 255).all()
    outside = np.ones((24, 24), bool)
    outside[5:10, 5:12] = False
    assert np.array_equal(result.rgb[outside], rgb[outside])
    assert (result.alpha[5:10, 5:12] == 255).all() and (result.alpha[15:20, 15:20] == 200).all()

    with pytest.raises(InputError, match="no mask"):
        MaskSource().hole_for(Picture(rgb=rgb, alpha=None))


def test_boxes_add_to_a_mask_file(tmp_path):
    hole = np.zeros((20, 30), bool)
    hole[0:2, 0:2] = True
    masks = MaskSource(save_mask(tmp_path / "m.png", hole), ["10,5,4,3"], dilate=0)
    combined = masks.hole_for(Picture(rgb=gradient_image(20, 30), alpha=None))
    assert combined.sum() == 4 + 12 and combined[5:8, 10:14].all()


def test_a_mask_folder_matches_by_stem_and_names_a_missing_mask(tmp_path):
    folder = tmp_path / "masks"
    first = np.zeros((10, 10), bool)
    first[1, 1] = True
    second = np.zeros((10, 10), bool)
    second[5, 5] = True
    save_mask(folder / "a.png", first)
    save_mask(folder / "b_mask.png", second)
    masks = MaskSource(folder)
    rgb = gradient_image(10, 10)
    assert np.array_equal(masks.hole_for(Picture(rgb=rgb, alpha=None, source=tmp_path / "a.jpg")), first)
    assert np.array_equal(masks.hole_for(Picture(rgb=rgb, alpha=None, source=tmp_path / "b.jpg")), second)
    with pytest.raises(InputError, match="no mask for 'c'"):
        masks.hole_for(Picture(rgb=rgb, alpha=None, source=tmp_path / "c.jpg"))
    with pytest.raises(InputError, match="video frames"):
        masks.hole_for(Picture(rgb=rgb, alpha=None))  # a frame has no file name to match


# ------------------------------------------------------------------------------- filling


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pixels_outside_the_hole_are_unchanged_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    rgb = rng.integers(0, top + 1, size=(40, 56, 3), dtype=np.uint64).astype(dtype)
    hole = random_mask(40, 56, rng, area=(0.2, 0.3))
    result = Inpainter(SpyModel(0.5, composite=False))(rgb, hole)  # the model changes every pixel
    assert result.dtype == dtype
    assert np.array_equal(result[~hole], rgb[~hole])
    assert (result[hole] == round(0.5 * top)).all()


def test_a_small_hole_in_a_large_image_only_runs_the_model_around_it():
    rgb = np.random.default_rng(1).integers(0, 256, size=(2000, 3000, 3), dtype=np.uint8)
    hole = np.zeros((2000, 3000), bool)
    hole[1200:1230, 2100:2140] = True
    spy = SpyModel(1.0)
    result = Inpainter(spy, working_size=512, overlap=64)(rgb, hole)
    assert np.array_equal(result[~hole], rgb[~hole]) and (result[hole] == 255).all()
    assert len(spy.shapes) == 1
    _, _, height, width = spy.shapes[0]
    # 30x40 hole + 3 radii of context each side (radius ~15) + the tiling's 64 px overlap each side
    assert height * width < 300 * 300


def test_a_thick_hole_is_filled_downscaled_and_enlarged():
    rgb = np.full((400, 600, 3), 90, np.uint8)
    hole = np.zeros((400, 600), bool)
    hole[100:300, 150:450] = True  # radius ~100 > max_hole_radius 25: downscaled 4x
    spy = SpyModel(0.6)
    result = Inpainter(spy, max_hole_radius=25, overlap=8)(rgb, hole)
    assert np.array_equal(result[~hole], rgb[~hole])
    inner = np.zeros_like(hole)
    inner[110:290, 160:440] = True  # away from the edge, where the enlarged fill is the model's alone
    assert (result[inner] == 153).all() and (result[hole] >= 89).all() and (result[hole] <= 154).all()
    _, _, height, width = spy.shapes[0]
    assert height < 200 and width < 250  # the 400x600 window at about 1/4 scale plus overlap


def test_separate_holes_are_separate_regions_and_touching_ones_merge():
    hole = np.zeros((300, 300), bool)
    hole[10:14, 10:14] = True
    hole[250:254, 250:254] = True
    assert len(hole_regions(hole)) == 2
    hole[20:24, 20:24] = True  # within the first one's context: merged into it
    regions = hole_regions(hole)
    assert len(regions) == 2 and any(r.y0 == 0 and r.y1 >= 24 + 16 for r in regions)


def test_a_mask_covering_everything_is_refused():
    with pytest.raises(InputError, match="whole image"):
        Inpainter(SpyModel())(gradient_image(8, 8), np.ones((8, 8), bool))


# ------------------------------------------------------------------------------- model and export

def tiny_net(seed: int = 0):
    torch = pytest.importorskip("torch")
    from imgan_inpaint.model import InpaintNet, InpaintNetConfig

    torch.manual_seed(seed)
    net = InpaintNet(InpaintNetConfig(width=4))
    torch.nn.init.normal_(net.decoder[-1].weight, std=0.2)  # the last conv starts small: make it do more
    return net


def test_push_pull_keeps_known_pixels_and_fills_a_flat_image_flat():
    torch = pytest.importorskip("torch")
    from imgan_inpaint.model import push_pull_fill

    image = torch.rand(1, 3, 30, 44)
    known = torch.ones(1, 1, 30, 44)
    known[..., 5:25, 10:30] = 0
    filled = push_pull_fill(image, known, levels=6)
    assert torch.equal(filled * known, image * known)
    flat = torch.full((1, 3, 30, 44), 0.3)
    assert torch.allclose(push_pull_fill(flat * known, known, levels=6), flat, atol=1e-6)


def test_the_network_composites_and_its_raw_output_differs():
    torch = pytest.importorskip("torch")
    net = tiny_net()
    image = torch.rand(2, 3, 32, 48)
    mask = torch.from_numpy(random_mask(32, 48, np.random.default_rng(0)))[None, None].float().expand(2, 1, 32, 48)
    with torch.no_grad():
        output = net(image, mask)
        raw = net(image, mask, raw=True)
    assert torch.equal(output * (1 - mask), image * (1 - mask))
    assert torch.equal(output * mask, raw * mask)
    assert not torch.allclose(raw * (1 - mask), image * (1 - mask))


def write_fake_checkpoint(path: Path, net) -> Path:
    from imgan.train.checkpoint import CHECKPOINT_FORMAT, save_checkpoint

    return save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "task": "inpaint", "model_config": net.config.to_dict(),
                                  "generator": net.state_dict(), "generator_ema": None, "step": 3, "seconds": 1.0})


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """An exported tiny model (parity checked at two sizes by the export) with its model card."""
    from imgan.train.export import export_checkpoint

    folder = tmp_path_factory.mktemp("weights")
    checkpoint = write_fake_checkpoint(folder / "run" / "latest.pt", tiny_net())
    report = export_checkpoint("inpaint", checkpoint, folder / "inpaint-tiny.onnx")
    assert report.max_abs_diff < 1e-4 and len(report.sizes_checked) == 2
    return report.path


def test_export_writes_a_card_and_runs_like_torch_at_other_sizes(tiny_weights):
    import onnxruntime as ort
    import torch

    card = json.loads(tiny_weights.with_suffix(".json").read_text())
    assert card["task"] == "inpaint" and card["name"] == "tiny" and card["running"]["pad_multiple"] == 4
    assert card["running"]["inference"]["working_size"] > 0 and card["provenance"]["steps"] == 3
    net = tiny_net()
    session = ort.InferenceSession(str(tiny_weights), providers=["CPUExecutionProvider"])
    for height, width in [(40, 40), (20, 76)]:
        image = torch.rand(1, 3, height, width)
        mask = torch.from_numpy(random_mask(height, width, np.random.default_rng(height)))[None, None].float()
        got = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})[0]
        with torch.no_grad():
            want = net(image, mask).numpy()
        assert np.abs(got - want).max() < 1e-4


def test_the_recipe_trains_two_steps_through_the_loop(tmp_path, shared_assets, monkeypatch):
    from imgan.train.checkpoint import load_checkpoint
    from imgan.train.run import read_run
    from imgan_inpaint.recipe import train_inpaint

    monkeypatch.setenv("IMGAN_VGG19_WEIGHTS", str(shared_assets / "vgg19" / "vgg19_imagenet_conv1_1-conv3_4.pth"))
    photos = tmp_path / "photos"
    for index in range(4):
        save_png(photos / f"{index}.png", gradient_image(56, 60, seed=index))
    result = train_inpaint(data=photos, run_dir=tmp_path / "run", steps=2, batch_size=2, crop=32, width=4,
                           checkpoint_every=2, progress=False)
    assert result.steps_done == 2
    logged = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    for term in ("hole", "valid", "perceptual", "style", "adversarial", "d_total"):
        assert np.isfinite(logged[term])
    assert load_checkpoint(result.checkpoint)["discriminator"] is not None
    assert read_run(tmp_path / "run")["recipe"]["crop"] == 32


def exported_start(folder: Path):
    """A tiny net with trained-looking biases, exported like shipped weights: (net, .onnx path), and
    two training photos in folder/photos."""
    import torch
    from imgan.train.export import export_checkpoint

    net = tiny_net()
    with torch.no_grad():  # trained biases differ; equal (zero) ones would be merged into one by the exporter
        for name, parameter in net.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(std=0.05)
    start = export_checkpoint("inpaint", write_fake_checkpoint(folder / "start" / "latest.pt", net),
                              folder / "inpaint-start.onnx").path
    for index in range(2):
        save_png(folder / "photos" / f"{index}.png", gradient_image(40, 44, seed=index))
    return net, start


def test_training_starts_from_exported_weights_and_refuses_another_model(tmp_path):
    """--init-from the shipped kind of file: the first step (lr ~0) continues from the ONNX weights."""
    import torch
    from imgan.train.checkpoint import generator_from_checkpoint
    from imgan.train.export import export_checkpoint
    from imgan_inpaint.model import build_generator
    from imgan_inpaint.recipe import train_inpaint

    net, start = exported_start(tmp_path)
    options = dict(data=tmp_path / "photos", steps=1, batch_size=2, crop=32, width=4, lr=1e-12, checkpoint_every=1, progress=False,
                   loss_weights={"perceptual": 0.0, "style": 0.0})
    result = train_inpaint(run_dir=tmp_path / "run", init_from=start, **options)
    after, _ = generator_from_checkpoint(result.checkpoint, build_generator, ema=False)
    for key, value in net.state_dict().items():
        assert torch.allclose(after.state_dict()[key], value, atol=1e-6), key
    card = json.loads(export_checkpoint("inpaint", result.checkpoint, tmp_path / "inpaint-warm.onnx").card_path.read_text())
    assert card["provenance"]["init_from"]["step"] == 3 and card["provenance"]["seconds"] >= 1
    with pytest.raises(Exception, match="different model"):
        train_inpaint(run_dir=tmp_path / "other", init_from=start, **{**options, "width": 8})
    card_path = start.with_suffix(".json")  # a card from before `refine` existed is the same net
    old_card = json.loads(card_path.read_text())
    del old_card["model_config"]["refine"]
    card_path.write_text(json.dumps(old_card))
    assert train_inpaint(run_dir=tmp_path / "old-card", init_from=start, **options).steps_done == 1


def test_a_start_from_a_fine_tunes_checkpoint_counts_the_whole_lineage(tmp_path):
    """Shipped weights (3 steps) -> a fine-tune (2 steps, interrupted after 1 and resumed) -> a second
    fine-tune from the first one's *checkpoint* (1 step): the second's card counts 3 + 2 + 1 steps and
    carries the licence of the shipped weights, as a start from the first fine-tune's export would."""
    from imgan.train.export import export_checkpoint
    from imgan_inpaint.recipe import train_inpaint

    _, start = exported_start(tmp_path)
    options = dict(data=tmp_path / "photos", batch_size=2, crop=32, width=4, lr=1e-12, checkpoint_every=1, progress=False,
                   loss_weights={"perceptual": 0.0, "style": 0.0})
    train_inpaint(run_dir=tmp_path / "first", init_from=start, steps=1, **options)
    first = train_inpaint(run_dir=tmp_path / "first", steps=2, resume=True, **options)
    second = train_inpaint(run_dir=tmp_path / "second", init_from=first.checkpoint, steps=1, **options)
    shipped = json.loads(start.with_suffix(".json").read_text())
    card = json.loads(export_checkpoint("inpaint", second.checkpoint, tmp_path / "inpaint-second.onnx").card_path.read_text())
    assert card["provenance"]["init_from"]["step"] == 3 + 2 and card["provenance"]["steps"] == 3 + 2 + 1
    assert card["provenance"]["seconds"] > shipped["provenance"]["seconds"]
    assert shipped["licence"] and shipped["licence"] in card["licence"]


def test_fourier_blocks_see_the_whole_picture_export_and_start_on_a_v1_net(tmp_path):
    """--fourier-blocks: one spectral block makes every output pixel depend on every input pixel (a
    dilated stack does not), it exports with parity (the matmul DFT), and new blocks on --init-from
    v1 weights start as the identity: the same fill, the v1 tensors carried over."""
    import torch
    from imgan.train.export import export_checkpoint
    from imgan_inpaint.model import FourierBlock, InpaintNet, InpaintNetConfig
    from imgan_inpaint.recipe import train_inpaint

    torch.manual_seed(0)
    block = FourierBlock(4)
    torch.nn.init.normal_(block.mix.weight, std=0.5)
    x = torch.zeros(1, 4, 24, 32, requires_grad=True)
    block(x)[0, :, 0, 0].sum().backward()  # one corner output pixel...
    assert (x.grad[0].abs().sum(dim=0) > 0).float().mean() > 0.99  # ...depends on (almost) every input pixel

    v1, start = exported_start(tmp_path)
    result = train_inpaint(data=tmp_path / "photos", run_dir=tmp_path / "run", steps=1, batch_size=2, crop=32, width=4,
                           fourier_blocks=1, lr=1e-12, checkpoint_every=1, progress=False, init_from=start,
                           loss_weights={"perceptual": 0.0, "style": 0.0})
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["init_from"]["partial"] and all(name.startswith("global_blocks.") for name in run["init_from"]["partial"])
    report = export_checkpoint("inpaint", result.checkpoint, tmp_path / "inpaint-ffc.onnx")
    assert report.max_abs_diff < 1e-4 and len(report.sizes_checked) == 2
    image = torch.rand(1, 3, 32, 40)
    mask = torch.from_numpy(random_mask(32, 40, np.random.default_rng(1)))[None, None].float()
    with torch.no_grad():
        want = v1(image, mask).numpy()
    import onnxruntime as ort

    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})[0]
    assert np.abs(got - want).max() < 1e-4  # lr 1e-12: the new block is still the identity
    assert isinstance(InpaintNet(InpaintNetConfig(width=4, fourier_blocks=2)).global_blocks[1], FourierBlock)


def test_resuming_keeps_the_recorded_init_from(tmp_path):
    """The run.json of a warm-started run still names its start after --resume (once a resume
    rewrote the plugin's own recipe file and dropped it), and notes the resumption."""
    from imgan.train.export import export_checkpoint
    from imgan.train.run import read_run
    from imgan_inpaint.recipe import train_inpaint

    start = write_fake_checkpoint(tmp_path / "start" / "latest.pt", tiny_net())
    photos = tmp_path / "photos"
    for index in range(2):
        save_png(photos / f"{index}.png", gradient_image(40, 44, seed=index))
    options = dict(data=photos, run_dir=tmp_path / "run", batch_size=2, crop=32, width=4, checkpoint_every=1,
                   progress=False, loss_weights={"perceptual": 0.0, "style": 0.0})
    train_inpaint(steps=2, init_from=start, **options)
    assert train_inpaint(steps=3, resume=True, **options).steps_done == 3
    run = read_run(tmp_path / "run")
    assert run["init_from"]["step"] == 3 and len(run["resumptions"]) == 1
    assert run["resumptions"][0]["step"] == 2
    card = json.loads(export_checkpoint("inpaint", tmp_path / "run" / "latest.pt", tmp_path / "inpaint-r.onnx")
                      .card_path.read_text())
    assert card["provenance"]["init_from"]["step"] == 3 and card["provenance"]["steps"] == 3 + 3


def test_training_measures_its_checkpoints_on_dev_pairs_as_eval_inpaint_does(tmp_path):
    """--eval-images/--eval-masks: every --eval-every steps the checkpoint's net fills the dev pairs
    through the exported file's Inpainter; the figures equal `imgan eval inpaint` on the export."""
    from imgan.train.export import export_checkpoint
    from imgan.train.run import read_eval_log
    from imgan_inpaint.evaluate import evaluate_inpaint
    from imgan_inpaint.recipe import train_inpaint

    _, start = exported_start(tmp_path)
    for index in range(2):
        save_png(tmp_path / "dev" / f"d{index}.png", gradient_image(48, 64, seed=10 + index))
    for index, (top, left, side) in enumerate([(8, 8, 12), (10, 20, 24), (4, 4, 30)]):
        hole = np.zeros((48, 64), np.uint8)
        hole[top:top + side, left:left + side] = 255
        save_png(tmp_path / "masks" / f"m{index}.png", hole)
    seen = []
    result = train_inpaint(data=tmp_path / "photos", run_dir=tmp_path / "run", steps=4, batch_size=2, crop=32, width=4,
                           lr=1e-3, checkpoint_every=100, progress=False, init_from=start,
                           loss_weights={"perceptual": 0.0, "style": 0.0}, eval_images=tmp_path / "dev",
                           eval_masks=tmp_path / "masks", eval_every=2, on_eval=seen.append)
    records = read_eval_log(tmp_path / "run")
    assert [r["step"] for r in records] == [2, 4] and seen == [{**r} for r in records] and result.steps_done == 4
    assert records[-1]["pairs"] == 3 and records[-1]["masks"] == "masks"
    exported = export_checkpoint("inpaint", result.checkpoint, tmp_path / "inpaint-dev.onnx").path
    report = evaluate_inpaint(images=tmp_path / "dev", masks=tmp_path / "masks", weights=str(exported), device="cpu")
    assert records[-1]["psnr_gain_db_10_40"] == pytest.approx(report["goal"]["psnr_gain_db_10_40"], abs=2e-3)
    for band, figures in report["bands"].items():
        gain = figures["model"]["psnr"] - figures["telea"]["psnr"]
        assert records[-1]["psnr_gain_db_per_band"][band] == pytest.approx(gain, abs=2e-3)
    with pytest.raises(Exception, match="--eval-masks"):
        train_inpaint(data=tmp_path / "photos", run_dir=tmp_path / "other", steps=1, eval_images=tmp_path / "dev")
    with pytest.raises(Exception, match="masks folder not found"):
        train_inpaint(data=tmp_path / "photos", run_dir=tmp_path / "other", steps=1, eval_images=tmp_path / "dev",
                      eval_masks=tmp_path / "nowhere")
    assert not (tmp_path / "other").exists()  # refused before any training


def test_train_refuses_a_run_name_that_is_a_path(tmp_path):
    result = run_cli("train", "inpaint", "--data", tmp_path, "--name", "x/../../..", "--steps", "1",
                     env={"IMGAN_HOME": str(tmp_path / "home")})
    assert result.returncode == 2, result.stderr
    assert "invalid name" in result.stderr
    assert not (tmp_path / "home" / "runs").exists()


# ------------------------------------------------------------------------------- CLI


def test_cli_fills_a_folder_with_masks_matched_by_stem(tmp_path, tiny_weights):
    photos = tmp_path / "photos"
    hole = np.zeros((36, 44), bool)
    hole[10:20, 12:30] = True
    originals = {name: save_png(photos / f"{name}.png", gradient_image(36, 44, seed=i))
                 for i, name in enumerate(("one", "two", "three"))}
    save_mask(tmp_path / "masks" / "one.png", hole)
    save_mask(tmp_path / "masks" / "two_mask.png", hole)  # "three" has no mask
    result = run_cli("inpaint", photos, "--mask", tmp_path / "masks", "-o", tmp_path / "out", "--weights", tiny_weights,
                     "--device", "cpu")
    assert result.returncode == 1  # one failure
    assert "no mask for 'three'" in result.stdout + result.stderr
    for name in ("one", "two"):
        original = read_image(originals[name]).rgb
        filled = read_image(tmp_path / "out" / f"{name}.png").rgb
        assert np.array_equal(filled[~hole], original[~hole])
        assert not np.array_equal(filled[hole], original[hole])
    assert not (tmp_path / "out" / "three.png").exists()


def test_cli_boxes_and_a_bad_box(tmp_path, tiny_weights):
    source = save_png(tmp_path / "a.png", gradient_image(30, 40))
    result = run_cli("inpaint", source, "--box", "5,5,10,8", "--box", "30,20,6,6", "--weights", tiny_weights,
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    original, filled = read_image(source).rgb, read_image(tmp_path / "a.inpaint.png").rgb
    changed = np.any(filled != original, axis=2)
    assert not changed[~boxes_hole([(5, 5, 10, 8), (30, 20, 6, 6)], 30, 40)].any()

    bad = run_cli("inpaint", source, "--box", "1,2,3", "--weights", tiny_weights)
    assert bad.returncode == 2 and "x,y,w,h" in bad.stderr


def test_video_frames_get_one_fixed_mask(tmp_path, tiny_weights):
    from imgan.api import run
    from imgan.io import video

    if video.find_ffmpeg() is None:
        pytest.skip("no ffmpeg binary")
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(5):
        frame = np.full((48, 64, 3), 60 + 20 * index, np.uint8)
        frame[4:14, 40:60] = (255, 255, 255)  # the "logo"
        writer.write(frame)
    writer.release()
    from imgan.pipeline import RunOptions

    report = run("inpaint", [clip], options=RunOptions(output=tmp_path / "out.mp4"), weights=str(tiny_weights),
                 device="cpu", box=["38,2,24,14"])
    assert report.ok and len(report.done) == 1
    frames = list(video.read_frames(tmp_path / "out.mp4"))
    assert len(frames) == 5
    assert all(frame[4:14, 40:60].mean() < 200 for frame in frames)  # the white logo is gone


# ------------------------------------------------------------------------------- evaluation


def test_pairs_use_every_mask_and_a_limit_spreads_over_the_bands():
    images = [Path(f"img{i}.jpg") for i in range(4)]
    masks = [Path(f"{n:05d}.png") for n in range(0, 12000, 1000)]
    pairs = inpaint_eval.evaluation_pairs(images, masks)
    assert len(pairs) == 12 and pairs[5] == (images[1], masks[5])
    limited = inpaint_eval.evaluation_pairs(images, masks, limit=6)
    assert {inpaint_eval.mask_band(mask, 0.0) for _, mask in limited} == {0, 1, 2, 3, 4, 5}
    assert inpaint_eval.mask_band(Path("hole.png"), 0.37) == 3


def test_measure_and_summary():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    hole = np.zeros((40, 40), bool)
    hole[10:30, 10:30] = True
    worse = original.copy()
    worse[hole] = 0
    scores = inpaint_eval.measure(worse, original, hole)
    assert scores["psnr_hole"] < scores["psnr"] and scores["l1_hole"] > scores["l1"] > 0
    assert scores["ssim_hole"] < scores["ssim"] < 1.0
    perfect = inpaint_eval.measure(original, original, hole)
    assert perfect["psnr"] == float("inf") and perfect["ssim"] == pytest.approx(1.0)

    def pair(band, model, telea):
        result = inpaint_eval.PairResult("i", "m", band, 0.1)
        result.scores = {"model": {**perfect, "psnr": model}, "telea": {**perfect, "psnr": telea}, "ns": perfect}
        return result

    summary = inpaint_eval.summarize([pair(0, 30, 29), pair(1, 25, 22), pair(2, 24, 22), pair(3, 20, 19)])
    assert summary["floor"]["met"] and summary["goal"]["psnr_gain_db_10_40"] == pytest.approx(2.0)
    assert not inpaint_eval.summarize([pair(0, 28, 29)])["floor"]["met"]


def test_eval_command_prints_json_and_writes_a_sheet(tmp_path, tiny_weights):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    for index in range(2):
        save_png(photos / f"p{index}.png", gradient_image(40, 48, seed=index))
    for number in (0, 2000, 4000):
        hole = random_mask(64, 64, np.random.default_rng(number), area=(0.05 + number / 20000, 0.1 + number / 20000))
        save_mask(masks / f"{number:05d}.png", hole)
    result = run_cli("eval", "inpaint", "--images", photos, "--masks", masks, "--weights", tiny_weights, "--json",
                     "--sheet", tmp_path / "sheet.png", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pairs"] == 3 and set(report["bands"]) == {"0-10 %", "10-20 %", "20-30 %"}
    for method in ("model", "telea", "ns", "prior"):
        assert 5 < report["bands"]["0-10 %"][method]["psnr"] < 80
    assert report["goal"]["prior_psnr_gain_db_10_40"] is not None
    sheet = read_image(tmp_path / "sheet.png").rgb
    assert sheet.shape[1] == 4 * inpaint_eval.SHEET_CELL and sheet.shape[0] > 3 * inpaint_eval.SHEET_CELL
    table = run_cli("eval", "inpaint", "--images", photos, "--masks", masks, "--weights", tiny_weights, "--device", "cpu")
    assert "the push-pull prior alone" in table.stdout and "the learned refinement adds" in table.stdout
    for extra in (("--weights", tiny_weights, "--no-prior"), ("--weights", "pushpull")):  # no prior row beside itself
        bare = json.loads(run_cli("eval", "inpaint", "--images", photos, "--masks", masks, *extra, "--json",
                                  "--device", "cpu").stdout)
        assert "prior" not in bare["bands"]["0-10 %"] and "prior_psnr_gain_db_10_40" not in bare["goal"]


def test_the_shipped_prior_is_the_nets_own_push_pull_fill(tmp_path):
    """weights/inpaint-pushpull.onnx is model.export_prior's file: the coarse stage of the net alone
    (push_pull_fill, then the composite), the same through `imgan inpaint --weights pushpull`."""
    import torch
    from imgan.runtime.session import load_model
    from imgan.weights import resolve_weights
    from imgan_inpaint.model import InpaintNetConfig, export_prior, push_pull_fill

    shipped = resolve_weights("inpaint", "pushpull")
    assert shipped.origin == "shipped" and shipped.card.model_config["refine"] is False
    fresh = export_prior(tmp_path / "inpaint-prior.onnx")
    config = InpaintNetConfig()
    image = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(3))
    mask = torch.from_numpy(random_mask(40, 52, np.random.default_rng(3)))[None, None].float()
    want = (image * (1 - mask) + push_pull_fill(image, 1 - mask, config.pyramid_levels, config.relax_iterations) * mask)
    for path in (shipped.file, fresh.path):
        got = load_model(path, device="cpu")(image.numpy(), mask.numpy())
        assert np.abs(got - want.numpy()).max() < 1e-4
    photo = save_png(tmp_path / "p.png", gradient_image(40, 52, seed=4))
    hole = np.zeros((40, 52), bool)
    hole[10:20, 15:30] = True
    out = run_cli("inpaint", photo, "--mask", save_mask(tmp_path / "m.png", hole), "--weights", "pushpull",
                  "-o", tmp_path / "o.png")
    assert out.returncode == 0, out.stderr
    filled, original = read_image(tmp_path / "o.png").rgb, read_image(photo).rgb
    assert np.array_equal(filled[~hole], original[~hole]) and np.abs(filled[hole].astype(int) - original[hole]).mean() < 20


def test_shipped_model_beats_telea_on_unseen_photos(shared_assets):
    """A real, small quality check: 12 irregular_dev pairs (2 per band) on BSDS500 test photos."""
    from imgan.weights import resolve_weights
    from imgan_inpaint.infer import inpainter_for_weights

    images = inpaint_eval.list_image_files(shared_assets / "photos" / "bsds500" / "test", "photos")
    masks = inpaint_eval.list_image_files(shared_assets / "masks" / "irregular_dev", "masks")
    pairs = inpaint_eval.evaluation_pairs(images, masks, limit=12)
    inpainter = inpainter_for_weights(resolve_weights("inpaint", None, "gated"), device="cpu")
    results = inpaint_eval.evaluate_pairs(pairs, inpainter)
    model = np.mean([result.scores["model"]["psnr"] for result in results])
    telea = np.mean([result.scores["telea"]["psnr"] for result in results])
    assert len(results) == 12 and model > telea + 0.3


def test_inference_modules_do_not_import_torch():
    import subprocess

    code = ("import sys; import imgan_inpaint.infer, imgan_inpaint.evaluate, imgan_inpaint.masks, "
            "imgan_inpaint.spec, imgan_inpaint.cli; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_mask_from_color_fills_the_painted_pixels(tmp_path):
    from imgan_inpaint.infer import MaskSource
    from imgan_inpaint.spec import parse_color

    from PIL import Image

    rgb = np.full((20, 30, 3), 90, np.uint8)
    rgb[5:9, 10:16] = (250, 3, 252)  # painted magenta, off by a few levels as a JPEG leaves it
    hole = MaskSource(color="#ff00ff").hole_for(Picture(rgb=rgb, alpha=None))
    assert hole.sum() == 24 and hole[5:9, 10:16].all()
    assert parse_color("f0f") == (255, 0, 255)
    with pytest.raises(UsageError, match="not a colour"):
        parse_color("#12345")
    with pytest.raises(InputError, match="no pixel has the colour #00ff00"):
        MaskSource(color="#00ff00").hole_for(Picture(rgb=rgb, alpha=None))
    out = run_cli("inpaint", save_png(tmp_path / "p.png", rgb), "--mask-from-color", "#ff00ff", "-o", tmp_path / "o.png")
    assert out.returncode == 0, out.stderr
    filled = np.asarray(Image.open(tmp_path / "o.png"))
    assert not np.any(np.all(filled == (250, 3, 252), axis=2)) and np.array_equal(filled[12:], rgb[12:])
