"""The natural-video model's pieces: synthetic camera motion, the training footage, the flow baseline,
the held-out evaluation and `imgan predict` at the card's working size."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from imgan.io.images import Picture, write_image  # noqa: E402
from imgan.io.video import probe_video, write_video  # noqa: E402
from imgan.train.export import export_checkpoint  # noqa: E402
from imgan_video import TASK  # noqa: E402
from imgan_video.camera import CameraMotion, camera_clip, fixed_camera_clips, load_photos  # noqa: E402
from imgan_video.evaluate import evaluate_natural, flow_extrapolation  # noqa: E402
from imgan.io.images import long_side_size  # noqa: E402
from imgan_video.recipe import NaturalFootage, train_video  # noqa: E402

from ..conftest import run_cli  # noqa: E402

PAN_ONLY = CameraMotion(shift=2.0, jitter=0.0, zoom=0.0, rotation=0.0, still=0.0, layer=0.0, sway=0.0)


def _textured_photo(seed: int, size=(120, 160)) -> np.ndarray:
    """Smooth random texture (blurred noise), so shifts are measurable and interpolation is gentle."""
    import cv2

    noise = np.random.default_rng(seed).random((*size, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3.0) * 4 * 255 - 400, 0, 255).astype(np.uint8)


@pytest.fixture()
def photos_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        write_image(Picture(rgb=_textured_photo(index), alpha=None), folder / f"p{index}.png")
    return folder


def test_camera_clips_are_fixed_by_the_seed(photos_folder):
    photos = load_photos(photos_folder, long_side=32)
    assert min(photos[0].shape[:2]) == round(1.6 * 32)  # room to pan
    first = fixed_camera_clips(photos, 4, height=24, width=32, length=6, seed=3)
    assert first.shape == (4, 6, 24, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, fixed_camera_clips(photos, 4, height=24, width=32, length=6, seed=3))
    assert not np.array_equal(first, fixed_camera_clips(photos, 4, height=24, width=32, length=6, seed=4))


def test_a_pan_moves_every_frame_by_the_same_step(photos_folder):
    import cv2

    photos = load_photos(photos_folder, long_side=64)
    for seed in range(3):
        clip = camera_clip(photos, np.random.default_rng(seed), height=48, width=64, length=4, motion=PAN_ONLY)
        grey = [frame.mean(axis=2).astype(np.float32) for frame in clip]
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
        steps = np.stack([cv2.findTransformECC(grey[t], grey[t + 1], np.eye(2, 3, dtype=np.float32),
                                               cv2.MOTION_TRANSLATION, criteria, None, 1)[1][:, 2] for t in range(3)])
        assert np.allclose(steps, steps[0], atol=0.05) and 0.1 < np.abs(steps[0]).max() <= 2.0


def test_a_layer_moves_over_the_background_on_its_own(photos_folder):
    photos = load_photos(photos_folder, long_side=32)
    still_with_layer = CameraMotion(still=1.0, layer_shift=3.0)
    clip = camera_clip(photos, np.random.default_rng(1), height=32, width=32, length=4, motion=still_with_layer)
    changed = np.abs(clip[1].astype(int) - clip[0]).max(axis=2) > 0
    assert 0 < changed.mean() < 0.9  # the camera is fixed: only where the layer was or went changes


def test_natural_footage_mixes_working_size_clip_windows_and_camera_motion(tmp_path, photos_folder):
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = [np.full((60, 80, 3), 10 * t, np.uint8) for t in range(8)]  # each frame one flat grey level
    write_video(frames, clips / "grey.mp4", fps=10)
    both = NaturalFootage(clips, photos_folder, working_size=40, crop=16, length=5)
    assert both.clips[0].shape[1:] == (32, 40, 3)  # the clip at its working size: longer side 40, 4:3 kept
    np.random.seed(0)
    items = [both[index]["frames"] for index in range(16)]
    assert all(item.shape == (5, 3, 16, 16) for item in items)
    flat = [bool((item.amax(dim=(1, 2, 3)) - item.amin(dim=(1, 2, 3))).max() < 0.05) for item in items]
    assert 0 < sum(flat) < len(items)  # some windows of the flat clip, some textured camera clips
    with pytest.raises(Exception, match="no training footage"):
        NaturalFootage(tmp_path / "clips", None, working_size=40, crop=16, length=20)


def test_flow_extrapolation_follows_a_steady_pan_better_than_copying(photos_folder):
    photos = load_photos(photos_folder, long_side=48)
    clips = np.stack([camera_clip(photos, np.random.default_rng(seed), height=48, width=48, length=6, motion=PAN_ONLY)
                      for seed in range(3)])
    truth = clips[:, 4:].astype(np.float64) / 255
    flow = flow_extrapolation(clips[:, :4], 2)
    copy = np.repeat(clips[:, 3:4], 2, axis=1) / 255
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the borders that came into view
    assert ((flow - truth)[inner] ** 2).mean() < 0.5 * ((copy - truth)[inner] ** 2).mean()


def _tiny_natural_model(tmp_path, photos_folder):
    options = dict(steps=2, videos=None, photos=photos_folder, working_size=32, size=16, gray=False, mnist=None,
                   context=3, future=2, hidden="4", widths="4,4", kernel=3, batch_size=2, lr=1e-3, l2=1.0, l1=0.0,
                   bce=0.0, context_loss=0.5, gdl=0.0, adversarial=0.0, gan_mode="lsgan", teacher_forcing=0.0,
                   eval_every=2, eval_sequences=0, name=None, run_dir=tmp_path / "run", resume=False, threads=1,
                   device="cpu", seed=0, motion_kernel=3, draw_new=True, frame_difference=True)
    result = train_video(**options)
    onnx_path = tmp_path / "video-natural.onnx"
    export_checkpoint(TASK, result.checkpoint, onnx_path, name="convlstm-natural")
    return onnx_path


def test_the_natural_model_records_its_working_size_and_predict_and_eval_use_it(tmp_path, photos_folder):
    onnx_path = _tiny_natural_model(tmp_path, photos_folder)
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["running"]["inference"]["working_size"] == 32 and card["model_config"]["channels"] == 3
    assert "camera motion" in card["provenance"]["data"] and card["licence"]
    assert card["provenance"]["recipe"]["camera_motion"]["shift"] == CameraMotion().shift  # how the clips moved
    clip = write_video([_textured_photo(t, (48, 64)) for t in range(8)], tmp_path / "clip.mp4", fps=10)
    out = tmp_path / "out.mp4"
    result = run_cli("predict", clip, "--weights", onnx_path, "--context", 3, "--future", 2, "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    assert (probe_video(out).width, probe_video(out).height) == (32, 24) and probe_video(out).frame_count == 5
    assert any("working size" in note for note in json.loads(result.stdout)["notes"])
    results = evaluate_natural(onnx_path, clips=[clip], photos=photos_folder, context=3, future=2, stride=1,
                               camera_clips=4, device="cpu", threads=1)
    assert results["working_size"] == 32 and list(results["sets"]) == ["clip.mp4", "camera motion over photos"]
    on_clip = results["sets"]["clip.mp4"]
    assert on_clip["windows"] == 8 - 5 + 1 and set(on_clip["methods"]) == {"model", "copy_last", "flow_extrapolation"}
    assert all(len(figures["psnr_per_horizon"]) == 2 for figures in on_clip["methods"].values())
    # copy-last, measured here independently, is what the table says
    from imgan_video.infer import load_clip

    frames = load_clip(clip, channels=3, working_size=32).astype(np.float64) / 255
    windows = np.stack([frames[s : s + 5] for s in range(4)])
    mse = ((windows[:, 3:] - windows[:, 2:3]) ** 2).mean()
    assert on_clip["methods"]["copy_last"]["psnr"] == pytest.approx(10 * np.log10(1 / mse), abs=0.01)


def test_eval_video_on_a_gray_model_with_clips_is_a_one_line_error(tmp_path):
    from imgan_video.model import VideoNetConfig

    assert VideoNetConfig().channels == 1  # the Moving MNIST model is gray: natural clips need the RGB one
    clip = write_video([_textured_photo(t, (48, 64)) for t in range(8)], tmp_path / "clip.mp4", fps=10)
    result = run_cli("eval", "video", "--clip", clip, "--weights", "convlstm-mmnist")
    assert result.returncode != 0 and "RGB model" in result.stderr and "Traceback" not in result.stderr


def test_working_frames_keep_the_aspect_in_multiples_of_4():
    assert long_side_size(576, 768, 128, multiple=4) == (128, 96)
    assert long_side_size(240, 320, 128, multiple=4) == (128, 96)
    assert long_side_size(1080, 1920, 128, multiple=4) == (128, 72)
    assert long_side_size(1080, 1920, 100) == (100, 56)


def test_predict_on_a_clip_uses_the_shipped_natural_model_by_default(tmp_path):
    from imgan.weights import resolve_weights

    shipped = resolve_weights(TASK, "convlstm-natural")
    working = shipped.inference["working_size"]
    clip = write_video([_textured_photo(t, (60, 80)) for t in range(12)], tmp_path / "clip.mp4", fps=10)
    out = tmp_path / "next.mp4"
    result = run_cli("predict", clip, "--context", 10, "--future", 3, "-o", out)
    assert result.returncode == 0, result.stderr
    info = probe_video(out)
    assert (info.width, info.height) == long_side_size(60, 80, working, multiple=4) and info.frame_count == 13
    assert "working size" in result.stderr  # and it says so
