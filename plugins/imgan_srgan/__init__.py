"""Built-in plugin: ×4 super-resolution with SRResNet and SRGAN (Ledig et al. 2017).

Task "sr": `imgan upscale` (inference, ONNX Runtime), `imgan train sr`, `imgan export sr`,
`imgan eval sr`. Kept light: numpy, onnxruntime and torch are imported inside the functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imgan import Task, hookimpl
from imgan.errors import UsageError

TASK = "sr"
MODEL_WEIGHTS = {"srgan": "srgan-x4", "srresnet": "srresnet-x4"}
# The PSNR model by default: the shipped srgan-x4 (a 300-step CPU fine-tune) adds edge contrast
# and texture but also a faint 4-pixel grid in flat areas, which a default must not put on
# people's photos; `--model srgan` is there for those who prefer texture.
DEFAULT_MODEL = "srresnet"
SCALES = (4, 2)


def check_options(model: str, scale: int) -> None:
    if model not in MODEL_WEIGHTS:
        raise UsageError(f"unknown --model {model!r}", hint=f"choose one of {', '.join(MODEL_WEIGHTS)}")
    if scale not in SCALES:
        raise UsageError(f"--scale {scale} is not offered", hint="use 4, or 2 (the ×4 result downscaled)")


def upscale_options(
    model: Annotated[str, typer.Option("--model", help="srgan: perceptual, more texture; srresnet: highest PSNR, smoother.")] = DEFAULT_MODEL,
    scale: Annotated[int, typer.Option("--scale", help="4, or 2: the ×4 result reduced by area averaging.")] = 4,
) -> None:
    """The task's own options of `imgan upscale` (passed to make_transform)."""


def make_transform(*, weights=None, device="auto", threads=None, tile=None, model=DEFAULT_MODEL, scale=4):
    from .infer import make_transform as build

    return build(weights=weights, device=device, threads=threads, tile=tile, model=model, scale=scale)


def train_command(
    stage: Annotated[str, typer.Option(help="srresnet (pixel loss, the PSNR model) or srgan (perceptual + adversarial, starts from srresnet).")] = "srresnet",
    data: Annotated[Path, typer.Option(help="Folder of training photos (HR); random crops are taken.")] = Path("photos"),
    run_dir: Annotated[Optional[Path], typer.Option(help="Run folder (checkpoints, log, samples). Default: $IMGAN_HOME/runs/sr-STAGE.")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Total steps (default: srresnet 1200, srgan 300).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Crops per step (default: srresnet 16, srgan 8).")] = None,
    crop: Annotated[Optional[int], typer.Option(min=16, help="HR crop edge, a multiple of 4 (default: srresnet 96, srgan 64).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate (default: srresnet 3e-4 with warm-up and cosine decay, srgan 1e-4).")] = None,
    channels: Annotated[int, typer.Option(min=1, help="Generator width (paper: 64).")] = 48,
    blocks: Annotated[int, typer.Option(min=0, help="Residual blocks (paper: 16).")] = 8,
    batch_norm: Annotated[bool, typer.Option(help="Batch norm in the residual blocks (paper: on).")] = False,
    tail_kernel: Annotated[int, typer.Option(help="Kernel of the last convolution (paper: 9).")] = 3,
    init_from: Annotated[Optional[Path], typer.Option(help="Checkpoint or exported .onnx (with its card) to start from, e.g. weights/sr-srresnet-x4.onnx to fine-tune it. srgan default: the srresnet run's latest.pt.")] = None,
    vgg_weights: Annotated[Optional[str], typer.Option(help="VGG19 weights for the perceptual loss (default: $IMGAN_VGG19_WEIGHTS, else torchvision's).")] = None,
    perceptual_layers: Annotated[Optional[str], typer.Option(help="VGG19 layers, comma-separated (default: relu5_4 with full weights, else relu2_2).")] = None,
    pixel_weight: Annotated[Optional[float], typer.Option(help="L1 pixel loss weight (default 1).")] = None,
    perceptual_weight: Annotated[Optional[float], typer.Option(help="VGG loss weight, each layer normalised (default: srgan 0.3).")] = None,
    adversarial_weight: Annotated[Optional[float], typer.Option(help="GAN loss weight (default: srgan 1e-3).")] = None,
    d_channels: Annotated[int, typer.Option(min=1, help="Discriminator width of its first layer (paper: 64).")] = 32,
    spectral_norm: Annotated[bool, typer.Option(help="Spectral norm in the discriminator (instead of batch norm).")] = False,
    eval_data: Annotated[Optional[Path], typer.Option(help="HR folder (e.g. Set5) measured at every checkpoint: RUN_DIR/eval.jsonl.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(min=1, help="Steps between checkpoints and samples.")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 0,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in RUN_DIR.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Train the ×4 SRResNet (stage srresnet) or SRGAN (stage srgan) through imgan's training loop."""
    from imgan.cli_support import render_run_result

    from .recipe import train_sr

    result = train_sr(stage=stage, data=data, run_dir=run_dir, steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                      channels=channels, blocks=blocks, batch_norm=batch_norm, tail_kernel=tail_kernel,
                      init_from=init_from, vgg_weights=vgg_weights, perceptual_layers=perceptual_layers, pixel_weight=pixel_weight,
                      perceptual_weight=perceptual_weight, adversarial_weight=adversarial_weight,
                      d_channels=d_channels, spectral_norm=spectral_norm, eval_data=eval_data,
                      checkpoint_every=checkpoint_every, threads=threads, workers=workers, seed=seed,
                      resume=resume, device=device)
    render_run_result(result, task=TASK, output=f"{TASK}-{stage}-x4.onnx")


def export_command(checkpoint: Path, output: Path, name: str | None = None, **options):
    """ONNX export of a checkpoint with parity check and model card (see recipe.export_sr)."""
    from .recipe import export_sr

    return export_sr(checkpoint, output, name, **options)


def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Folder of HR images, e.g. Set5.", show_default=False)],
    weights: Annotated[Optional[list[str]], typer.Option("--weights", help="Weights to measure (repeatable; names or .onnx files). Default: every ×4 sr model.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Also write a crop sheet PNG: bicubic | models | HR.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads.")] = None,
) -> None:
    """PSNR/SSIM (Y, 4-px shave, MATLAB bicubic LR) of bicubic and each ×4 model on a folder."""
    from .evaluate import run_eval_command

    run_eval_command(data=data, weights=weights, as_json=json, sheet=sheet, device=device, threads=threads)


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="×4 super-resolution: SRResNet (PSNR) and SRGAN (perceptual), Ledig et al. 2017",
                  make_transform=make_transform, default_weights=MODEL_WEIGHTS[DEFAULT_MODEL], verb="upscale",
                  train=train_command, export=export_command, evaluate=eval_command))


@hookimpl
def register_commands(app):
    from imgan.cli_support import add_image_command

    add_image_command(app, "upscale", task=TASK, options=upscale_options,
                      validate=lambda options: check_options(options["model"], options["scale"]),
                      help="Upscale images or videos ×4 (or ×2) with SRGAN or SRResNet; folders resume.")
