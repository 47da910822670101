"""The sheet of Real-ESRGAN degradations, docs/figures/sr-degradations.jpg:
`.venv/bin/python bench/sheet_degradations.py [--photo FILE] [--out FILE]`.

One 256x256 crop of a BSDS500 test photo, degraded 16 times by the evaluation protocol
(imgan_srgan.degrade.degrade_fixed, indices 0..15, x4), each 64x64 LR result enlarged x4 by
nearest neighbour, in a 4x4 grid 1024 px wide with the index in a corner.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imgan.io.images import Picture, from_float, read_image, to_float, write_image
from imgan_srgan.degrade import degrade_fixed

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared" / "assets" / "photos" / "bsds500" / "test" / "108004.jpg"  # a tiger in grass
OUT = REPO / "docs" / "figures" / "sr-degradations.jpg"
CROP, SCALE, GRID = 256, 4, 4


def make_sheet(photo: Path, left: int | None = None, top: int | None = None) -> np.ndarray:
    rgb = to_float(read_image(photo).rgb)
    height, width = rgb.shape[:2]
    left = (width - CROP) // 2 if left is None else left
    top = (height - CROP) // 2 if top is None else top
    hr = rgb[top:top + CROP, left:left + CROP]
    cells = []
    for index in range(GRID * GRID):
        lr = from_float(degrade_fixed(hr, index, scale=SCALE), np.uint8)
        cell = Image.fromarray(lr).resize((CROP, CROP), Image.NEAREST)
        draw = ImageDraw.Draw(cell)
        draw.rectangle((0, 0, 18, 12), fill=(0, 0, 0))
        draw.text((2, 0), str(index), fill=(255, 255, 255))
        cells.append(np.asarray(cell))
    rows = [np.concatenate(cells[row * GRID:(row + 1) * GRID], axis=1) for row in range(GRID)]
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--left", type=int, default=None, help="crop's left edge (default: centred)")
    parser.add_argument("--top", type=int, default=None, help="crop's top edge (default: centred)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sheet = make_sheet(args.photo, args.left, args.top)
    write_image(Picture(rgb=sheet, alpha=None), args.out, quality=92)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
