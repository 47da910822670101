"""--engine ray on a real (local) Ray: the same outputs, skips, failures and resume as the local engine,
and no output lost or corrupt when a worker dies. One Ray instance for the module."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import imgan  # noqa: E402
from imgan.engines.ray_engine import EXIT_ONCE_VARIABLE  # noqa: E402

from .conftest import REPO, gradient_image, run_cli, save_png  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A 2-CPU local Ray shared by the module's tests (the engine uses it and leaves it running)."""
    home = tmp_path_factory.mktemp("ray_imgan_home")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"IMGAN_HOME": str(home)}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def make_tree(root: Path) -> Path:
    """Nested folders, an RGBA PNG, a 16-bit PNG, a JPEG and one broken file."""
    import cv2

    save_png(root / "a.png", gradient_image(20, 28, seed=1))
    save_png(root / "sub" / "b.png", gradient_image(16, 24, seed=2))
    save_png(root / "sub" / "deeper" / "c.png", gradient_image(18, 18, seed=3))
    rgba = np.dstack([gradient_image(16, 20, seed=4), np.linspace(0, 255, 16 * 20).reshape(16, 20).astype(np.uint8)])
    save_png(root / "sub" / "alpha.png", rgba)
    deep = gradient_image(14, 22, seed=5).astype(np.uint16) * 257 + 7
    cv2.imwrite(str(root / "sub" / "deep16.png"), np.ascontiguousarray(deep[..., ::-1]))
    from PIL import Image

    Image.fromarray(gradient_image(16, 16, seed=6)).save(root / "photo.jpg", quality=90)
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


CASES = {"bicubic": {}, "sr": {"model": "srresnet"}}


def run(task, tree, out, **kwargs):
    """imgan.bicubic / imgan.upscale over the tree (the Python API's verbs; engine= passes through)."""
    verb = {"bicubic": imgan.bicubic, "sr": imgan.upscale}[task]
    return verb(tree, output=out, recursive=True, threads=1, **CASES[task], **kwargs)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def names(jobs) -> list[str]:
    return [str(job.source) for job in jobs]


@pytest.mark.parametrize("task", list(CASES))
def test_ray_outputs_equal_the_local_engine_bit_for_bit(ray_address, tmp_path, task):
    tree = make_tree(tmp_path / "photos")
    local, spread = tmp_path / "local", tmp_path / "ray"
    for out in (local, spread):  # one output exists before the run: both engines skip it
        save_png(out / "sub" / "b.png", np.zeros((4, 4, 3), np.uint8))
    expected = run(task, tree, local)
    report = run(task, tree, spread, engine="ray", workers=2, batch_size=2)
    assert files(spread) == files(local)
    assert names(report.done) == names(expected.done) and len(report.done) == 5
    assert names(report.skipped) == names(expected.skipped) == [str(tree / "sub" / "b.png")]
    assert list(report.failures) == list(expected.failures) == [str(tree / "sub" / "broken.png")]
    assert report.failures == expected.failures and "broken.png" in report.failures[str(tree / "sub" / "broken.png")]


def test_resume_after_a_killed_driver_writes_each_output_once(ray_address, tmp_path):
    tree = make_tree(tmp_path / "photos")
    reference, out = tmp_path / "reference", tmp_path / "out"
    run("bicubic", tree, reference)
    wanted = files(reference)
    kept = sorted(wanted)[::2]  # half the outputs were written before the driver was killed...
    for name in kept:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(wanted[name])
    missing = next(name for name in sorted(wanted) if name not in kept)
    stale = (out / missing).with_name(f".{Path(missing).name}.0123abcd.part")  # ...one of them mid-write
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a png")
    report = run("bicubic", tree, out, engine="ray", batch_size=1)
    assert files(out) == wanted  # every output once, complete; the stale temp file is gone
    assert not list(out.rglob("*.part"))
    assert sorted(str(job.output.relative_to(out)) for job in report.skipped) == kept
    assert len(report.done) == len(wanted) - len(kept) and len(report.failures) == 1


def test_a_worker_that_dies_loses_and_corrupts_no_output(ray_address, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "photos")
    reference, out = tmp_path / "reference", tmp_path / "out"
    run("bicubic", tree, reference)
    marker = tmp_path / "worker-died"
    monkeypatch.setenv(EXIT_ONCE_VARIABLE, str(marker))  # the first call exits its process after one file
    report = run("bicubic", tree, out, engine="ray", workers=2, batch_size=3)
    assert marker.exists()
    assert files(out) == files(reference) and not list(out.rglob("*.part"))
    assert len(report.done) == 6 and not report.skipped and list(report.failures) == [str(tree / "sub" / "broken.png")]


def test_cli_lists_bad_inputs_by_name_and_exits_1_without_traceback(ray_address, tmp_path):
    tree = make_tree(tmp_path / "photos")
    (tree / "empty.png").write_bytes(b"")
    result = run_cli("bicubic", tree, "-r", "-o", tmp_path / "out", "--engine", "ray", "--ray-address", ray_address,
                     "--threads", "1", "--workers", "2", cwd=REPO, timeout=180)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failures = result.stderr.split("failures:")[1]
    assert "broken.png" in failures and "empty.png" in failures
    assert "6 done, 2 failed" in result.stderr
    assert result.stdout.count("wrote ") == 6
    shutil.rmtree(tmp_path / "out")
