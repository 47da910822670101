"""Loss curves from a run's log.jsonl, drawn with Pillow (matplotlib is not a dependency).

One small panel per loss, each with its own y range: the terms of a GAN differ by orders of
magnitude, and on one shared axis most of them would be flat lines. Each panel shows the raw
values (light) and an exponential moving average (dark) because per-step GAN losses are noisy.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from imgan.errors import InputError

LOG_NAME = "log.jsonl"
PLOT_NAME = "losses.png"
NOT_LOSSES = ("step", "time")
UNSMOOTHED = ("lr",)  # schedules, not noisy measurements

PANEL_W, PANEL_H = 360, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 12, 26, 28
COLUMNS = 3
RAW_COLOUR, SMOOTH_COLOUR = (170, 190, 225), (31, 80, 160)
AXIS_COLOUR, GRID_COLOUR, TEXT_COLOUR = (90, 90, 90), (228, 228, 228), (20, 20, 20)


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of run_dir/log.jsonl, skipping a last line cut short by a crash."""
    path = Path(run_dir) / LOG_NAME
    if not path.is_file():
        raise InputError("no training log", path=path, hint="pass a run directory written by `imgan train`")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_losses(run_dir: str | Path, *, out: str | Path | None = None, smoothing: float | None = None) -> Path:
    """Draw every value in run_dir/log.jsonl against step; write run_dir/losses.png (or `out`).

    `smoothing` is the moving average's decay in [0, 1); by default it averages over about a
    twentieth of the points, so short and long runs both read well.
    """
    records = read_log(run_dir)
    curves = _curves(records)
    if not curves:
        raise InputError("the training log has no loss values yet", path=Path(run_dir) / LOG_NAME,
                         hint="wait until the run has logged a few steps")
    rows = math.ceil(len(curves) / COLUMNS)
    canvas = Image.new("RGB", (PANEL_W * min(COLUMNS, len(curves)), PANEL_H * rows), "white")
    for index, (name, points) in enumerate(curves.items()):
        panel = _draw_panel(name, points, smoothing)
        canvas.paste(panel, ((index % COLUMNS) * PANEL_W, (index // COLUMNS) * PANEL_H))
    out_path = Path(out) if out is not None else Path(run_dir) / PLOT_NAME
    canvas.save(out_path)
    return out_path


def _curves(records: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """{loss name: [(step, value), ...]} for every finite numeric value in the log."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        for name, value in record.items():
            if name in NOT_LOSSES or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            curves.setdefault(name, []).append((float(record["step"]), float(value)))
    return curves


def _smooth(values: list[float], smoothing: float | None) -> list[float]:
    if smoothing is None:
        smoothing = max(0.0, 1.0 - 20.0 / len(values))
    smoothed, average = [], values[0]
    for value in values:
        average = smoothing * average + (1 - smoothing) * value
        smoothed.append(average)
    return smoothed


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Without FreeType, Pillow returns its fixed bitmap font and ignores the size.
    return ImageFont.load_default(size=size)


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, *, anchor: str = "lt") -> None:
    """Draw text anchored by (l|r)(t|m); computed here because bitmap fonts reject `anchor=`."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = xy
    x -= (right - left) if anchor[0] == "r" else 0
    y -= (bottom - top) / 2 if anchor[1] == "m" else 0
    draw.text((x - left, y - top), text, fill=TEXT_COLOUR, font=font)


def _format(value: float) -> str:
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.2e}"


def _draw_panel(name: str, points: list[tuple[float, float]], smoothing: float | None) -> Image.Image:
    panel = Image.new("RGB", (PANEL_W, PANEL_H), "white")
    draw = ImageDraw.Draw(panel)
    steps = [step for step, _ in points]
    values = [value for _, value in points]
    # Log scale only where it helps: all positive and spanning more than two decades.
    log_y = min(values) > 0 and max(values) / min(values) > 100
    to_y = math.log10 if log_y else (lambda value: value)
    low, high = to_y(min(values)), to_y(max(values))
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    first_step, last_step = steps[0], max(steps[-1], steps[0] + 1)
    left, right = MARGIN_LEFT, PANEL_W - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, PANEL_H - MARGIN_BOTTOM

    def pixel(step: float, value: float) -> tuple[float, float]:
        x = left + (step - first_step) / (last_step - first_step) * (right - left)
        y = bottom - (to_y(value) - low) / (high - low) * (bottom - top)
        return x, y

    font = _font(11)
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * (bottom - top)
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR)
        label_value = low + fraction * (high - low)
        label = _format(10**label_value if log_y else label_value)
        _text(draw, (left - 4, y), label, font, anchor="rm")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
    _text(draw, (left, bottom + 4), f"{first_step:g}", font)
    _text(draw, (right, bottom + 4), f"step {last_step:g}", font, anchor="rt")
    title = f"{name}  (last {_format(values[-1])}{', log y' if log_y else ''})"
    _text(draw, (left, 6), title, _font(13))
    if len(points) == 1:
        x, y = pixel(steps[0], values[0])
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=SMOOTH_COLOUR)
        return panel
    if name in UNSMOOTHED:
        draw.line([pixel(s, v) for s, v in points], fill=SMOOTH_COLOUR, width=2)
        return panel
    draw.line([pixel(s, v) for s, v in points], fill=RAW_COLOUR, width=1)
    draw.line([pixel(s, v) for s, v in zip(steps, _smooth(values, smoothing))], fill=SMOOTH_COLOUR, width=2)
    return panel
