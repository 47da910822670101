"""Does the pyramid Gram loss make the optimisation look like the painting? docs/figures/style-pyramid-sheet.jpg:
`.venv/bin/python bench/sheet_style_pyramid.py [--steps 150] [--size 256] [--threads 2]`.

One unseen photo (BSDS500 test) and two paintings; per painting a row: photo | Gatys L-BFGS with the
single-scale Gram loss (pyramid (1,)) | with the pyramid loss (1, 1/2, 1/4; StyleSettings' default) |
the painting. Same steps, size and weights otherwise. Prints each optimisation's final terms and
seconds. The optimisation is what the fast nets learn to imitate, so it is the first thing to fix.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
PHOTO = ASSETS / "photos" / "bsds500" / "test" / "100007.jpg"
PAINTINGS = ("vangogh_starry_night.jpg", "monet_water_lilies.jpg")
GAP, LABEL = 6, 22


def optimised(photo: np.ndarray, painting: Path, pyramid: tuple[float, ...], steps: int):
    import torch

    from imgan_style.objective import StyleObjective, load_painting
    from imgan_style.optimise import optimise_image
    from imgan_style.spec import StyleSettings

    settings = replace(StyleSettings(), pyramid=pyramid)
    objective = StyleObjective(load_painting(painting, settings.style_size), settings)
    tensor = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))[None].float() / 255.0
    started = time.perf_counter()
    result = optimise_image(tensor, objective, steps=steps)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        terms = {name: float(value) for name, value in objective.terms(result, tensor).items()}
    return (result[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8), terms, seconds


def fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    image = Image.fromarray(rgb)
    return np.asarray(image.resize((round(image.width * height / image.height), height), Image.Resampling.LANCZOS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=256, help="longest side of the optimised picture")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "style-pyramid-sheet.jpg")
    args = parser.parse_args()
    import torch

    from imgan.io.images import Picture, read_image, resize_plane, write_image
    from imgan.io.images import long_side_size

    torch.set_num_threads(args.threads)
    os.environ.setdefault("IMGAN_VGG19_WEIGHTS", str(ASSETS / "vgg19" / "vgg19_imagenet_conv1_1-conv3_4.pth"))
    rgb = read_image(PHOTO).rgb
    photo = resize_plane(rgb, long_side_size(*rgb.shape[:2], args.size))
    rows = []
    for name in PAINTINGS:
        painting = ASSETS / "styles" / name
        panels, labels = [photo], ["photo"]
        for label, pyramid in (("single scale", (1.0,)), ("pyramid 1, 1/2, 1/4", (1.0, 0.5, 0.25))):
            image, terms, seconds = optimised(photo, painting, pyramid, args.steps)
            print(f"{name} {label}: style {terms['style']:.4g} content {terms['content']:.4g} in {seconds:.0f} s")
            panels.append(image)
            labels.append(f"{label}, {args.steps} steps")
        panels.append(fit_height(read_image(painting).rgb, photo.shape[0]))
        labels.append(painting.stem)
        row = np.hstack([np.pad(p, ((LABEL, 0), (0, GAP), (0, 0)), constant_values=255) for p in panels])
        canvas = Image.fromarray(row)
        x = 0
        for panel, label in zip(panels, labels):
            ImageDraw.Draw(canvas).text((x + 3, 5), label, fill="black")
            x += panel.shape[1] + GAP
        rows.append(np.asarray(canvas))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    write_image(Picture(rgb=sheet, alpha=None), args.out, overwrite=True, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
