"""Training: noisy/clean crops made on the fly, an L1 loss, through imgan's one loop (torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from imgan.train.data import ImageFolderCrops
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit
from imgan.train.run import default_run_dir

from . import TASK
from .model import SPEC
from .spec import TrainSettings


class NoisyCrops(ImageFolderCrops):
    """Random crops of a photo folder, each with fresh Gaussian noise (the loop seeds every item)."""

    def __init__(self, folder, crop: int, sigma: float):
        super().__init__(folder, crop, rotations=True, repeats=16)
        self.sigma = sigma / 255.0

    def __getitem__(self, index: int) -> dict:
        clean = super().__getitem__(index)
        return {"clean": clean, "noisy": (clean + self.sigma * torch.randn_like(clean)).clamp(0.0, 1.0)}


class DenoiseRecipe(Recipe):
    task = TASK
    model_spec = SPEC
    loss_weights = {"l1": 1.0}  # no "adversarial" weight: no discriminator is built

    def __init__(self, settings: TrainSettings):
        self.settings = settings
        self.model_config = {"channels": settings.channels, "layers": settings.layers}

    def describe(self) -> dict:
        return {"data": str(self.settings.data), "crop": self.settings.crop, "sigma": self.settings.sigma,
                "losses": self.loss_weights}

    def make_dataset(self) -> NoisyCrops:
        return NoisyCrops(self.settings.data, self.settings.crop, self.settings.sigma)

    def generate(self, generator, batch: dict) -> torch.Tensor:
        return generator(batch["noisy"])

    def real(self, batch: dict) -> torch.Tensor:
        return batch["clean"]

    def content_losses(self, fake: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        return {"l1": F.l1_loss(fake, batch["clean"])}

    def sample_panels(self, batch: dict, fake: torch.Tensor) -> list[torch.Tensor]:
        return [batch["noisy"], fake, batch["clean"]]


def train_denoise(settings: TrainSettings, *, progress: bool = True) -> RunResult:
    """Train (or, with settings.resume, continue) a run; the checkpoint is RUN_DIR/latest.pt."""
    config = TrainConfig(run_dir=settings.run_dir or default_run_dir(TASK, settings.name), steps=settings.steps,
                         batch_size=settings.batch_size, lr_g=settings.lr, betas=(0.9, 0.999), seed=settings.seed,
                         device=settings.device, threads=settings.threads, init_from=settings.init_from)
    return fit(DenoiseRecipe(settings), config, resume=settings.resume, progress=progress)
