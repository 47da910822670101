"""Training a fast style (torch): the Recipe for imgan.train.loop.fit, the train command's body,
and the export to ONNX with its model card and thumbnail.

The checkpoint's model_config holds the net's shape *and* the style settings (painting, layers,
loss weights), so `imgan export style CKPT` can write a complete card from the checkpoint alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.errors import TrainingError, UsageError
from imgan.train.data import ImageFolderCrops
from imgan.train.export import ExportReport, export_onnx
from imgan.train.loop import RunResult, TrainConfig, fit

from .model import PAD_MULTIPLE, StyleNetConfig, StyleNetWithReference, build_style_net, receptive_margin
from .objective import StyleObjective, StyleSettings, load_painting

TASK = "style"
THUMBNAIL_SIDE = 128
PAINTING_LICENCE = "public domain (the painting); trained weights MIT"
REPO = Path(__file__).resolve().parents[2]


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


class StyleRecipe:
    """What fit() trains: the style net on photo crops against one painting."""

    task = TASK

    def __init__(self, *, style_image: Path, data: Path, net: StyleNetConfig, settings: StyleSettings,
                 crop: int, vgg_weights: str | os.PathLike | None = None, init_from: Path | None = None):
        if crop % PAD_MULTIPLE:
            raise UsageError(f"--crop must be a multiple of {PAD_MULTIPLE}, got {crop}")
        self.style_image = Path(style_image).resolve()
        self.data = Path(data)
        self.crop = crop
        self.settings = settings
        self.init_from = init_from
        self.model_config = {**net.to_dict(), "style": {"image": str(self.style_image), **settings.to_dict()}}
        self.loss_weights = settings.loss_weights()
        self.objective = StyleObjective(load_painting(self.style_image, settings.style_size), settings, vgg_weights)

    def build_generator(self) -> nn.Module:
        net = build_style_net(self.model_config)
        if self.init_from is not None:
            # Starting from another style's weights: the photo-encoding part is already learnt.
            from imgan.train.checkpoint import generator_from_checkpoint

            trained, _ = generator_from_checkpoint(self.init_from, build_style_net)
            net.load_state_dict(trained.state_dict())
        return net

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


def default_run_dir(name: str) -> Path:
    from imgan.weights import imgan_home

    return imgan_home() / "runs" / f"{TASK}-{name}"


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
    where `--style NAME` finds them.
    """
    check_style_name(name)
    if threads:
        torch.set_num_threads(threads)
    recipe = StyleRecipe(style_image=style_image, data=data, net=net, settings=settings, crop=crop,
                         vgg_weights=vgg_weights, init_from=init_from)
    config = TrainConfig(run_dir=run_dir or default_run_dir(name), steps=steps, batch_size=batch_size, lr_g=lr,
                         betas=(0.9, 0.999), lr_schedule="cosine", ema_decay=0.99, seed=seed,
                         checkpoint_every=100, sample_every=100, log_every=10)
    run = fit(recipe, config, resume=resume, progress=progress)
    if run.interrupted:
        raise TrainingError("training was interrupted; nothing was exported", path=run.checkpoint,
                            hint="resume with --resume, or export the checkpoint with `imgan export style`")
    report = export_style(run.checkpoint, output or default_output(name), name=name, init_from=init_from)
    return TrainedStyle(run=run, export=report)


def check_style_name(name: str) -> None:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"invalid style name {name!r}", hint="use letters, digits, '-' or '_'")


# --------------------------------------------------------------------------------------------- export


