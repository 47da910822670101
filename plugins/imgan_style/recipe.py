"""Training a fast style (torch): the Recipe for imgan.train.loop.fit and `train_style`, which
trains and exports the style into the catalogue.

The checkpoint's model_config holds the net's shape *and* the style settings (painting, layers,
loss weights), so `imgan export style CKPT` can write a complete card from the checkpoint alone;
a warm start (--init-from, through the core) only needs the shape to match (model.SPEC).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.errors import TrainingError, UsageError
from imgan.train.data import ImageFolderCrops
from imgan.train.export import ExportReport, export_checkpoint
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit
from imgan.train.run import check_run_name, default_run_dir

from .model import SPEC, StyleNetConfig
from .objective import StyleObjective, load_painting
from .spec import MULTIPLE, TASK, StyleSettings

METHOD = "Johnson et al. 2016 feed-forward net, reference-statistics instance norm"


class PhotoCrops(Dataset):
    """Random crops of the training photos as {"photo": (3,crop,crop) float in [0,1]}."""

    def __init__(self, folder: Path, crop: int):
        self.crops = ImageFolderCrops(folder, crop, flips=True)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"photo": self.crops[index]}

    def preload(self) -> None:
        self.crops.preload()


class StyleRecipe(Recipe):
    """What fit() trains: the style net on photo crops against one painting."""

    task = TASK
    model_spec = SPEC

    def __init__(self, *, style_image: Path, data: Path, net: StyleNetConfig, settings: StyleSettings,
                 crop: int, vgg_weights: str | os.PathLike | None = None):
        if crop % MULTIPLE:
            raise UsageError(f"--crop must be a multiple of {MULTIPLE}, got {crop}")
        self.style_image = Path(style_image).resolve()
        self.data = Path(data)
        self.crop = crop
        self.model_config = {**net.to_dict(), "style": {"image": str(self.style_image), **settings.to_dict()}}
        self.loss_weights = settings.loss_weights()
        self.objective = StyleObjective(load_painting(self.style_image, settings.style_size), settings, vgg_weights)

    def describe(self) -> dict:
        return {"method": METHOD, "data": str(self.data), "crop": self.crop}

    def build_discriminator(self) -> None:
        return None

    def make_dataset(self) -> Dataset:
        return PhotoCrops(self.data, self.crop)

    def generate(self, generator: nn.Module, batch: dict) -> Tensor:
        return generator(batch["photo"])

    def real(self, batch: dict) -> Tensor:
        return batch["photo"]

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        self.objective.to(fake.device)
        return self.objective.terms(fake, batch["photo"])

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        return [batch["photo"], fake]


@dataclass
class TrainedStyle:
    run: RunResult
    export: ExportReport


def default_output(name: str) -> Path:
    from imgan.weights import user_weights_dir

    return user_weights_dir() / f"{TASK}-{name}.onnx"


def train_style(*, style_image: Path, data: Path, name: str, steps: int = 400, batch_size: int = 2, crop: int = 128,
                lr: float = 1e-3, net: StyleNetConfig = StyleNetConfig(), settings: StyleSettings = StyleSettings(),
                run_dir: Path | None = None, output: Path | None = None, resume: bool = False,
                vgg_weights: str | None = None, init_from: Path | None = None, threads: int | None = None,
                seed: int = 0, progress: bool = True) -> TrainedStyle:
    """Train a fast style on the photos in `data` and export it (ONNX + card + thumbnail).

    Defaults: run in $IMGAN_HOME/runs/style-NAME, weights to $IMGAN_HOME/weights/style-NAME.onnx,
    where `--style NAME` finds them. `init_from`: a checkpoint or exported .onnx of another style
    (the same net shape) to start from; it converges faster.
    """
    check_run_name(name)
    recipe = StyleRecipe(style_image=style_image, data=data, net=net, settings=settings, crop=crop,
                         vgg_weights=vgg_weights)
    config = TrainConfig(run_dir=run_dir or default_run_dir(TASK, name), steps=steps, batch_size=batch_size,
                         lr_g=lr, betas=(0.9, 0.999), lr_schedule="cosine", ema_decay=0.99, seed=seed,
                         checkpoint_every=100, sample_every=100, log_every=10, threads=threads,
                         init_from=str(init_from) if init_from is not None else None)
    run = fit(recipe, config, resume=resume, progress=progress)
    if run.interrupted:
        raise TrainingError("training was interrupted; nothing was exported", path=run.checkpoint,
                            hint="resume with --resume, or export the checkpoint with `imgan export style`")
    report = export_checkpoint(TASK, run.checkpoint, output or default_output(name), name=name)
    return TrainedStyle(run=run, export=report)
