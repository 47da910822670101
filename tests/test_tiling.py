"""Tiled inference must reproduce the untiled result, see one input shape, and quantise per tile."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from imgan.errors import ImganError, InputError, UsageError
from imgan.runtime.tiling import auto_tile_size, tile_grid, tile_memory_bytes, tiled_apply


# ---- small pure-NumPy models: (N, C, h, w) float32 -> (N, C, h*s, w*s) ------------------------

def box_blur(x: np.ndarray) -> np.ndarray:
    """3x3 mean with zero padding inside the model, so tile borders would show if context were short."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    total = sum(padded[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))
    return (total / 9).astype(np.float32)


def upscale_x2(x: np.ndarray) -> np.ndarray:
    return box_blur(x).repeat(2, axis=2).repeat(2, axis=3)


def pooled_x2(x: np.ndarray) -> np.ndarray:
    """Strided like a U-Net: 2x2 average pool, blur at half resolution, then x4 pixel repeat."""
    n, c, h, w = x.shape
    pooled = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    return box_blur(pooled).repeat(4, axis=2).repeat(4, axis=3)


def global_mix(x: np.ndarray) -> np.ndarray:
    """Not local at all: only a single pass over the whole padded image can reproduce it."""
    return (0.5 * x + 0.5 * x.mean(axis=(2, 3), keepdims=True)).astype(np.float32)


