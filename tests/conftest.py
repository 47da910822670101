from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ASSETS = (REPO.parent / "shared" / "assets").resolve()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """User weights and runs go to a fresh $IMGAN_HOME per test, never ~/.cache/imgan."""
    home = tmp_path_factory.mktemp("imgan_home")
    monkeypatch.setenv("IMGAN_HOME", str(home))
    monkeypatch.delenv("IMGAN_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("IMGAN_DISABLE_PLUGINS", raising=False)
    return home


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run `python -m imgan ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "imgan", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def gradient_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour image with a little texture: (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0.5 * np.sin(x / 5.0 + y / 7.0)], axis=-1)
    rgb = rgb * 200 + rng.integers(0, 40, size=rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def save_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def shared_assets() -> Path:
    if not SHARED_ASSETS.is_dir():
        pytest.skip("../shared/assets is not beside the checkout")
    return SHARED_ASSETS
