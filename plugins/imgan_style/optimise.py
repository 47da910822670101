"""Optimisation-based style transfer (Gatys et al. 2016): `--style-image painting.jpg`.

The picture itself is optimised (L-BFGS or Adam), starting from the photo, against the same loss
the fast styles train with (objective.StyleObjective). Slow but works with any painting; it is
also the baseline `imgan eval style` compares the fast nets with. Uses torch: imported only here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from imgan.errors import UsageError
from imgan.pipeline import TileProgress as Progress

from .objective import StyleObjective, load_painting
from .spec import StyleSettings, check_optimizer

FIRST_STEP = 0.02  # L-BFGS's first step moves the pixel with the largest gradient by this much


def optimise_image(photo: Tensor, objective: StyleObjective, *, steps: int = 300, optimizer: str = "lbfgs",
                   lr: float | None = None, progress: Progress | None = None) -> Tensor:
    """(1,3,H,W) photo in [0,1] -> the optimised picture, same shape, in [0,1].

    L-BFGS needs two safeguards here. Its first step follows the raw gradient with length
    1/|g|_1: for a whole picture ~1e-4 per pixel, too short to measure curvature in float32, and
    the bad curvature pair then makes every line search fail. So the variable is a scaled offset
    (picture = photo + scale * offset) whose scale makes that first step move the brightest-
    gradient pixel by FIRST_STEP; later quasi-Newton steps do not depend on the scale. And if a
    step still makes no progress, its history is dropped and it starts afresh.
    """
    check_optimizer(optimizer)
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    photo = photo.detach()
    target = objective.content_target(photo)

    def loss_at(picture: Tensor) -> Tensor:
        return objective.total(objective.terms_with_target(picture, target))

    scale = _offset_scale(loss_at, photo) if optimizer == "lbfgs" else 1.0
    offset = torch.zeros_like(photo, requires_grad=True)
    if optimizer == "lbfgs":
        solver = torch.optim.LBFGS([offset], lr=lr or 1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    else:
        solver = torch.optim.Adam([offset], lr=lr or 0.02)

    def closure() -> Tensor:
        solver.zero_grad(set_to_none=True)
        loss = loss_at(photo + scale * offset)
        loss.backward()
        return loss

    best = float("inf")
    for step in range(steps):
        loss = float(solver.step(closure).detach())  # the loss before this step
        if optimizer == "adam":  # first-order steps can stay inside [0, 1]; L-BFGS's history would not
            with torch.no_grad():
                offset.copy_(((photo + scale * offset).clamp(0.0, 1.0) - photo) / scale)
        elif loss >= best:
            solver.state.clear()  # no progress since the last step: restart L-BFGS from steepest descent
        best = min(best, loss)
        if progress is not None:
            progress(step + 1, steps)
    return (photo + scale * offset).detach().clamp(0.0, 1.0)


def _offset_scale(loss_at: Callable[[Tensor], Tensor], photo: Tensor) -> float:
    picture = photo.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss_at(picture), picture)
    largest = float(gradient.abs().max())
    return FIRST_STEP * float(gradient.abs().sum()) / largest if largest > 0 else 1.0


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


def painting_stylise(style_image: str | os.PathLike, *, steps: int = 300, optimizer: str = "lbfgs",
                     device: str = "auto", threads: int | None = None, settings: StyleSettings = StyleSettings(),
                     vgg_weights: str | None = None) -> Callable[[np.ndarray, Progress | None, bool], np.ndarray]:
    """Optimise every picture towards `style_image` (read now: a bad file fails early); progress
    counts optimisation steps."""
    check_optimizer(optimizer)
    if threads:
        torch.set_num_threads(threads)
    painting = load_painting(Path(style_image), settings.style_size)
    objective = StyleObjective(painting, settings, vgg_weights)
    return optimisation_stylise(objective, steps=steps, optimizer=optimizer, device=pick_device(device))
