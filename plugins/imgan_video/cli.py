"""The video task's commands: `imgan predict`, `imgan interpolate`, `imgan train video`, `imgan eval video`,
`imgan train video-interp`.

Light on purpose (typer only): `imgan --help` imports every plugin. Each body parses, calls one
library function (infer, interpolate, recipe or evaluate, imported there), and renders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imgan.cli_support import (DeviceOpt, InitFromOpt, JsonOpt, ResumeOpt, RunDirOpt, SeedOpt, StepProgress,
                               ThreadsOpt, WeightsOpt, print_json, render_run_result, start_options, stderr, stdout)

from . import TASK
from .spec import (CLIPS_NAME, DEFAULT_CONTEXT, DEFAULT_FUTURE, DEFAULT_WEIGHTS, INTERP_NAME, INTERP_TASK,
                   NATURAL_NAME, NATURAL_WORKING_SIZE, check_interpolate_sources, check_predict_sources)

MnistOpt = Annotated[Optional[Path], typer.Option(help="MNIST t10k-images-idx3-ubyte.gz (default: $IMGAN_MNIST).")]


def predict(
    clip: Annotated[Optional[Path], typer.Argument(help="A video file; its first --context frames are the context.",
                                                   show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Video to write (default <stem>.video.mp4); with --mmnist, a folder.")] = None,
    context: Annotated[int, typer.Option(min=1, help="Frames the model reads.")] = DEFAULT_CONTEXT,
    future: Annotated[int, typer.Option(min=1, help="Frames to predict.")] = DEFAULT_FUTURE,
    only_future: Annotated[bool, typer.Option(help="Write only the predicted frames, not the context before them.")] = False,
    sheet: Annotated[Optional[Path], typer.Option(help="Also write an image: context | true next frames | prediction.")] = None,
    mmnist: Annotated[Optional[int], typer.Option(min=1, max=2000, help="Instead of a clip: sheets and GIFs for the first N Moving MNIST test sequences.")] = None,
    mnist: MnistOpt = None,
    size: Annotated[Optional[int], typer.Option(min=4, help="Centre-crop and resize frames to SIZE x SIZE first.")] = None,
    start: Annotated[Optional[float], typer.Option(min=0, help="Second of the clip where the context starts.")] = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that exist.")] = False,
    json: JsonOpt = False,
) -> None:
    """Predict the next frames of a clip with the ConvLSTM video model (or show it on Moving MNIST).

    Clips use the natural-video model (convlstm-natural, RGB, at its working size), --mmnist the
    Moving MNIST one (convlstm-mmnist), unless --weights names another."""
    from .infer import predict_clip, predict_mmnist

    check_predict_sources(clip, mmnist)
    notes: tuple[str, ...] = ()
    if mmnist is not None:
        with StepProgress("predicting") as progress:
            written = predict_mmnist(mmnist, output or Path("mmnist-predictions"), mnist=mnist, context=context,
                                     future=future, weights=weights, device=device, threads=threads,
                                     overwrite=overwrite, progress=progress)
    else:
        with StepProgress("model steps") as progress:
            prediction = predict_clip(clip, output=output, context=context, future=future, only_future=only_future,
                                      sheet=sheet, size=size, start=start, weights=weights, device=device,
                                      threads=threads, overwrite=overwrite, progress=progress)
        written, notes = prediction.written, prediction.notes
    if json:
        print_json({"written": [str(path) for path in written], "notes": list(notes)})
        return
    for note in notes:
        stderr.print(note, highlight=False)
    for path in written:
        stdout.print(f"wrote {path}", highlight=False, soft_wrap=True)


def interpolate(
    clip: Annotated[Optional[Path], typer.Argument(help="A video file.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Video to write (default <stem>.x<factor>.mp4).")] = None,
    factor: Annotated[int, typer.Option(min=2, help="Frames out per frame in: 2 doubles the frame rate.")] = 2,
    method: Annotated[str, typer.Option(help="flow (warp both neighbours along the optical flow), learned (the flow refined by a trained net: sharper at occlusions) or blend (cross-fade).")] = "flow",
    measure: Annotated[bool, typer.Option(help="Instead of writing: hold back in-between frames and compare every method's rebuilds with them.")] = False,
    mmnist: Annotated[Optional[int], typer.Option(min=1, max=2000, help="With --measure: the first N Moving MNIST test sequences instead of a clip.")] = None,
    mnist: MnistOpt = None,
    photos: Annotated[Optional[Path], typer.Option(help="With --measure: 50 fixed synthetic camera-motion clips (pans, zooms, rolls, a moving layer) over these photos instead of a clip.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(min=3, help="With --measure: only the clip's first N frames.")] = None,
    weights: Annotated[Optional[str], typer.Option(help=f"--method learned: {INTERP_TASK} weights by name or .onnx path (default {INTERP_NAME}).")] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    json: JsonOpt = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an output that exists.")] = False,
) -> None:
    """Generate in-between frames (optical flow, optionally refined by a trained net), or measure
    every method against held-back real ones."""
    from .interpolate import interpolate_clip, measure_camera_motion, measure_interpolation, measure_mmnist

    check_interpolate_sources(clip, mmnist, measure, photos)
    runtime = {"weights": weights, "device": device, "threads": threads}
    with StepProgress("measuring" if measure else "interpolating") as progress:
        if not measure:
            written = interpolate_clip(clip, output, factor=factor, method=method, overwrite=overwrite,
                                       progress=progress, **runtime)
        elif mmnist is not None:
            results = measure_mmnist(mmnist, factor=factor, mnist=mnist, progress=progress, **runtime)
        elif photos is not None:
            results = measure_camera_motion(photos, factor=factor, progress=progress, **runtime)
        else:
            results = measure_interpolation(clip, factor=factor, max_frames=max_frames, progress=progress, **runtime)
    if not measure:
        return stdout.print(f"wrote {written}", highlight=False, soft_wrap=True)
    if json:
        return print_json(results)
    from rich.table import Table

    table = Table("method", "PSNR (dB)", "MSE / pixel",
                  title=f"{results['held_back']} held-back frames of {results['source']}, factor {factor}")
    for name, figures in results["methods"].items():
        table.add_row(name, f"{figures['psnr']:.2f}", f"{figures['mse']:.5f}")
    stdout.print(table)


def train(
    ctx: typer.Context,
    steps: Annotated[int, typer.Option(min=1, help="Total generator steps (also when resuming).")] = 3000,
    videos: Annotated[Optional[Path], typer.Option(help="Train on the clips in this folder instead of Moving MNIST.")] = None,
    size: Annotated[int, typer.Option(min=8, help="--videos: frames are centre-cropped and resized to SIZE x SIZE (a multiple of 4); natural footage: random SIZE x SIZE crops.")] = 64,
    photos: Annotated[Optional[Path], typer.Option(help="Natural footage: also train on synthetic camera motion (pans, zooms, rolls, a moving layer) over the photos in this folder (RGB model).")] = None,
    working_size: Annotated[Optional[int], typer.Option(min=16, help=f"Natural footage: clips are resized to this longer side (as `imgan predict` will run the model) before cropping; default {NATURAL_WORKING_SIZE} with --photos.")] = None,
    gray: Annotated[bool, typer.Option(help="--videos: train on grayscale frames (Moving MNIST always is).")] = False,
    mnist: MnistOpt = None,
    context: Annotated[int, typer.Option(min=1, help="Frames the model reads.")] = DEFAULT_CONTEXT,
    future: Annotated[int, typer.Option(min=1, help="Frames it learns to predict.")] = DEFAULT_FUTURE,
    hidden: Annotated[str, typer.Option(help="ConvLSTM layers' hidden channels, e.g. 64,64.")] = "64,64",
    widths: Annotated[str, typer.Option(help="Encoder channels at 1/2 and 1/4 resolution.")] = "32,64",
    kernel: Annotated[int, typer.Option(min=1, help="ConvLSTM gate kernel size (odd).")] = 3,
    motion_kernel: Annotated[int, typer.Option(min=0, help="k (odd): move the last frame's pixels by up to k // 2 with a predicted per-pixel kernel (sharper, learns far faster); 0: draw every pixel.")] = 9,
    draw_new: Annotated[bool, typer.Option(help="With --motion-kernel: also draw pixels, blended in by a predicted mask (content that appears).")] = False,
    frame_difference: Annotated[bool, typer.Option(help="Show the encoder each frame's difference to the previous one (motion in one step).")] = True,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate (generator and critic).")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="constant, or cosine (decays to 10 % at --steps; for a refining run).")] = "constant",
    init_from: InitFromOpt = None,
    l2: Annotated[float, typer.Option(min=0, help="Weight of the forecast's MSE.")] = 1.0,
    l1: Annotated[float, typer.Option(min=0, help="Weight of the forecast's L1.")] = 0.0,
    bce: Annotated[float, typer.Option(min=0, help="Weight of the forecast's binary cross-entropy (escapes the all-black frame faster than MSE).")] = 1.0,
    context_loss: Annotated[float, typer.Option(min=0, help="Weight of the same pixel terms on the one-step predictions made while reading the context.")] = 0.5,
    gdl: Annotated[float, typer.Option(min=0, help="Weight of the gradient-difference loss (sharper edges).")] = 0.0,
    adversarial: Annotated[float, typer.Option(min=0, help="Weight of the 3-D critic's term (0: no GAN; it sharpens but costs MSE).")] = 0.0,
    gan_mode: Annotated[str, typer.Option(help="vanilla, lsgan, hinge or wgan-gp.")] = "lsgan",
    teacher_forcing: Annotated[float, typer.Option(min=0, max=1, help="Probability of feeding a true future frame instead of the prediction.")] = 0.0,
    eval_every: Annotated[int, typer.Option(min=1, help="Checkpoint (and on Moving MNIST measure test MSE) every N steps.")] = 100,
    eval_sequences: Annotated[int, typer.Option(min=0, max=2000, help="Test sequences measured each time (0: none).")] = 100,
    name: Annotated[Optional[str], typer.Option(help=f"Weights name (default {DEFAULT_WEIGHTS}; {CLIPS_NAME} with --videos; {NATURAL_NAME} with --photos or --working-size).")] = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
) -> None:
    """Train the ConvLSTM frame predictor on Moving MNIST (default) or on your clips (--videos DIR).

    With --init-from, the model options not given are the start's."""
    options = {name: value for name, value in locals().items() if name != "ctx"}  # exactly the parameters
    from .recipe import train_video

    options.update(start_options(ctx, init_from, predictor_options, resume=resume))
    result = train_video(**options, progress=stderr.is_terminal, on_eval=_print_eval)
    render_run_result(result, task=TASK, output=f"{TASK}-NAME.onnx --name NAME")


