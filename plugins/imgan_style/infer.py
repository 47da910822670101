"""Stylising pictures with ONNX Runtime and NumPy (no torch anywhere on this path).

Per picture: scale to the working size (--size) -> stylise -> back to the picture's size ->
preserve colour -> blend by strength -> the picture's own dtype, alpha untouched.

The fast net normalises with statistics taken from a *reference*: the whole working image
shrunk to `reference_size`. Tiles of a big image all share it, so they join without seams; in a
video the reference can follow a moving average of the frames (--stable), which steadies the
statistics from frame to frame; the previous output, warped along the optical flow, is blended
in where it explains the current frame, so strokes stick to moving surfaces (FlowBlender).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np

from imgan.errors import UsageError
from imgan.io.images import Picture, from_float, long_side_size, read_image, resize_plane, to_float, write_image
from imgan.pipeline import TileProgress as Progress
from imgan.runtime.model_transform import LUMA, run_model
from imgan.weights import Weights, resolve_weights, weights_for_task

from .spec import (DEFAULT_OPTIMISATION_SIZE, DEFAULT_REFERENCE_SIZE, DEFAULT_SIZE, DEFAULT_STYLE,
                   DEFAULT_UNIVERSAL_SIZE, LEVELS, MULTIPLE, TASK, THUMBNAIL_SIDE, WHOLE_PASS_PIXELS, check_method,
                   check_strength)
from .universal_infer import pad_to

if TYPE_CHECKING:
    from .style_stats import PaintingStyle

COMPARE_HEIGHT = 480
OWN_REFERENCE_OUTPUT = "styled_reference"
PROBE_SIDE = 16  # the probe input's side: the smallest the net's reflection pads take at 1/4 resolution, and more

# (H, W, 3) float32 in [0, 1] -> same shape; may report sub-steps (tiles, optimisation steps)
Stylise = Callable[[np.ndarray, "Progress | None", bool], np.ndarray]


@dataclass(frozen=True)
class StyleOptions:
    """size: longest side the style is applied at (None: the picture's, at most `default_size`).
    strength: 1 = full style, 0 = the original. preserve_color: keep the original's colours (chroma).
    stable: for video frames, the normalisation statistics follow a moving average of the frames and
        each output is blended with the previous output warped along the optical flow.
    compare: write input | painting | output side by side to this file."""

    size: int | None = None
    strength: float = 1.0
    preserve_color: bool = False
    stable: bool = True
    compare: Path | None = None
    reference_size: int = DEFAULT_REFERENCE_SIZE
    default_size: int = DEFAULT_SIZE

    def __post_init__(self) -> None:
        check_strength(self.strength)
        if self.size is not None and not 16 <= self.size <= 16384:
            raise UsageError(f"--size must be between 16 and 16384 pixels, got {self.size}")
        if self.reference_size < 16:
            raise UsageError(f"the reference size must be at least 16 pixels, got {self.reference_size}")


# ------------------------------------------------------------------------------------ the maths


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float -> (...) BT.601 luma."""
    return rgb @ LUMA


def preserve_colour(original: np.ndarray, styled: np.ndarray) -> np.ndarray:
    """The styled luma with the original's chroma: in YCbCr, Y from `styled`, Cb and Cr from `original`.

    Changing only Y by d adds d to R, G and B alike (the YCbCr->RGB matrix has a column of ones),
    so this is original + (Y_styled - Y_original) on every channel, clipped to [0, 1].
    """
    return np.clip(original + (luma(styled) - luma(original))[..., None], 0.0, 1.0)


def blend(original: np.ndarray, styled: np.ndarray, strength: float) -> np.ndarray:
    """strength * styled + (1 - strength) * original."""
    check_strength(strength)
    if strength == 1.0:
        return styled
    return strength * styled + (1.0 - strength) * original


def working_size(height: int, width: int, size: int | None, default_size: int = DEFAULT_SIZE) -> tuple[int, int]:
    """(width, height) with the longest side at `size` (default: the picture's, capped at default_size)."""
    return long_side_size(height, width, size if size is not None else min(max(height, width), default_size))


def reference_of(rgb: np.ndarray, reference_size: int) -> np.ndarray:
    """(H, W, 3) -> (1, 3, h, w) float32: the whole image, longest side at most reference_size,
    sides rounded to multiples of 4 (the net's stride grid). An image no larger than that is its own
    reference: reflect-padded to multiples of 4, as the one-pass run pads it, so tiles of it are
    normalised exactly as the one-stream pass (fast_stylise) normalises the whole."""
    height, width = rgb.shape[:2]
    if max(height, width) <= reference_size:
        return pad_to(rgb, MULTIPLE)
    factor = reference_size / max(height, width)
    size = tuple(max(MULTIPLE, int(round(side * factor / MULTIPLE)) * MULTIPLE) for side in (width, height))
    small = resize_plane(np.ascontiguousarray(rgb, dtype=np.float32), size)  # (h, w, 3)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None])


def flicker(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of the outputs divided by the inputs'.

    1 = the output changes as much as the input does; above 1 = the style adds flicker.
    """
    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise UsageError("flicker needs the same number (at least 2) of input and output frames")

    def mean_change(frames: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(to_float(b) - to_float(a)).mean() for a, b in zip(frames, frames[1:])]))

    change_in = mean_change(inputs)
    return mean_change(outputs) / change_in if change_in > 0 else float("inf")


# ------------------------------------------------------------------------------------ video steadiness


class ReferenceSmoother:
    """Exponential moving average of reference thumbnails across video frames.

    A scene cut (thumbnails far apart) or a size change restarts the average, so the style of a
    new shot never carries the old shot's statistics.
    """

    def __init__(self, decay: float = 0.9, cut_threshold: float = 0.12):
        self.decay = decay
        self.cut_threshold = cut_threshold
        self.average: np.ndarray | None = None

    def reset(self) -> None:
        self.average = None

    def update(self, reference: np.ndarray) -> np.ndarray:
        previous = self.average
        if previous is None or previous.shape != reference.shape or \
                float(np.abs(reference - previous).mean()) > self.cut_threshold:
            self.average = reference.copy()
        else:
            self.average = self.decay * previous + (1.0 - self.decay) * reference
        return self.average


class FlowBlender:
    """Temporal steadiness without smearing: each stylised frame is blended with the previous
    *output*, warped along the optical flow onto the current frame.

    Where the warp explains the current input well (the same surface, merely moved) the two
    agree, so brush strokes stick to surfaces instead of boiling; where it does not (occlusions,
    new content, scene cuts) the confidence is 0 and the fresh frame is kept as it is.
    """

    def __init__(self, weight: float = 0.6, tolerance: float = 0.08):
        self.weight = weight
        self.tolerance = tolerance
        self.previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, output), (H, W, 3) float
        self._flow = None

    def reset(self) -> None:
        self.previous = None

    def blend(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        if self.previous is None or self.previous[0].shape != frame.shape:
            self.previous = (frame, styled)
            return styled
        previous_input, previous_output = self.previous
        map_x, map_y = self._backward_maps(frame, previous_input)
        warped_input = cv2.remap(previous_input, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_output = cv2.remap(previous_output, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        confidence = np.clip(1.0 - np.abs(frame - warped_input).mean(axis=2) / self.tolerance, 0.0, 1.0)
        result = styled + (self.weight * confidence)[..., None] * (warped_output - styled)
        self.previous = (frame, result)
        return result

    def _backward_maps(self, frame: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each pixel of `frame`, where it was in `previous` (x and y maps for cv2.remap)."""
        if self._flow is None:
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        flow = self._flow.calc(_gray8(frame), _gray8(previous), None)  # (H, W, 2)
        rows, cols = np.mgrid[0:frame.shape[0], 0:frame.shape[1]].astype(np.float32)
        return cols + flow[..., 0], rows + flow[..., 1]


def _gray8(rgb: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(luma(rgb), 0.0, 1.0) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------------------ the fast net


def fast_stylise(model: Callable[..., np.ndarray], weights: Weights, *, tile: int | None = None,
                 reference_size: int = DEFAULT_REFERENCE_SIZE, smoother: ReferenceSmoother | None = None) -> Stylise:
    """The fast net as a Stylise function, every part of the image normalised by one reference.

    Working images up to WHOLE_PASS_PIXELS (all default sizes) go through in one pass: tiling
    would only add overlap. Bigger ones, or any given `tile`, are tiled with the card's overlap.
    """

    one_stream = _own_reference_model(model)

    def stylise(rgb: np.ndarray, progress: Progress | None, is_frame: bool) -> np.ndarray:
        smoothed = smoother is not None and is_frame  # a video's reference is an average: not the frame
        whole = tile is None and rgb.shape[0] * rgb.shape[1] <= WHOLE_PASS_PIXELS
        if one_stream is not None and whole and not smoothed and max(rgb.shape[:2]) <= reference_size:
            if smoother is not None:
                smoother.reset()
            return run_model(one_stream, rgb, weights.running, whole_pass_pixels=WHOLE_PASS_PIXELS, progress=progress)
        reference = reference_of(rgb, reference_size)  # (1, 3, h, w)
        if smoothed:
            reference = smoother.update(reference)
        elif smoother is not None:
            smoother.reset()  # a still picture ends any video's average
        return run_model(model, rgb, weights.running, tile=tile, whole_pass_pixels=WHOLE_PASS_PIXELS,
                         constants=(reference,), progress=progress)

    return stylise


def _own_reference_model(model: Callable[..., np.ndarray]) -> Callable[[np.ndarray], np.ndarray] | None:
    """The net on a picture that is its own reference, in one stream: the picture fed as the
    reference beside a tiny probe input, its "styled_reference" output read (the same result as
    feeding it as both, at half the work). None for a file exported before that output existed."""
    names = list(getattr(model, "output_names", ()))
    if OWN_REFERENCE_OUTPUT not in names:
        return None
    index = names.index(OWN_REFERENCE_OUTPUT)
    probe = np.zeros((1, 3, PROBE_SIDE, PROBE_SIDE), dtype=np.float32)
    return lambda batch: model.run(probe, batch)[index]


class StyleTransform:
    """Picture -> Picture around a Stylise function: size, colour, strength, alpha, compare sheet."""

    def __init__(self, stylise: Stylise, options: StyleOptions, thumbnail: np.ndarray | None = None,
                 progress_unit: str = "tiles"):
        self.progress_unit = progress_unit  # what the progress bar counts (an optimisation: steps)
        self.also_written: list[Path] = []  # --compare sheets, listed by the batch report
        self.stylise = stylise
        self.options = options
        self.thumbnail = thumbnail
        self.blender = FlowBlender() if options.stable else None
        self._sheets_written = 0

    def __call__(self, picture: Picture, progress: Progress | None = None) -> Picture:
        options = self.options
        original = to_float(picture.rgb)  # (H, W, 3)
        height, width = original.shape[:2]
        size = working_size(height, width, options.size, options.default_size)
        work = original if size == (width, height) else resize_plane(original, size)
        # Video frames come without a source file; temporal smoothing only makes sense for them.
        is_frame = picture.source is None
        styled = self.stylise(work, progress, is_frame)
        if self.blender is not None and is_frame:
            styled = self.blender.blend(work, styled)
        elif self.blender is not None:
            self.blender.reset()
        if styled.shape[:2] != (height, width):
            styled = np.clip(resize_plane(styled, (width, height)), 0.0, 1.0)
        if options.preserve_color:
            styled = preserve_colour(original, styled)
        styled = blend(original, styled, options.strength)
        result = picture.replace(rgb=from_float(styled, picture.rgb.dtype),
                                 gray=picture.gray and options.preserve_color)
        if options.compare is not None:
            self._write_sheet(picture, result)
        return result

    def _write_sheet(self, picture: Picture, result: Picture) -> None:
        if picture.source is None and self._sheets_written:
            return  # a video: one sheet, from its first frame
        target = Path(self.options.compare)
        if self._sheets_written and picture.source is not None:
            target = target.with_name(f"{target.stem}.{picture.source.stem}{target.suffix}")
        sheet = compare_sheet(picture.rgb, self.thumbnail, result.rgb)
        self.also_written.append(write_image(Picture(rgb=sheet, alpha=None), target, overwrite=True))
        self._sheets_written += 1


def compare_sheet(original: np.ndarray, painting: np.ndarray | None, styled: np.ndarray,
                  height: int = COMPARE_HEIGHT, gap: int = 4) -> np.ndarray:
    """input | painting | output, each scaled to one height, on white: (h, W, 3) uint8."""
    height = min(height, original.shape[0])
    panels = [panel for panel in (original, painting, styled) if panel is not None]
    scaled = []
    for panel in panels:
        panel = from_float(to_float(panel), np.uint8)
        width = max(1, round(panel.shape[1] * height / panel.shape[0]))
        scaled.append(resize_plane(panel, (width, height)))
    sheet = np.full((height, sum(p.shape[1] for p in scaled) + gap * (len(scaled) - 1), 3), 255, np.uint8)
    left = 0
    for panel in scaled:
        sheet[:, left:left + panel.shape[1]] = panel
        left += panel.shape[1] + gap
    return sheet


# ------------------------------------------------------------------------------------ catalogue


def resolve_style(style: str | None, weights: str | None = None) -> Weights:
    """--style NAME (or --weights NAME/FILE) of a fast net; an unknown name lists the installed styles."""
    if style is not None and weights is not None and style != weights:
        raise UsageError("give either --style or --weights, not both")
    chosen = style if style is not None else weights
    try:
        return resolve_weights(TASK, chosen, default=DEFAULT_STYLE)
    except UsageError:
        raise unknown_style(chosen or DEFAULT_STYLE) from None


def unknown_style(name: str) -> UsageError:
    from .style_stats import painting_styles

    fast = ", ".join(sorted(weights_for_task(TASK))) or "none installed"
    paintings = ", ".join(sorted(painting_styles())) or "none installed"
    return UsageError(f"unknown style {name!r}", hint=f"available styles: {fast} (fast nets); painting styles: "
                                                      f"{paintings}; add one with `imgan train style` or `imgan styles --add`")


def thumbnail_of(weights: Weights) -> np.ndarray | None:
    """The painting's thumbnail shipped beside the weights, as (h, w, 3) uint8, if there is one."""
    name = weights.inference.get("thumbnail")
    return _read_thumbnail(weights.file.with_name(name) if name else weights.file.with_suffix(".png"))


def _read_thumbnail(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    return from_float(to_float(read_image(path).rgb), np.uint8)


def painting_thumbnail(path: str | Path, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """(h, w, 3) uint8 of a painting, longest side `side`; InputError naming the file if unreadable."""
    rgb = read_image(Path(path)).rgb
    small = resize_plane(rgb, long_side_size(*rgb.shape[:2], min(side, max(rgb.shape[:2]))))
    return from_float(to_float(small), np.uint8)


def list_styles() -> list[dict]:
    """Every style `--style NAME` takes, for `imgan styles`: the fast nets, then the painting styles."""
    from .style_stats import painting_styles

    rows = []
    for name, weights in sorted(weights_for_task(TASK).items()):
        provenance = weights.card.provenance
        rows.append({
            "name": name,
            "kind": "fast",
            "description": weights.description,
            "style_image": weights.inference.get("style_image"),
            "origin": weights.origin,
            "file": str(weights.file),
            "steps": provenance.steps or None,
            "training_seconds": provenance.seconds or None,
            "licence": weights.licence,
        })
    for name, style in sorted(painting_styles().items()):
        rows.append({
            "name": name,
            "kind": "universal",
            "description": style.description,
            "style_image": style.inference.get("painting"),
            "origin": style.origin,
            "file": str(style.file),
            "steps": None,
            "training_seconds": None,
            "licence": style.card.licence,
            **{key: style.inference.get(key) for key in ("artist", "title", "year")},
        })
    return rows


def make_fast_transform(*, style: str | None = None, weights: str | None = None, device: str = "auto",
                        threads: int | None = None, tile: int | None = None,
                        options: StyleOptions = StyleOptions()) -> StyleTransform:
    from imgan.runtime.session import load_model

    chosen = resolve_style(style, weights)
    model = load_model(chosen.verified_path(), device=device, threads=threads)
    smoother = ReferenceSmoother() if options.stable else None
    stylise = fast_stylise(model, chosen, tile=tile, reference_size=options.reference_size, smoother=smoother)
    thumbnail = thumbnail_of(chosen) if options.compare is not None else None
    return StyleTransform(stylise, options, thumbnail)


def fast_paintings() -> dict[str, str]:
    """Fast style name -> the painting file it learnt (a fast name in a blend stands for its painting)."""
    return {name: weights.inference["style_image"] for name, weights in weights_for_task(TASK).items()
            if weights.inference.get("style_image")}


def painting_blend(style: str | Sequence[str]) -> tuple[dict, "PaintingStyle"]:
    """--style a:0.6,b:0.4 -> (per-level statistics of the blend, the heaviest painting style)."""
    from .style_stats import parse_blend, painting_style_for, painting_styles
    from .wct import blend

    shares = parse_blend(style)
    paintings = fast_paintings()
    known = painting_styles()
    for name, _ in shares:
        if name not in known and name not in paintings and not any(other.startswith(name + "-") for other in known):
            raise unknown_style(name)
    styles = [painting_style_for(name, paintings) for name, _ in shares]
    stats = [item.stats() for item in styles]
    weights = [share for _, share in shares]
    mixed = {level: blend([item[level] for item in stats], weights) for level in LEVELS}
    return mixed, styles[int(np.argmax(weights))]


def universal_transform(model, stats: dict, options: StyleOptions, thumbnail: np.ndarray | None,
                        tile: int | None) -> StyleTransform:
    """WCT with these per-level statistics. Strength acts on the features (wct.transform_for), not the pixels."""
    strength, reference_size = options.strength, options.reference_size

    def stylise(rgb: np.ndarray, progress: Progress | None, is_frame: bool) -> np.ndarray:
        return model.stylise(rgb, stats, strength=strength, reference_size=reference_size, tile=tile, progress=progress)

    options = dataclasses.replace(options, strength=1.0, default_size=DEFAULT_UNIVERSAL_SIZE)
    return StyleTransform(stylise, options, thumbnail)


def make_transform(*, weights: str | None = None, device: str = "auto", threads: int | None = None,
                   tile: int | None = None, style: str | Sequence[str] | None = None, strength: float = 1.0,
                   preserve_color: bool = False, size: int | None = None, compare: Path | None = None,
                   stable: bool = True, style_image: str | Path | None = None, steps: int = 300,
                   optimizer: str = "lbfgs", method: str | None = None,
                   reference_size: int | None = None, vgg_weights: str | None = None) -> StyleTransform:
    """The per-picture transform.

    --style NAME: a fast net when NAME is one (and no --method universal), else a painting style
    (universal WCT); a blend (a:0.6,b:0.4, or --style repeated) always runs universal.
    --style-image FILE: any painting, with --method universal (default: WCT, one pass) or
    optimise (Gatys et al., torch).
    """
    from .universal_infer import UniversalModel, read_painting

    check_method(method)
    styles = [style] if isinstance(style, str) else list(style or [])
    options = StyleOptions(size=size, strength=strength, preserve_color=preserve_color, stable=stable,
                           compare=compare, reference_size=reference_size or DEFAULT_REFERENCE_SIZE)
    if style_image is not None:
        if styles or weights is not None:
            raise UsageError("--style-image is the painting itself; it takes no --style or --weights")
        thumbnail = painting_thumbnail(style_image)  # an unreadable painting fails before any model loads
        if method == "optimise":
            from .optimise import painting_stylise

            stylise = painting_stylise(style_image, steps=steps, optimizer=optimizer, device=device, threads=threads,
                                       vgg_weights=vgg_weights)
            return StyleTransform(stylise, dataclasses.replace(options, default_size=DEFAULT_OPTIMISATION_SIZE),
                                  thumbnail, progress_unit="steps")
        model = UniversalModel.load(device=device, threads=threads)
        return universal_transform(model, model.painting_stats(read_painting(style_image)), options, thumbnail, tile)
    if method == "optimise":
        raise UsageError("--method optimise works on a painting file", hint="give it with --style-image FILE")
    if weights is not None or not styles:  # --weights FILE/NAME, or the default fast style
        if len(styles) > 1:
            raise UsageError("a blend of styles runs universal: it takes no --weights")
        return make_fast_transform(style=styles[0] if styles else None, weights=weights, device=device,
                                   threads=threads, tile=tile, options=options)
    from .style_stats import parse_blend

    shares = parse_blend(styles)
    if method is None and len(shares) == 1 and shares[0][0] in weights_for_task(TASK):
        return make_fast_transform(style=shares[0][0], device=device, threads=threads, tile=tile, options=options)
    stats, heaviest = painting_blend(styles)
    model = UniversalModel.load(device=device, threads=threads)
    thumbnail = _read_thumbnail(heaviest.thumbnail) if compare is not None else None
    return universal_transform(model, stats, options, thumbnail, tile)
