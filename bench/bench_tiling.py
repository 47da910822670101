"""Time tiled vs untiled inference of a small ONNX conv net on one image and print the ratio.

Run from the repository root: .venv/bin/python bench/bench_tiling.py [--size 1024 --tile 256 --threads 1]
Needs torch only to export the throwaway net; inference itself runs on ONNX Runtime.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a plain script from a checkout: make imgan and the tests' net importable without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgan.runtime.tiling import tiled_apply  # noqa: E402
from tests.test_tiling import export_conv_x2, onnx_cpu_model  # noqa: E402


def best_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conv_x2.onnx"
        export_conv_x2(path, features=16)
        model = onnx_cpu_model(path, threads=args.threads)  # the session holds the model; the file may go

    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    common = dict(scale=2, overlap=args.overlap, out_dtype=np.uint8)
    untiled = best_time(lambda: tiled_apply(model, image, tile=args.size, **common), args.repeats)
    tiled = best_time(lambda: tiled_apply(model, image, tile=args.tile, batch=args.batch, **common), args.repeats)
    print(f"image {args.size}x{args.size} x2, overlap {args.overlap}, threads {args.threads}")
    print(f"untiled            {untiled * 1000:9.1f} ms")
    print(f"tiled (tile {args.tile:4d})  {tiled * 1000:9.1f} ms")
    print(f"tiled / untiled    {tiled / untiled:9.3f}")


if __name__ == "__main__":
    main()
