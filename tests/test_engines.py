"""The engine choice: Ray is imported only for --engine ray, a missing Ray is one line, bad combinations
are usage errors. None of these needs Ray installed."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import imgan
from imgan.errors import UsageError

from .conftest import REPO, gradient_image, run_cli, save_png


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_help_and_local_verbs_never_import_ray(tmp_path):
    image = save_png(tmp_path / "a.png", gradient_image(8, 8))
    result = python(f"""
        import sys
        from imgan.cli import main
        for argv in (["--help"], ["bicubic", "--help"], ["bicubic", {str(image)!r}, "-o", {str(tmp_path / "b.png")!r}]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code in (0, None), (argv, exc.code)
        print("RAY" if any(name == "ray" or name.startswith("ray.") for name in sys.modules) else "NO RAY")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("NO RAY")
    assert (tmp_path / "b.png").exists()


def test_a_missing_ray_is_one_line_with_the_install_command(tmp_path):
    image = save_png(tmp_path / "a.png", gradient_image(8, 8))
    result = python(f"""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        from imgan.cli import main
        main(["bicubic", {str(image)!r}, "-o", {str(tmp_path / "b.png")!r}, "--engine", "ray"])
    """)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and "pip install 'imgan[ray]'" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b.png").exists()


def test_engine_options_are_checked(tmp_path):
    image = save_png(tmp_path / "a.png", gradient_image(8, 8))
    with pytest.raises(UsageError, match="unknown engine"):
        imgan.run("bicubic", [image], engine="spark")
    with pytest.raises(UsageError, match="--workers applies to the ray engine"):
        imgan.run("bicubic", [image], workers=2)
    with pytest.raises(UsageError, match="in-memory image"):
        imgan.bicubic(np.zeros((8, 8, 3), np.uint8), engine="ray")
    assert imgan.bicubic(np.zeros((8, 8, 3), np.uint8), engine="local").shape == (16, 16, 3)


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path):
    pytest.importorskip("ray")
    image = save_png(tmp_path / "a.png", gradient_image(8, 8))
    result = run_cli("bicubic", image, "-o", tmp_path / "b.png", "--engine", "ray", "--ray-address", "127.0.0.1:1",
                     timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot connect to the Ray cluster at 127.0.0.1:1" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "b.png").exists()
