"""`imgan eval sr`: bicubic and every shipped model of a scale on a folder of HR images, by the
literature's protocol (see protocol.py): the figures (PSNR/SSIM, the grid energy on flat areas, with
--tta each model's self-ensemble too; the CLI renders them), a crop sheet to judge sharpness, and
the figures of an exported file for its model card.

Runs the ONNX files through the same transform as `imgan upscale` (ONNX Runtime, no torch).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from imgan.cards import card_path_for, update_metrics
from imgan.errors import UsageError
from imgan.io.images import Picture
from imgan.weights import Weights, resolve_weights, weights_for_task

from . import TASK
from .infer import weights_transform
from .protocol import (GRID_WINDOW, EvalImage, GridEnergy, Quality, bicubic_upscale, flat_residual_power, grid_ratios,
                       load_eval_set, mean_quality, measure)

PROTOCOL = ("HR cropped to a multiple of the scale; LR = MATLAB-style bicubic imresize (antialiased, "
            "a=-0.5, uint8); PSNR/SSIM on BT.601 Y after shaving `scale` pixels per border")
REAL_PROTOCOL = ("HR cropped to a multiple of the scale; LR = Real-ESRGAN's second-order degradation with a "
                 "fixed seed per image (degrade.degrade_fixed: blur, resize, noise, JPEG, twice, then x1/scale), "
                 "uint8; PSNR/SSIM on BT.601 Y after shaving `scale` pixels per border")
PHOTO_PROTOCOL = ("HR cropped to a multiple of the scale; LR = Gaussian blur (sigma 1.2 HR px), MATLAB-style bicubic "
                  "x1/scale, colour Gaussian noise (sigma 4/255, fixed seed per image), JPEG quality 70 "
                  "(protocol.degrade_photo_fixed: a phone photo or web JPEG); PSNR/SSIM on BT.601 Y after "
                  "shaving `scale` pixels per border")
PROTOCOLS = {"bicubic": PROTOCOL, "real": REAL_PROTOCOL, "photo": PHOTO_PROTOCOL}
PERCEPTUAL = ("perceptual distance: unlearned LPIPS baseline on VGG19 relu1_2, relu2_2, relu3_4 (features "
              "unit-normalised over channels, squared difference, spatial mean, summed), lower is better; "
              "not LPIPS with learned weights")
GRID = (f"grid4/grid2: residual power at the 4-/2-pixel periods over that at the neighbouring frequencies, "
        f"{GRID_WINDOW}-px windows, the flattest quarter of each image (by HR gradient), all images pooled; "
        "0 dB: no grid")
BICUBIC = "bicubic"
TTA_SUFFIX = "+tta"
SHEET_CROP = 96  # HR pixels of each sheet panel, before enlarging
SHEET_ZOOM = 2

Upscaler = Callable[[np.ndarray], np.ndarray]  # (h, w, 3) uint8 -> (h*s, w*s, 3) uint8


@dataclass
class MethodResult:
    name: str
    per_image: dict[str, Quality]
    mean: Quality
    seconds: float
    grid: GridEnergy
    outputs: list[np.ndarray] = field(default_factory=list, repr=False)
    perceptual: float | None = None  # mean perceptual distance to HR (PERCEPTUAL), when measured
    weights: Weights | None = None  # the model measured (None: bicubic)
    ensembled: bool = False  # with --tta's self-ensemble


@dataclass
class EvalReport:
    data: Path
    scale: int
    images: list[EvalImage]
    methods: list[MethodResult]
    degrade: str = "bicubic"

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.degrade]

    def to_dict(self) -> dict:
        return {
            "data": str(self.data), "scale": self.scale, "degrade": self.degrade, "protocol": self.protocol,
            "images": [image.name for image in self.images],
            "methods": {m.name: {"psnr_y": m.mean.psnr_y, "ssim_y": m.mean.ssim_y, "seconds": m.seconds,
                                 "perceptual": m.perceptual, "grid4_db": m.grid.period4_db,
                                 "grid2_db": m.grid.period2_db, "grid_windows": m.grid.windows,
                                 "per_image": {name: {"psnr_y": q.psnr_y, "ssim_y": q.ssim_y}
                                               for name, q in m.per_image.items()}}
                        for m in self.methods},
        }


def perceptual_distance(vgg_weights: str | None = None):
    """The perceptual distance (PERCEPTUAL), its VGG19 weights loaded now: a missing file fails before any model runs."""
    from imgan.train.perceptual_distance import PerceptualDistance

    return PerceptualDistance(vgg_weights)


def add_perceptual_distances(report: EvalReport, vgg_weights: str | None = None, *, distance=None) -> EvalReport:
    """Each method's mean perceptual distance to HR (needs torch: the train extra); ``distance``: one made
    by ``perceptual_distance`` already."""
    distance = distance if distance is not None else perceptual_distance(vgg_weights)
    for method in report.methods:
        method.perceptual = float(np.mean([distance(output, image.hr)
                                           for output, image in zip(method.outputs, report.images)]))
    return report


def model_upscaler(weights: Weights, *, scale: int | None = None, device: str = "auto", threads: int | None = None,
                   tta: bool = False) -> Upscaler:
    """The weights as `imgan upscale --weights W --scale S` runs them: a larger scale's model is
    followed by the area averaging that --scale does."""
    if scale is None or scale == weights.scale:
        transform = weights_transform(weights, device=device, threads=threads, tta=tta)
    else:
        from .infer import make_transform

        transform = make_transform(weights=str(weights.file), scale=scale, device=device, threads=threads, tta=tta)
    return lambda lr: transform(Picture(rgb=lr, alpha=None)).rgb


def pooled_grid(outputs: Sequence[np.ndarray], images: Sequence[EvalImage], border: int) -> GridEnergy:
    """The grid energy of all the images' flat windows together."""
    found = [flat_residual_power(output, image.hr, border=border) for output, image in zip(outputs, images)]
    return grid_ratios(sum(power for power, _ in found), sum(count for _, count in found))


