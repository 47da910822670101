"""The style plugin's command-line surface: option signatures and thin command bodies.

Only typer and imgan at import time (this module loads with the CLI); the bodies import the
heavy modules (numpy, onnxruntime, torch) when they run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imgan.cli_support import (CheckpointEveryOpt, InitFromOpt, JsonOpt, ResumeOpt, RunDirOpt, SeedOpt, StepProgress, ThreadsOpt,
                               VggWeightsOpt, print_json, stderr, stdout)

from .spec import DEFAULT_TEST_PHOTOS, LEVELS, REPO, StyleSettings

TEST_PHOTOS_HINT = f"../{DEFAULT_TEST_PHOTOS.relative_to(REPO.parent)}"


def verb_options(
    style: Annotated[Optional[list[str]], typer.Option("--style", "-s", help="A style from `imgan styles` (default monet): a fast net, or a painting style; a blend monet:0.6,hokusai:0.4 (or --style repeated) mixes paintings' statistics.")] = None,
    strength: Annotated[float, typer.Option("--strength", help="0..1: 1 = full style, 0 = the original (universal: between the photo's own feature statistics and the painting's).")] = 1.0,
    preserve_color: Annotated[bool, typer.Option("--preserve-color", help="Keep the input's colours: transfer luminance only.")] = False,
    size: Annotated[Optional[int], typer.Option("--size", help="Longest side the style is applied at (default: the input's, at most 1024 for fast nets, 512 universal, 384 optimisation). The output keeps the input's size.")] = None,
    compare: Annotated[Optional[Path], typer.Option("--compare", help="Also write input | painting | output side by side to this image file.")] = None,
    stable: Annotated[bool, typer.Option("--stable/--no-stable", help="Video: less flicker (moving-average style statistics, previous output blended along the optical flow).")] = True,
    style_image: Annotated[Optional[Path], typer.Option("--style-image", help="Any painting file, in one pass (--method universal) or by optimisation (--method optimise: slow, torch).")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="universal (WCT, one pass; the default for --style-image and painting styles) or optimise (Gatys et al., --style-image only).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimisation steps with --method optimise.")] = 300,
    optimizer: Annotated[str, typer.Option("--optimizer", help="--method optimise: lbfgs or adam.")] = "lbfgs",
    vgg_weights: VggWeightsOpt = None,  # --method optimise: its loss network
) -> None:
    """The options of `imgan stylize` (the core adds inputs, outputs, device, tiling, video)."""


def styles(
    json: JsonOpt = False,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Render every style on this photo, labelled, into one contact sheet (-o).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The contact sheet's file (with --sheet).")] = None,
    size: Annotated[int, typer.Option("--size", min=32, help="--sheet: longest side of each stylised photo.")] = 256,
    add: Annotated[Optional[list[Path]], typer.Option("--add", help="Add paintings as named styles (their WCT statistics; repeatable).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="--add: the style's name (default: from the file name).")] = None,
    into: Annotated[Optional[Path], typer.Option("--into", help="--add: the folder (default $IMGAN_HOME/weights/style-stats).")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """List every style --style takes (fast nets and painting styles); add paintings; or draw a contact sheet."""
    if add:
        from .paintings import add_paintings

        for style in add_paintings(add, into=into, name=name, threads=threads):
            stdout.print(f"added style {style.name}: {style.description} ({style.file})", highlight=False)
        return None
    if sheet is not None:
        from imgan.errors import UsageError

        if output is None:
            raise UsageError("--sheet needs -o FILE for the contact sheet")
        from imgan.io.images import Picture, write_image

        from .paintings import contact_sheet

        with StepProgress("styles") as progress:
            picture = contact_sheet(sheet, size=size, threads=threads, progress=progress)
        write_image(Picture(rgb=picture, alpha=None), output, overwrite=True)
        stdout.print(f"wrote {output}", highlight=False)
        return None
    from .infer import list_styles

    rows = list_styles()
    if json:
        return print_json(rows)
    from rich.table import Table

    table = Table(title="imgan styles (fast: a trained net; universal: any painting's statistics, WCT)")
    table.add_column("style", no_wrap=True)
    for column in ("kind", "painting", "origin", "training"):
        table.add_column(column)
    for row in rows:
        seconds = row["training_seconds"]
        trained = f"{row['steps']} steps, {seconds / 60:.0f} min" if row["steps"] and seconds else "-"
        table.add_row(row["name"], row["kind"], row["description"] or row["style_image"] or "-", row["origin"], trained)
    stdout.print(table)


def train(
    style_image: Annotated[Path, typer.Option("--style-image", help="The painting to learn.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of training photos, e.g. ../shared/assets/photos/bsds500/train.")],
    name: Annotated[str, typer.Option("--name", help="Style name: `imgan stylize --style NAME` finds it afterwards.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="The shipped styles: 300-400 (20-30 min on one busy CPU core).")] = 400,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 2,
    crop: Annotated[int, typer.Option("--crop", min=32, help="Training crop side (a multiple of 4).")] = 128,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    widths: Annotated[str, typer.Option("--widths", help="Channels at full, 1/2 and 1/4 resolution.")] = "16,32,64",
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="Residual blocks.")] = 4,
    antialias: Annotated[bool, typer.Option("--antialias/--no-antialias", help="A fixed blur where the resolution changes (v2 nets): without it nets lay a diagonal 5.7-px pattern.")] = True,
    blur_after_upsample: Annotated[bool, typer.Option(help="With --antialias: blur after each nearest x2, not before (smooths the 2x2 blocks that v2 nets turn into a fine grid).")] = False,
    style_weight: Annotated[Optional[float], typer.Option("--style-weight", help="Default 1 (per-layer Gram errors are normalised by the painting's).")] = None,
    content_weight: Annotated[Optional[float], typer.Option("--content-weight", help="Default 2e-5.")] = None,
    tv_weight: Annotated[Optional[float], typer.Option("--tv-weight", help="Default 0.5.")] = None,
    style_size: Annotated[Optional[int], typer.Option("--style-size", help="The painting's longest side for its Gram matrices (default 512).")] = None,
    content_layer: Annotated[Optional[str], typer.Option("--content-layer", help="Default relu2_2.")] = None,
    style_layers: Annotated[Optional[str], typer.Option("--style-layers", help="Comma-separated VGG19 layers (default relu1_1,relu2_1,relu3_1,relu3_4).")] = None,
    pyramid: Annotated[Optional[str], typer.Option("--pyramid", help="Comma-separated scales the style loss compares output and painting at (default 1,0.5,0.25; 1 = single scale).")] = None,
    vgg_weights: VggWeightsOpt = None,
    init_from: InitFromOpt = None,
    run_dir: RunDirOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: $IMGAN_HOME/weights/style-NAME.onnx.")] = None,
    resume: ResumeOpt = False,
    threads: ThreadsOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Train a fast style from a painting, export it to ONNX and add it to your styles."""
    options = dict(locals())  # the parameters, passed on to train_style but for the net and the loss settings
    from dataclasses import fields

    from imgan.errors import UsageError

    from .model import StyleNetConfig
    from .recipe import train_style

    try:
        net_widths = tuple(int(width) for width in options.pop("widths").split(","))
    except ValueError:
        net_widths = ()
    if len(net_widths) != 3:
        raise UsageError(f"--widths must be three whole numbers like 16,32,64, got {widths!r}")
    net = StyleNetConfig(widths=net_widths, residual_blocks=options.pop("blocks"), antialias=options.pop("antialias"),
                         blur_after_upsample=options.pop("blur_after_upsample"))
    chosen = {field.name: options.pop(field.name) for field in fields(StyleSettings)}
    if chosen["style_layers"]:
        chosen["style_layers"] = chosen["style_layers"].split(",")
    if chosen["pyramid"]:
        try:
            chosen["pyramid"] = [float(scale) for scale in chosen["pyramid"].split(",")]
        except ValueError:
            raise UsageError(f"--pyramid must be scales like 1,0.5,0.25, got {pyramid!r}") from None
    settings = StyleSettings.from_dict({key: value for key, value in chosen.items() if value is not None})
    trained = train_style(net=net, settings=settings, **options)
    print_trained(trained.run)
    stdout.print(f"wrote {trained.export.path} and {trained.export.card_path}; use it with --style {name}")