def predictor_options(model_config: dict) -> dict:
    """`imgan train video`'s model options as a start's model_config has them."""
    def joined(values: list[int]) -> str:
        return ",".join(str(value) for value in values)

    convert = {"hidden": joined, "widths": joined, "kernel": int, "motion_kernel": int, "draw_new": bool,
               "frame_difference": bool}
    options = {key: convert[key](model_config[key]) for key in convert if key in model_config}
    if "channels" in model_config:
        options["gray"] = model_config["channels"] == 1
    return options


def train_interp(
    videos: Annotated[Optional[Path], typer.Option(help="Train on in-between frames of the clips in this folder (at their own resolution).")] = None,
    photos: Annotated[Optional[Path], typer.Option(help="Also on synthetic camera motion (pans, zooms, rolls, a moving layer) over the photos in this folder.")] = None,
    heldout: Annotated[Optional[Path], typer.Option(help="A clip it never trains on: every --eval-every steps, PSNR on its held-back frames against the flow method (RUN_DIR/eval.jsonl).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Total steps (also when resuming).")] = 2000,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    crop: Annotated[int, typer.Option(min=16, help="Side of the training crops (a multiple of 4).")] = 128,
    widths: Annotated[str, typer.Option(help="U-Net channels at full, 1/2 and 1/4 resolution.")] = "32,64,96",
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    lr_schedule: Annotated[str, typer.Option(help="constant, or cosine (decays to 10 % at --steps).")] = "cosine",
    pixel_loss: Annotated[str, typer.Option(help="l2 (MSE: PSNR; learns from the few wrong pixels), l1 or charbonnier.")] = "l2",
    eval_every: Annotated[int, typer.Option(min=1, help="Checkpoint (and measure on --heldout) every N steps.")] = 250,
    name: Annotated[str, typer.Option(help="Weights name (the run folder's too).")] = INTERP_NAME,
    init_from: InitFromOpt = None,
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
) -> None:
    """Train the frame interpolator behind `imgan interpolate --method learned` (a U-Net refining the
    Farnebäck flows) on in-between frames of your clips and/or camera motion over photos."""
    from .refine import RefinerSettings, train_refiner
    from .spec import parse_channels

    settings = RefinerSettings(videos=videos, photos=photos, heldout=heldout, steps=steps, batch_size=batch_size,
                               crop=crop, widths=parse_channels(widths, "--widths", count=3), lr=lr,
                               lr_schedule=lr_schedule, pixel_loss=pixel_loss, eval_every=eval_every, name=name, run_dir=run_dir,
                               resume=resume, init_from=init_from, threads=threads, device=device, seed=seed)
    result = train_refiner(settings, progress=stderr.is_terminal, on_eval=_print_interp_eval)
    render_run_result(result, task=INTERP_TASK, output=f"{INTERP_TASK}-{name}.onnx --name {name}")


