"""The Python API: each verb is a function taking paths, PIL images or arrays."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import imgan
from imgan.errors import ImganError, InputError
from tests.conftest import gradient_image, save_png, shared_assets  # noqa: F401  (a fixture)


def test_an_array_in_gives_an_array_out_of_the_task_size():
    rgb = gradient_image(12, 10)
    out = imgan.bicubic(rgb)
    assert isinstance(out, np.ndarray) and out.shape == (24, 20, 3) and out.dtype == np.uint8
    rgba = np.dstack([rgb, np.full((12, 10), 128, np.uint8)])
    out = imgan.bicubic(rgba)
    assert out.shape == (24, 20, 4) and np.all(out[..., 3] == 128)
    assert imgan.bicubic(rgb[..., 0]).shape == (24, 20)
    assert imgan.bicubic(rgb.astype(np.uint16) * 257).dtype == np.uint16


def test_a_pil_image_gives_a_pil_image():
    out = imgan.bicubic(Image.fromarray(gradient_image(12, 10)))
    assert isinstance(out, Image.Image) and out.size == (20, 24)


def test_paths_run_as_a_batch_with_a_report(tmp_path):
    source = save_png(tmp_path / "in" / "a.png", gradient_image(8, 8))
    save_png(tmp_path / "in" / "b.png", gradient_image(8, 6))
    report = imgan.bicubic(str(tmp_path / "in"), output=tmp_path / "out")
    assert len(report.done) == 2 and not report.failures
    assert Image.open(tmp_path / "out" / "a.png").size == (16, 16)
    single = imgan.bicubic(source, output=tmp_path / "one.png")
    assert [job.output for job in single.done] == [tmp_path / "one.png"]
    save_png(tmp_path / "in" / "sub" / "c.png", gradient_image(6, 6))
    again = imgan.bicubic(str(tmp_path / "in"), output=tmp_path / "out", recursive=True)
    assert len(again.done) == 1 and len(again.skipped) == 2  # the new file; the others resume
    assert Image.open(tmp_path / "out" / "sub" / "c.png").size == (12, 12)


def test_bad_input_raises_typed_errors():
    with pytest.raises(InputError, match="uint8 or uint16"):
        imgan.bicubic(np.zeros((4, 4, 2), np.float32))
    with pytest.raises(InputError, match="cannot read a dict"):
        imgan.bicubic({})
    with pytest.raises(ImganError):
        imgan.bicubic(np.zeros((4, 4, 3), np.uint8), weights="nonexistent")


def test_predict_is_a_function_too(tmp_path, shared_assets):
    prediction = imgan.predict(shared_assets / "videos" / "tree.avi", output=tmp_path / "next.mp4", context=4,
                               future=3, size=64)
    assert prediction.frames.shape == (3, 64, 64, 3) and prediction.written == [tmp_path / "next.mp4"]
    assert (tmp_path / "next.mp4").stat().st_size > 0
