"""Hardening: an awkward corpus through the CLI, as a user meets it.

Every case asserts what a user sees: the exit code, one error line that names the file, no
traceback, no partial or temp file left, the batch going on past the bad file, the summary.
The corpus is built here, in tmp_path, from small images (the module runs in well under a minute).
"""
from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from imgan.errors import BatchInterrupted, InferenceError, InputError, OutputError, TrainingError, UsageError
from imgan.io.batch import plan_jobs
from imgan.pipeline import RunOptions, run_task

from .conftest import REPO, gradient_image, save_png

BAD = ("huge.png", "truncated.png", "truncated.jpg", "text.png", "empty.png", "gone.png")
GOOD = ("tiny.png", "strip.png", "cmyk.jpg", "palette.png", "deep16.png", "rotated.jpg", "ünï 画像.png", "anim.gif")


def imgan(*args, stdin: bytes | None = None, cwd: Path | None = None, env: dict | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m imgan ARGS`: stdout as bytes (it may hold an image), stderr as text."""
    result = subprocess.run([sys.executable, "-m", "imgan", *map(str, args)], input=stdin, cwd=cwd,
                            env={**os.environ, **(env or {})}, capture_output=True, timeout=timeout)
    result.stderr = result.stderr.decode(errors="replace")
    return result


def lines_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_header_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A few bytes whose header declares 10 G pixels: a decompression bomb's calling card."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))
    return path


def truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def build_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    save_png(folder / "tiny.png", gradient_image(1, 1))
    save_png(folder / "strip.png", gradient_image(3, 4000))
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    palette = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8) % 4, "L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    palette.save(folder / "palette.png", transparency=0)
    cv2.imwrite(str(folder / "deep16.png"), gradient_image(6, 8).astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 20x10, shown rotated: 10 wide, 20 high
    Image.fromarray(gradient_image(10, 20)).save(folder / "rotated.jpg", exif=exif.tobytes())
    save_png(folder / "ünï 画像.png", gradient_image(8, 8))
    frames = [Image.fromarray(gradient_image(6, 10, seed=s)).convert("P") for s in (1, 2)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)

    huge_header_png(folder / "huge.png")
    whole = save_png(folder.parent / "whole.png", gradient_image(32, 32))
    truncated(whole, folder / "truncated.png", 0.6)
    Image.fromarray(gradient_image(64, 64)).save(folder.parent / "whole.jpg", quality=95)
    truncated(folder.parent / "whole.jpg", folder / "truncated.jpg", 0.5)
    (folder / "text.png").write_text("these are not the pixels you are looking for\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "gone.png").symlink_to(folder / "deleted-long-ago.png")
    (folder / "folder.png").mkdir()
    return folder


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


# --- the corpus, one folder batch --------------------------------------------------------------


def test_awkward_corpus_folder_batch_goes_on_and_reports_every_bad_file(tmp_path):
    corpus = build_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    result = imgan("bicubic", corpus, "-o", out, "--device", "cpu")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in BAD:  # reported while running and again in the list at the end
        assert len(lines_naming(result.stderr, name)) == 2, (name, result.stderr)
    assert "--max-pixels" in lines_naming(result.stderr, "huge.png")[0]
    assert "broken symbolic link" in lines_naming(result.stderr, "gone.png")[0]
    assert "folder.png" in result.stderr and "is a folder" in result.stderr  # reported, not silently skipped
    assert f"{len(GOOD)} done, {len(BAD)} failed" in result.stderr

    def size(name):
        return Image.open(out / name).size

    assert size("tiny.png") == (2, 2) and size("strip.png") == (8000, 6)
    assert size("cmyk.jpg") == (16, 12) and Image.open(out / "cmyk.jpg").mode == "RGB"
    assert Image.open(out / "palette.png").mode == "RGBA"
    assert cv2.imread(str(out / "deep16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert size("rotated.jpg") == (20, 40)  # EXIF orientation applied before the x2
    assert size("ünï 画像.png") == (16, 16)
    assert size("anim.png") == (20, 12)  # GIF in (its first frame), PNG out
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(name.replace(".gif", ".png") for name in GOOD)  # nothing for the bad files
    assert hidden_files(out) == []  # no temp file left


def test_upscale_takes_tiny_and_extreme_aspect_images_and_goes_past_a_bad_one(tmp_path):
    folder = tmp_path / "in"
    save_png(folder / "tiny.png", gradient_image(1, 1))
    save_png(folder / "strip.png", gradient_image(3, 400))
    (folder / "text.png").write_text("not an image")
    result = imgan("upscale", folder, "-o", tmp_path / "out", "--device", "cpu", timeout=240)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "2 done, 1 failed" in result.stderr and len(lines_naming(result.stderr, "text.png")) == 2
    assert Image.open(tmp_path / "out" / "tiny.png").size == (4, 4)
    assert Image.open(tmp_path / "out" / "strip.png").size == (1600, 12)


# --- the ONNX session wrapper -------------------------------------------------------------------


def test_a_model_refusing_tiny_inputs_gets_them_padded_and_cropped_back():
    from imgan.runtime.session import load_model

    # The style net opens with a 4-pixel reflect pad, which ONNX Runtime refuses on a 4x4 input.
    model = load_model(REPO / "weights" / "style-monet.onnx", device="cpu")
    for height, width in ((4, 4), (4, 1024), (1, 1)):
        image = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
        reference = np.random.default_rng(1).random((1, 3, max(height, 4), min(width, 512)), dtype=np.float32)
        styled = model(image, reference)
        assert styled.shape == (1, 3, height, width) and np.isfinite(styled).all()


def test_a_one_window_tile_may_be_as_small_as_the_image():
    from imgan.runtime.tiling import tiled_apply

    pixel = np.full((1, 1, 3), 200, np.uint8)  # one pass over a 1x1 picture: its tile edge is 1
    assert np.array_equal(tiled_apply(lambda x: x, pixel, tile=1, overlap=0, out_dtype=np.uint8), pixel)
    with pytest.raises(UsageError, match="tile"):
        tiled_apply(lambda x: x, np.zeros((40, 40, 3), np.uint8), tile=8)  # several tiny tiles: still refused


def test_onnx_runtime_errors_become_one_typed_error_naming_model_and_input():
    from imgan.runtime.session import load_model

    model = load_model(REPO / "weights" / "bicubic-x2.onnx", device="cpu")
    with pytest.raises(InferenceError) as caught:
        model(np.zeros((1, 4, 40, 40), np.float32))  # four channels for a three-channel model
    line = caught.value.one_line()
    assert "bicubic-x2.onnx" in line and "1x4x40x40" in line and "\n" not in line


# --- output-size guard ----------------------------------------------------------------------------


def test_output_pixels_are_guarded_before_any_computing(tmp_path):
    from imgan.runtime.tiling import output_pixel_limit, tiled_apply

    calls = []
    with output_pixel_limit(1000), pytest.raises(InputError, match="--max-pixels"):
        tiled_apply(lambda x: calls.append(x) or x, np.zeros((20, 20, 3), np.uint8), scale=2, tile=16)
    assert calls == []
    source = save_png(tmp_path / "a.png", gradient_image(100, 100))
    result = imgan("bicubic", source, "--max-pixels", "20000", "--device", "cpu")  # in: 10,000; out: 40,000
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "a.png" in result.stderr and "40,000" in result.stderr and "--max-pixels" in result.stderr
    assert not (tmp_path / "a.bicubic.png").exists() and hidden_files(tmp_path) == []


# --- output side checked before the first image ------------------------------------------------


def test_gif_output_is_a_usage_error(tmp_path):
    source = save_png(tmp_path / "a.png", gradient_image(8, 8))
    result = imgan("bicubic", source, "--ext", "gif", "--device", "cpu")
    assert result.returncode == 2 and "gif" in result.stderr.lower() and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    with pytest.raises(UsageError, match="gif"):
        plan_jobs([source], task="x", output=tmp_path / "out.gif")


def test_output_folder_under_a_regular_file_is_one_error_before_any_work(tmp_path):
    folder = tmp_path / "in"
    for index in range(3):
        save_png(folder / f"{index}.png", gradient_image(8, 8, seed=index))
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = imgan("bicubic", folder, "-o", blocker / "out", "--device", "cpu")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "file.txt" in errors[0] and "in the way" in errors[0]
    assert "Errno" not in result.stderr  # no raw OSError text


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders; the regular-file case above covers the check")
def test_read_only_output_folder_fails_before_any_work(tmp_path):
    source = save_png(tmp_path / "in" / "a.png", gradient_image(8, 8))
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            run_task([source.parent], lambda picture, progress=None: 1 / 0, task="x", options=RunOptions(output=out))
    finally:
        out.chmod(0o755)


# --- stdin and stdout ------------------------------------------------------------------------------


def test_stdin_to_stdout_and_file_to_stdout(tmp_path):
    png = save_png(tmp_path / "a.png", gradient_image(5, 7))
    piped = imgan("bicubic", "-", "--device", "cpu", stdin=png.read_bytes(), cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(b"\x89PNG") and piped.stdout.endswith(b"IEND\xaeB`\x82")  # only the image
    assert Image.open(io.BytesIO(piped.stdout)).size == (14, 10)
    as_jpeg = imgan("bicubic", png, "-o", "-", "--ext", "jpg", "--device", "cpu", cwd=tmp_path)
    assert as_jpeg.returncode == 0, as_jpeg.stderr
    assert as_jpeg.stdout.startswith(b"\xff\xd8") and as_jpeg.stdout.endswith(b"\xff\xd9")
    assert "1 done" in as_jpeg.stderr  # the summary goes to stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no folder or file named "-"


# --- folders: nothing in them, escaping patterns -----------------------------------------------------


def test_folder_without_images_says_so(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("text")
    result = imgan("bicubic", tmp_path / "docs", "--device", "cpu")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"no images found in {tmp_path / 'docs'}" in result.stderr


def test_glob_climbing_out_of_the_output_folder_is_refused(tmp_path):
    save_png(tmp_path / "in" / "sub" / "a.png", gradient_image(8, 8))
    save_png(tmp_path / "elsewhere" / "b.png", gradient_image(8, 8))
    pattern = str(tmp_path / "in" / "*" / ".." / ".." / "elsewhere" / "*.png")
    with pytest.raises(UsageError, match="outside the output folder"):
        plan_jobs([pattern], task="x", output=tmp_path / "in" / "out")
    inside = plan_jobs([str(tmp_path / "in" / "*" / "a.png")], task="x", output=tmp_path / "out")
    assert [job.output for job in inside] == [tmp_path / "out" / "sub" / "a.png"]


# --- exceptions inside a batch -----------------------------------------------------------------------


def test_any_exception_of_one_file_is_reported_and_the_batch_goes_on(tmp_path, capsys, monkeypatch):
    for name in ("a.png", "b.png", "c.png"):
        save_png(tmp_path / name, gradient_image(8, 8))

    def picky(picture, progress=None):
        if picture.source.name == "b.png":
            raise KeyError("no such thing")
        return picture

    report = run_task([tmp_path], picky, task="x")
    assert [job.source.name for job in report.done] == ["a.png", "c.png"]
    message = report.failures[str(tmp_path / "b.png")]
    assert "b.png" in message and "KeyError" in message
    monkeypatch.setenv("IMGAN_DEBUG", "1")
    run_task([tmp_path / "b.png"], picky, task="y")
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_stops_the_batch_with_the_summary_so_far(tmp_path):
    def stop_at_second(picture, progress=None):
        if picture.source.name == "b.png":
            raise KeyboardInterrupt
        return picture

    for name in ("a.png", "b.png", "c.png"):
        save_png(tmp_path / name, gradient_image(8, 8))
    with pytest.raises(BatchInterrupted) as caught:
        run_task([tmp_path], stop_at_second, task="x")
    assert (caught.value.finished, caught.value.total) == (1, 3)
    assert [job.source.name for job in caught.value.report.done] == ["a.png"]
    assert hidden_files(tmp_path) == []


def test_sigint_on_the_cli_prints_interrupted_after_n_of_m_and_exits_130(tmp_path):
    folder = tmp_path / "in"
    for name, size in (("0.png", 8), ("1.png", 1500), ("2.png", 8)):  # the signal lands while 1.png runs
        save_png(folder / name, gradient_image(size, size))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "imgan", "bicubic", str(folder), "-o", str(out), "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # a test run started in the background (`make test &`) inherits an ignored
                               # SIGINT, which Python then keeps: give the CLI the default a terminal gives it
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "0.png").exists():
        time.sleep(0.02)
    time.sleep(0.3)  # past the bookkeeping of 0.png, well inside the work on 1.png
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted after 1 of 3 files" in stderr and "1 done" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["0.png"]  # nothing half-written, no temp file


# --- kill -9 mid-write, then a rerun -------------------------------------------------------------------

KILLED_WRITE = """
import sys, time
from pathlib import Path
from imgan.fs import atomic_write

def slow(temp):
    temp.write_bytes(b"half an image")
    time.sleep(120)

atomic_write(Path(sys.argv[1]), slow, overwrite=False)
"""


def test_rerun_removes_the_temp_file_a_kill_9_left(tmp_path):
    source = save_png(tmp_path / "a.png", gradient_image(8, 8))
    target = tmp_path / "out.png"
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_WRITE))
    process = subprocess.Popen([sys.executable, str(script), str(target)])
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".out.png.*.part")):
        time.sleep(0.02)
    process.kill()
    process.wait()
    [stale] = tmp_path.glob(".out.png.*.part")
    unrelated = [tmp_path / ".out.png.notours.part", tmp_path / ".other.png.0123abcd.part"]
    for path in unrelated:
        path.write_bytes(b"keep")
    result = imgan("bicubic", source, "-o", target, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and Image.open(target).size == (16, 16)
    assert all(path.exists() for path in unrelated)  # only this output's own temp files are removed


# --- --json --------------------------------------------------------------------------------------------


def test_render_report_json_is_one_document(tmp_path, capsys):
    import typer

    from imgan.cli_support import render_report

    save_png(tmp_path / "a.png", gradient_image(8, 8))
    (tmp_path / "b.png").write_text("no")
    report = run_task([tmp_path], lambda picture, progress=None: picture, task="x")
    with pytest.raises(typer.Exit):
        render_report(report, json=True)
    document = json.loads(capsys.readouterr().out)
    assert [d["input"] for d in document["done"]] == [str(tmp_path / "a.png")]
    assert document["done"][0]["output"] == str(tmp_path / "a.x.png") and document["done"][0]["seconds"] >= 0
    assert [f["input"] for f in document["failed"]] == [str(tmp_path / "b.png")] and document["skipped"] == []
    assert "b.png" in document["failed"][0]["error"] and document["seconds"] >= 0


# --- VGG19 weights: never unpickled in full, hashes checked -----------------------------------------------


def _tiny_vgg_state(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"features.0.weight": torch.randn(64, 3, 3, 3), "features.0.bias": torch.randn(64)}, path)
    return path


