"""Core figures of imgan, measured in one run (issue 2): `make bench` or `.venv/bin/python bench/run.py`.

1. CLI start-up: `imgan --version` (plugins loaded, app built) vs `python -c "import typer, rich"`.
2. Tiled vs untiled inference time, and their PSNR difference, on a real model.
3. Video pipeline fps (decode → model → encode threads) vs the model alone on frames in memory.
4. Peak RSS of a ×4 tiled upscale of a 4000×3000 image through the CLI (read, tile, write).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
PY = sys.executable


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def startup(runs: int) -> dict:
    # Compare like with like: typer and rich were byte-compiled when pip installed them, so our
    # sources are too (an installed wheel is; an editable checkout under PYTHONDONTWRITEBYTECODE=1
    # would otherwise compile ~60 modules on every start, about 30 ms).
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "imgan"), str(REPO / "plugins")], check=True,
                   capture_output=True)
    cli = median_seconds([PY, "-m", "imgan", "--version"], runs)
    baseline = median_seconds([PY, "-c", "import typer, rich"], runs)
    return {"cli_s": cli, "typer_rich_s": baseline, "ratio": cli / baseline, "goal": "<= 1.5"}


def _real_model():
    """The best real image-to-image model available: shipped SRResNet ×4, else bicubic ×2."""
    from imgan.runtime.session import load_model
    from imgan.weights import catalogue

    table = catalogue()
    for task, name in (("sr", "srresnet-x4"), ("bicubic", "x2")):
        if name in table.get(task, {}):
            weights = table[task][name]
            return f"{task}/{name}", load_model(weights.verified_path(), device="cpu"), weights
    raise SystemExit("no weights installed")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def tiling(size: int, repeats: int) -> dict:
    from imgan.runtime.model_transform import tile_overlap
    from imgan.runtime.tiling import auto_tile_size, tiled_apply

    name, model, weights = _real_model()
    rng = np.random.default_rng(0)
    image = (np.clip(np.cumsum(rng.normal(0, 6, (size, size, 3)), axis=1) % 256, 0, 255)).astype(np.uint8)
    tile = auto_tile_size(size, size, scale=weights.scale, multiple=weights.pad_multiple)
    common = dict(scale=weights.scale, overlap=tile_overlap(weights), multiple=weights.pad_multiple)

    def best(tile_edge):
        times, out = [], None
        for _ in range(repeats):
            began = time.perf_counter()
            out = tiled_apply(model, image, tile=tile_edge, **common)
            times.append(time.perf_counter() - began)
        return min(times), out

    untiled_s, untiled = best(size + 64)
    tiled_s, tiled = best(tile)
    reference = untiled  # PSNR of each against the untiled result: tiled must be (almost) identical
    return {"model": name, "image": f"{size}x{size}", "tile": tile, "untiled_s": untiled_s, "tiled_s": tiled_s,
            "ratio": tiled_s / untiled_s, "max_abs_diff": float(np.abs(tiled - untiled).max()),
            "psnr_tiled_vs_untiled_db": psnr(tiled, reference), "goal": "ratio <= 1.15, < 0.01 dB"}


def video(frames: int) -> dict:
    from imgan.api import build_transform
    from imgan.io.video import read_frames, transform_video
    from imgan.pipeline import frames_through
    from imgan.weights import catalogue

    clip = ASSETS / "videos" / "vtest.avi"
    task, options = "bicubic", {}
    if "monet" in catalogue().get("style", {}):
        task, options = "style", {"style": "monet"}
    frame_fn = frames_through(build_transform(task, device="cpu", **options))
    decoded = list(read_frames(clip, max_frames=frames))
    began = time.perf_counter()
    for frame in decoded:
        frame_fn(frame)
    model_fps = len(decoded) / (time.perf_counter() - began)
    with tempfile.TemporaryDirectory() as folder:
        result = transform_video(clip, Path(folder) / "out.mp4", frame_fn, max_frames=frames)
    pipeline_fps = result.frames / result.seconds
    return {"task": task, "frames": result.frames, "model_only_fps": model_fps, "pipeline_fps": pipeline_fps,
            "ratio": pipeline_fps / model_fps, "goal": ">= 0.9"}


def peak_rss() -> dict:
    """A ×4 bicubic ONNX model through `imgan bicubic --weights`: the memory of the whole flow."""
    from PIL import Image

    sys.path.insert(0, str(REPO / "plugins"))
    from imgan_bicubic.build import build_model

    import onnx

    from imgan.train.export import write_model_card

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model_path = folder / "bicubic-x4.onnx"
        onnx.save(build_model(4), model_path)
        write_model_card(model_path, {"name": "x4", "task": "bicubic", "scale": 4, "tile_overlap": 4})
        y, x = np.mgrid[0:3000, 0:4000]
        rgb = np.stack([(x * 255 // 4000), (y * 255 // 3000), ((x + y) % 256)], axis=-1).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "big.jpg", quality=90)
        del rgb, x, y
        command = [PY, "-m", "imgan", "bicubic", str(folder / "big.jpg"), "--weights", str(model_path), "-o",
                   str(folder / "big_x4.jpg"), "--device", "cpu", "--max-pixels", "300000000"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - began
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        Image.MAX_IMAGE_PIXELS = None  # our own output; only its header is read
        size = Image.open(folder / "big_x4.jpg").size
    return {"output": f"{size[0]}x{size[1]}", "peak_rss_gib": max(peak_kib, before) / 2**20, "seconds": seconds,
            "goal": "<= 2.5 GiB"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # Peak RSS first: Linux counts a child's resident pages before exec too (fork shares the
    # parent's), so measured after the other parts it would include this process's own gigabytes.
    figures = {"peak_rss": peak_rss(), "startup": startup(args.runs), "tiling": tiling(args.size, 2),
               "video": video(args.frames)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    s, t, v, m = figures["startup"], figures["tiling"], figures["video"], figures["peak_rss"]
    print(f"CLI start-up      {s['cli_s']*1000:.0f} ms vs import typer, rich {s['typer_rich_s']*1000:.0f} ms"
          f"  → {s['ratio']:.2f}×  (goal ≤ 1.5×)")
    print(f"tiled vs untiled  {t['model']} on {t['image']}, tile {t['tile']}: {t['tiled_s']:.2f} s vs "
          f"{t['untiled_s']:.2f} s → {t['ratio']:.2f}×  (goal ≤ 1.15×); max |Δ| {t['max_abs_diff']:.2e}, "
          f"PSNR(tiled, untiled) {t['psnr_tiled_vs_untiled_db']:.1f} dB")
    print(f"video pipeline    {v['task']}: {v['pipeline_fps']:.1f} fps vs model only {v['model_only_fps']:.1f} fps"
          f" → {v['ratio']:.2f}  (goal ≥ 0.9)")
    print(f"peak RSS          ×4 tiled upscale 4000x3000 → {m['output']}: {m['peak_rss_gib']:.2f} GiB in "
          f"{m['seconds']:.1f} s  (goal ≤ 2.5 GiB)")


if __name__ == "__main__":
    main()
