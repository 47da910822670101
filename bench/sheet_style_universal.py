"""The universal style transfer sheet, docs/figures/style-universal-sheet.jpg:
`.venv/bin/python bench/sheet_style_universal.py [--out FILE] [--png /tmp/style-universal-sheet.png]`.

Rows: three unseen photos (BSDS500 test split; the decoders trained on the train split) with three
paintings no fast net was trained on, each row photo | painting | universal result
(`imgan stylize PHOTO --style-image PAINTING`: WCT at relu3_1 -> relu2_1 -> relu1_1, 512 px, one
pass). A labelled row per pair; prints the seconds each pass took.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imgan.api import build_transform
from imgan.io.images import Picture, read_image, write_image

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
PAIRS = (("bsds500/test/100007.jpg", "munch_the_scream.jpg"),
         ("bsds500/test/106005.jpg", "picabia_udnie.jpg"),
         ("bsds500/test/160067.jpg", "seurat_sunday_afternoon.jpg"))
HEIGHT, GAP, LABEL = 320, 6, 24


def row(photo: Path, painting: Path) -> tuple[np.ndarray, float]:
    from imgan_style.infer import compare_sheet

    transform = build_transform("style", style_image=painting, device="cpu", threads=1)
    picture = read_image(photo)
    started = time.perf_counter()
    styled = transform(picture)
    seconds = time.perf_counter() - started
    panels = compare_sheet(picture.rgb, read_image(painting).rgb, styled.rgb, height=HEIGHT, gap=GAP)
    label = Image.new("RGB", (panels.shape[1], LABEL), "white")
    ImageDraw.Draw(label).text((4, 5), f"{photo.name}  |  {painting.stem}  |  universal (WCT), {seconds:.1f} s",
                               fill="black")
    return np.vstack([np.asarray(label), panels]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "style-universal-sheet.jpg")
    parser.add_argument("--png", type=Path, default=None, help="also write a PNG copy here")
    args = parser.parse_args()
    rows = []
    for photo, painting in PAIRS:
        image, seconds = row(ASSETS / "photos" / photo, ASSETS / "styles" / painting)
        print(f"{photo} x {painting}: {seconds:.2f} s")
        rows.append(image)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = Picture(rgb=np.vstack(rows)[:-GAP], alpha=None)
    write_image(sheet, args.out, overwrite=True, quality=90)
    if args.png:
        write_image(sheet, args.png, overwrite=True)
    print(f"wrote {args.out}" + (f" and {args.png}" if args.png else ""))


if __name__ == "__main__":
    main()
