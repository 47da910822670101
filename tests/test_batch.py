"""Inputs to jobs, output naming, resume, failures that do not stop a batch, kills that leave no half file."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgan.errors import InputError, UsageError
from imgan.io.batch import plan_jobs
from imgan.pipeline import RunOptions, run_task

from .conftest import gradient_image, save_png


def invert(picture, progress=None):
    if progress:
        progress(1, 1)
    return picture.replace(rgb=255 - picture.rgb)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "photos"
    save_png(root / "a.png", gradient_image(seed=1))
    save_png(root / "sub" / "b.png", gradient_image(seed=2))
    (root / "notes.txt").write_text("not an image")
    return root


def test_default_output_is_stem_task_ext_beside_input(tree):
    jobs = plan_jobs([tree / "a.png"], task="sr")
    assert [j.output for j in jobs] == [tree / "a.sr.png"]


def test_folder_recursion_and_mirrored_output(tree, tmp_path):
    flat = plan_jobs([tree], task="sr", output=tmp_path / "out")
    assert [j.source.name for j in flat] == ["a.png"]
    deep = plan_jobs([tree], task="sr", output=tmp_path / "out", recursive=True, output_ext="jpg")
    assert [j.output for j in deep] == [tmp_path / "out" / "a.jpg", tmp_path / "out" / "sub" / "b.jpg"]


def test_glob_and_own_outputs_are_not_inputs(tree):
    save_png(tree / "a.sr.png", gradient_image())
    jobs = plan_jobs([str(tree / "*.png")], task="sr")
    assert [j.source.name for j in jobs] == ["a.png"]
    assert [j.source.name for j in plan_jobs([tree], task="sr")] == ["a.png"]


def test_single_file_output_and_bad_inputs(tree, tmp_path):
    assert plan_jobs([tree / "a.png"], task="sr", output=tmp_path / "x.webp")[0].output == tmp_path / "x.webp"
    with pytest.raises(InputError, match="no such file"):
        plan_jobs([tmp_path / "missing.png"], task="sr")
    with pytest.raises(UsageError, match="looks like a file"):
        plan_jobs([tree], task="sr", output=tmp_path / "x.png", recursive=True)
    with pytest.raises(UsageError, match="both be written"):
        save_png(tree / "a.jpg", gradient_image())
        plan_jobs([tree / "a.png", tree / "a.jpg"], task="sr", output=tmp_path / "o", output_ext="png")


def test_batch_goes_on_past_bad_files_and_reports_them(tree):
    (tree / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tree / "empty.jpg").write_bytes(b"")
    report = run_task([tree], invert, task="inv", options=RunOptions(recursive=True))
    assert sorted(j.source.name for j in report.done) == ["a.png", "b.png"]
    assert sorted(Path(k).name for k in report.failures) == ["broken.png", "empty.jpg"]
    assert all("broken.png" in m or "empty.jpg" in m for m in report.failures.values())
    written = np.asarray(Image.open(tree / "a.inv.png"))
    assert np.array_equal(written, 255 - gradient_image(seed=1))


def test_rerun_skips_done_outputs_and_explicit_existing_output_fails(tree):
    first = run_task([tree], invert, task="inv")
    second = run_task([tree], invert, task="inv")
    assert len(first.done) == 1 and len(second.done) == 0 and len(second.skipped) == 1
    explicit = run_task([tree / "a.png"], invert, task="inv")
    assert "--overwrite" in next(iter(explicit.failures.values()))
    forced = run_task([tree / "a.png"], invert, task="inv", options=RunOptions(overwrite=True))
    assert len(forced.done) == 1


def test_missing_output_folder_for_single_file_is_an_error(tree, tmp_path):
    report = run_task([tree / "a.png"], invert, task="inv", options=RunOptions(output=tmp_path / "nope" / "x.png"))
    assert len(report.failures) == 1 and "nope" in next(iter(report.failures.values()))


def test_unicode_paths(tmp_path):
    source = save_png(tmp_path / "fotos ünï" / "画像 1.png", gradient_image())
    report = run_task([source], invert, task="inv")
    assert report.ok and (source.parent / "画像 1.inv.png").is_file()


SLOW_BATCH = """
import sys, time
from imgan.pipeline import RunOptions, run_task

def slow_invert(picture, progress=None):
    time.sleep(0.4)
    return picture.replace(rgb=255 - picture.rgb)

run_task([sys.argv[1]], slow_invert, task="inv", options=RunOptions(output=sys.argv[2]))
"""


def test_killed_batch_leaves_only_complete_files_and_resumes(tmp_path):
    source = tmp_path / "in"
    for index in range(8):
        save_png(source / f"img{index}.png", gradient_image(96, 128, seed=index))
    out = tmp_path / "out"
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(SLOW_BATCH))
    process = subprocess.Popen([sys.executable, str(script), str(source), str(out)])
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("*.png"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(out.glob("*.png"))
    assert 2 <= len(finished) < 8
    for path in finished:  # every file at a final path is whole
        assert np.asarray(Image.open(path)).shape == (96, 128, 3)
    resumed = run_task([source], invert, task="inv", options=RunOptions(output=out))
    assert len(resumed.skipped) == len(finished) and len(resumed.done) == 8 - len(finished)
    # The temp file the kill interrupted is removed when its output is written at last; never a
    # partial file under a final name.
    assert [p for p in out.iterdir() if p.name.startswith(".")] == []
