"""`imgan eval style`: how close each fast net and the universal model come to optimising the picture itself.

Per shipped style and unseen test photo: the style, content and total loss (the style's own
layers and weights, from its model card; the pyramid style loss) of the fast net's output, of the
universal model (WCT) with the same painting, and of a Gatys optimisation (L-BFGS, `steps` steps,
started from the photo). Goal: fast total within 1.5x of the optimum. Any other painting
(`paintings`) is measured the same way for the universal model alone, with the default loss.
Also the stripes figure: the strongest regular pattern (period 3-10 px) in the chroma of the net's
output on a blurred copy of the photo, where the photo itself has none (``stripes_db``; a painted
texture stays below STRIPES_LIMIT_DB (a mean over photos), a net that lays one fixed pattern over the picture does not).
Returns the rows; with `card_metrics`, each style's means go into its model card.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from imgan.cards import update_metrics
from imgan.errors import InputError, UsageError
from imgan.io.images import long_side_size, read_image, resize_plane, to_float
from imgan.pipeline import TileProgress
from imgan.weights import Weights, resolve_weights, weights_for_task

from .infer import fast_stylise
from .objective import StyleObjective, load_painting
from .optimise import optimise_image
from .spec import MULTIPLE, REPO, SHARED_ASSETS, TASK, StyleSettings

PROTOCOL = "vs_optimisation"  # the card's metrics key
# Means over test photos: the universal model's outputs measure 20-24 dB (single photos 17-25.5), the
# four nets of v1 29-41 dB (single photos 27-43), all at a period of 6-7 px on a diagonal.
STRIPES_LIMIT_DB = 26.0
STRIPES_BLUR_SIGMA = 8.0  # px: takes the photo's own regular structures (fences, waves) out of the test
STRIPES_MIN_SIDE = 40  # periodic_peak needs 4 of its longest periods (10 px) a side


def stripes_db(stylise, rgb: np.ndarray) -> tuple[float, float, float] | None:
    """periodic_peak of the R-B chroma of ``stylise``'s output on ``rgb`` blurred: (dB, period px, angle deg);
    None for a picture under STRIPES_MIN_SIDE a side."""
    import cv2

    from imgan.metrics import periodic_peak

    if min(rgb.shape[:2]) < STRIPES_MIN_SIDE:
        return None
    smooth = cv2.GaussianBlur(rgb, (0, 0), STRIPES_BLUR_SIGMA)
    out = np.asarray(stylise(smooth, None, False), dtype=np.float64)
    return periodic_peak(out[..., 0] - out[..., 2])


def style_of(weights: Weights) -> dict:
    """The "style" part of the card's model_config: the painting and the loss settings."""
    style = weights.card.model_config.get("style")
    if not isinstance(style, dict):
        raise UsageError(f"the card of style {weights.name!r} records no loss settings", path=weights.card_path)
    return style


def settings_of(weights: Weights) -> StyleSettings:
    return StyleSettings.from_dict(style_of(weights))


def painting_of(weights: Weights, styles_dir: Path | None) -> Path:
    """The painting a style was trained on: the card's path, else --styles-dir/<file name>."""
    recorded = style_of(weights).get("image")
    candidates = [REPO / Path(recorded).expanduser()] if recorded else []  # relative paths are the repository's
    name = weights.inference.get("style_image") or (Path(recorded).name if recorded else None)
    if name:
        candidates += [folder / name for folder in (styles_dir, SHARED_ASSETS / "styles") if folder is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"the painting of style {weights.name!r} ({name or 'unknown'}) was not found",
                     path=weights.file, hint="pass --styles-dir FOLDER holding it")


