"""Built-in plugin: inpainting with free-form masks (a DeepFill v2-style gated-conv GAN).

Task "inpaint": `imgan inpaint` (inference, ONNX Runtime), `imgan train inpaint`,
`imgan export inpaint`, `imgan eval inpaint`. Kept light: numpy, onnxruntime and torch are
imported inside the functions.

    imgan inpaint photo.jpg --mask mask.png -o out.png       white = fill
    imgan inpaint photos/ --mask masks/ -o out/              masks matched by file stem
    imgan inpaint cutout.png                                 transparent pixels = fill
    imgan inpaint clip.mp4 --box 20,20,160,60                one fixed mask for every frame
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imgan import Task, hookimpl

TASK = "inpaint"
DEFAULT_WEIGHTS = "gated"
# Generator loss weights of `imgan train inpaint` (terms explained in recipe.py). Chosen by the
# gradient norms each term sends into G: hole L1 dominates (PSNR is the measure), style, VGG and
# GAN terms each add 5-10 %; the valid L1, whose gradient never fades (L1 at zero), is kept small.
DEFAULT_LOSS_WEIGHTS = {"hole": 1.0, "valid": 0.01, "perceptual": 0.01, "style": 0.03, "adversarial": 0.01}


def inpaint_options(
    mask: Annotated[Optional[Path], typer.Option(
        "--mask", "--masks", "-m",
        help="Mask image (white = fill) used for every input, or a folder of masks matched to the inputs "
             "by file stem (photo.jpg <- masks/photo.png or photo_mask.png). Default: the input's "
             "transparent pixels.")] = None,
    box: Annotated[Optional[list[str]], typer.Option(
        "--box", help="Fill the box x,y,w,h (pixels from the top-left; repeatable; adds to --mask).")] = None,
    dilate: Annotated[int, typer.Option("--dilate", min=0, help="Grow the mask by N pixels.")] = 0,
    resize_mask: Annotated[bool, typer.Option(
        "--resize-mask", help="Stretch a mask of another size to each image (else a size mismatch is an error).")] = False,
) -> None:
    """The task's own options of `imgan inpaint` (passed to make_transform)."""


def check_options(options: dict) -> None:
    from .infer import parse_box

    for text in options.get("box") or ():
        parse_box(text)


def make_transform(*, weights=None, device="auto", threads=None, tile=None, mask=None, box=None, dilate=0,
                   resize_mask=False):
    """`tile` is the largest window the model runs on at once (default: the card's working size)."""
    from imgan.weights import resolve_weights

    from .infer import MaskSource, inpaint_transform, inpainter_for_weights

    masks = MaskSource(mask, box or (), dilate=dilate, resize=resize_mask)
    inpainter = inpainter_for_weights(resolve_weights(TASK, weights, default=DEFAULT_WEIGHTS), device=device,
                                      threads=threads, tile=tile)
    return inpaint_transform(inpainter, masks)


