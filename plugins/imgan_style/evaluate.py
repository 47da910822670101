"""`imgan eval style`: how close each fast net comes to optimising the picture itself.

Per shipped style and unseen test photo: the style, content and total loss (the style's own
layers and weights, from its model card) of the fast net's output and of a Gatys optimisation
(L-BFGS, `steps` steps, started from the photo). Goal: fast total within 1.5x of the optimum.
Also the stripes figure: the strongest regular pattern (period 3-10 px) in the chroma of the net's
output on a blurred copy of the photo, where the photo itself has none (``stripes_db``; a painted
texture stays below STRIPES_LIMIT_DB (a mean over photos), a net that lays one fixed pattern over the picture does not).
Returns the rows; with `card_metrics`, each style's means go into its model card.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from imgan.cards import update_metrics
from imgan.errors import InputError, UsageError
from imgan.io.images import read_image, resize_plane, to_float
from imgan.pipeline import TileProgress
from imgan.weights import Weights, weights_for_task

from .infer import fast_stylise
from .objective import StyleObjective, load_painting
from .optimise import optimise_image
from .spec import MULTIPLE, REPO, SHARED_ASSETS, TASK, StyleSettings, scaled_size

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
    rgb = resize_plane(rgb, scaled_size(*rgb.shape[:2], size))
    return np.ascontiguousarray(rgb[: rgb.shape[0] // MULTIPLE * MULTIPLE, : rgb.shape[1] // MULTIPLE * MULTIPLE])


def _as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]  # (1, 3, H, W)


def _scored(objective: StyleObjective, output: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        terms = objective.terms(output, photo)
        values = {name: float(value) for name, value in terms.items()}
        values["total"] = float(objective.total(terms))
    return values


def evaluate_style(weights: Weights, photos: list[Path], *, size: int = 256, steps: int = 300,
                   styles_dir: Path | None = None, vgg_weights: str | None = None,
                   on_row: Callable[[dict], None] | None = None, progress: TileProgress | None = None) -> list[dict]:
    """One row per photo; `progress` sees the optimisation's steps."""
    from imgan.runtime.session import load_model

    settings = settings_of(weights)
    objective = StyleObjective(load_painting(painting_of(weights, styles_dir), settings.style_size), settings,
                               vgg_weights)
    stylise = fast_stylise(load_model(weights.verified_path(), device="cpu"), weights)
    rows = []
    for path in photos:
        rgb = test_photo(path, size)
        photo = _as_tensor(rgb)
        started = time.perf_counter()
        fast = _as_tensor(stylise(rgb, None, False))
        fast_seconds = time.perf_counter() - started
        started = time.perf_counter()
        optimised = optimise_image(photo, objective, steps=steps, progress=progress)
        optimised_seconds = time.perf_counter() - started
        fast_scores, optimised_scores = _scored(objective, fast, photo), _scored(objective, optimised, photo)
        stripes, period, angle = stripes_db(stylise, rgb) or (None, None, None)
        rows.append({
            "style": weights.name, "photo": path.name, "size": list(rgb.shape[:2]), "steps": steps,
            "fast": fast_scores, "optimised": optimised_scores,
            "total_ratio": fast_scores["total"] / optimised_scores["total"],
            "style_ratio": fast_scores["style"] / optimised_scores["style"],
            "fast_seconds": round(fast_seconds, 3), "optimised_seconds": round(optimised_seconds, 1),
            "stripes_db": None if stripes is None else round(stripes, 1),
            "stripes_period_px": None if period is None else round(period, 1),
            "stripes_angle": None if angle is None else round(angle),
        })
        if on_row is not None:
            on_row(rows[-1])
    return rows


def evaluate_styles(*, styles: list[str] | None, data: Path, images: int = 2, size: int = 256, steps: int = 300,
                    styles_dir: Path | None = None, vgg_weights: str | None = None, threads: int | None = None,
                    card_metrics: bool = False, on_row: Callable[[dict], None] | None = None,
                    progress: TileProgress | None = None) -> list[dict]:
    """Every row of every chosen style; `on_row` sees each as it is measured and `progress` each
    optimisation step (an optimisation takes minutes on a CPU, so a caller can show progress).
    `card_metrics`: store each style's means in its model card (under "vs_optimisation")."""
    from imgan.train.data import list_images

    if threads:
        torch.set_num_threads(threads)
    available = weights_for_task(TASK)
    chosen = styles or sorted(available)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise UsageError(f"unknown style {', '.join(unknown)}", hint=f"available: {', '.join(sorted(available))}")
    photos = list_images(data)[:images]
    rows = []
    for name in chosen:
        found = evaluate_style(available[name], photos, size=size, steps=steps, styles_dir=styles_dir,
                               vgg_weights=vgg_weights, on_row=on_row, progress=progress)
        if card_metrics and found:
            update_metrics(available[name].card_path, {PROTOCOL: summary(found, size=size, steps=steps)})
        rows += found
    return rows


def summary(rows: list[dict], *, size: int, steps: int) -> dict:
    """One style's rows -> what its card keeps: the protocol, and the means of the ratios and times."""
    figures = {key: round(float(np.mean([row[key] for row in rows])), 4)
               for key in ("total_ratio", "style_ratio", "fast_seconds", "optimised_seconds")}
    stripes = [row["stripes_db"] for row in rows if row.get("stripes_db") is not None]
    figures["stripes_db"] = round(float(np.mean(stripes)), 1) if stripes else None
    return {"photos": [row["photo"] for row in rows], "longest_side": size, "optimisation_steps": steps, **figures}
