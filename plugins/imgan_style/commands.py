"""The style plugin's command-line surface: option signatures and thin command bodies.

Only typer and imgan at import time (this module loads with the CLI); the bodies import the
heavy modules (numpy, onnxruntime, torch) when they run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

TASK = "style"
BSDS_TEST_HINT = "../shared/assets/photos/bsds500/test"


def stylize_options(
    style: Annotated[Optional[str], typer.Option("--style", "-s", help="Fast style name (see `imgan styles`); default monet.")] = None,
    strength: Annotated[float, typer.Option("--strength", help="0..1: 1 = full style, 0 = the original.")] = 1.0,
    preserve_color: Annotated[bool, typer.Option("--preserve-color", help="Keep the input's colours: transfer luminance only.")] = False,
    size: Annotated[Optional[int], typer.Option("--size", help="Longest side the style is applied at (default: the input's, at most 1024; optimisation: 384). The output keeps the input's size.")] = None,
    compare: Annotated[Optional[Path], typer.Option("--compare", help="Also write input | painting | output side by side to this image file.")] = None,
    stable: Annotated[bool, typer.Option("--stable/--no-stable", help="Video: less flicker (moving-average style statistics, previous output blended along the optical flow).")] = True,
    style_image: Annotated[Optional[Path], typer.Option("--style-image", help="Any painting: optimise each picture towards it (slow, torch).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimisation steps with --style-image.")] = 300,
    optimizer: Annotated[str, typer.Option("--optimizer", help="Optimisation with --style-image: lbfgs or adam.")] = "lbfgs",
) -> None:
    """The options of `imgan stylize` (the shared factory adds inputs, outputs, device, tiling, video)."""


def validate_stylize(options: dict) -> None:
    from imgan.errors import UsageError

    from .infer import check_strength

    check_strength(options["strength"])
    if options["optimizer"] not in ("lbfgs", "adam"):
        raise UsageError(f"unknown optimizer {options['optimizer']!r}", hint="use lbfgs or adam")
    if options["style_image"] is not None and options["style"] is not None:
        raise UsageError("give either --style (a fast style) or --style-image (optimisation), not both")


def styles_command(json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the fast styles: shipped ones and your own (from `imgan train style`)."""
    from imgan.cli_support import print_json, stdout

    from .infer import list_styles

    rows = list_styles()
    if json:
        return print_json(rows)
    from rich.table import Table

    table = Table("style", "painting", "origin", "steps", "train time", title="imgan styles")
    for row in rows:
        seconds = row["training_seconds"]
        table.add_row(row["name"], row["description"] or row["style_image"] or "-", row["origin"], str(row["steps"] or "-"),
                      f"{seconds / 60:.0f} min" if seconds else "-")
    stdout.print(table)


