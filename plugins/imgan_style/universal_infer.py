"""Universal style transfer at inference: encoder ONNX -> NumPy WCT -> decoder ONNX, no torch.

Coarse to fine (relu3_1 -> relu2_1 -> relu1_1), each level encodes the previous level's output,
replaces its feature statistics by the painting's (wct.transform_for) and decodes.

One pass for working images up to WHOLE_PASS_PIXELS (the default working size, 512 px, always):
the content statistics are then the picture's own. A bigger working image (--size) is
processed in overlapping tiles, every tile with the same map: the content statistics come from
a *reference*, the whole picture downscaled to `reference_size`, which goes through the same
levels itself, so the tiles join without seams and memory stays bounded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from imgan.cards import Running
from imgan.errors import UsageError, WeightsError
from imgan.io.images import long_side_size, read_image, resize_plane, to_float
from imgan.runtime.model_transform import run_model
from imgan.weights import Weights, weights_for_task

from .spec import DEFAULT_UNIVERSAL_SIZE, LEVEL_MULTIPLE, LEVELS, UNIVERSAL_TASK
from .wct import Stats, Transform, stats_of, transform_for

WHOLE_PASS_PIXELS = 1024 * 1024  # working images up to this go through each level in one pass
# Pixels of context one output pixel of a level's encoder -> decoder depends on, each side (tile overlap)
MARGIN = {"relu1_1": 4, "relu2_1": 12, "relu3_1": 28}
INSTALL_HINT = "train them with `imgan train style-universal --level LEVEL` (or reinstall imgan)"

Model = Callable[[np.ndarray], np.ndarray]


def _part(models: Mapping[str, Weights], part: str, level: str) -> Weights:
    name = f"{part}-{level}"
    if name not in models:
        raise WeightsError(f"the universal style {part} for {level} is not installed", hint=INSTALL_HINT)
    return models[name]


def pad_to(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """(H, W, 3) -> (1, 3, H', W') float32, reflect-padded at the bottom and right to multiples."""
    height, width = rgb.shape[:2]
    extra_h, extra_w = -height % multiple, -width % multiple
    if extra_h or extra_w:
        rgb = np.pad(rgb, ((0, extra_h), (0, extra_w), (0, 0)), mode="reflect" if min(height, width) > 1 else "edge")
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


def single_threaded_blas() -> bool:
    """Best effort: NumPy's bundled OpenBLAS to one thread, for the rest of the process.

    The WCT maths (covariances, 256x256 eigendecompositions) is small; but OpenBLAS's threads
    spin beside ONNX Runtime's, and on a busy CPU that made a pass up to 7x slower (measured:
    11.9 s instead of 1.8 s for 512x512 on 2 cores). NumPy has no call for it, so this finds
    OpenBLAS's own setter; False where there is none (another BLAS): nothing changes then."""
    import ctypes

    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for library in sorted(folder.glob("libscipy_openblas*")):
        try:
            setter = getattr(ctypes.CDLL(str(library)), "scipy_openblas_set_num_threads64_", None)
        except OSError:
            continue
        if setter is not None:
            setter(1)
            return True
    return False