def evaluate_method(name: str, upscale: Upscaler, images: Sequence[EvalImage], scale: int, *,
                    weights: Weights | None = None, ensembled: bool = False) -> MethodResult:
    started = time.perf_counter()
    outputs = [upscale(image.lr) for image in images]
    seconds = time.perf_counter() - started
    per_image = {image.name: measure(output, image.hr, border=scale) for image, output in zip(images, outputs)}
    return MethodResult(name, per_image, mean_quality(list(per_image.values())), seconds,
                        pooled_grid(outputs, images, scale), outputs, weights=weights, ensembled=ensembled)


def chosen_weights(names: Sequence[str] | None, scale: int) -> list[Weights]:
    """The named weights (names or .onnx paths; a larger scale's too, measured area-averaged down as
    `imgan upscale --scale` does), else every catalogued sr model of this scale."""
    if names:
        found = [resolve_weights(TASK, name) for name in names]
    else:
        found = [w for _, w in sorted(weights_for_task(TASK).items()) if w.scale == scale]
    wrong = [w.name for w in found if w.scale < scale]
    if wrong:
        raise UsageError(f"weights {', '.join(wrong)} upscale less than ×{scale}", hint=f"name ×{scale} (or larger) weights")
    return found


def weights_labels(entries: Sequence[Weights]) -> list[str]:
    """Each entry's name, or for a name given twice (a new export beside the installed model it
    replaces) the file's, so every row is its own."""
    names = [entry.name for entry in entries]
    return [entry.file.name if names.count(entry.name) > 1 else entry.name for entry in entries]


def method_name(weights: Weights, scale: int, ensembled: bool, label: str | None = None) -> str:
    """A row's name: the weights' (or `label`), "NAME ×4→×2" when a larger scale is reduced, "+tta" when ensembled."""
    reduced = f" ×{weights.scale}→×{scale}" if weights.scale != scale else ""
    return (label or weights.name) + reduced + (TTA_SUFFIX if ensembled else "")


def evaluate_folder(data: str | os.PathLike, weights: Sequence[str] | None = None, *, scale: int = 4,
                    device: str = "auto", threads: int | None = None, degrade: str = "bicubic",
                    tta: bool = False) -> EvalReport:
    """Bicubic and each model on every image of ``data`` by the protocol (LR made as ``degrade`` says);
    with ``tta`` each model also with its self-ensemble (a method named NAME+tta)."""
    entries = chosen_weights(weights, scale)  # a wrong name fails before any image is read
    images = load_eval_set(data, scale, degrade=degrade)
    methods = [evaluate_method(BICUBIC, lambda lr: bicubic_upscale(lr, scale), images, scale)]
    labels = weights_labels(entries)
    for entry, label in zip(entries, labels):
        for ensembled in (False, True) if tta else (False,):
            upscale = model_upscaler(entry, scale=scale, device=device, threads=threads, tta=ensembled)
            methods.append(evaluate_method(method_name(entry, scale, ensembled, label), upscale, images, scale,
                                           weights=entry, ensembled=ensembled))
    return EvalReport(Path(data), scale, images, methods, degrade)


