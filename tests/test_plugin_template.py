"""The template plugin examples/imgan_denoise, registered through the same hooks a third-party plugin uses:
trained (`imgan train denoise`, then --resume), exported by the core's generic `imgan export`, run on a file,
a nested folder and a video through imgan.api.run, and evaluated. It must also stay small."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imgan import plugins

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "imgan_denoise"
STEPS = 60
SIGMA = 25.0


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """Soft gradients and one sharp-edged disc: (H, W, 3) uint8 with nothing noise-like in it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.uniform(0, 6, 3)
    rgb = np.stack([0.5 + 0.35 * np.sin(3 * x + 2 * y + p) for p in phase], axis=-1)
    disc = (x - rng.uniform(0.3, 0.7)) ** 2 + (y - rng.uniform(0.2, 0.5)) ** 2 < 0.04
    rgb[disc] = rng.uniform(0.1, 0.9, 3)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def noisy(rgb: np.ndarray, seed: int) -> np.ndarray:
    return np.clip(rgb + np.random.default_rng(seed).normal(0, SIGMA, rgb.shape), 0, 255).round().astype(np.uint8)


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def invoke(*args) -> str:
    from imgan.cli import build_app

    result = CliRunner().invoke(build_app(), [str(arg) for arg in args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Install the example as a third-party plugin would be (an `imgan` entry point `denoise = imgan_denoise`),
    train it (2 steps, then resumed to STEPS) and export it. Only this plugin is loaded: the test does not
    depend on the state of the built-in ones."""
    root = tmp_path_factory.mktemp("denoise")
    info = root / "site" / "imgan_denoise-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: imgan_denoise\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[imgan]\ndenoise = imgan_denoise\n")
    for index in range(3):
        save(root / "photos" / f"p{index}.png", smooth_image(64, 80, index))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE.parent))
        patch.syspath_prepend(str(root / "site"))
        patch.setenv("IMGAN_LOAD_PLUGINS", "denoise")
        patch.setattr(plugins, "_state", None)  # a fresh discovery now, the usual one again afterwards
        plugins.get_state()
        run_dir = root / "run"
        common = ["--data", root / "photos", "--run-dir", run_dir, "--threads", 1, "--device", "cpu"]
        invoke("train", "denoise", *common, "--steps", 2)
        assert (run_dir / "latest.pt").is_file() and (run_dir / "run.json").is_file()
        invoke("train", "denoise", *common, "--steps", STEPS, "--resume")
        onnx = root / "denoise-tiny.onnx"
        invoke("export", "denoise", run_dir / "latest.pt", "-o", onnx)
        yield root, onnx


def test_the_task_comes_from_the_plugin_and_names_its_parts(trained):
    import imgan

    task = imgan.get_task("denoise")
    assert task.plugin == "denoise" and task.verb == "denoise" and task.default_weights is None
    assert all(isinstance(getattr(task, part), str) for part in ("make_transform", "model", "train", "evaluate"))
    assert task.resolve("model").running({"channels": 16, "layers": 3}).tile_overlap == 3


def test_the_exported_card_describes_the_run(trained):
    from imgan.cards import read_card

    root, onnx = trained
    card = read_card(onnx.with_suffix(".json"))
    assert (card.task, card.name, card.file) == ("denoise", "tiny", "denoise-tiny.onnx")
    assert card.model_config == {"channels": 16, "layers": 3}
    assert (card.running.scale, card.running.pad_multiple, card.running.tile_overlap) == (1, 1, 3)
    assert card.provenance.steps == STEPS and len(card.provenance.resumptions) == 1
    assert card.provenance.recipe["sigma"] == SIGMA and card.provenance.recipe["losses"] == {"l1": 1.0}
    assert not Path(card.provenance.data).is_absolute()
    assert "Gaussian denoiser" in card.description and card.export.parity_max_abs_diff < 1e-4


def test_the_weights_run_on_a_file_a_nested_folder_and_a_video(trained, tmp_path):
    import imgan
    from imgan.io.video import probe_video, write_video
    from imgan.pipeline import RunOptions

    _, onnx = trained
    clean = smooth_image(48, 64, seed=7)
    source = save(tmp_path / "noisy.png", noisy(clean, seed=1))
    report = imgan.run("denoise", [source], weights=onnx, device="cpu", threads=1)
    assert report.ok and len(report.done) == 1
    denoised = np.asarray(Image.open(tmp_path / "noisy.denoise.png"))
    assert denoised.shape == clean.shape
    assert mse(denoised, clean) < 0.7 * mse(np.asarray(Image.open(source)), clean)

    save(tmp_path / "in" / "a.png", noisy(smooth_image(40, 56, 2), 2))
    save(tmp_path / "in" / "sub" / "b.png", noisy(smooth_image(33, 21, 3), 3))
    report = imgan.run("denoise", [tmp_path / "in"], weights=onnx, device="cpu",
                       options=RunOptions(output=tmp_path / "out", recursive=True))
    assert report.ok and len(report.done) == 2
    assert Image.open(tmp_path / "out" / "a.png").size == (56, 40)
    assert Image.open(tmp_path / "out" / "sub" / "b.png").size == (21, 33)

    clip = write_video((noisy(smooth_image(48, 64, 9), seed) for seed in range(6)), tmp_path / "clip.mp4", fps=6)
    report = imgan.run("denoise", [clip], weights=onnx, device="cpu")
    assert report.ok
    info = probe_video(tmp_path / "clip.denoise.mp4")
    assert (info.width, info.height, info.frame_count) == (64, 48, 6)


def test_the_verb_options_tiling_and_evaluation(trained, tmp_path):
    from imgan.api import build_transform
    from imgan.cards import read_card
    from imgan.errors import UsageError
    from imgan.io.images import read_image

    root, onnx = trained
    source = save(tmp_path / "n.png", noisy(smooth_image(70, 90, 4), 4))
    picture = read_image(source)
    whole = build_transform("denoise", weights=onnx, device="cpu")(picture).rgb
    # overlap = receptive radius: tiles give the one-pass result
    tiled = build_transform("denoise", weights=onnx, device="cpu", tile=16)(picture).rgb
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1

    invoke("denoise", source, "--weights", onnx, "--strength", "0.5", "-o", tmp_path / "half.png")
    half = np.asarray(Image.open(tmp_path / "half.png"))
    assert half.shape == picture.rgb.shape and 0 < mse(half, picture.rgb) < mse(whole, picture.rgb)
    with pytest.raises(UsageError, match="strength"):
        build_transform("denoise", weights=onnx, strength=2.0)

    figures = json.loads(invoke("eval", "denoise", "--data", root / "photos", "--weights", onnx, "--json",
                                "--update-card", "--device", "cpu"))
    assert figures["images"] == 3 and figures["psnr_denoised"] > figures["psnr_noisy"] and figures["gain_db"] > 0
    assert read_card(onnx.with_suffix(".json")).metrics["gaussian-25"] == figures


MODULES_AFTER_MAIN = """
import sys
from imgan.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in ("numpy", "torch", "onnxruntime") if m in sys.modules))
"""


def test_help_loads_nothing_heavy_and_the_verb_no_torch(trained, tmp_path):
    import os
    import subprocess
    import sys

    root, onnx = trained
    source = save(tmp_path / "n.png", noisy(smooth_image(24, 32, 5), 5))
    path = os.pathsep.join([str(root / "site"), str(EXAMPLE.parent), *sys.path])
    env = {**os.environ, "PYTHONPATH": path, "IMGAN_LOAD_PLUGINS": "denoise"}
    cases = [(["--help"], "denoise", ""), (["train", "denoise", "--help"], "--sigma", ""),
             (["denoise", "--help"], "--strength", ""),
             (["denoise", str(source), "--weights", str(onnx), "--device", "cpu"], "wrote", "numpy,onnxruntime")]
    for argv, wanted, heavy in cases:
        result = subprocess.run([sys.executable, "-c", MODULES_AFTER_MAIN, *argv], env=env, capture_output=True,
                                text=True, timeout=120)
        out = result.stdout
        assert wanted in out and out.rstrip().endswith("HEAVY=" + heavy), out + result.stderr
    assert (tmp_path / "n.denoise.png").is_file()


def test_the_template_stays_small_and_the_walk_through_quotes_it():
    files = {path.name: path.read_text(encoding="utf-8").splitlines() for path in EXAMPLE.glob("*.py")}
    lines = sum(map(len, files.values()))
    assert lines < 300, f"examples/imgan_denoise has {lines} lines"
    docs = (EXAMPLE.parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert f"{lines} total" in docs, "update the line counts in docs/plugins.md"
    quoted = 0
    for block in docs.split("```python\n")[1:]:
        first, *code = block.split("```")[0].splitlines()
        if first.startswith("# examples/imgan_denoise/"):
            quoted += 1
            missing = [line for line in code if line.strip() != "..." and line not in files[first.rsplit("/", 1)[1]]]
            assert not missing, f"docs/plugins.md quotes {first[2:]} lines it does not have: {missing}"
    assert quoted == 7