def print_trained(run) -> None:
    losses = "  ".join(f"{key} {value:.4g}" for key, value in run.final_losses.items())
    stdout.print(f"trained {run.steps_done} steps in {run.seconds / 60:.1f} min; final {losses}")


def evaluate(
    images: Annotated[int, typer.Option("--images", min=1, help="Test photos per style.")] = 2,
    data: Annotated[Optional[Path], typer.Option("--data", help=f"Test photos never trained on (default {TEST_PHOTOS_HINT}).")] = None,
    style: Annotated[Optional[list[str]], typer.Option("--style", help="Only these fast styles (repeatable; default: every one, unless --painting): names, or exported .onnx files with their cards.")] = None,
    painting: Annotated[Optional[list[Path]], typer.Option("--painting", help="Also measure the universal model on this painting (repeatable): any picture, e.g. one no net learnt.")] = None,
    universal: Annotated[bool, typer.Option("--universal/--no-universal", help="Measure the universal model beside each fast net, on its painting.")] = True,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Also write a sheet: photo | optimisation | fast net | universal | painting, a row per style and photo.")] = None,
    size: Annotated[int, typer.Option("--size", min=32, help="Longest side of the test photos.")] = 256,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Optimisation steps of the baseline (0: none, the losses and stripes alone, in seconds).")] = 300,
    styles_dir: Annotated[Optional[Path], typer.Option("--styles-dir", help="Where the paintings are, if not at the path in the card.")] = None,
    card_metrics: Annotated[bool, typer.Option("--card-metrics", help="Store each style's mean ratios in its model card (a .json beside the .onnx).")] = False,
    vgg_weights: VggWeightsOpt = None,
    threads: ThreadsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Per style: style and content loss of the fast net and the universal model vs a 300-step optimisation on unseen photos."""
    from .evaluate import STRIPES_LIMIT_DB, evaluate_styles

    def report(row: dict) -> None:
        if row["optimised"] is None:
            methods = [f"{name} total {row[name]['total']:.3g}" for name in ("fast", "universal") if row[name]]
            return stderr.print(f"{row['style']} {row['photo']}: {', '.join(methods)}", highlight=False)
        methods = [f"{name}/optimised total {row[key]:.2f}" for name, key in (("fast", "total_ratio"),
                   ("universal", "universal_ratio")) if row[key] is not None]
        stderr.print(f"{row['style']} {row['photo']}: {', '.join(methods)} (optimisation {row['optimised_seconds']:.0f} s)",
                     highlight=False)

    with StepProgress("optimisation steps") as progress:
        rows = evaluate_styles(styles=style, data=test_photos(data), images=images, size=size, steps=steps,
                               paintings=painting, universal=universal, sheet=sheet, styles_dir=styles_dir,
                               vgg_weights=vgg_weights, threads=threads, card_metrics=card_metrics, on_row=report,
                               progress=progress)
    if sheet is not None:
        stderr.print(f"wrote {sheet}")
    if json:
        return print_json(rows)
    from rich.table import Table

    def figure(scores: dict | None, key: str) -> str:
        return "-" if scores is None else f"{scores[key]:.4g}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    def stripes(scores: dict | None) -> str:
        if scores is None or scores["stripes_db"] is None:
            return "-"
        return f"{scores['stripes_db']:.0f} ({scores['stripes_period_px']:.1f} px, {scores['stripes_angle']}°)"

    table = Table("style", "photo", "method", "style loss", "content", "total", "/ optimised", "stripes dB",
                  title=f"imgan eval style ({f'{steps}-step optimisation baseline' if steps else 'no optimisation'}; stripes: chroma peak at 3-10 px on a "
                        f"blurred photo, mean <= {STRIPES_LIMIT_DB:g} dB is none)")
    for row in rows:
        methods = [(method, key) for method, key in (("optimised", None), ("fast", "total_ratio"),
                                                     ("universal", "universal_ratio")) if row[method] is not None]
        for index, (method, key) in enumerate(methods):
            scores = row[method]
            table.add_row(row["style"] if index == 0 else "", row["photo"] if index == 0 else "",
                          method, figure(scores, "style"), figure(scores, "content"), figure(scores, "total"),
                          "1" if key is None else ratio(row[key]), "-" if key is None else stripes(scores))
    stdout.print(table)


def train_universal(
    level: Annotated[str, typer.Option("--level", help=f"The VGG19 level whose decoder to train: {', '.join(LEVELS)}.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of training photos, e.g. ../shared/assets/photos/bsds500/train.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Shipped: relu1_1 300, relu2_1 800, relu3_1 1500.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
    crop: Annotated[int, typer.Option("--crop", min=16, help="Training crop side (a multiple of 4 for relu3_1).")] = 128,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    pixel_weight: Annotated[float, typer.Option("--pixel-weight", help="Weight of the pixel MSE.")] = 1.0,
    feature_weight: Annotated[float, typer.Option("--feature-weight", help="Weight of the features' relative MSE.")] = 0.1,
    vgg_weights: VggWeightsOpt = None,
    run_dir: RunDirOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: $IMGAN_HOME/weights/style-universal-decoder-LEVEL.onnx (the encoder beside it).")] = None,
    resume: ResumeOpt = False,
    threads: ThreadsOpt = None,
    seed: SeedOpt = 0,
    checkpoint_every: CheckpointEveryOpt = 100,
) -> None:
    """Train the decoder of one VGG19 level for universal style transfer; export it and its encoder."""
    options = dict(locals())
    from .universal import DecoderSettings, train_decoder

    trained = train_decoder(DecoderSettings(**options))
    print_trained(trained.run)
    stdout.print(f"wrote {trained.decoder.path} and {trained.encoder.path}")


def evaluate_universal(
    images: Annotated[int, typer.Option("--images", min=1, help="Test photos.")] = 8,
    data: Annotated[Optional[Path], typer.Option("--data", help=f"Test photos never trained on (default {TEST_PHOTOS_HINT}).")] = None,
    size: Annotated[int, typer.Option("--size", min=32, help="Longest side of the test photos (the one-pass working size).")] = 512,
    style: Annotated[Optional[str], typer.Option("--style", help="The painting style the speed is measured with.")] = None,
    card_metrics: Annotated[bool, typer.Option("--card-metrics", help="Store each level's PSNR in its decoder's card.")] = False,
    threads: ThreadsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Reconstruction PSNR of every level's encoder -> decoder on unseen photos, and the universal path's s/MP."""
    from .universal_infer import evaluate_universal as measure

    figures = measure(data=test_photos(data), images=images, size=size, style=style,
                      card_metrics=card_metrics, threads=threads)
    if json:
        return print_json(figures)
    from rich.table import Table

    table = Table("level", "reconstruction PSNR", title=f"imgan eval style-universal ({figures['images']} photos, "
                                                        f"{figures['size']} px)")
    for level, value in figures["reconstruction_psnr_db"].items():
        table.add_row(level, f"{value:.2f} dB")
    stdout.print(table)
    speed = figures["speed"]
    if speed:
        stdout.print(f"universal pass ({speed['style']}, {speed['width']}x{speed['height']}): {speed['seconds']:.2f} s = "
                     f"{speed['seconds_per_megapixel']:.2f} s/MP", highlight=False)


def test_photos(data: Path | None) -> Path:
    """--data, else the unseen BSDS500 test photos beside a source checkout; one line when neither is there."""
    if data is None and not DEFAULT_TEST_PHOTOS.is_dir():
        from imgan.errors import UsageError

        raise UsageError(f"no --data given, and the default test photos ({TEST_PHOTOS_HINT}) are not here",
                         hint="pass --data DIR: a folder of photos the styles were not trained on")
    return data or DEFAULT_TEST_PHOTOS
