"""The inpainting commands: `imgan inpaint`'s own options, `imgan train inpaint`, `imgan eval inpaint`.

Thin bodies: parse, call one library function (recipe.train_inpaint, evaluate.evaluate_inpaint),
render. The only module of the plugin that imports typer or imgan.cli_support.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imgan.cli_support import (CheckpointEveryOpt, DeviceOpt, InitFromOpt, JsonOpt, ResumeOpt, RunDirOpt, SeedOpt,
                               StepProgress, ThreadsOpt, VggWeightsOpt, WeightsOpt, WorkersOpt, print_json,
                               render_run_result, stderr, stdout)

from . import TASK
from .spec import DEFAULT_LOSS_WEIGHTS, DEFAULT_WEIGHTS


def verb_options(
    mask: Annotated[Optional[Path], typer.Option(
        "--mask", "--masks", "-m",
        help="Mask image (white = fill) used for every input, or a folder of masks matched to the inputs "
             "by file stem (photo.jpg <- masks/photo.png or photo_mask.png). Default: the input's "
             "transparent pixels.")] = None,
    box: Annotated[Optional[list[str]], typer.Option(
        "--box", help="Fill the box x,y,w,h (pixels from the top-left; repeatable; adds to --mask).")] = None,
    mask_from_color: Annotated[Optional[str], typer.Option(
        "--mask-from-color", help="Fill the pixels painted in this colour, e.g. '#ff00ff' (paint the area to remove "
                                  "in any editor; adds to --mask/--box).")] = None,
    dilate: Annotated[int, typer.Option("--dilate", min=0, help="Grow the mask by N pixels.")] = 0,
    resize_mask: Annotated[bool, typer.Option(
        "--resize-mask", help="Stretch a mask of another size to each image (else a size mismatch is an error).")] = False,
) -> None:
    """The task's own options of `imgan inpaint` (passed to infer.make_transform)."""


def train(
    data: Annotated[Path, typer.Option(help="Folder of training photos (e.g. BSDS500 train); random crops and masks are drawn.", show_default=False)],
    name: Annotated[str, typer.Option(help="Run name: the run folder is $IMGAN_HOME/runs/inpaint-NAME.")] = DEFAULT_WEIGHTS,
    run_dir: RunDirOpt = None,
    steps: Annotated[int, typer.Option(min=1, help="Total steps (also when resuming).")] = 3000,
    batch_size: Annotated[int, typer.Option(min=1, help="Crops per step.")] = 4,
    crop: Annotated[int, typer.Option(min=32, help="Crop edge in pixels, a multiple of 4.")] = 128,
    width: Annotated[int, typer.Option(min=4, help="Generator channels at full resolution (x2, x4 deeper).")] = 16,
    fourier_blocks: Annotated[int, typer.Option(min=0, help="Fourier blocks after the bottleneck: a global view for big holes (new blocks on --init-from weights start as the identity).")] = 0,
    lr: Annotated[float, typer.Option(help="Adam learning rate of G and D (cosine schedule).")] = 4e-4,
    hole_weight: Annotated[float, typer.Option(help="L1 weight inside the hole.")] = DEFAULT_LOSS_WEIGHTS["hole"],
    valid_weight: Annotated[float, typer.Option(help="L1 weight on the known pixels of the raw output.")] = DEFAULT_LOSS_WEIGHTS["valid"],
    perceptual_weight: Annotated[float, typer.Option(help="VGG19 feature L1 weight (0: no VGG).")] = DEFAULT_LOSS_WEIGHTS["perceptual"],
    style_weight: Annotated[float, typer.Option(help="VGG19 Gram-matrix (style) weight (0: no VGG).")] = DEFAULT_LOSS_WEIGHTS["style"],
    adversarial_weight: Annotated[float, typer.Option(help="SN-PatchGAN hinge weight (0: no discriminator).")] = DEFAULT_LOSS_WEIGHTS["adversarial"],
    vgg_weights: VggWeightsOpt = None,
    checkpoint_every: CheckpointEveryOpt = 100,
    threads: ThreadsOpt = None,
    workers: WorkersOpt = 0,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
    device: DeviceOpt = "auto",
    init_from: InitFromOpt = None,
    eval_images: Annotated[Optional[Path], typer.Option(help="Photos it never trains on (e.g. BSDS500 test): with --eval-masks, the checkpoint is measured every --eval-every steps as `imgan eval inpaint` measures (RUN_DIR/eval.jsonl).")] = None,
    eval_masks: Annotated[Optional[Path], typer.Option(help="The dev masks for --eval-images (e.g. ../shared/assets/masks/irregular_dev).")] = None,
    eval_limit: Annotated[int, typer.Option(min=1, help="Pairs measured each time, spread over the hole bands (80 take about 1.5 min on a core).")] = 80,
    eval_every: Annotated[int, typer.Option(min=1, help="Steps between measurements (each one also writes a checkpoint).")] = 200,
) -> None:
    """Train the inpainting GAN (gated convs, SN-PatchGAN, random stroke/box masks)."""
    options = dict(locals())
    from .recipe import train_inpaint

    loss_weights = {term: options.pop(f"{term}_weight") for term in DEFAULT_LOSS_WEIGHTS}
    result = train_inpaint(**options, loss_weights=loss_weights, on_eval=_print_eval)
    render_run_result(result, task=TASK, output=f"{TASK}-{name}.onnx")


