"""`imgan eval inpaint`: the model against OpenCV's Telea and Navier-Stokes, on the same pairs.

Protocol (NumPy, OpenCV and ONNX Runtime; no torch):
  * Pairs. Images and masks are sorted by name; mask j goes with image j mod (number of images),
    so every mask is used once (300 irregular_dev masks on 200 BSDS500 test photos: 300 pairs,
    50 per band). --limit N keeps N masks spread evenly over the sorted list, so every band keeps
    its share.
  * The mask is stretched to the image with nearest-neighbour resizing (the 512x512 masks become
    481x321 or 321x481 on BSDS photos); white = hole.
  * Band: a mask file named by a number (irregular_dev: 00000.png ... 10980.png) is in band
    number // 2000, i.e. 0: 0-10 %, ..., 5: 50-60 % of the 512x512 mask, as that set defines;
    other masks are banded by their measured hole area in 10 % steps.
  * Every method fills the same 8-bit photo; the model runs through the same Inpainter as
    `imgan inpaint`; Telea and Navier-Stokes are cv2.inpaint with radius 3. "prior" is the
    trained net's own coarse stage alone (the shipped `pushpull` weights, through the same
    Inpainter): what the net's learned refinement adds is the model's figure minus the prior's.
  * Figures against the original, values in [0, 1]: PSNR over the whole image (RGB) and inside
    the hole (the MSE of hole pixels only); SSIM on the luma Y (Wang et al., 11x11 Gaussian
    windows), whole image and inside the hole (the mean of the SSIM map over windows centred in
    the hole); L1 (mean absolute difference, in %) whole and hole. Each is the mean over a band's pairs.
Floor: the model beats Telea on whole-image PSNR in every band up to 40 %. Goal: >= 2 dB above
Telea (whole image) over the 10-40 % pairs.

Everything here returns figures (dicts and dataclasses) and prints nothing; the CLI renders them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from imgan.cards import update_metrics
from imgan.errors import InputError
from imgan.io.images import SUPPORTED_EXTENSIONS, Picture, read_image, resize_plane, write_image
from imgan.metrics import psnr, rgb_to_y, ssim_map
from imgan.weights import Weights, resolve_weights, weights_for_task

from . import TASK
from .infer import Inpainter, fit_hole, hole_from_mask_picture, inpainter_for_weights
from .spec import PRIOR_NAME

METHODS = ("telea", "ns", "model")
PRIOR = "prior"  # the push-pull fill alone (weights `pushpull`), measured beside a trained net when shipped
SHOWN_ORDER = ("telea", "ns", PRIOR, "model")
METRICS = ("psnr", "psnr_hole", "ssim", "ssim_hole", "l1", "l1_hole")
OPENCV_RADIUS = 3
NUMBERED_BAND_WIDTH = 2000  # irregular_dev: file number // 2000 = band
FLOOR_BANDS = (0, 1, 2, 3)  # up to 40 %
GOAL_BANDS = (1, 2, 3)  # 10-40 %
GOAL_GAIN_DB = 2.0
SSIM_WINDOW = 11
SHEET_CELL = 240


@dataclass
class PairResult:
    image: str
    mask: str
    band: int
    hole_fraction: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value


def list_image_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{what} folder not found", path=folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not files:
        raise InputError(f"no images in the {what} folder", path=folder)
    return files


def evaluation_pairs(images: list[Path], masks: list[Path], limit: int | None = None) -> list[tuple[Path, Path]]:
    """(image, mask) pairs: mask j with image j mod len(images); `limit` masks evenly spread."""
    indices = range(len(masks))
    if limit is not None and limit < len(masks):
        indices = sorted({int(i) for i in np.linspace(0, len(masks) - 1, limit).round()})
    return [(images[j % len(images)], masks[j]) for j in indices]


def mask_band(mask_path: Path, hole_fraction: float) -> int:
    if re.fullmatch(r"\d+", mask_path.stem):
        return int(mask_path.stem) // NUMBERED_BAND_WIDTH
    return min(9, int(hole_fraction * 10))


def band_label(band: int) -> str:
    return f"{band * 10}-{band * 10 + 10} %"


def opencv_inpaint(rgb: np.ndarray, hole: np.ndarray, flag: int) -> np.ndarray:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return cv2.inpaint(bgr, hole.astype(np.uint8) * 255, OPENCV_RADIUS, flag)[:, :, ::-1]


def measure(result: np.ndarray, original: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """The six figures of one filled uint8 image (see the module docstring)."""
    got, want = result.astype(np.float64) / 255.0, original.astype(np.float64) / 255.0
    ssims = ssim_map(rgb_to_y(got), rgb_to_y(want))  # (H - 10, W - 10), entry = window centred at +5
    centre = SSIM_WINDOW // 2
    hole_centres = hole[centre:centre + ssims.shape[0], centre:centre + ssims.shape[1]]
    error = np.abs(got - want)
    return {
        "psnr": psnr(got, want),
        "psnr_hole": psnr(got[hole], want[hole]),
        "ssim": float(ssims.mean()),
        "ssim_hole": float(ssims[hole_centres].mean()) if hole_centres.any() else float("nan"),
        "l1": 100.0 * float(error.mean()),
        "l1_hole": 100.0 * float(error[hole].mean()),
    }


def evaluate_pairs(pairs: list[tuple[Path, Path]], inpainter: Inpainter, *, prior: Inpainter | None = None,
                   on_pair: Callable[[int, int], None] | None = None,
                   keep: Callable[[PairResult, dict[str, np.ndarray]], None] | None = None) -> list[PairResult]:
    """Fill every pair with the three methods (and `prior`, when given) and measure them. `keep(result,
    images)` sees the pictures of each pair (input, telea, ns, model, original) e.g. to draw a sheet."""
    results = []
    for index, (image_path, mask_path) in enumerate(pairs):
        original = read_image(image_path).rgb
        if original.dtype != np.uint8:
            raise InputError("evaluation photos must be 8-bit", path=image_path)
        height, width = original.shape[:2]
        hole = fit_hole(hole_from_mask_picture(read_image(mask_path)), height, width, resize=True)
        if not hole.any():
            continue  # nothing to fill: no figure to measure
        filled = {
            "telea": opencv_inpaint(original, hole, cv2.INPAINT_TELEA),
            "ns": opencv_inpaint(original, hole, cv2.INPAINT_NS),
            "model": inpainter(original, hole),
            **({PRIOR: prior(original, hole)} if prior is not None else {}),
        }
        result = PairResult(image_path.name, mask_path.name, mask_band(mask_path, float(hole.mean())), float(hole.mean()))
        result.scores = {method: measure(picture, original, hole) for method, picture in filled.items()}
        results.append(result)
        if keep is not None:
            shown = np.where(hole[..., None], np.uint8(128), original)
            keep(result, {"input": shown, **filled, "original": original})
        if on_pair is not None:
            on_pair(index + 1, len(pairs))
    return results


def summarize(results: list[PairResult]) -> dict[str, Any]:
    """Per band and method the mean of every figure; the floor and goal checks."""
    if not results:
        raise InputError("no pair had a hole to fill", hint="are the masks white where the hole is?")
    methods = [method for method in SHOWN_ORDER if method in results[0].scores]
    bands: dict[str, Any] = {}
    for band in sorted({r.band for r in results}):
        members = [r for r in results if r.band == band]
        bands[band_label(band)] = {"pairs": len(members), **{
            method: {metric: _mean([r.scores[method][metric] for r in members]) for metric in METRICS}
            for method in methods}}
    floor = {band_label(b): bands[band_label(b)]["model"]["psnr"] > bands[band_label(b)]["telea"]["psnr"]
             for b in FLOOR_BANDS if band_label(b) in bands}
    goal_pairs = [r for r in results if r.band in GOAL_BANDS]
    def gain_over_telea(method: str) -> float | None:
        return (_mean([r.scores[method]["psnr"] for r in goal_pairs]) - _mean([r.scores["telea"]["psnr"] for r in goal_pairs])
                if goal_pairs else None)

    gain = gain_over_telea("model")
    goal = {"psnr_gain_db_10_40": gain, "met": gain is not None and gain >= GOAL_GAIN_DB}
    if PRIOR in methods:
        goal["prior_psnr_gain_db_10_40"] = gain_over_telea(PRIOR)
    return {"pairs": len(results), "bands": bands, "floor": {"per_band": floor, "met": bool(floor) and all(floor.values())},
            "goal": goal}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


class SheetRows:
    """Keeps the first pair of every band: input | Telea | model | original, one row each."""

    COLUMNS = ("input", "telea", "model", "original")

    def __init__(self) -> None:
        self.rows: dict[int, list[np.ndarray]] = {}

    def __call__(self, result: PairResult, images: dict[str, np.ndarray]) -> None:
        if result.band not in self.rows:
            self.rows[result.band] = [_cell(images[name]) for name in self.COLUMNS]

    def write(self, path: Path) -> Path:
        header = np.full((28, SHEET_CELL * len(self.COLUMNS), 3), 255, dtype=np.uint8)
        for index, name in enumerate(("input", "Telea", "model", "original")):
            cv2.putText(header, name, (index * SHEET_CELL + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                        cv2.LINE_AA)
        rows = [np.hstack(cells) for _, cells in sorted(self.rows.items())]
        return write_image(Picture(rgb=np.vstack([header, *rows]), alpha=None), path, overwrite=True)


def _cell(rgb: np.ndarray) -> np.ndarray:
    """The picture fitted into a white SHEET_CELL square (aspect kept)."""
    height, width = rgb.shape[:2]
    factor = (SHEET_CELL - 4) / max(height, width)
    small = resize_plane(rgb, (max(1, round(width * factor)), max(1, round(height * factor))))
    cell = np.full((SHEET_CELL, SHEET_CELL, 3), 255, dtype=np.uint8)
    top, left = (SHEET_CELL - small.shape[0]) // 2, (SHEET_CELL - small.shape[1]) // 2
    cell[top:top + small.shape[0], left:left + small.shape[1]] = small
    return cell


def store_card_metrics(card_path: Path, summary: dict[str, Any], protocol: dict[str, Any]) -> Path:
    """Write the summary into a model card's "metrics" (the ONNX file, and so its sha256, is unchanged)."""
    if not card_path.is_file():
        raise InputError("these weights have no model card to store the metrics in", path=card_path,
                         hint="evaluate weights exported with `imgan export inpaint`")
    update_metrics(card_path, {"protocol": protocol, **summary})
    return card_path


