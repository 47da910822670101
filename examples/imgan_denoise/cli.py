"""The Typer signatures: parse, call one library function, render (the only module that imports typer)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imgan.cli_support import (DeviceOpt, InitFromOpt, JsonOpt, ResumeOpt, RunDirOpt, SeedOpt,
                               StepProgress, ThreadsOpt, WeightsOpt, print_json, render_run_result, stdout)

from . import TASK
from .spec import SIGMA, STRENGTH, TrainSettings

DataOpt = Annotated[Path, typer.Option("--data", help="Folder of clean photos.", show_default=False)]
SigmaOpt = Annotated[float, typer.Option("--sigma", min=0.0, help="Noise standard deviation in 8-bit levels.")]


def verb_options(
    strength: Annotated[float, typer.Option("--strength", help="0: the input unchanged … 1: fully denoised.")] = STRENGTH,
) -> None:
    """The options of `imgan denoise` besides the common ones (passed to make_transform)."""


def train(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Run name: $IMGAN_HOME/runs/denoise-NAME.")] = TrainSettings.name,
    run_dir: RunDirOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Total steps (also resuming).")] = TrainSettings.steps,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Crops per step.")] = TrainSettings.batch_size,
    crop: Annotated[int, typer.Option("--crop", min=8, help="Crop edge in pixels.")] = TrainSettings.crop,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = TrainSettings.lr,
    sigma: SigmaOpt = SIGMA,
    channels: Annotated[int, typer.Option("--channels", min=1, help="Hidden layer width.")] = TrainSettings.channels,
    layers: Annotated[int, typer.Option("--layers", min=2, help="Number of 3x3 convolutions.")] = TrainSettings.layers,
    seed: SeedOpt = TrainSettings.seed,
    threads: ThreadsOpt = None,
    device: DeviceOpt = TrainSettings.device,
    resume: ResumeOpt = False,
    init_from: InitFromOpt = None,
) -> None:
    """Train the denoiser on noisy/clean crops of a photo folder (L1 loss)."""
    settings = TrainSettings(**locals())  # first: here locals() holds exactly the parameters
    from .recipe import train_denoise

    result = train_denoise(settings)
    render_run_result(result, task=TASK, output=f"{TASK}-{name}.onnx")


def evaluate(
    data: DataOpt,
    weights: WeightsOpt = None,
    sigma: SigmaOpt = SIGMA,
    seed: SeedOpt = 0,
    update_card: Annotated[bool, typer.Option("--update-card", help="Write the figures into the card.")] = False,
    json: JsonOpt = False,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """PSNR of the noisy input and of the denoised output against the clean photos of a folder."""
    from .evaluate import evaluate_denoise

    with StepProgress("denoising") as progress:
        figures = evaluate_denoise(data, weights=weights, sigma=sigma, seed=seed, update_card=update_card,
                                   device=device, threads=threads, progress=progress)
    if json:
        return print_json(figures)
    stdout.print("{weights}: {images} images, σ {sigma:g}: noisy {psnr_noisy:.2f} dB → denoised "
                 "{psnr_denoised:.2f} dB ({gain_db:+.2f} dB)".format(**figures), highlight=False)
