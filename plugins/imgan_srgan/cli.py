"""The sr commands: `imgan upscale`'s own options, `imgan train sr`, `imgan eval sr` (thin Typer bodies).

Nothing heavy at import: `imgan upscale` imports this module for its options, and must not load torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imgan.cli_support import (CheckpointEveryOpt, DeviceOpt, InitFromOpt, JsonOpt, ResumeOpt, RunDirOpt, SeedOpt,
                               ThreadsOpt, VggWeightsOpt, WorkersOpt, print_json, render_run_result, start_options, stderr,
                               stdout)

from . import TASK
from .spec import DEFAULT_MODEL, TrainSettings, model_of, weights_name


def verb_options(
    model: Annotated[str, typer.Option("--model", help="srresnet: highest PSNR on clean pictures; realnet: real photos (removes noise and JPEG blocks instead of sharpening them; softer); real: real photos, sharper (a GAN: some invented texture); srgan: perceptual, more texture.")] = DEFAULT_MODEL,
    scale: Annotated[Optional[int], typer.Option("--scale", help="4; 2: the ×2 weights (e.g. srresnet-x2) where catalogued, else the ×4 result reduced by area averaging; 3: the ×4 result reduced by area averaging. Default: the weights' own scale (×4 for --model's).", show_default=False)] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Self-ensemble: average the model over the 8 flips and rotations of the image (srresnet-x4 on Set5: +0.08 dB PSNR, about 7x the time).")] = False,
) -> None:
    """The task's own options of `imgan upscale` (passed to make_transform)."""