def test_photo(path: Path, size: int) -> np.ndarray:
    """(H, W, 3) float in [0,1], longest side `size`, sides cut to multiples of 4."""
    rgb = to_float(read_image(path).rgb)
    rgb = resize_plane(rgb, long_side_size(*rgb.shape[:2], size))
    return np.ascontiguousarray(rgb[: rgb.shape[0] // MULTIPLE * MULTIPLE, : rgb.shape[1] // MULTIPLE * MULTIPLE])


def _as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]  # (1, 3, H, W)


def _scored(objective: StyleObjective, output: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        terms = objective.terms(output, photo)
        values = {name: float(value) for name, value in terms.items()}
        values["total"] = float(objective.total(terms))
    return values


def universal_stylise(model: "UniversalModel", painting: Path):
    """The universal model (WCT) with ``painting``'s statistics, as a Stylise function."""
    from .universal_infer import read_painting

    stats = model.painting_stats(read_painting(painting))
    return lambda rgb, progress, is_frame: model.stylise(to_float(rgb), stats)


def _measured(stylise, rgb: np.ndarray, objective: StyleObjective, photo: torch.Tensor) -> tuple[dict, np.ndarray]:
    """One method's output on a test photo, scored: its losses, seconds and stripes figure."""
    started = time.perf_counter()
    output = np.asarray(stylise(rgb, None, False), dtype=np.float32)
    seconds = time.perf_counter() - started
    stripes, period, angle = stripes_db(stylise, rgb) or (None, None, None)
    return {**_scored(objective, _as_tensor(output), photo), "seconds": round(seconds, 3),
            "stripes_db": None if stripes is None else round(stripes, 1),
            "stripes_period_px": None if period is None else round(period, 1),
            "stripes_angle": None if angle is None else round(angle)}, output


def is_weights_path(style: str) -> bool:
    """--style names a file (an exported net not installed) rather than a style of the catalogue."""
    return style.endswith(".onnx") or os.sep in style


def style_label(style: str) -> str:
    """A row's style: the catalogue name, or the file's name for an exported net measured in place."""
    return Path(style).name if is_weights_path(style) else style


def _ratio(method: dict | None, optimised: dict | None, term: str = "total") -> float | None:
    return None if method is None or optimised is None else method[term] / optimised[term]


def evaluate_painting(name: str, painting: Path, settings: StyleSettings, photos: list[Path], *,
                      fast=None, universal: "UniversalModel | None" = None, size: int = 256, steps: int = 300,
                      vgg_weights: str | None = None, on_row: Callable[[dict], None] | None = None,
                      progress: TileProgress | None = None, sheet: list | None = None) -> list[dict]:
    """One row per photo: the optimisation (none when ``steps`` is 0: the losses without the ratios), and
    the fast net (``fast``, a Stylise) and/or the universal model on ``painting``, scored by the same objective. `progress` sees the optimisation's steps;
    ``sheet`` (a list) gets each row's pictures: photo, optimisation, net (or None), universal (or None)."""
    objective = StyleObjective(load_painting(painting, settings.style_size), settings, vgg_weights)
    wct = universal_stylise(universal, painting) if universal is not None else None
    rows = []
    for path in photos:
        rgb = test_photo(path, size)
        photo = _as_tensor(rgb)
        fast_scores, fast_output = _measured(fast, rgb, objective, photo) if fast is not None else (None, None)
        wct_scores, wct_output = _measured(wct, rgb, objective, photo) if wct is not None else (None, None)
        started = time.perf_counter()
        optimised = optimise_image(photo, objective, steps=steps, progress=progress) if steps else None
        optimised_seconds = time.perf_counter() - started if steps else None
        optimised_scores = _scored(objective, optimised, photo) if steps else None
        rows.append({
            "style": name, "painting": painting.name, "photo": path.name, "size": list(rgb.shape[:2]), "steps": steps,
            "fast": fast_scores, "universal": wct_scores, "optimised": optimised_scores,
            "total_ratio": _ratio(fast_scores, optimised_scores),
            "style_ratio": _ratio(fast_scores, optimised_scores, "style"),
            "universal_ratio": _ratio(wct_scores, optimised_scores),
            "universal_style_ratio": _ratio(wct_scores, optimised_scores, "style"),
            "fast_seconds": None if fast_scores is None else fast_scores["seconds"],
            "optimised_seconds": None if optimised_seconds is None else round(optimised_seconds, 1),
            "stripes_db": None if fast_scores is None else fast_scores["stripes_db"],
            "stripes_period_px": None if fast_scores is None else fast_scores["stripes_period_px"],
            "stripes_angle": None if fast_scores is None else fast_scores["stripes_angle"],
        })
        if sheet is not None:
            picture = None if optimised is None else optimised[0].permute(1, 2, 0).numpy()
            sheet.append((rows[-1], [rgb, picture, fast_output, wct_output], painting))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def evaluate_styles(*, styles: list[str] | None, data: Path, images: int = 2, size: int = 256, steps: int = 300,
                    paintings: list[Path] | None = None, universal: bool = True, sheet: Path | None = None,
                    styles_dir: Path | None = None, vgg_weights: str | None = None, threads: int | None = None,
                    card_metrics: bool = False, on_row: Callable[[dict], None] | None = None,
                    progress: TileProgress | None = None) -> list[dict]:
    """Every row of every chosen fast style (each beside the universal model on the same painting
    when `universal`), then of each of `paintings` (the universal model alone: any painting, e.g.
    ones no net learnt); `on_row` sees each as it is measured and `progress` each optimisation step
    (an optimisation takes minutes on a CPU, so a caller can show progress). `styles` None: every
    fast style, unless `paintings` are given. `card_metrics`: store each style's means in its model
    card (under "vs_optimisation"). `sheet`: write photo | optimisation | net | universal | painting."""
    from imgan.runtime.session import load_model
    from imgan.train.data import list_images

    from .universal_infer import UniversalModel

    if card_metrics and not steps:
        raise UsageError("--card-metrics stores the ratios to the optimisation", hint="leave out --steps 0")
    if threads:
        torch.set_num_threads(threads)
    available = weights_for_task(TASK)
    chosen = styles if styles is not None else ([] if paintings else sorted(available))
    unknown = [name for name in chosen if name not in available and not is_weights_path(name)]
    if unknown:
        raise UsageError(f"unknown style {', '.join(unknown)}",
                         hint=f"available: {', '.join(sorted(available))}, or an exported .onnx file")
    nets = {style_label(name): resolve_weights(TASK, name) for name in chosen}  # a file is checked before any work
    missing = [str(path) for path in paintings or [] if not Path(path).is_file()]
    if missing:
        raise InputError(f"no painting at {missing[0]}", path=missing[0], hint="give an image file with --painting")
    photos = list_images(data)[:images]
    wct = UniversalModel.load(device="cpu", threads=threads) if universal or paintings else None
    pictures: list | None = [] if sheet is not None else None
    rows = []
    for name, weights in nets.items():
        fast = fast_stylise(load_model(weights.verified_path(), device="cpu", threads=threads), weights)
        found = evaluate_painting(name, painting_of(weights, styles_dir), settings_of(weights), photos, fast=fast,
                                  universal=wct if universal else None, size=size, steps=steps,
                                  vgg_weights=vgg_weights, on_row=on_row, progress=progress, sheet=pictures)
        if card_metrics and found:
            update_metrics(weights.card_path, {PROTOCOL: summary(found, size=size, steps=steps)})
        rows += found
    for painting in paintings or []:
        rows += evaluate_painting(Path(painting).stem, Path(painting), StyleSettings(), photos, universal=wct,
                                  size=size, steps=steps, vgg_weights=vgg_weights, on_row=on_row,
                                  progress=progress, sheet=pictures)
    if sheet is not None:
        write_sheet(pictures, sheet, size=size)
    return rows


SHEET_COLUMNS = ("photo", "optimisation", "fast net", "universal", "painting")


def write_sheet(pictures: list, path: Path, *, size: int) -> Path:
    """One row per (style, photo): photo | optimisation | fast net | universal | painting, labelled,
    each cell letterboxed into size x size (a method not measured stays blank, labelled "-")."""
    from imgan.io.images import Picture, from_float, write_image

    from .paintings import labelled, grid
    from .universal_infer import read_painting

    def cell(rgb: np.ndarray | None) -> np.ndarray:
        square = np.full((size, size, 3), 255, np.uint8)
        if rgb is not None:
            rgb = from_float(resize_plane(to_float(rgb), long_side_size(*rgb.shape[:2], size)), np.uint8)
            square[: rgb.shape[0], : rgb.shape[1]] = rgb
        return square

    cells = []
    for row, images, painting in pictures:
        labels = [row["photo"], f"optimisation, {row['steps']} steps", f"{row['style']} (fast net)",
                  "universal (WCT)", row["painting"]]
        for label, image in zip(labels, [*images, read_painting(painting)]):
            cells.append(labelled(cell(image), label if image is not None else "-"))
    return write_image(Picture(rgb=grid(cells, len(SHEET_COLUMNS)), alpha=None), path, overwrite=True)


def summary(rows: list[dict], *, size: int, steps: int) -> dict:
    """One style's rows -> what its card keeps: the protocol, and the means of the ratios and times."""
    def mean(key: str) -> float | None:
        values = [row[key] for row in rows if row.get(key) is not None]
        return round(float(np.mean(values)), 4) if values else None

    figures = {key: mean(key) for key in ("total_ratio", "style_ratio", "fast_seconds", "optimised_seconds",
                                          "universal_ratio")}
    stripes = mean("stripes_db")
    figures["stripes_db"] = None if stripes is None else round(stripes, 1)
    return {"photos": [row["photo"] for row in rows], "longest_side": size, "optimisation_steps": steps, **figures}