class UniversalModel:
    """The encoders and decoders of every level, as ONNX Runtime sessions."""

    def __init__(self, encoders: Mapping[str, Model], decoders: Mapping[str, Model]):
        self.encoders = dict(encoders)
        self.decoders = dict(decoders)

    @classmethod
    def load(cls, device: str = "auto", threads: int | None = None, *,
             parts: Sequence[str] = ("encoder", "decoder")) -> "UniversalModel":
        """The installed models; parts=("encoder",) is enough for a painting's statistics."""
        from imgan.runtime.session import load_model

        single_threaded_blas()
        models = weights_for_task(UNIVERSAL_TASK)
        sessions = {part: {level: load_model(_part(models, part, level).verified_path(), device=device, threads=threads)
                           for level in LEVELS} for part in parts}
        return cls(sessions.get("encoder", {}), sessions.get("decoder", {}))

    # ------------------------------------------------------------------ pieces

    def features(self, rgb: np.ndarray, level: str) -> np.ndarray:
        """(H, W, 3) in [0, 1] -> (1, C, ceil(H/m), ceil(W/m)) features of `level`."""
        return self.encoders[level](pad_to(rgb, LEVEL_MULTIPLE[level]))

    def decode(self, features: np.ndarray, level: str, height: int, width: int) -> np.ndarray:
        """(1, C, h, w) -> (height, width, 3) float32 in [0, 1]."""
        out = self.decoders[level](np.ascontiguousarray(features, dtype=np.float32))[0, :, :height, :width]
        return np.clip(out.transpose(1, 2, 0), 0.0, 1.0)

    def level_model(self, level: str, transform: Transform) -> Model:
        """(N, 3, h, w) -> (N, 3, h, w): encode, transform, decode; for run_model's tiles."""
        encoder, decoder = self.encoders[level], self.decoders[level]
        return lambda batch: np.clip(decoder(transform(encoder(batch))), 0.0, 1.0)

    def reconstruct(self, rgb: np.ndarray, level: str) -> np.ndarray:
        """The decoder's copy of a picture from its features (no style): how good the decoder is."""
        return self.decode(self.features(rgb, level), level, *rgb.shape[:2])

    def painting_stats(self, painting: np.ndarray, size: int = DEFAULT_UNIVERSAL_SIZE) -> dict[str, Stats]:
        """Per-level statistics of a painting (H, W, 3) in [0, 1], longest side at most `size`."""
        painting = shrunk(painting, size)
        return {level: stats_of(self.features(painting, level)) for level in LEVELS}

    # ------------------------------------------------------------------ the transfer

    def stylise(self, rgb: np.ndarray, style: Mapping[str, Stats], *, strength: float = 1.0,
                reference_size: int = DEFAULT_UNIVERSAL_SIZE, tile: int | None = None, progress=None) -> np.ndarray:
        """(H, W, 3) float in [0, 1] -> the same, in the style of `style` (per-level statistics)."""
        image = np.ascontiguousarray(rgb, dtype=np.float32)
        height, width = image.shape[:2]
        whole = tile is None and height * width <= WHOLE_PASS_PIXELS
        reference = None if whole and max(height, width) <= reference_size else shrunk(image, reference_size)
        for index, level in enumerate(LEVELS):
            if reference is None:  # one pass: the picture's own statistics
                features = self.features(image, level)
                transform = transform_for(stats_of(_cropped(features, image, level)), style[level], strength)
                image = self.decode(transform(features), level, height, width)
                if progress is not None:
                    progress(index + 1, len(LEVELS))
                continue
            features = self.features(reference, level)
            transform = transform_for(stats_of(_cropped(features, reference, level)), style[level], strength)
            reference = self.decode(transform(features), level, *reference.shape[:2])
            running = Running(pad_multiple=LEVEL_MULTIPLE[level], tile_overlap=MARGIN[level])
            image = run_model(self.level_model(level, transform), image, running, tile=tile,
                              whole_pass_pixels=WHOLE_PASS_PIXELS, progress=progress)
        return image


