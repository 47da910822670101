"""Super-resolution figures (issue 5): `.venv/bin/python bench/bench_sr.py [--json] [--threads N]`.

1. ONNX Runtime vs torch eager, the same ×4 generator on the same LR image, same threads (goal >= 2x),
   and output megapixels per second.
2. Tiled vs untiled `imgan upscale` transform on a photo: time ratio (goal <= 1.15x) with the
   automatic tile and with 2x2 even tiles, and the Y-PSNR difference against the HR photo (goal < 0.01 dB).
The torch twin is built from the card's architecture with random weights: timing does not depend on
the values of the weights, only on the operations.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench_style import median_time  # bench/ is on sys.path when a script in it runs

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
# 868x600: a centre crop of it is the LR input for timing; the whole of it is the HR for quality.
PHOTO = ASSETS / "photos" / "samples" / "building.jpg"


def shipped(name: str):
    from imgan.weights import resolve_weights

    return resolve_weights("sr", name)


def onnx_vs_torch(weights, size: int, threads: int, runs: int) -> dict:
    import torch

    from imgan.runtime.session import load_model
    from imgan_srgan.model import build_generator

    torch.set_num_threads(threads)
    session = load_model(weights.verified_path(), device="cpu", threads=threads)
    generator = build_generator({"generator": weights.extra["architecture"]["generator"]}).eval()
    lr = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    lr_tensor = torch.from_numpy(lr)

    def run_torch():
        with torch.inference_mode():
            generator(lr_tensor)

    onnx_s = median_time(lambda: session(lr), runs)
    torch_s = median_time(run_torch, runs)
    output_mp = (size * weights.scale) ** 2 / 1e6
    return {"weights": weights.name, "input": f"{size}x{size}", "threads": threads, "onnx_s": onnx_s,
            "torch_s": torch_s, "speedup": torch_s / onnx_s, "onnx_output_mp_per_s": output_mp / onnx_s,
            "goal": "speedup >= 2"}


def tiled_vs_untiled(weights, threads: int, runs: int, timing_edge: int) -> dict:
    from imgan.io.images import Picture, read_image
    from imgan.runtime.tiling import auto_tile_size
    from imgan_srgan.infer import make_transform
    from imgan_srgan.protocol import make_eval_image, measure

    def transform(tile):
        return make_transform(weights=str(weights.file), device="cpu", threads=threads, tile=tile)

    photo = read_image(PHOTO).rgb
    top, left = (photo.shape[0] - timing_edge) // 2, (photo.shape[1] - timing_edge) // 2
    picture = Picture(rgb=np.ascontiguousarray(photo[top:top + timing_edge, left:left + timing_edge]), alpha=None)
    auto = auto_tile_size(timing_edge, timing_edge, scale=weights.scale, multiple=weights.pad_multiple)
    halves = -(-timing_edge // 2)  # 2x2 tiles that split the image evenly: the least overlap work
    whole = timing_edge + 64
    times = {tile: median_time(lambda t=tile: transform(t)(picture), runs) for tile in (whole, auto, halves)}

    hr_image = make_eval_image(PHOTO.stem, photo, weights.scale)
    lr = Picture(rgb=hr_image.lr, alpha=None)
    small_tile = 48  # many tiles on this small LR image, so every kind of seam occurs
    untiled_q = measure(transform(whole)(lr).rgb, hr_image.hr, border=weights.scale)
    tiled_q = measure(transform(small_tile)(lr).rgb, hr_image.hr, border=weights.scale)
    return {
        "photo": f"{PHOTO.name} centre {timing_edge}x{timing_edge} -> x{weights.scale}",
        "overlap": weights.extra.get("tile_overlap"), "untiled_s": times[whole],
        "auto_tile": auto, "auto_tiled_s": times[auto], "auto_ratio": times[auto] / times[whole],
        "even_tile": halves, "even_tiled_s": times[halves], "even_ratio": times[halves] / times[whole],
        "upscale_output_mp_per_s": (timing_edge * weights.scale) ** 2 / 1e6 / times[whole],
        "quality_photo": f"{PHOTO.name} as HR, LR {hr_image.lr.shape[1]}x{hr_image.lr.shape[0]}, tile {small_tile}",
        "psnr_untiled_db": untiled_q.psnr_y, "psnr_tiled_db": tiled_q.psnr_y,
        "psnr_difference_db": abs(untiled_q.psnr_y - tiled_q.psnr_y),
        "goal": "ratio <= 1.15, difference < 0.01 dB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="srresnet-x4", help="sr weights name (default srresnet-x4)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both runtimes")
    parser.add_argument("--size", type=int, default=128, help="LR edge for the runtime comparison")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timing-edge", type=int, default=384, help="LR edge of the photo crop timed tiled/untiled")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    weights = shipped(args.weights)
    figures = {"runtime": onnx_vs_torch(weights, args.size, args.threads, args.runs),
               "tiling": tiled_vs_untiled(weights, args.threads, args.runs, args.timing_edge)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    r, t = figures["runtime"], figures["tiling"]
    print(f"ONNX Runtime vs torch  {r['weights']} on {r['input']}, {r['threads']} thread(s): {r['onnx_s']:.3f} s vs "
          f"{r['torch_s']:.3f} s → {r['speedup']:.2f}×  (goal ≥ 2×); {r['onnx_output_mp_per_s']:.2f} output MP/s")
    print(f"tiled vs untiled       {t['photo']}, overlap {t['overlap']}: untiled {t['untiled_s']:.2f} s; "
          f"auto tile {t['auto_tile']}: {t['auto_tiled_s']:.2f} s → {t['auto_ratio']:.2f}×; "
          f"even 2x2 tile {t['even_tile']}: {t['even_tiled_s']:.2f} s → {t['even_ratio']:.2f}×  (goal ≤ 1.15×); "
          f"{t['upscale_output_mp_per_s']:.2f} output MP/s untiled")
    print(f"tiling quality         {t['quality_photo']}: Y-PSNR untiled {t['psnr_untiled_db']:.4f} dB, tiled "
          f"{t['psnr_tiled_db']:.4f} dB → difference {t['psnr_difference_db']:.4f} dB  (goal < 0.01 dB)")


if __name__ == "__main__":
    main()
