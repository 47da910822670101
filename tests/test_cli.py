"""The CLI as a user meets it: start-up without torch, errors as one line, the built-in task end to end."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from .conftest import gradient_image, run_cli, save_png

NO_TORCH_CHECK = """
import sys
from imgan.cli import main
try:
    main({argv!r})
except SystemExit as exit:
    code = exit.code
else:
    code = 0
heavy = sorted(m for m in ("torch", "torchvision") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
print("NUMPY=" + str("numpy" in sys.modules))
sys.exit(code or 0)
"""


def _modules_after(argv: list[str]) -> str:
    import subprocess

    result = subprocess.run([sys.executable, "-c", NO_TORCH_CHECK.format(argv=argv)], capture_output=True, text=True,
                            timeout=120)
    return result.stdout


def test_help_imports_neither_torch_nor_numpy():
    out = _modules_after(["--help"])
    assert "HEAVY=\n" in out and "NUMPY=False" in out


def test_inference_command_does_not_import_torch(tmp_path):
    source = save_png(tmp_path / "a.png", gradient_image())
    out = _modules_after(["bicubic", str(source), "--device", "cpu"])
    assert "HEAVY=\n" in out
    assert (tmp_path / "a.bicubic.png").is_file()


def test_version_and_python_m():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == "imgan 0.1.0"


def test_bicubic_upscales_x2_like_opencv(tmp_path):
    import cv2

    rgb = gradient_image(40, 56)
    source = save_png(tmp_path / "a.png", rgb)
    result = run_cli("bicubic", source, "-o", tmp_path / "b.png", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "b.png"))
    assert out.shape == (80, 112, 3)
    reference = cv2.resize(rgb, (112, 80), interpolation=cv2.INTER_CUBIC)
    # Same kernel (a=-0.75); borders differ (reflect pad vs OpenCV's replicate), so compare the inside.
    inner = np.abs(out[4:-4, 4:-4].astype(int) - reference[4:-4, 4:-4].astype(int))
    assert inner.max() <= 2


def test_bicubic_keeps_alpha_and_16_bit(tmp_path):
    rgba = np.dstack([gradient_image(20, 30), np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (20, 1))])
    source = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(source)
    assert run_cli("bicubic", source, "--device", "cpu").returncode == 0
    out = Image.open(tmp_path / "a.bicubic.png")
    assert out.mode == "RGBA" and out.size == (60, 40)
    alpha = np.asarray(out)[..., 3]
    assert alpha[:, 0].mean() < 20 and alpha[:, -1].mean() > 235

    import cv2

    deep = (gradient_image(20, 30).astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    assert run_cli("bicubic", tmp_path / "deep.png", "--device", "cpu").returncode == 0
    deep_out = cv2.imread(str(tmp_path / "deep.bicubic.png"), cv2.IMREAD_UNCHANGED)
    assert deep_out.dtype == np.uint16 and deep_out.shape == (40, 60, 3)


def test_bad_input_is_one_line_error_with_exit_code(tmp_path):
    (tmp_path / "fake.png").write_text("hello")
    result = run_cli("bicubic", tmp_path / "fake.png", "--device", "cpu")
    assert result.returncode == 1
    assert "fake.png" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("bicubic", tmp_path / "nope.png")
    assert missing.returncode == 1 and "nope.png" in missing.stderr and "Traceback" not in missing.stderr


def test_usage_error_exits_2_and_debug_shows_traceback(tmp_path):
    source = save_png(tmp_path / "a.png", gradient_image())
    result = run_cli("bicubic", source, "--weights", "nonexistent-name")
    assert result.returncode == 2 and "available: x2" in result.stderr and "Traceback" not in result.stderr
    debug = run_cli("bicubic", source, "--weights", "nonexistent-name", env={"IMGAN_DEBUG": "1"})
    assert "Traceback" in debug.stderr


def test_decompression_bomb_guard_and_override(tmp_path):
    source = save_png(tmp_path / "a.png", gradient_image(100, 100))
    guarded = run_cli("bicubic", source, "--max-pixels", "5000", "--device", "cpu")
    assert guarded.returncode == 1 and "--max-pixels" in guarded.stderr
    allowed = run_cli("bicubic", source, "--max-pixels", "40000", "--device", "cpu")  # the x2 output's 200x200 too
    assert allowed.returncode == 0


def test_weights_list_verify_path():
    listed = json.loads(run_cli("weights", "list", "--json").stdout)
    assert any(w["task"] == "bicubic" and w["name"] == "x2" for w in listed)
    verify = run_cli("weights", "verify")
    assert verify.returncode == 0 and "bicubic/x2" in verify.stdout
    path = run_cli("weights", "path", "bicubic/x2").stdout.strip()
    assert path.endswith("bicubic-x2.onnx")


def test_explicit_cuda_without_gpu_is_an_error(tmp_path):
    from imgan.runtime.session import cuda_device_count

    if cuda_device_count() > 0:
        pytest.skip("a GPU is present")
    source = save_png(tmp_path / "a.png", gradient_image())
    result = run_cli("bicubic", source, "--device", "cuda")
    assert result.returncode == 1 and "cuda" in result.stderr.lower() and not (tmp_path / "a.bicubic.png").exists()
    auto = run_cli("bicubic", source, "--device", "auto")
    assert auto.returncode == 0 and "CUDA" not in auto.stderr  # no red provider errors on a CPU machine


def test_image_task_runs_on_a_video_keeping_fps_and_frame_count(tmp_path):
    from imgan.io.video import probe_video, write_video

    frames = [np.roll(gradient_image(32, 48), shift, axis=1) for shift in range(0, 36, 3)]
    clip = write_video(frames, tmp_path / "clip.mp4", fps=12.5)
    result = run_cli("bicubic", clip, "-o", tmp_path / "out.mp4", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height, info.frame_count) == (96, 64, 12)
    assert abs(info.fps - 12.5) < 1e-3
    limited = run_cli("bicubic", clip, "-o", tmp_path / "short.mp4", "--max-frames", "5", "--device", "cpu")
    assert limited.returncode == 0 and probe_video(tmp_path / "short.mp4").frame_count == 5