def train(
    ctx: typer.Context,
    stage: Annotated[str, typer.Option(help="srresnet (pixel loss, the PSNR model) or srgan (perceptual + adversarial, starts from srresnet).")] = "srresnet",
    data: Annotated[Path, typer.Option(help="Folder of training photos (HR); random crops are taken.")] = Path("photos"),
    scale: Annotated[int, typer.Option(help="4, or 2: a true ×2 model (one upsampling stage); its default run folder is $IMGAN_HOME/runs/sr-STAGE-x2.")] = 4,
    run_dir: RunDirOpt = None,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Total steps (default: srresnet 1200, srgan 300).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Crops per step (default: srresnet 16, srgan 8).")] = None,
    crop: Annotated[Optional[int], typer.Option(min=16, help="HR crop edge, a multiple of the scale (default: srresnet 96, srgan 64).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate (default: srresnet 3e-4 with warm-up and cosine decay, srgan 1e-4).")] = None,
    channels: Annotated[int, typer.Option(min=1, help="Generator width (paper: 64).")] = 48,
    blocks: Annotated[int, typer.Option(min=0, help="Residual blocks (paper: 16).")] = 8,
    batch_norm: Annotated[bool, typer.Option(help="Batch norm in the residual blocks (paper: on).")] = False,
    tail_kernel: Annotated[int, typer.Option(help="Kernel of the last convolution (paper: 9).")] = 3,
    upsample: Annotated[str, typer.Option(help="x2 stages: pixelshuffle (sub-pixel conv, the paper's) or nearest (nearest x2 + conv, Real-ESRGAN's): a perceptual fine-tune of a pixelshuffle model draws a faint 2-px grid on flat areas, of a nearest one not.")] = "pixelshuffle",
    icnr: Annotated[Optional[bool], typer.Option("--icnr/--no-icnr", help="ICNR init of the sub-pixel convs (no checkerboard at init). Default: on from scratch; a resumed run keeps its own.")] = None,
    init_from: InitFromOpt = None,
    vgg_weights: VggWeightsOpt = None,
    perceptual_layers: Annotated[Optional[str], typer.Option(help="VGG19 layers, comma-separated (default: relu5_4 with full weights, else relu2_2).")] = None,
    pixel_weight: Annotated[Optional[float], typer.Option(help="L1 pixel loss weight (default 1).")] = None,
    perceptual_weight: Annotated[Optional[float], typer.Option(help="VGG loss weight, each layer normalised (default: srgan 0.3).")] = None,
    adversarial_weight: Annotated[Optional[float], typer.Option(help="GAN loss weight (default: srgan 1e-3).")] = None,
    discriminator: Annotated[Optional[str], typer.Option(help="srgan's critic: vgg (SRGAN's, one logit per image) or unet (Real-ESRGAN's U-Net with spectral norm, one logit per pixel). Default: unet with --degrade real, else vgg.")] = None,
    d_channels: Annotated[Optional[int], typer.Option(min=1, help="Discriminator width of its first layer (default: vgg 32, unet 64; papers: 64).")] = None,
    spectral_norm: Annotated[bool, typer.Option(help="Spectral norm in the vgg discriminator (instead of batch norm); the unet always has it.")] = False,
    degrade: Annotated[str, typer.Option(help="How LR crops are made: bicubic (clean, the literature's protocol) or real (Real-ESRGAN's blur/resize/noise/JPEG model, for real photos).")] = "bicubic",
    eval_data: Annotated[Optional[Path], typer.Option(help="HR folder (e.g. Set5) measured at every checkpoint: RUN_DIR/eval.jsonl (LR made as --degrade says).")] = None,
    checkpoint_every: CheckpointEveryOpt = None,
    threads: ThreadsOpt = None,
    amp: Annotated[bool, typer.Option(help="float16 autocast and loss scaling (CUDA only; ignored on the CPU).")] = False,
    channels_last: Annotated[bool, typer.Option(help="NHWC memory format for the networks (faster convolutions on recent GPUs).")] = False,
    workers: WorkersOpt = 0,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Train the ×4 (or ×2) SRResNet (stage srresnet) or SRGAN (stage srgan) through imgan's training loop.

    Without --init-from, srgan starts from the srresnet run's latest.pt ($IMGAN_HOME/runs/sr-srresnet).
    With --init-from, the model options not given are the start's.
    """
    options = {name: value for name, value in locals().items() if name != "ctx"}
    settings = TrainSettings(**{**options, **start_options(ctx, init_from, generator_options, resume=resume)})
    from .recipe import train_sr

    result = train_sr(settings)
    render_run_result(result, task=TASK,
                      output=f"{TASK}-{weights_name(model_of(settings.stage, settings.degrade), settings.scale)}.onnx")


def generator_options(model_config: dict) -> dict:
    """`imgan train sr`'s model options as a start's model_config has them (scale stays the command's)."""
    generator = model_config.get("generator", {})
    return {key: generator[key] for key in ("channels", "blocks", "batch_norm", "tail_kernel", "upsample") if key in generator}


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Folder of HR images, e.g. Set5.", show_default=False)],
    weights: Annotated[Optional[list[str]], typer.Option("--weights", help="Weights to measure (repeatable; names or .onnx files). Default: every sr model of the --scale.")] = None,
    scale: Annotated[int, typer.Option("--scale", help="The models' scale: 4, or 2 (×2 weights).")] = 4,
    tta: Annotated[bool, typer.Option("--tta", help="Also each model with the self-ensemble of `imgan upscale --tta` (rows NAME+tta).")] = False,
    json: JsonOpt = False,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Also write a crop sheet PNG: bicubic | models | HR.")] = None,
    degrade: Annotated[str, typer.Option("--degrade", help="bicubic: the literature's protocol; real: that one and the real-world one (fixed, seeded Real-ESRGAN second-order degradation); photo: that one and a mild fixed chain (blur, bicubic, noise 4/255, JPEG 70); all: the three.")] = "bicubic",
    perceptual: Annotated[bool, typer.Option("--perceptual/--no-perceptual", help="Also the perceptual distance to HR (unlearned LPIPS baseline; needs torch and the VGG19 weights).")] = False,
    card_metrics: Annotated[bool, typer.Option("--card-metrics", help="Store each model's figures in its model card, one entry per protocol (\"LABEL\", \"LABEL real\", ...).")] = False,
    card_label: Annotated[Optional[str], typer.Option("--card-label", help="With --card-metrics: the data set's name in the card (default: the folder's name).")] = None,
    vgg_weights: VggWeightsOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """PSNR/SSIM (Y, scale-px shave) and the grid energy of bicubic and each model on a folder: clean
    bicubic LR, and with --degrade real also real-world LR (blur, noise, JPEG)."""
    from .evaluate import (add_perceptual_distances, evaluate_folder, perceptual_distance, record_report_metrics,
                           write_sheet)
    from .spec import EVAL_DEGRADATIONS, check_degradation

    check_degradation(degrade, EVAL_DEGRADATIONS)
    distance = perceptual_distance(vgg_weights) if perceptual else None  # fails early without VGG19 weights
    reports = []
    for protocol in EVAL_DEGRADATIONS[degrade]:
        report = evaluate_folder(data, weights, scale=scale, device=device, threads=threads, degrade=protocol, tta=tta)
        reports.append(add_perceptual_distances(report, distance=distance) if perceptual else report)
    if json:
        print_json([report.to_dict() for report in reports] if len(reports) > 1 else reports[0].to_dict())
    else:
        for report in reports:
            render_table(report)
    if sheet is not None:
        for report in reports:
            path = sheet if report.degrade == "bicubic" else sheet.with_name(f"{sheet.stem}-{report.degrade}{sheet.suffix}")
            stderr.print(f"wrote {write_sheet(report, path)}")
    if card_metrics:
        for card in record_report_metrics(reports, card_label):
            stderr.print(f"recorded the figures in {card}")


def render_table(report) -> None:
    """The means per method, then PSNR per image (images as rows, so many images still fit)."""
    from rich.table import Table

    from .evaluate import BICUBIC, GRID, PERCEPTUAL

    lr_kind = {"real": "real-world LR", "photo": "photo-like LR"}.get(report.degrade, "bicubic LR")
    summary = Table(title=f"×{report.scale} on {report.data.name} ({len(report.images)} images, {lr_kind}): "
                          f"Y channel, {report.scale}-px shave")
    perceptual = report.methods[0].perceptual is not None
    columns = (("method", "PSNR dB", "SSIM", "Δ bicubic") + (("perceptual",) if perceptual else ())
               + ("grid4 dB", "grid2 dB", "seconds"))
    names = max(len(method.name) for method in report.methods)
    for column in columns:
        summary.add_column(column, justify="left" if column == "method" else "right",
                           min_width=names if column == "method" else None)
    baseline = report.methods[0].mean.psnr_y
    for method in report.methods:
        gain = "" if method.name == BICUBIC else f"{method.mean.psnr_y - baseline:+.2f}"
        distance = (f"{method.perceptual:.4f}",) if perceptual else ()
        summary.add_row(method.name, f"{method.mean.psnr_y:.2f}", f"{method.mean.ssim_y:.4f}", gain, *distance,
                        f"{method.grid.period4_db:+.1f}", f"{method.grid.period2_db:+.1f}", f"{method.seconds:.2f}")
    stdout.print(summary)
    per_image = Table(title="PSNR dB per image")
    per_image.add_column("image")
    for method in report.methods:
        per_image.add_column(method.name, justify="right")
    for image in report.images:
        per_image.add_row(image.name, *(f"{m.per_image[image.name].psnr_y:.2f}" for m in report.methods))
    stdout.print(per_image)
    stdout.print(f"protocol: {report.protocol}", highlight=False, soft_wrap=True)
    stdout.print(GRID, highlight=False, soft_wrap=True)
    if perceptual:
        stdout.print(PERCEPTUAL, highlight=False, soft_wrap=True)