def _print_eval(record: dict) -> None:
    bands = ", ".join(f"{band} {gain:+.2f}" for band, gain in record["psnr_gain_db_per_band"].items())
    gain, prior = record["psnr_gain_db_10_40"], record.get("prior_psnr_gain_db_10_40")
    stderr.print(f"step {record['step']}: {record['pairs']} dev pairs, gain over Telea on 10-40 % holes "
                 f"{'-' if gain is None else f'{gain:+.3f}'} dB ({bands}; the push-pull prior alone "
                 f"{'-' if prior is None else f'{prior:+.3f}'} dB) after {record['train_seconds']:.0f} s of training",
                 highlight=False)


def evaluate(
    images: Annotated[Path, typer.Option("--images", help="Folder of photos the model never saw.", show_default=False)],
    masks: Annotated[Path, typer.Option("--masks", help="Folder of masks (white = hole), e.g. irregular_dev.", show_default=False)],
    weights: WeightsOpt = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N pairs, spread over all masks.")] = None,
    json: JsonOpt = False,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Write a comparison sheet PNG: input | Telea | model | original.")] = None,
    card_metrics: Annotated[bool, typer.Option("--card-metrics", help="Store the summary in the weights' model card (a .json beside the .onnx).")] = False,
    prior: Annotated[bool, typer.Option("--prior/--no-prior", help="Also the net's push-pull coarse fill alone (weights `pushpull`): what the learned refinement adds.")] = True,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """PSNR, SSIM and L1 (hole and whole image) per mask-area band: the model vs cv2 Telea and Navier-Stokes."""
    options = dict(locals())
    from .evaluate import evaluate_inpaint

    as_json = options.pop("json")
    with StepProgress("pairs") as progress:
        report = evaluate_inpaint(**options, progress=progress)
    if as_json:
        print_json(report)
        return
    stdout.print(format_table(report, title=f"inpainting: {report['weights']} on {images.name} + {masks.name}"))
    for key in ("sheet", "card"):
        if key in report:
            stdout.print(f"wrote {report[key]}", highlight=False)


def format_table(summary: dict, title: str = "inpainting"):
    """The summary of evaluate.summarize as a rich table per band and method, with the floor and goal."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from imgan.errors import UsageError

    from .evaluate import GOAL_GAIN_DB, SHOWN_ORDER

    if not summary.get("bands"):
        raise UsageError("nothing to show: no band has a result")
    table = Table("band", "pairs", "method", "PSNR", "PSNR hole", "SSIM", "SSIM hole", "L1 %", "L1 hole %", title=title)
    for label, band in summary["bands"].items():
        methods = [method for method in SHOWN_ORDER if method in band]
        for index, method in enumerate(methods):
            s = band[method]
            table.add_row(label if index == 0 else "", str(band["pairs"]) if index == 0 else "", method,
                          f"{s['psnr']:.2f}", f"{s['psnr_hole']:.2f}", f"{s['ssim']:.4f}", f"{s['ssim_hole']:.4f}",
                          f"{s['l1']:.2f}", f"{s['l1_hole']:.2f}", end_section=index == len(methods) - 1)
    floor, goal = summary["floor"], summary["goal"]
    gain, prior = goal["psnr_gain_db_10_40"], goal.get("prior_psnr_gain_db_10_40")
    lines = Text(
        f"floor (model PSNR > Telea in every band up to 40 %): {'met' if floor['met'] else 'NOT met'}\n"
        f"goal (>= {GOAL_GAIN_DB:g} dB over Telea, 10-40 %): "
        + (f"{gain:+.2f} dB, {'met' if goal['met'] else 'not met'}" if gain is not None else "no pairs")
        + (f"\nthe push-pull prior alone: {prior:+.2f} dB over Telea, so the learned refinement adds {gain - prior:+.2f} dB"
           if gain is not None and prior is not None else ""))
    return Group(table, lines)