def prior_inpainter(measured: Weights | None, *, device: str = "auto", threads: int | None = None) -> Inpainter | None:
    """The shipped push-pull prior, to measure beside `measured` (None: beside a checkpoint's net);
    None when it is not installed or is what is measured."""
    prior = weights_for_task(TASK).get(PRIOR_NAME)
    if prior is None or (measured is not None and not measured.card.model_config.get("refine", True)):
        return None
    return inpainter_for_weights(prior, device=device, threads=threads)


def evaluate_inpaint(*, images: Path, masks: Path, weights: str | None = None, limit: int | None = None,
                     sheet: Path | None = None, card_metrics: bool = False, prior: bool = True, device: str = "auto",
                     threads: int | None = None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """`imgan eval inpaint`: the report (weights, folders, the summary, and the paths of the sheet
    and card when written). `prior`: also the push-pull prior alone. `progress(done, total)` is
    called after every pair."""
    chosen = resolve_weights(TASK, weights)
    inpainter = inpainter_for_weights(chosen, device=device, threads=threads)
    baseline = prior_inpainter(chosen, device=device, threads=threads) if prior else None
    pairs = evaluation_pairs(list_image_files(images, "images"), list_image_files(masks, "masks"), limit)
    rows = SheetRows() if sheet is not None else None
    summary = summarize(evaluate_pairs(pairs, inpainter, prior=baseline, keep=rows, on_pair=progress))
    report = {"weights": chosen.id, "file": str(chosen.file), "images": str(images), "masks": str(masks), **summary}
    if rows is not None:
        report["sheet"] = str(rows.write(sheet))
    if card_metrics:
        protocol = {"images": images.name, "masks": masks.name, "pairs": summary["pairs"], "limit": limit,
                    "command": "imgan eval inpaint (see plugins/imgan_inpaint/evaluate.py)"}
        report["card"] = str(store_card_metrics(chosen.card_path, summary, protocol))
    return report
