"""Style transfer figures (issue 4): `.venv/bin/python bench/bench_style.py [--json]`.

1. Per shipped style: ONNX Runtime vs torch eager time of the net on a ~0.8 MP image (goal >= 2x),
   and the whole `imgan stylize` transform on a 1 MP photo (goal: about a second).
2. Fast net vs optimisation (Gatys, L-BFGS, 300 steps) on one 256-px photo (goal >= 500x);
   the optimisation is timed over --opt-steps steps and scaled to 300.
3. Video flicker: mean |frame-to-frame change| of the output / the input's, with and without --stable.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
VGG_FILE = ASSETS / "vgg19" / "vgg19_imagenet_conv1_1-conv3_4.pth"


def median_time(function, runs: int) -> float:
    function()  # warm-up: session/graph planning and allocations are not what we compare
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def torch_net_from_onnx(weights):
    """The torch twin of an exported style net: its config from the card, weights from the ONNX file."""
    from imgan.train.checkpoint import weights_from_onnx
    from imgan_style.model import build_style_net

    net = build_style_net(dict(weights.recipe)["net"]).eval()
    net.load_state_dict(weights_from_onnx(weights.file, net))
    return net


def demo_photo(longest: int) -> np.ndarray:
    from imgan.io.images import read_image, resize_plane

    from imgan_style.infer import scaled_size

    rgb = read_image(REPO / "examples" / "chelsea.jpg").rgb
    return resize_plane(rgb, scaled_size(*rgb.shape[:2], longest))


def runtime_vs_eager(runs: int, threads: int) -> list[dict]:
    import torch

    from imgan.io.images import Picture, to_float
    from imgan.runtime.session import load_model
    from imgan.weights import weights_for_task

    from imgan_style import make_transform
    from imgan_style.infer import reference_of

    torch.set_num_threads(threads)
    rgb = to_float(demo_photo(1024))[:, :1024]  # (H, W, 3), sides multiples of 4 below
    rgb = rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4]
    image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])  # (1, 3, H, W)
    reference = reference_of(rgb, 384)
    photo_1mp = Picture(rgb=demo_photo(1224), alpha=None, source=Path("chelsea.jpg"))  # 1224 x 816 = 1.0 MP
    rows = []
    for name, weights in sorted(weights_for_task("style").items()):
        model = load_model(weights.file, device="cpu", threads=threads)
        net = torch_net_from_onnx(weights)
        image_t, reference_t = torch.from_numpy(image), torch.from_numpy(reference)

        def eager():
            with torch.inference_mode():
                net(image_t, reference_t)

        ort_s = median_time(lambda: model(image, reference), runs)
        eager_s = median_time(eager, runs)
        transform = make_transform(style=name, device="cpu", threads=threads)
        stylize_s = median_time(lambda: transform(photo_1mp), runs)
        rows.append({"style": name, "pixels": int(image.shape[2] * image.shape[3]), "onnxruntime_s": ort_s,
                     "torch_eager_s": eager_s, "speedup": eager_s / ort_s, "goal": ">= 2",
                     "stylize_1mp_s": stylize_s, "stylize_goal": "about 1 s"})
    return rows


def fast_vs_optimisation(style: str, opt_steps: int, runs: int, threads: int) -> dict:
    import torch

    from imgan.io.images import Picture

    from imgan_style import make_transform
    from imgan_style.objective import StyleObjective, StyleSettings, load_painting
    from imgan_style.optimise import optimise_image

    torch.set_num_threads(threads)
    photo = demo_photo(256)
    fast = make_transform(style=style, device="cpu", threads=threads)
    fast_s = median_time(lambda: fast(Picture(rgb=photo, alpha=None, source=Path("chelsea.jpg"))), runs)
    settings = StyleSettings()
    painting = ASSETS / "styles" / "monet_garden_at_giverny.jpg"
    objective = StyleObjective(load_painting(painting, settings.style_size), settings, VGG_FILE)
    tensor = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))[None].float() / 255.0
    began = time.perf_counter()
    optimise_image(tensor, objective, steps=opt_steps)
    per_step = (time.perf_counter() - began) / opt_steps
    return {"size": list(photo.shape[:2]), "fast_s": fast_s, "optimisation_s_per_step": per_step,
            "optimisation_300_steps_s": 300 * per_step, "speedup": 300 * per_step / fast_s,
            "measured_steps": opt_steps, "goal": ">= 500"}


def flicker_figures(style: str, frames: int, size: int, threads: int) -> dict:
    from imgan.io.images import Picture
    from imgan.io.video import read_frames

    from imgan_style import make_transform
    from imgan_style.infer import flicker

    clip = ASSETS / "videos" / "tree.avi"
    inputs = list(read_frames(clip, max_frames=frames))
    figures = {"clip": clip.name, "frames": len(inputs)}
    for stable in (False, True):
        transform = make_transform(style=style, device="cpu", threads=threads, stable=stable, size=size)
        outputs = [transform(Picture(rgb=frame, alpha=None)).rgb for frame in inputs]  # no source: video frames
        figures["stable" if stable else "plain"] = flicker(inputs, outputs)
    figures["note"] = "output change / input change; lower is steadier"
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--opt-steps", type=int, default=10, help="optimisation steps actually timed")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--style", default="monet", help="style for the optimisation and flicker figures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("IMGAN_VGG19_WEIGHTS", str(VGG_FILE))
    results = {
        "runtime_vs_eager": runtime_vs_eager(args.runs, args.threads),
        "fast_vs_optimisation": fast_vs_optimisation(args.style, args.opt_steps, args.runs, args.threads),
        "flicker": flicker_figures(args.style, args.frames, None, args.threads),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_figures(results)
    return results


def print_figures(results: dict) -> None:
    print("style nets, ONNX Runtime vs torch eager (goal >= 2x), and `imgan stylize` on 1 MP:")
    for row in results["runtime_vs_eager"]:
        print(f"  {row['style']:10} ORT {row['onnxruntime_s'] * 1000:7.0f} ms  eager {row['torch_eager_s'] * 1000:7.0f} ms"
              f"  x{row['speedup']:.2f}   stylize 1 MP {row['stylize_1mp_s']:.2f} s")
    fast = results["fast_vs_optimisation"]
    print(f"fast vs optimisation at {fast['size'][1]}x{fast['size'][0]} (goal >= 500x): fast {fast['fast_s'] * 1000:.0f} ms,"
          f" 300 L-BFGS steps {fast['optimisation_300_steps_s']:.0f} s (timed {fast['measured_steps']}) -> x{fast['speedup']:.0f}")
    flick = results["flicker"]
    print(f"flicker on {flick['clip']} ({flick['frames']} frames), output/input change: "
          f"plain {flick['plain']:.3f}, --stable {flick['stable']:.3f}")


if __name__ == "__main__":
    sys.exit(main() and 0)
