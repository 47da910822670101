"""Optimisation-based style transfer (Gatys et al. 2016): `--style-image painting.jpg`.

The picture itself is optimised (L-BFGS or Adam), starting from the photo, against the same loss
the fast styles train with (objective.StyleObjective). Slow but works with any painting; it is
also the baseline `imgan eval style` compares the fast nets with. Uses torch: imported only here.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from imgan.errors import UsageError

from .infer import Progress, StyleOptions, StyleTransform
from .objective import StyleObjective, StyleSettings, load_painting

DEFAULT_OPTIMISATION_SIZE = 384  # each step runs VGG forward and backward over the whole picture
OPTIMIZERS = ("lbfgs", "adam")


def optimise_image(photo: Tensor, objective: StyleObjective, *, steps: int = 300, optimizer: str = "lbfgs",
                   lr: float | None = None, progress: Progress | None = None) -> Tensor:
    """(1,3,H,W) photo in [0,1] -> the optimised picture, same shape, in [0,1]."""
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    image = photo.detach().clone().requires_grad_(True)
    target = objective.content_target(photo)
    if optimizer == "lbfgs":
        solver = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    else:
        solver = torch.optim.Adam([image], lr=lr or 0.02)

    def closure() -> Tensor:
        with torch.no_grad():
            image.clamp_(0.0, 1.0)  # stay a picture: pixels outside [0, 1] cannot be written
        solver.zero_grad(set_to_none=True)
        loss = objective.total(objective.terms_with_target(image, target))
        loss.backward()
        return loss

    for step in range(steps):
        solver.step(closure)
        if progress is not None:
            progress(step + 1, steps)
    return image.detach().clamp(0.0, 1.0)


def pick_device(device: str) -> torch.device:
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if device in ("auto", "cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for but torch sees no CUDA GPU", hint="use --device cpu or auto")
        return torch.device("cuda")
    raise UsageError(f"unknown device {device!r}", hint="use auto, cpu or cuda")


def optimisation_stylise(objective: StyleObjective, *, steps: int, optimizer: str,
                         device: torch.device) -> Callable[[np.ndarray, Progress | None, bool], np.ndarray]:
    objective.to(device)

    def stylise(rgb: np.ndarray, progress: Progress | None, is_frame: bool) -> np.ndarray:
        photo = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)  # (1, 3, H, W)
        result = optimise_image(photo, objective, steps=steps, optimizer=optimizer, progress=progress)
        return result[0].permute(1, 2, 0).cpu().numpy()

    return stylise


def make_optimisation_transform(style_image: str | os.PathLike, *, steps: int = 300, optimizer: str = "lbfgs",
                                device: str = "auto", threads: int | None = None,
                                options: StyleOptions = StyleOptions(), settings: StyleSettings = StyleSettings(),
                                vgg_weights: str | None = None, style: str | None = None,
                                weights: str | None = None, thumbnail: np.ndarray | None = None) -> StyleTransform:
    """A transform that optimises every picture towards `style_image` (read now: a bad file fails early)."""
    if style is not None or weights is not None:
        raise UsageError("--style-image optimises towards a painting; it takes no --style or --weights")
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")
    if threads:
        torch.set_num_threads(threads)
    painting = load_painting(Path(style_image), settings.style_size)
    objective = StyleObjective(painting, settings, vgg_weights)
    stylise = optimisation_stylise(objective, steps=steps, optimizer=optimizer, device=pick_device(device))
    options = dataclasses.replace(options, default_size=DEFAULT_OPTIMISATION_SIZE)
    return StyleTransform(stylise, options, thumbnail)