def canonical(model, image: np.ndarray, *, scale: int, overlap: int, multiple: int) -> np.ndarray:
    """The definition of the untiled result, written with np.pad on the whole image."""
    unit = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
    pixels = image.astype(np.float32) / np.float32(unit)
    padded = np.pad(pixels, ((overlap, overlap), (overlap, overlap), (0, 0)), mode="reflect")
    extra_h, extra_w = (-padded.shape[0]) % multiple, (-padded.shape[1]) % multiple
    padded = np.pad(padded, ((0, extra_h), (0, extra_w), (0, 0)), mode="reflect")
    result = model(np.ascontiguousarray(padded.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
    height, width = image.shape[:2]
    crop = result[overlap * scale:(overlap + height) * scale, overlap * scale:(overlap + width) * scale]
    return np.clip(crop, 0.0, 1.0)


def random_image(height: int, width: int, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.random((height, width, channels), dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, (height, width, channels), dtype=dtype)


def count_calls(model):
    shapes: list[tuple[int, ...]] = []

    def recording(x):
        shapes.append(x.shape)
        return model(x)

    return recording, shapes


# ---- 1. tiled == untiled for local models ------------------------------------------------------

@pytest.mark.parametrize("model, scale", [(box_blur, 1), (upscale_x2, 2)])
@pytest.mark.parametrize("tile, overlap, multiple", [(16, 1, 4), (32, 4, 8), (50, 8, 4), (40, 3, 8), (16, 2, 1)])
def test_tiled_equals_untiled_for_local_models(model, scale, tile, overlap, multiple):
    image = random_image(97, 131)
    recording, shapes = count_calls(model)
    tiled = tiled_apply(recording, image, scale=scale, tile=tile, overlap=overlap, multiple=multiple)
    untiled = tiled_apply(model, image, scale=scale, tile=512, overlap=overlap, multiple=multiple)
    expected = canonical(model, image, scale=scale, overlap=overlap, multiple=multiple)

    assert len(shapes) > 4  # really tiled
    assert tiled.shape == (97 * scale, 131 * scale, 3) and tiled.dtype == np.float32
    np.testing.assert_allclose(untiled, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tiled, untiled, atol=1e-6, rtol=0)


@pytest.mark.parametrize("tile", [16, 24, 40])
def test_strided_model_stays_exact_on_the_multiple_grid(tile):
    image = random_image(61, 83, seed=1)
    tiled = tiled_apply(pooled_x2, image, scale=2, tile=tile, overlap=8, multiple=4)
    expected = canonical(pooled_x2, image, scale=2, overlap=8, multiple=4)
    np.testing.assert_allclose(tiled, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("height, width, overlap, multiple", [(97, 131, 16, 8), (5, 7, 8, 8), (1, 3, 4, 4), (2, 2, 9, 1)])
def test_single_tile_is_the_canonical_pass_even_for_global_models(height, width, overlap, multiple):
    # Also covers overlap larger than the image, where reflection folds more than once.
    image = random_image(height, width, seed=2)
    result = tiled_apply(global_mix, image, tile=256, overlap=overlap, multiple=multiple)
    expected = canonical(global_mix, image, scale=1, overlap=overlap, multiple=multiple)
    np.testing.assert_allclose(result, expected, atol=1e-7, rtol=0)


def test_overlap_larger_than_edge_tiles_still_exact():
    image = random_image(20, 37, seed=3)
    tiled = tiled_apply(upscale_x2, image, scale=2, tile=16, overlap=12, multiple=4)
    expected = canonical(upscale_x2, image, scale=2, overlap=12, multiple=4)
    np.testing.assert_allclose(tiled, expected, atol=1e-6, rtol=0)


def test_grayscale_keeps_its_rank():
    image = random_image(45, 70, seed=4)[:, :, 0]
    result = tiled_apply(upscale_x2, image, scale=2, tile=16, overlap=2)
    expected = canonical(upscale_x2, image[:, :, None], scale=2, overlap=2, multiple=1)[:, :, 0]
    assert result.shape == (90, 140)
    np.testing.assert_allclose(result, expected, atol=1e-6, rtol=0)


# ---- 2. a real conv net through ONNX Runtime -----------------------------------------------------

def export_conv_x2(path, features: int = 8):
    """Export a random 3-conv + PixelShuffle x2 net (receptive field radius 3) with dynamic
    batch/height/width to `path`; returns the torch net. bench/bench_tiling.py uses it too."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, features, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(features, features, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(features, 12, 3, padding=1), torch.nn.PixelShuffle(2),
    ).eval()
    with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.rand(1, 3, 32, 32), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["result"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "result": {0: "n", 2: "h2", 3: "w2"}})
    return net


def onnx_cpu_model(path, threads: int = 1):
    """The exported net as a tiled_apply model callable on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def model(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"image": x})[0]

    return model


@pytest.fixture(scope="module")
def onnx_conv_x2(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "conv_x2.onnx"
    net = export_conv_x2(path)

    def torch_model(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    return onnx_cpu_model(path), torch_model


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("tile, overlap, multiple", [(32, 8, 1), (48, 6, 4)])
def test_onnx_conv_net_tiled_matches_untiled(onnx_conv_x2, tile, overlap, multiple):
    model, torch_model = onnx_conv_x2
    image = random_image(97, 131, seed=5)
    tiled = tiled_apply(model, image, scale=2, tile=tile, overlap=overlap, multiple=multiple)
    untiled = tiled_apply(model, image, scale=2, tile=1024, overlap=overlap, multiple=multiple)

    # ORT computes what torch computes, and the net does something non-trivial to the image.
    np.testing.assert_allclose(untiled, canonical(torch_model, image, scale=2, overlap=overlap, multiple=multiple),
                               atol=1e-4, rtol=0)
    assert 0.01 < float(untiled.std())
    # Against a reference (pixel-repeated input), tiling changes PSNR by far less than 0.01 dB.
    reference = (image.astype(np.float32) / 255).repeat(2, axis=0).repeat(2, axis=1)
    assert abs(psnr(tiled, reference) - psnr(untiled, reference)) < 0.01
    assert psnr(tiled, untiled) > 60
    assert float(np.abs(tiled - untiled).max()) < 1e-4


# ---- 3. one input shape for every tile -----------------------------------------------------------

@pytest.mark.parametrize("multiple, batch, expected_shape, calls", [
    (1, 1, (1, 3, 160, 160), 12),
    (8, 5, (5, 3, 160, 160), 3),  # short last batch keeps N=5
    (64, 1, (1, 3, 192, 192), 12),  # 160 rounded up to 64
])
def test_every_tile_has_the_same_input_shape(multiple, batch, expected_shape, calls):
    image = random_image(300, 500, seed=6)
    recording, shapes = count_calls(box_blur)
    result = tiled_apply(recording, image, tile=128, overlap=16, multiple=multiple, batch=batch)
    assert set(shapes) == {expected_shape}
    assert len(shapes) == calls
    np.testing.assert_allclose(result, canonical(box_blur, image, scale=1, overlap=16, multiple=multiple),
                               atol=1e-6, rtol=0)


def test_small_image_runs_at_its_padded_size_not_a_full_tile():
    recording, shapes = count_calls(box_blur)
    tiled_apply(recording, random_image(40, 300), tile=128, overlap=16, multiple=8)
    assert set(shapes) == {(1, 3, 72, 160)}  # 40+32 and 128+32, each rounded up to 8


# ---- 4. dtypes, progress, errors -----------------------------------------------------------------

def identity(x: np.ndarray) -> np.ndarray:
    return x.copy()


def test_uint16_round_trips_exactly():
    image = random_image(70, 90, dtype=np.uint16, seed=7)
    result = tiled_apply(identity, image, tile=32, overlap=4, out_dtype=np.uint16)
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, image)


def test_float_input_is_used_as_is():
    image = random_image(33, 47, dtype=np.float32, seed=8)
    result = tiled_apply(upscale_x2, image, scale=2, tile=16, overlap=3)
    np.testing.assert_allclose(result, canonical(upscale_x2, image, scale=2, overlap=3, multiple=1), atol=1e-6)


def test_uint8_output_is_clipped_and_rounded_per_tile():
    def overdrive(x):  # pushes values below 0 and above 1 so clipping matters
        return (1.6 * x - 0.3).astype(np.float32)

    image = random_image(50, 65, seed=9)
    as_float = tiled_apply(overdrive, image, tile=16, overlap=2)
    as_uint8 = tiled_apply(overdrive, image, tile=16, overlap=2, out_dtype=np.uint8)
    assert as_uint8.dtype == np.uint8
    assert as_float.min() == 0.0 and as_float.max() == 1.0
    np.testing.assert_array_equal(as_uint8, np.rint(as_float * 255).astype(np.uint8))
    assert (as_uint8 == 0).any() and (as_uint8 == 255).any()


def test_out_channels_and_progress_counts():
    def to_gray(x):
        return x.mean(axis=1, keepdims=True)

    calls = []
    image = random_image(300, 500, seed=10)
    result = tiled_apply(to_gray, image, tile=128, overlap=0, batch=5, out_channels=1,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls == [(5, 12), (10, 12), (12, 12)]
    assert result.shape == (300, 500, 1)
    np.testing.assert_allclose(result[:, :, 0], image.astype(np.float32).mean(axis=2) / 255, atol=1e-6)


def test_wrong_model_scale_is_reported():
    image = random_image(40, 40, seed=11)
    with pytest.raises(UsageError, match=r"model returned \(1,3,144,144\), expected \(1,3,288,288\).*wrong --scale"):
        tiled_apply(upscale_x2, image, scale=4, tile=64, overlap=16)


def test_wrong_model_channels_are_reported():
    with pytest.raises(UsageError, match="out_channels"):
        tiled_apply(box_blur, random_image(20, 20), out_channels=1, tile=16, overlap=2)


@pytest.mark.parametrize("kwargs, error", [
    ({"scale": 0}, UsageError), ({"scale": 1.5}, UsageError), ({"tile": 8}, UsageError),
    ({"overlap": -1}, UsageError), ({"multiple": 0}, UsageError), ({"batch": 0}, UsageError),
    ({"out_dtype": np.int32}, UsageError),
])
def test_bad_arguments_are_refused(kwargs, error):
    with pytest.raises(error):
        tiled_apply(identity, random_image(20, 20), **kwargs)


@pytest.mark.parametrize("image", [np.zeros((2, 4, 4, 3), np.uint8), np.zeros((0, 5, 3), np.uint8),
                                   np.zeros((5, 5, 3), np.int32)])
def test_unusable_images_are_refused(image):
    with pytest.raises(InputError):
        tiled_apply(identity, image)
    assert issubclass(InputError, ImganError)


def test_tile_grid_covers_the_image_once():
    boxes = tile_grid(97, 131, 32)
    coverage = np.zeros((97, 131), dtype=int)
    for y0, x0, y1, x1 in boxes:
        coverage[y0:y1, x0:x1] += 1
    assert (coverage == 1).all()
    assert len(boxes) == 4 * 5
    assert boxes[0] == (0, 0, 32, 32) and boxes[-1] == (96, 128, 97, 131)


# ---- 5. auto tile size ---------------------------------------------------------------------------

def test_auto_tile_size_fits_the_budget():
    budget = 1 << 30
    for scale in (1, 2, 4):
        tile = auto_tile_size(4000, 3000, scale=scale, memory_budget_bytes=budget)
        assert 128 <= tile <= 1024 and tile % 32 == 0
        assert tile_memory_bytes(tile, scale=scale) <= budget
        largest = max(t for t in range(128, 1025, 32) if tile_memory_bytes(t, scale=scale) <= budget)
        assert [-(-side // tile) for side in (4000, 3000)] == [-(-side // largest) for side in (4000, 3000)]
    assert auto_tile_size(4000, 3000, scale=4) < auto_tile_size(4000, 3000, scale=1)


def test_auto_tile_size_limits():
    assert auto_tile_size(8000, 8000, scale=4, memory_budget_bytes=1) == 128  # floor when nothing fits
    assert auto_tile_size(8000, 8000, scale=1, memory_budget_bytes=1 << 40) == 1024
    assert auto_tile_size(100, 60, scale=1, memory_budget_bytes=1 << 40) == 128  # the image needs no more
    assert auto_tile_size(300, 200, scale=1, memory_budget_bytes=1 << 40) == 320
    assert auto_tile_size(8000, 8000, scale=2, multiple=48) % 96 == 0
    assert auto_tile_size(384, 384, scale=4, memory_budget_bytes=tile_memory_bytes(300, scale=4)) == 192  # 2 even tiles
    assert auto_tile_size(1000, 200, scale=1, memory_budget_bytes=tile_memory_bytes(600, scale=1)) == 512
    batched = auto_tile_size(8000, 8000, scale=2, batch=4)
    assert batched < auto_tile_size(8000, 8000, scale=2)