def train_command(
    data: Annotated[Path, typer.Option(help="Folder of training photos (e.g. BSDS500 train); random crops and masks are drawn.", show_default=False)],
    name: Annotated[str, typer.Option(help="Run name: the run folder is $IMGAN_HOME/runs/inpaint-NAME.")] = DEFAULT_WEIGHTS,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run folder (checkpoints, log, samples); overrides --name.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Total steps (also when resuming).")] = 3000,
    batch_size: Annotated[int, typer.Option(min=1, help="Crops per step.")] = 4,
    crop: Annotated[int, typer.Option(min=32, help="Crop edge in pixels, a multiple of 4.")] = 128,
    width: Annotated[int, typer.Option(min=4, help="Generator channels at full resolution (x2, x4 deeper).")] = 16,
    lr: Annotated[float, typer.Option(help="Adam learning rate of G and D (cosine schedule).")] = 4e-4,
    hole_weight: Annotated[float, typer.Option(help="L1 weight inside the hole.")] = DEFAULT_LOSS_WEIGHTS["hole"],
    valid_weight: Annotated[float, typer.Option(help="L1 weight on the known pixels of the raw output.")] = DEFAULT_LOSS_WEIGHTS["valid"],
    perceptual_weight: Annotated[float, typer.Option(help="VGG19 feature L1 weight (0: no VGG).")] = DEFAULT_LOSS_WEIGHTS["perceptual"],
    style_weight: Annotated[float, typer.Option(help="VGG19 Gram-matrix (style) weight (0: no VGG).")] = DEFAULT_LOSS_WEIGHTS["style"],
    adversarial_weight: Annotated[float, typer.Option(help="SN-PatchGAN hinge weight (0: no discriminator).")] = DEFAULT_LOSS_WEIGHTS["adversarial"],
    vgg_weights: Annotated[Optional[str], typer.Option(help="VGG19 weights (default: $IMGAN_VGG19_WEIGHTS, else torchvision's).")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 100,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 0,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the run folder.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    init_from: Annotated[Optional[Path], typer.Option(help="Start the generator from a checkpoint or an exported .onnx with its card (e.g. weights/inpaint-gated.onnx, to fine-tune it).")] = None,
) -> None:
    """Train the inpainting GAN (gated convs, SN-PatchGAN, random stroke/box masks)."""
    from imgan.cli_support import render_run_result

    from .recipe import train_inpaint

    weights = {"hole": hole_weight, "valid": valid_weight, "perceptual": perceptual_weight, "style": style_weight,
               "adversarial": adversarial_weight}
    result = train_inpaint(data=data, name=name, run_dir=run_dir, steps=steps, batch_size=batch_size, crop=crop,
                           width=width, lr=lr, loss_weights=weights, vgg_weights=vgg_weights,
                           checkpoint_every=checkpoint_every, threads=threads, workers=workers, seed=seed,
                           resume=resume, device=device, init_from=init_from)
    render_run_result(result, task=TASK, output=f"{TASK}-{name}.onnx")


def export_command(checkpoint: Path, output: Path, name: str | None = None, **options):
    """ONNX export of a checkpoint with parity check and model card (see recipe.export_inpaint)."""
    from .recipe import export_inpaint

    return export_inpaint(checkpoint, output, name, **options)


def eval_command(
    images: Annotated[Path, typer.Option("--images", help="Folder of photos the model never saw.", show_default=False)],
    masks: Annotated[Path, typer.Option("--masks", help="Folder of masks (white = hole), e.g. irregular_dev.", show_default=False)],
    weights: Annotated[Optional[str], typer.Option("--weights", help="Weights name or .onnx file (default: the task's).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N pairs, spread over all masks.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Write a comparison sheet PNG: input | Telea | model | original.")] = None,
    card_metrics: Annotated[bool, typer.Option("--card-metrics", help="Store the summary in the weights' model card (a .json beside the .onnx).")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads.")] = None,
) -> None:
    """PSNR, SSIM and L1 (hole and whole image) per mask-area band: the model vs cv2 Telea and Navier-Stokes."""
    from .evaluation import run_eval_command

    run_eval_command(images=images, masks=masks, weights=weights, limit=limit, as_json=json, sheet=sheet,
                     card_metrics=card_metrics, device=device, threads=threads)


@hookimpl
def register_tasks(register):
    register(Task(name=TASK, summary="Inpainting with free-form masks (gated convs + SN-PatchGAN, DeepFill v2 style)",
                  make_transform=make_transform, default_weights=DEFAULT_WEIGHTS, verb="inpaint",
                  train=train_command, export=export_command, evaluate=eval_command))


@hookimpl
def register_commands(app):
    from imgan.cli_support import add_image_command

    add_image_command(app, "inpaint", task=TASK, options=inpaint_options, validate=check_options,
                      help="Fill masked regions of images or videos (mask image, mask folder, alpha or boxes).")
