"""Painting styles as a catalogue: add paintings (their WCT statistics), and the contact sheet of
every style on one photo (`imgan styles --add`, `imgan styles --sheet`). NumPy + ONNX Runtime only."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from imgan.cards import portable_path
from imgan.errors import UsageError
from imgan.io.images import Picture, from_float, long_side_size, read_image, resize_plane, to_float
from imgan.weights import user_weights_dir, weights_for_task

from .infer import StyleOptions, list_styles, make_fast_transform, painting_blend, painting_thumbnail, universal_transform
from .spec import DEFAULT_UNIVERSAL_SIZE, LEVELS, STYLE_STATS_DIR, UNIVERSAL_TASK
from .style_stats import LICENCES, PAINTINGS, PUBLIC_DOMAIN, PaintingStyle, name_of, write_style
from .universal_infer import UniversalModel, read_painting

SHEET_CELL = 256  # longest side of each stylised photo on the contact sheet
LABEL_HEIGHT = 22


def add_paintings(paintings: Sequence[Path], *, into: Path | None = None, name: str | None = None,
                  size: int = DEFAULT_UNIVERSAL_SIZE, device: str = "auto", threads: int | None = None,
                  model: UniversalModel | None = None) -> list[PaintingStyle]:
    """Each painting's per-level statistics as a named style in `into` (default: your styles,
    $IMGAN_HOME/weights/style-stats). Known paintings (the shared assets) get artist, title and year."""
    if name is not None and len(paintings) != 1:
        raise UsageError("--name names one painting; leave it out to name each after its file")
    folder = Path(into) if into is not None else user_weights_dir() / STYLE_STATS_DIR
    pixels = [(Path(path), read_painting(path)) for path in paintings]  # every file readable before any work
    model = model or UniversalModel.load(device=device, threads=threads, parts=("encoder",))
    encoders = {level: weights.sha256 for level in LEVELS
                if (weights := weights_for_task(UNIVERSAL_TASK).get(f"encoder-{level}")) is not None}
    added = []
    for path, rgb in pixels:
        artist, title, year = PAINTINGS.get(path.stem, ("", "", ""))
        added.append(write_style(model.painting_stats(rgb, size), folder, name or name_of(path), painting=path,
                                 thumbnail=painting_thumbnail(path), size=size, artist=artist, title=title, year=year,
                                 licence=LICENCES.get(path.stem, PUBLIC_DOMAIN) if path.stem in PAINTINGS else "",
                                 source=portable_path(path.resolve()), encoders=encoders))
    return added


def labelled(cell: np.ndarray, text: str) -> np.ndarray:
    """The cell with a white strip under it holding `text`."""
    strip = np.full((LABEL_HEIGHT, cell.shape[1], 3), 255, np.uint8)
    scale = 0.45
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > cell.shape[1] - 6:
        scale -= 0.05
    cv2.putText(strip, text, (3, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([cell, strip])


def grid(cells: Sequence[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Equal-sized (h, w, 3) uint8 cells in rows of `columns`, on white."""
    height, width = cells[0].shape[:2]
    rows = -(-len(cells) // columns)
    sheet = np.full((rows * height + gap * (rows - 1), columns * width + gap * (columns - 1), 3), 255, np.uint8)
    for index, cell in enumerate(cells):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        sheet[top:top + height, left:left + width] = cell
    return sheet


def contact_sheet(photo: Path, *, size: int = SHEET_CELL, columns: int = 6, device: str = "auto",
                  threads: int | None = None, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Every style of `imgan styles` on one photo, labelled, the photo first: (H, W, 3) uint8."""
    picture = read_image(Path(photo))
    small = resize_plane(to_float(picture.rgb), long_side_size(*picture.rgb.shape[:2], size))
    small_picture = Picture(rgb=from_float(small, np.uint8), alpha=None)
    options = StyleOptions(size=size, stable=False)
    rows = list_styles()
    universal = UniversalModel.load(device=device, threads=threads) if any(r["kind"] == "universal" for r in rows) else None
    cells = [labelled(small_picture.rgb, "photo")]
    for index, row in enumerate(rows):
        if row["kind"] == "fast":
            transform = make_fast_transform(style=row["name"], device=device, threads=threads, options=options)
            label = f"{row['name']} (fast net)"
        else:
            stats, _ = painting_blend(row["name"])
            transform = universal_transform(universal, stats, options, None, None)
            label = row["name"]
        cells.append(labelled(transform(small_picture).rgb, label))
        if progress is not None:
            progress(index + 1, len(rows))
    return grid(cells, columns)
