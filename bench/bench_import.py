"""Imported community model figures (issue 15): `.venv/bin/python bench/bench_import.py [--json] [--threads N]`.

For Real-ESRGAN x4plus (RRDBNet, 16.7 M parameters), imported with `imgan weights import`:
1. the import itself (seconds; ONNX Runtime vs PyTorch parity), unless it is already imported;
2. ONNX Runtime (imgan's session) vs spandrel's PyTorch model on the same 128x128 input with the
   same threads: seconds each, the ratio, output megapixels per second;
3. peak RSS of a tiled `imgan upscale` of a 2000x1500 image, in a subprocess (resource.getrusage
   RUSAGE_CHILDREN ru_maxrss). Its time is predicted from (2) first: a size predicted to take more than
   --budget seconds (default 300) falls back to 1000x750, then 500x375, and the output says so.
   The tile edge (auto: 256 for these sizes) and so the model's working memory do not change with the
   image size; the output buffer does (width x height x 16 x 3 bytes), which is printed alongside.
The source file is read from ../shared/assets/zoo (not part of the repository).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_style import median_time  # bench/ is on sys.path when a script in it runs

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO.parent / "shared" / "assets" / "zoo"
SOURCE = ZOO / "RealESRGAN_x4plus.safetensors"
PHOTO = REPO.parent / "shared" / "assets" / "photos" / "samples" / "chelsea.png"
NAME = "realesrgan_x4plus"
RSS_SIZES = ((2000, 1500), (1000, 750), (500, 375))


def imported(source: Path, threads: int) -> tuple[object, dict]:
    """The imported weights (importing them into $IMGAN_HOME first when they are not there)."""
    from imgan.weights import weights_for_task

    found = weights_for_task("sr").get(NAME)
    if found is not None and found.card.model_config.get("source_file") == source.name:
        return found, {"import_s": None, "note": f"already imported: {found.file}"}
    import torch

    from imgan.train.importer import import_model

    torch.set_num_threads(threads)
    report = import_model(source, name=NAME, licence="BSD-3-Clause (Real-ESRGAN, Copyright (c) 2021 Xintao Wang)",
                          overwrite=True)
    return weights_for_task("sr")[NAME], {"import_s": report.seconds, "parity_max_abs_diff": report.parity_max_abs_diff,
                                          "parity_sizes": report.parity_sizes}


def onnx_vs_torch(weights, source: Path, size: int, threads: int, runs: int) -> dict:
    import spandrel
    import torch

    from imgan.runtime.session import load_model

    torch.set_num_threads(threads)
    session = load_model(weights.verified_path(), device="cpu", threads=threads)
    descriptor = spandrel.ModelLoader().load_from_file(source).float().eval()
    lr = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    lr_tensor = torch.from_numpy(lr)

    def run_torch():
        with torch.inference_mode():
            return descriptor(lr_tensor)

    difference = float(np.abs(session(lr) - run_torch().numpy()).max())
    onnx_s = median_time(lambda: session(lr), runs)
    torch_s = median_time(run_torch, runs)
    output_mp = (size * weights.scale) ** 2 / 1e6
    return {"weights": weights.name, "input": f"{size}x{size}", "threads": threads, "runs": runs,
            "onnx_s": onnx_s, "torch_s": torch_s, "torch_over_onnx": torch_s / onnx_s,
            "onnx_output_mp_per_s": output_mp / onnx_s, "torch_output_mp_per_s": output_mp / torch_s,
            "max_abs_diff": difference}


def tiled_upscale_rss(weights, threads: int, output_mp_per_s: float, budget_s: float) -> dict:
    """Peak RSS of `imgan upscale` (auto tiles) in a child process, on the largest size predicted to fit the budget."""
    from PIL import Image

    from imgan.runtime.tiling import auto_tile_size

    predicted = {f"{w}x{h}": round(w * h * weights.scale ** 2 / 1e6 / output_mp_per_s, 1) for w, h in RSS_SIZES}
    width, height = next(((w, h) for w, h in RSS_SIZES if predicted[f"{w}x{h}"] <= budget_s), RSS_SIZES[-1])
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / f"photo-{width}x{height}.png"
        Image.open(PHOTO).convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(source)
        command = [sys.executable, "-m", "imgan", "upscale", str(source), "--weights", weights.name, "--device", "cpu",
                   "--threads", str(threads), "-o", str(Path(folder) / "out.png")]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        seconds = time.perf_counter() - began
        if done.returncode:
            raise SystemExit(f"imgan upscale failed: {done.stderr.strip()[-2000:]}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    return {"size": f"{width}x{height}", "wanted": "2000x1500", "predicted_s": predicted, "budget_s": budget_s,
            "tile": auto_tile_size(height, width, scale=weights.scale, overlap=weights.tile_overlap,
                                   multiple=weights.pad_multiple),
            "overlap": weights.tile_overlap, "seconds": seconds, "peak_rss_mib": peak_mib,
            "output_mp_per_s": width * height * weights.scale ** 2 / 1e6 / seconds,
            "output_buffer_mib": width * height * weights.scale ** 2 * 3 / 2 ** 20,
            "output_buffer_mib_2000x1500": 2000 * 1500 * weights.scale ** 2 * 3 / 2 ** 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the community file (default: the zoo's x4plus)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both runtimes and the upscale")
    parser.add_argument("--size", type=int, default=128, help="LR edge for the runtime comparison")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds the RSS upscale may be predicted to take")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.source.is_file():
        raise SystemExit(f"{args.source} is not there (the shared assets' zoo folder)")
    weights, import_figures = imported(args.source, args.threads)
    runtime = onnx_vs_torch(weights, args.source, args.size, args.threads, args.runs)
    rss = tiled_upscale_rss(weights, args.threads, runtime["onnx_output_mp_per_s"], args.budget)
    figures = {"import": import_figures, "runtime": runtime, "tiled_upscale": rss}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    i, r, t = import_figures, runtime, rss
    if i["import_s"] is None:
        print(f"import                 {i['note']}")
    else:
        print(f"import                 {args.source.name}: {i['import_s']:.1f} s, ONNX Runtime vs PyTorch max |diff| "
              f"{i['parity_max_abs_diff']:.2g} at {', '.join(f'{h}x{w}' for h, w in i['parity_sizes'])}")
    print(f"ONNX Runtime vs torch  {r['weights']} on {r['input']}, {r['threads']} thread(s), median of {r['runs']}: "
          f"{r['onnx_s']:.2f} s vs {r['torch_s']:.2f} s → torch/ORT {r['torch_over_onnx']:.2f}×; "
          f"{r['onnx_output_mp_per_s']:.3f} output MP/s (torch {r['torch_output_mp_per_s']:.3f}); "
          f"max |diff| {r['max_abs_diff']:.2g}")
    fallback = "" if t["size"] == t["wanted"] else (
        f" (not {t['wanted']}: predicted {t['predicted_s'][t['wanted']]:.0f} s > {t['budget_s']:.0f} s budget)")
    print(f"tiled imgan upscale    {t['size']}{fallback}, tile {t['tile']} + overlap {t['overlap']}: "
          f"{t['seconds']:.1f} s, {t['output_mp_per_s']:.3f} output MP/s, peak RSS {t['peak_rss_mib']:.0f} MiB "
          f"(output buffer {t['output_buffer_mib']:.0f} MiB; {t['output_buffer_mib_2000x1500']:.0f} MiB at 2000x1500)")


if __name__ == "__main__":
    main()