def _cropped(features: np.ndarray, rgb: np.ndarray, level: str) -> np.ndarray:
    """The features of the picture itself, without those of the padding."""
    factor = LEVEL_MULTIPLE[level]
    height, width = rgb.shape[:2]
    return features[:, :, : -(-height // factor), : -(-width // factor)]


def shrunk(rgb: np.ndarray, size: int) -> np.ndarray:
    """The picture with its longest side at most `size` (never enlarged), float32."""
    height, width = rgb.shape[:2]
    rgb = np.ascontiguousarray(to_float(rgb), dtype=np.float32)
    if max(height, width) <= size:
        return rgb
    return resize_plane(rgb, long_side_size(height, width, size))


def read_painting(path: str | Path) -> np.ndarray:
    """A painting as (H, W, 3) float32 in [0, 1]; InputError naming the file if unreadable."""
    return to_float(read_image(Path(path)).rgb).astype(np.float32)


# ----------------------------------------------------------------------------------- measuring


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@dataclass
class Reconstruction:
    """Per level: mean PSNR (dB) of decoder(encoder(photo)) against the photo."""

    psnr: dict[str, float]
    per_photo: list[dict]
    images: int
    size: int


def reconstruction_psnr(model: UniversalModel, photos: Sequence[Path], *, size: int = 512) -> Reconstruction:
    rows = []
    for path in photos:
        rgb = shrunk(read_painting(path), size)
        rows.append({"photo": Path(path).name, **{level: psnr(model.reconstruct(rgb, level), rgb) for level in LEVELS}})
    if not rows:
        raise UsageError("no photos to measure the reconstruction on")
    means = {level: float(np.mean([row[level] for row in rows])) for level in LEVELS}
    return Reconstruction(psnr=means, per_photo=rows, images=len(rows), size=size)


def seconds_per_megapixel(model: UniversalModel, style: Mapping[str, Stats], rgb: np.ndarray, *,
                          repeats: int = 3) -> dict:
    """Best of `repeats` wall times of one universal pass (after a warm-up), per megapixel of the working image."""
    model.stylise(rgb, style)  # warm-up: ONNX Runtime plans its kernels on the first run
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.stylise(rgb, style)
        times.append(time.perf_counter() - started)
    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    return {"width": rgb.shape[1], "height": rgb.shape[0], "megapixels": round(megapixels, 4),
            "seconds": round(min(times), 3), "seconds_per_megapixel": round(min(times) / megapixels, 3)}


PSNR_PROTOCOL = "reconstruction"  # the decoder cards' metrics key


def evaluate_universal(*, data: Path, images: int = 8, size: int = 512, style: str | None = None,
                       card_metrics: bool = False, device: str = "cpu", threads: int | None = None) -> dict:
    """Reconstruction PSNR per level on `images` unseen photos (longest side `size`), and the
    seconds per megapixel of the whole universal pass on the first photo with a painting style
    (`style`, default the first one installed). With `card_metrics` the PSNRs go into the decoder cards."""
    from imgan.cards import update_metrics
    from imgan.io.images import is_image_path

    from .style_stats import painting_styles

    folder = Path(data)
    if not folder.is_dir():
        raise UsageError("test photo folder not found", path=folder, hint="check --data")
    photos = sorted(path for path in folder.iterdir() if is_image_path(path))[:images]
    model = UniversalModel.load(device=device, threads=threads)
    reconstruction = reconstruction_psnr(model, photos, size=size)
    styles = painting_styles()
    chosen = style or next(iter(sorted(styles)), None)
    if chosen is not None and chosen not in styles:
        raise UsageError(f"unknown painting style {chosen!r}", hint=f"painting styles: {', '.join(sorted(styles))}")
    speed = None
    if chosen is not None:
        speed = {"style": chosen, "photo": photos[0].name,
                 **seconds_per_megapixel(model, styles[chosen].stats(), shrunk(read_painting(photos[0]), size))}
    if card_metrics:
        decoders = weights_for_task(UNIVERSAL_TASK)
        for level in LEVELS:
            update_metrics(decoders[f"decoder-{level}"].card_path, {PSNR_PROTOCOL: {
                "psnr_db": round(reconstruction.psnr[level], 2), "images": reconstruction.images, "size": size,
                "data": folder.name}})
    return {"reconstruction_psnr_db": {level: round(value, 2) for level, value in reconstruction.psnr.items()},
            "images": reconstruction.images, "size": size, "per_photo": reconstruction.per_photo, "speed": speed}