def card_figures(report: EvalReport, method: MethodResult) -> dict:
    """One method's figures as a model card keeps them: its mean Y PSNR/SSIM beside bicubic's, the
    perceptual distance and grid energy when measured, and the protocol."""
    bicubic = report.methods[0]
    figures = {"psnr_y": round(method.mean.psnr_y, 3), "ssim_y": round(method.mean.ssim_y, 4)}
    if method.perceptual is not None:
        figures |= {"perceptual": round(method.perceptual, 4), "grid4_db": round(method.grid.period4_db, 2),
                    "grid2_db": round(method.grid.period2_db, 2)}
    figures |= {"bicubic_psnr_y": round(bicubic.mean.psnr_y, 3), "bicubic_ssim_y": round(bicubic.mean.ssim_y, 4)}
    if bicubic.perceptual is not None:
        figures["bicubic_perceptual"] = round(bicubic.perceptual, 4)
    return figures | {"images": len(report.images), "protocol": report.protocol}


def metrics_key(label: str, degrade: str) -> str:
    """The card's key of a protocol's figures: the data set's label, then the LR kind unless clean bicubic."""
    return label if degrade == "bicubic" else f"{label} {degrade}"


def measure_weights_file(path: str | os.PathLike, data: str | os.PathLike, *, scale: int = 4,
                         degrade: str = "bicubic") -> dict:
    """Figures for a model card: the model's and bicubic's mean Y PSNR/SSIM on ``data``."""
    report = evaluate_folder(data, [str(path)], scale=scale, device="cpu", degrade=degrade)
    return card_figures(report, report.methods[1])


def record_card_metrics(path: str | os.PathLike, data: str | os.PathLike, *, scale: int = 4) -> dict:
    """Measure the .onnx at ``path`` on ``data`` by both protocols and store the figures in its card, under
    the folder's name (clean bicubic LR) and "<folder> real" (the real-world degradation)."""
    metrics = {metrics_key(Path(data).name, degrade): measure_weights_file(path, data, scale=scale, degrade=degrade)
               for degrade in ("bicubic", "real")}
    update_metrics(card_path_for(path), metrics)
    return metrics


def record_report_metrics(reports: Sequence[EvalReport], label: str | None = None) -> list[Path]:
    """`imgan eval sr --card-metrics`: each measured model's figures (at its own scale, without the
    self-ensemble) into its card, one key per protocol ("<label>", "<label> real", ...; label: the
    folder's name). Returns the cards written."""
    written: dict[Path, dict] = {}
    for report in reports:
        key = metrics_key(label or report.data.name, report.degrade)
        for method in report.methods:
            if method.weights is None or method.ensembled or method.weights.scale != report.scale:
                continue
            written.setdefault(method.weights.card_path, {})[key] = card_figures(report, method)
    for card, metrics in written.items():
        update_metrics(card, metrics)
    return list(written)


# ----------------------------------------------------------------------------------- crop sheet


def detail_window(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size``-square window with the most gradient energy (texture shows there)."""
    gray = hr.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.abs(np.diff(gray, axis=1))
    energy[1:, :] += np.abs(np.diff(gray, axis=0))
    summed = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image
    totals = summed[size:, size:] - summed[:-size, size:] - summed[size:, :-size] + summed[:-size, :-size]
    top, left = np.unravel_index(np.argmax(totals), totals.shape)
    return int(top), int(left)


def write_sheet(report: EvalReport, path: str | os.PathLike) -> Path:
    """One row per image: the same detailed crop of the LR input (each pixel a scale×scale block, so what
    the models were given is seen), of every method, then of HR; enlarged ×2 (nearest)."""
    from PIL import Image, ImageDraw

    lr_blocks = [np.repeat(np.repeat(image.lr, report.scale, axis=0), report.scale, axis=1) for image in report.images]
    columns = ([("LR", lr_blocks)] + [(m.name, m.outputs) for m in report.methods]
               + [("HR", [image.hr for image in report.images])])
    size = min(SHEET_CROP, *(min(image.hr.shape[:2]) for image in report.images))
    panel, gap, label_height = size * SHEET_ZOOM, 4, 18
    sheet = Image.new("RGB", (len(columns) * (panel + gap) + gap, label_height + len(report.images) * (panel + gap)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for column, (name, _) in enumerate(columns):
        draw.text((gap + column * (panel + gap) + 2, 3), name, fill=(0, 0, 0))
    for row, image in enumerate(report.images):
        top, left = detail_window(image.hr, size)
        for column, (_, outputs) in enumerate(columns):
            crop = outputs[row][top:top + size, left:left + size]
            tile = Image.fromarray(crop).resize((panel, panel), Image.Resampling.NEAREST)
            sheet.paste(tile, (gap + column * (panel + gap), label_height + row * (panel + gap)))
    target = Path(path)
    sheet.save(target)
    return target
