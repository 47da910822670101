"""PSNR of the model's output vs the noisy input on a folder of clean photos: figures, never printed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from imgan.cards import update_metrics
from imgan.errors import InputError
from imgan.io.batch import find_inputs
from imgan.io.images import Picture, from_float, is_image_path, read_image, to_float
from imgan.metrics import psnr
from imgan.runtime.model_transform import model_transform
from imgan.weights import resolve_weights

from . import TASK
from .spec import SIGMA


def evaluate_denoise(data: Path, *, weights: str | None = None, sigma: float = SIGMA, seed: int = 0,
                     update_card: bool = False, device: str = "auto", threads: int | None = None,
                     progress=lambda done, total: None) -> dict:
    """Add noise of ``sigma`` (8-bit levels, seeded) to each photo, denoise it, measure both against it:
    {weights, images, sigma, psnr_noisy, psnr_denoised, gain_db} (mean dB). With ``update_card`` the
    figures go into the weights' model card as ``metrics["gaussian-<sigma>"]``."""
    chosen = resolve_weights(TASK, weights)
    denoise = model_transform(chosen, device=device, threads=threads)
    files = [found.path for found in find_inputs([data], recursive=True, accept=is_image_path)]
    if not files:
        raise InputError("no images to evaluate on", path=data, hint="give a folder of clean photos")
    rng, noisy_db, denoised_db = np.random.default_rng(seed), [], []
    for done, path in enumerate(files, 1):
        clean = to_float(read_image(path).rgb)
        noisy = from_float(clean + rng.normal(0.0, sigma / 255.0, clean.shape), np.uint8)
        noisy_db.append(psnr(to_float(noisy), clean))
        denoised_db.append(psnr(to_float(denoise(Picture(noisy, alpha=None)).rgb), clean))
        progress(done, len(files))
    before, after = float(np.mean(noisy_db)), float(np.mean(denoised_db))
    figures = {"weights": chosen.name, "images": len(files), "sigma": sigma, "psnr_noisy": round(before, 3),
               "psnr_denoised": round(after, 3), "gain_db": round(after - before, 3)}
    if update_card and chosen.card_path.is_file():
        update_metrics(chosen.card_path, {f"gaussian-{sigma:g}": figures})
    return figures