def train_command(
    style_image: Annotated[Path, typer.Option("--style-image", help="The painting to learn.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of training photos, e.g. ../shared/assets/photos/bsds500/train.")],
    name: Annotated[str, typer.Option("--name", help="Style name: `imgan stylize --style NAME` finds it afterwards.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="The shipped styles: 300-400 (20-30 min on one busy CPU core).")] = 400,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 2,
    crop: Annotated[int, typer.Option("--crop", min=32, help="Training crop side (a multiple of 4).")] = 128,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    widths: Annotated[str, typer.Option("--widths", help="Channels at full, 1/2 and 1/4 resolution.")] = "16,32,64",
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="Residual blocks.")] = 4,
    style_weight: Annotated[Optional[float], typer.Option("--style-weight", help="Default 1 (per-layer Gram errors are normalised by the painting's).")] = None,
    content_weight: Annotated[Optional[float], typer.Option("--content-weight", help="Default 2e-5.")] = None,
    tv_weight: Annotated[Optional[float], typer.Option("--tv-weight", help="Default 0.5.")] = None,
    style_size: Annotated[Optional[int], typer.Option("--style-size", help="The painting's longest side for its Gram matrices (default 512).")] = None,
    content_layer: Annotated[Optional[str], typer.Option("--content-layer", help="Default relu2_2.")] = None,
    style_layers: Annotated[Optional[str], typer.Option("--style-layers", help="Comma-separated VGG19 layers (default relu1_1,relu2_1,relu3_1,relu3_4).")] = None,
    vgg_weights: Annotated[Optional[str], typer.Option("--vgg-weights", help="VGG19 .pth (else $IMGAN_VGG19_WEIGHTS, else torchvision's download).")] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", help="Start from another style's checkpoint (converges faster).")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="Default: $IMGAN_HOME/runs/style-NAME.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: $IMGAN_HOME/weights/style-NAME.onnx.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="torch CPU threads.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train a fast style from a painting, export it to ONNX and add it to your styles."""
    from imgan.cli_support import stdout
    from imgan.errors import UsageError

    from .model import StyleNetConfig
    from .objective import StyleSettings
    from .recipe import train_style

    try:
        net = StyleNetConfig(widths=tuple(int(w) for w in widths.split(",")), residual_blocks=blocks)
    except ValueError:
        raise UsageError(f"--widths must be three whole numbers like 16,32,64, got {widths!r}") from None
    if len(net.widths) != 3:
        raise UsageError(f"--widths must be three whole numbers like 16,32,64, got {widths!r}")
    chosen = {"style_weight": style_weight, "content_weight": content_weight, "tv_weight": tv_weight,
              "style_size": style_size, "content_layer": content_layer,
              "style_layers": style_layers.split(",") if style_layers else None}
    settings = StyleSettings.from_dict({key: value for key, value in chosen.items() if value is not None})
    trained = train_style(style_image=style_image, data=data, name=name, steps=steps, batch_size=batch_size,
                          crop=crop, lr=lr, net=net, settings=settings, run_dir=run_dir, output=output,
                          resume=resume, vgg_weights=vgg_weights, init_from=init_from, threads=threads, seed=seed)
    losses = "  ".join(f"{key} {value:.4g}" for key, value in trained.run.final_losses.items())
    stdout.print(f"trained {trained.run.steps_done} steps in {trained.run.seconds / 60:.1f} min; final {losses}")
    stdout.print(f"wrote {trained.export.path} and {trained.export.card_path}; use it with --style {name}")


def export(checkpoint: Path, output: Path, name: str | None = None, **options):
    """`imgan export style CHECKPOINT -o FILE.onnx`: ONNX + model card + thumbnail."""
    from .recipe import export_style

    return export_style(Path(checkpoint), Path(output), name=name, **options)


def eval_command(
    images: Annotated[int, typer.Option("--images", min=1, help="Test photos per style.")] = 2,
    data: Annotated[Optional[Path], typer.Option("--data", help=f"Test photos never trained on (default {BSDS_TEST_HINT}).")] = None,
    style: Annotated[Optional[list[str]], typer.Option("--style", help="Only these styles (repeatable).")] = None,
    size: Annotated[int, typer.Option("--size", min=32, help="Longest side of the test photos.")] = 256,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimisation steps of the baseline.")] = 300,
    styles_dir: Annotated[Optional[Path], typer.Option("--styles-dir", help="Where the paintings are, if not at the path in the card.")] = None,
    vgg_weights: Annotated[Optional[str], typer.Option("--vgg-weights")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1)] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per style: style and content loss of the fast net vs a 300-step optimisation on unseen photos."""
    from imgan.cli_support import print_json, stderr, stdout

    from .evaluate import default_test_photos, evaluate_styles

    def report(row: dict) -> None:
        stderr.print(f"{row['style']} {row['photo']}: fast/optimised total {row['total_ratio']:.2f} "
                     f"({row['fast_seconds']:.2f} s vs {row['optimised_seconds']:.0f} s)", highlight=False)

    rows = evaluate_styles(styles=style, data=data or default_test_photos(), images=images, size=size, steps=steps,
                           styles_dir=styles_dir, vgg_weights=vgg_weights, threads=threads, on_row=report)
    if json:
        return print_json(rows)
    from rich.table import Table

    table = Table("style", "photo", "fast style", "opt style", "fast content", "opt content", "fast total",
                  "opt total", "fast/opt", title=f"imgan eval style ({steps}-step optimisation baseline)")
    for row in rows:
        table.add_row(row["style"], row["photo"], f"{row['fast']['style']:.4g}", f"{row['optimised']['style']:.4g}",
                      f"{row['fast']['content']:.4g}", f"{row['optimised']['content']:.4g}",
                      f"{row['fast']['total']:.4g}", f"{row['optimised']['total']:.4g}", f"{row['total_ratio']:.2f}")
    stdout.print(table)
