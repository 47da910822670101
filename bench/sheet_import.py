"""The crop sheet of imported community models, docs/figures/sr-import-sheet.png:
`IMGAN_HOME=... .venv/bin/python bench/sheet_import.py [--out FILE]`.

Columns: the LR input (nearest ×4) | bicubic | imgan srgan-x4 | imported Real-ESRGAN x4plus | imported
Real-ESRGAN Compact (animevideov3) | HR. Row 1: a 96x96 crop of chelsea.png taken as it is (a real
photo as input: there is no HR). Row 2: a 384x384 HR crop of astronaut.png reduced ×4 by area
averaging to 96x96 (so the HR is known). Each result 384x384. The two imported models must be
imported first (`imgan weights import ../shared/assets/zoo/RealESRGAN_x4plus.safetensors`, and
realesr-animevideov3-x4.safetensors); their names are options.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imgan.api import build_transform
from imgan.io.images import Picture, read_image, resize_plane, write_image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "assets" / "photos" / "samples"
OUT = REPO / "docs" / "figures" / "sr-import-sheet.png"
LR, SCALE = 96, 4
HR = LR * SCALE
LABEL_HEIGHT = 28


def crops() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(caption, LR 96x96 uint8, HR 384x384 or None)."""
    cat = read_image(SAMPLES / "chelsea.png").rgb
    lr_cat = np.ascontiguousarray(cat[60:60 + LR, 150:150 + LR])  # the cat's eyes, as photographed
    astronaut = read_image(SAMPLES / "astronaut.png").rgb
    hr = np.ascontiguousarray(astronaut[20:20 + HR, 100:100 + HR])
    return [("chelsea.png 96x96 (real)", lr_cat, None),
            ("astronaut.png, HR reduced /4", resize_plane(hr, (LR, LR)), hr)]


def cell(rgb: np.ndarray, label: str, font) -> np.ndarray:
    image = Image.new("RGB", (HR, HR + LABEL_HEIGHT), (255, 255, 255))
    image.paste(Image.fromarray(rgb), (0, LABEL_HEIGHT))
    ImageDraw.Draw(image).text((6, 4), label, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def empty(text: str, font) -> np.ndarray:
    image = Image.new("RGB", (HR, HR), (235, 235, 235))
    ImageDraw.Draw(image).text((HR // 2, HR // 2), text, fill=(90, 90, 90), font=font, anchor="mm")
    return np.asarray(image)


def make_sheet(x4plus: str, compact: str) -> np.ndarray:
    font = ImageFont.load_default(size=18)
    methods = [("bicubic", None),
               ("imgan srgan-x4", build_transform("sr", weights="srgan-x4", device="cpu")),
               ("imported Real-ESRGAN x4plus", build_transform("sr", weights=x4plus, device="cpu")),
               ("imported Real-ESRGAN Compact", build_transform("sr", weights=compact, device="cpu"))]
    rows = []
    for caption, lr, hr in crops():
        picture = Picture(rgb=lr, alpha=None)
        cells = [cell(np.asarray(Image.fromarray(lr).resize((HR, HR), Image.NEAREST)), f"input: {caption}", font)]
        for label, transform in methods:
            if transform is None:  # bicubic (OpenCV's, as imgan resizes): the baseline, no model
                result = resize_plane(lr, (HR, HR))
            else:
                result = transform(picture).rgb
            cells.append(cell(result, label, font))
        cells.append(cell(hr if hr is not None else empty("no HR: a real photo", font), "HR", font))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x4plus", default="realesrgan_x4plus", help="name of the imported RealESRGAN_x4plus")
    parser.add_argument("--compact", default="realesr-animevideov3-x4", help="name of the imported compact model")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sheet = make_sheet(args.x4plus, args.compact)
    write_image(Picture(rgb=sheet, alpha=None), args.out, overwrite=True)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