def export_style(checkpoint: Path, output: Path, name: str | None = None, *,
                 init_from: Path | None = None, description: str | None = None) -> ExportReport:
    """Checkpoint -> ONNX with inputs (input, reference), its card (settings, final logged losses,
    training time) and a thumbnail of the painting beside it. `init_from`: the checkpoint the run
    started from, recorded in the card; `description` replaces the one made from the file name."""
    from imgan.train.checkpoint import generator_from_checkpoint

    net, meta = generator_from_checkpoint(checkpoint, build_style_net)
    if meta.get("task") != TASK:
        raise TrainingError(f"this checkpoint is for task {meta.get('task')!r}, not {TASK!r}", path=checkpoint)
    output = Path(output)
    name = name or output.stem.removeprefix(f"{TASK}-")
    check_style_name(name)
    style = dict(meta["model_config"].get("style", {}))
    example = (torch.rand(1, 3, 64, 96), torch.rand(1, 3, 48, 64))
    parity = [(torch.rand(2, 3, 128, 80), torch.rand(1, 3, 96, 128))]
    thumbnail = _write_thumbnail(style.get("image"), output.with_suffix(".png"))
    card = _card(name, net.config, style, meta, thumbnail)
    if init_from is not None:  # the run folder and file, not this machine's path
        card["recipe"]["init_from"] = f"{Path(init_from).parent.name}/{Path(init_from).name}"
    if description:
        card["description"] = description
    return export_onnx(StyleNetWithReference(net), example, output, input_names=("input", "reference"),
                       output_names=("output",), parity_inputs=parity, tolerance=1e-4, card=card)


def _card(name: str, net: StyleNetConfig, style: dict[str, Any], meta: dict[str, Any],
          thumbnail: Path | None) -> dict[str, Any]:
    settings = StyleSettings.from_dict(style)
    last = meta.get("history", [{}])[-1] if meta.get("history") else {}
    train = meta.get("train_config", {})
    image = Path(style["image"]).name if style.get("image") else None
    return {
        "name": name,
        "task": TASK,
        "version": 1,
        "scale": 1,
        "pad_multiple": PAD_MULTIPLE,
        "input_convention": "rgb01",
        "inputs": ["input", "reference"],
        "tile_overlap": -(-receptive_margin(net) // PAD_MULTIPLE) * PAD_MULTIPLE,
        "description": f"fast style transfer: {_title(image) if image else name}",
        "licence": PAINTING_LICENCE,
        "style_image": image,
        "style_image_path": recorded_path(style["image"]) if style.get("image") else None,
        "thumbnail": thumbnail.name if thumbnail else None,
        "style_layers": list(settings.style_layers),
        "content_layer": settings.content_layer,
        "loss_weights": settings.loss_weights(),
        "recipe": {
            "method": "Johnson et al. 2016 feed-forward net, reference-statistics instance norm",
            "net": net.to_dict(),
            "style": settings.to_dict(),
            "steps": meta.get("step"),
            "batch_size": train.get("batch_size"),
            "lr": train.get("lr_g"),
            "lr_schedule": train.get("lr_schedule"),
            "ema_decay": train.get("ema_decay"),
            "seed": train.get("seed"),
        },
        "metrics": {
            "final_losses": {key: last[key] for key in ("style", "content", "tv", "g_total") if key in last},
            "training_seconds": round(float(meta.get("seconds", 0.0)), 1),
            "parameters": sum(p.numel() for p in build_style_net(net.to_dict()).parameters()),
        },
    }


def recorded_path(path: str) -> str:
    """A painting's path for the card: relative to the repository when it lies beside it (the
    shared assets), so shipped cards hold no machine-specific paths."""
    absolute = Path(path).resolve()
    if absolute.is_relative_to(REPO.parent):
        return os.path.relpath(absolute, REPO)
    return str(absolute)


def _title(file_name: str) -> str:
    return Path(file_name).stem.replace("_", " ")


def _write_thumbnail(style_image: str | None, target: Path) -> Path | None:
    """A small PNG of the painting beside the ONNX file (for `--compare` and `imgan styles`)."""
    if not style_image or not Path(style_image).is_file():
        return None
    from imgan.io.images import Picture, write_image

    from .infer import painting_thumbnail

    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(Picture(rgb=painting_thumbnail(style_image, THUMBNAIL_SIDE), alpha=None), target, overwrite=True)
    return target