def _print_interp_eval(record: dict) -> None:
    stderr.print(f"step {record['step']}: {record['held_back']} held-back frames, learned {record['learned_psnr']} dB, "
                 f"flow {record['flow_psnr']} dB after {record['train_seconds']:.0f} s of training", highlight=False)


def _print_eval(record: dict) -> None:
    stderr.print(f"step {record['step']}: test MSE {record['test_mse']} on {record['sequences']} sequences "
                 f"after {record['train_seconds']:.0f} s of training", highlight=False)


def evaluate(
    json: JsonOpt = False,
    sequences: Annotated[int, typer.Option(min=1, max=2000, help="First N sequences of the fixed test set.")] = 2000,
    weights: WeightsOpt = None,
    mnist: MnistOpt = None,
    record: Annotated[bool, typer.Option(help="Store the model's figures in its model card.")] = False,
    clip: Annotated[Optional[list[Path]], typer.Option(help="Natural video instead of Moving MNIST: every window of this clip (repeatable; one the model never saw) at the model's working size.")] = None,
    photos: Annotated[Optional[Path], typer.Option(help="Natural video: also 100 fixed synthetic camera-motion clips over these photos (ones it never saw).")] = None,
    context: Annotated[int, typer.Option(min=1, help="Frames the model reads.")] = DEFAULT_CONTEXT,
    future: Annotated[int, typer.Option(min=1, help="Frames it predicts (figures per horizon).")] = DEFAULT_FUTURE,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Moving MNIST test set: MSE/MAE per frame and SSIM of the model and of trivial baselines; with
    --clip/--photos, natural video: PSNR per horizon of the RGB model, copy-last and flow extrapolation."""
    from .evaluate import evaluate_mmnist, evaluate_natural, record_in_card

    if clip or photos:
        with StepProgress("evaluating windows") as progress:
            results = evaluate_natural(weights, clips=list(clip or []), photos=photos, context=context, future=future,
                                       device=device, threads=threads, progress=progress)
        if record:
            stderr.print(f"recorded in {record_in_card(results)}")
        if json:
            return print_json(results)
        for name, figures in results["sets"].items():
            stdout.print(_natural_table(name, figures, results))
        return None
    with StepProgress("evaluating sequences") as progress:
        results = evaluate_mmnist(weights, sequences=sequences, mnist=mnist, context=context, future=future,
                                  device=device, threads=threads, progress=progress)
    if record:
        stderr.print(f"recorded in {record_in_card(results)}")
    if json:
        return print_json(results)
    stdout.print(_summary_table(results))
    stdout.print(_horizon_table(results))


def _summary_table(results: dict):
    from rich.table import Table

    table = Table("method", "MSE / frame", "MAE / frame", "SSIM",
                  title=f"Moving MNIST, {results['sequences']} test sequences, {results['context']} → {results['future']} "
                        f"({results['weights']}); floor {results['floor_mse']} = 0.7 × {results['best_baseline']}")
    for name, figures in results["methods"].items():
        table.add_row(name, f"{figures['mse']:.1f}", f"{figures['mae']:.1f}", f"{figures['ssim']:.3f}")
    return table


def _horizon_table(results: dict):
    from rich.table import Table

    table = Table("MSE at", *results["methods"], title="per horizon")
    for k in range(results["future"]):
        table.add_row(f"t+{k + 1}", *[f"{m['mse_per_horizon'][k]:.1f}" for m in results["methods"].values()])
    return table


def _natural_table(name: str, figures: dict, results: dict):
    from rich.table import Table

    methods = figures["methods"]
    table = Table("PSNR dB at", *methods, title=f"{name}: {figures['windows']} windows, {results['context']} → "
                                                f"{results['future']} frames at {results['working_size']} px "
                                                f"({results['weights']})")
    for k in range(results["future"]):
        table.add_row(f"t+{k + 1}", *[f"{m['psnr_per_horizon'][k]:.2f}" for m in methods.values()])
    table.add_row("all", *[f"{m['psnr']:.2f}" for m in methods.values()])
    return table