def test_vgg_file_named_with_a_hash_prefix_must_match_it_before_it_is_read(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from imgan.train import vgg

    path = _tiny_vgg_state(tmp_path / "vgg19-00000000.pth")

    def never(*args, **kwargs):
        raise AssertionError("torch.load ran before the hash check")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(TrainingError, match="sha256") as caught:
        vgg.resolve_vgg_weights(path)
    assert "00000000" in caught.value.message
    renamed = _tiny_vgg_state(tmp_path / "vgg19_imagenet_conv1_1-conv3_4.pth")  # a known name, other bytes
    with pytest.raises(TrainingError, match="sha256"):
        vgg.resolve_vgg_weights(renamed)


def test_torchvision_fallback_checks_its_cached_file(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from imgan.train import vgg

    monkeypatch.delenv(vgg.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    _tiny_vgg_state(cached)  # a file of the right name but not torchvision's bytes
    with pytest.raises(TrainingError, match="dcbb9e9d"):
        vgg.VGGFeatures(["relu1_1"])


class _Trap:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_vgg_files_are_never_unpickled_in_full(tmp_path):
    torch = pytest.importorskip("torch")
    from imgan.train import vgg

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Trap(str(marker))}, path)
    (tmp_path / "evil.pth.json").write_text(json.dumps({"convention": "torchvision"}))
    with pytest.raises(TrainingError):
        vgg.resolve_vgg_weights(path)
    assert not marker.exists()


def test_running_out_of_memory_is_one_line_with_what_to_do(tmp_path, monkeypatch):
    from imgan.pipeline import RunOptions, run_task

    def transform(picture, progress=None):
        raise MemoryError()

    source = save_png(tmp_path / "big.png", gradient_image(8, 8))
    report = run_task([str(source)], transform, task="t", options=RunOptions(output=tmp_path / "out.png"))
    message = report.failures[next(iter(report.failures))]
    assert "big.png" in message and "out of memory" in message and "--tile" in message
