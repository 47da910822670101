"""The built wheel carries the shipped weights and runs a task offline in a fresh environment."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, gradient_image, save_png


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    return next(out.glob("imgan-*.whl"))


def test_wheel_contains_weights_cards_and_plugins(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "imgan_weights/bicubic-x2.onnx" in names and "imgan_weights/bicubic-x2.json" in names
    assert "imgan_bicubic/__init__.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[imgan]" in entry_points and "bicubic = imgan_bicubic" in entry_points


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_offline(wheel, tmp_path):
    """Fresh venv, the wheel installed without its source tree, dependencies borrowed read-only."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    fresh_python = venv / "bin" / "python"
    site = Path(subprocess.run([str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    # Our dependencies (numpy, onnxruntime, …) come from this environment's site-packages, added as a plain path
    # so its .pth files — including the editable install of the checkout — are NOT processed.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = save_png(tmp_path / "work" / "a.png", gradient_image(20, 24))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "IMGAN_HOME": str(tmp_path / "home"),
           "NO_PROXY": "*", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    where = subprocess.run([str(fresh_python), "-c", "import imgan, imgan_weights; print(imgan.__file__); "
                            "print(imgan_weights.__file__)"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(site)) for line in where.stdout.split()), where.stdout
    run = subprocess.run([str(fresh_python), "-m", "imgan", "bicubic", str(source), "--device", "cpu"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    from PIL import Image

    assert np.asarray(Image.open(tmp_path / "work" / "a.bicubic.png")).shape == (40, 48, 3)
    verify = subprocess.run([str(fresh_python), "-m", "imgan", "weights", "verify"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "bicubic/x2" in verify.stdout
