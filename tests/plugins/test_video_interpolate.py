"""`imgan interpolate`: optical-flow in-between frames, the blend baseline, and their measurement."""
from __future__ import annotations

import json

import numpy as np
import pytest

from imgan.errors import InputError, UsageError
from imgan.io.video import probe_video, read_frames, write_video
from imgan_video.interpolate import blend_in_betweens, in_between, interpolate_frames, measure_sequences

from ..conftest import run_cli


def textured_scene(offset: float, size: int = 64) -> np.ndarray:
    """A smooth random texture (RGB uint8), moved right by `offset` pixels (sub-pixel too)."""
    rng = np.random.default_rng(0)
    coarse = rng.random((12, 12, 3)).astype(np.float32)
    import cv2

    large = cv2.resize(coarse, (size * 2, size * 2), interpolation=cv2.INTER_CUBIC)
    shift = np.float32([[1, 0, offset], [0, 1, 0]])
    moved = cv2.warpAffine(large, shift, (size * 2, size * 2), borderMode=cv2.BORDER_REFLECT)
    return np.clip(moved[size // 2 : size // 2 + size, size // 2 : size // 2 + size] * 255, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_blend_is_the_weighted_mean_of_the_neighbours():
    a, b = np.full((4, 6, 3), 10, np.uint8), np.full((4, 6, 3), 110, np.uint8)
    assert np.all(in_between(a, b, 0.5, method="blend") == 60)
    assert np.all(in_between(a, b, 0.25, method="blend") == 35)


def test_flow_rebuilds_a_moving_texture_far_better_than_the_blend():
    first, middle, last = textured_scene(0), textured_scene(3), textured_scene(6)
    flow, blend = in_between(first, last, 0.5, method="flow"), in_between(first, last, 0.5, method="blend")
    inner = np.s_[8:-8, 8:-8]  # away from the edges that enter or leave the frame
    assert psnr(flow[inner], middle[inner]) > psnr(blend[inner], middle[inner]) + 6


def test_interpolated_stream_keeps_every_frame_and_adds_factor_minus_one_between():
    frames = [np.full((8, 8, 3), 30 * k, np.uint8) for k in range(4)]
    out = list(interpolate_frames(iter(frames), 3, blend_in_betweens))
    assert len(out) == 3 * 3 + 1
    for k, frame in enumerate(frames):
        assert out[3 * k] is frame
    assert np.all(out[1] == 10) and np.all(out[2] == 20)


def test_measure_holds_back_frames_and_ranks_flow_above_blend():
    clip = [textured_scene(2.5 * t) for t in range(7)]
    results = measure_sequences([clip], factor=2)
    assert results["held_back"] == 3  # frames 1, 3, 5
    assert results["methods"]["flow"]["psnr"] > results["methods"]["blend"]["psnr"] + 3
    squared = np.mean([(in_between(clip[s], clip[s + 2], 0.5, method="blend").astype(float) - clip[s + 1]) ** 2
                       for s in (0, 2, 4)])
    assert results["methods"]["blend"]["mse"] == pytest.approx(squared / 255**2, rel=1e-3)


def test_cli_doubles_the_frame_rate_keeps_the_duration_and_measures(tmp_path):
    clip = write_video(iter([textured_scene(2 * t) for t in range(6)]), tmp_path / "pan.mp4", fps=12)
    out = tmp_path / "pan_x2.mp4"
    result = run_cli("interpolate", clip, "--factor", 2, "-o", out)
    assert result.returncode == 0, result.stderr
    info = probe_video(out)
    assert info.frame_count == 11 and info.fps == pytest.approx(24)
    written = list(read_frames(out))
    # a new frame between the two, not a repeat (H.264 at 64 px caps any frame near 31 dB here)
    assert psnr(written[1], textured_scene(2)) > psnr(written[0], textured_scene(2)) + 3

    again = run_cli("interpolate", clip, "-o", out)
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr

    measured = run_cli("interpolate", clip, "--measure", "--json")
    assert measured.returncode == 0, measured.stderr
    figures = json.loads(measured.stdout)
    assert figures["held_back"] == 2 and figures["methods"]["flow"]["psnr"] > figures["methods"]["blend"]["psnr"]


def test_cli_usage_errors_are_one_line(tmp_path):
    clip = write_video(iter([textured_scene(t) for t in range(2)]), tmp_path / "short.mp4", fps=10)
    for args, words in [(["--factor", "1"], "factor"), (["--method", "warp"], "unknown method"),
                        (["--measure"], "needs at least 3")]:
        result = run_cli("interpolate", clip, *args, "-o", tmp_path / "x.mp4")
        assert result.returncode in (1, 2) and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    neither = run_cli("interpolate")
    assert neither.returncode == 2 and "give a clip" in neither.stderr
    photos_alone = run_cli("interpolate", "--photos", tmp_path)
    assert photos_alone.returncode == 2 and "--photos only goes with --measure" in photos_alone.stderr
    both = run_cli("interpolate", clip, "--measure", "--photos", tmp_path)
    assert both.returncode == 2 and "give a clip, or" in both.stderr


def test_library_errors_are_typed(tmp_path):
    from imgan_video.interpolate import interpolate_clip, measure_interpolation

    with pytest.raises(UsageError):
        interpolate_clip(tmp_path / "any.mp4", factor=1)
    with pytest.raises(InputError):
        measure_interpolation(tmp_path / "missing.mp4")


def test_interpolate_does_not_import_torch(tmp_path):
    from ..test_cli import _modules_after

    clip = write_video(iter([textured_scene(t) for t in range(3)]), tmp_path / "c.mp4", fps=10)
    out = _modules_after(["interpolate", str(clip), "-o", str(tmp_path / "d.mp4")])
    assert "HEAVY=\n" in out and (tmp_path / "d.mp4").is_file()
