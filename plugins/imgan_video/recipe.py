"""Training and export of the video predictor (PyTorch; never imported by inference).

The generator sees the context frames and rolls the future out autoregressively; its content
losses are pixel terms (MSE, L1, BCE) on the forecast, the same terms, lighter, on the one-step
predictions made while reading the context (they come for free and teach motion early), and
optionally the gradient-difference loss. With an adversarial weight, a
3-D critic judges the whole clip: the real context followed by the real or the predicted future.

Training on Moving MNIST runs `fit` in chunks of `eval_every` steps and measures the checkpoint
on the first sequences of the fixed test set after each chunk (run_dir/eval.jsonl), so every run
records its test MSE against training time.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from imgan.errors import TrainingError, UsageError
from imgan.train.checkpoint import LATEST_NAME, generator_from_checkpoint, load_checkpoint, warm_start
from imgan.train.export import ExportReport, export_onnx
from imgan.train.loop import RunResult, TrainConfig, fit
from imgan.train.losses import pixel_loss

from . import mmnist
from .evaluate import frame_errors
from .infer import DEFAULT_CONTEXT, DEFAULT_FUTURE, load_clip
from .model import (DOWNSCALE, FramePredictor, OneStep, SequenceCritic, VideoNetConfig, build_generator,
                    state_channels, state_names)

TASK = "video"
EVAL_LOG = "eval.jsonl"
EPOCH_SEQUENCES = 10_000  # Moving MNIST is endless; an "epoch" is just this many fresh sequences


# --------------------------------------------------------------------------- data


class MovingMnist(Dataset):
    """Fresh Moving MNIST sequences from the training digits: {"frames": (T, 1, 64, 64) float32 in [0, 1]}.

    Each item is drawn from NumPy's global RNG, which the training loop seeds per item position,
    so a resumed run sees the same sequences as an uninterrupted one.
    """

    def __init__(self, digits: np.ndarray, length: int):
        self.digits = mmnist.digit_split(digits, "train")
        self.length = length

    def __len__(self) -> int:
        return EPOCH_SEQUENCES

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng((index, int(np.random.randint(0, 2**31 - 1))))
        frames = mmnist.make_sequence(self.digits, rng, length=self.length)  # (T, 64, 64) uint8
        return {"frames": torch.from_numpy(frames).unsqueeze(1).float().div_(255.0)}


class ClipWindows(Dataset):
    """Every run of `length` consecutive frames of the clips in a folder: {"frames": (T, C, S, S)}.

    Clips are decoded once, centre-cropped to a square and resized to size x size (uint8 in
    memory); a random horizontal flip per item.
    """

    def __init__(self, folder: Path, *, size: int, channels: int, length: int):
        from imgan.io.video import is_video_path

        if not folder.is_dir():
            raise TrainingError("video folder not found", path=folder, hint="pass --videos DIR with video files")
        files = sorted(path for path in folder.rglob("*") if path.is_file() and is_video_path(path))
        clips = [load_clip(path, size=size, channels=channels) for path in files]
        self.clips = [clip for clip in clips if len(clip) >= length]  # each (T, S, S, C) uint8
        if not self.clips:
            raise TrainingError(f"no clip of at least {length} frames in the folder", path=folder,
                                hint="add longer clips or lower --context/--future")
        self.windows = [(c, start) for c, clip in enumerate(self.clips) for start in range(len(clip) - length + 1)]
        self.length = length

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        clip, start = self.windows[index]
        frames = torch.from_numpy(self.clips[clip][start : start + self.length]).permute(0, 3, 1, 2)  # (T, C, S, S)
        if torch.rand(()) < 0.5:
            frames = frames.flip(-1)
        return {"frames": frames.float().div_(255.0)}


# --------------------------------------------------------------------------- the recipe


def binary_cross_entropy(fake: Tensor, real: Tensor) -> Tensor:
    """Mean BCE of predicted intensities against true ones, in float32 (unsafe under float16 autocast).

    Its optimum is the same per-pixel expectation as MSE's, but the gradient on a missed bright
    pixel is far stronger: it pulls the model off the all-black frame that MSE settles on first
    when most pixels of a frame are black (Moving MNIST)."""
    with torch.autocast(fake.device.type, enabled=False):
        return F.binary_cross_entropy(fake.float(), real.float())


def gradient_difference_loss(fake: Tensor, real: Tensor) -> Tensor:
    """Mathieu et al. 2016 (alpha = 1): mean | |d fake| - |d real| | over vertical and horizontal
    neighbour differences of (..., H, W) frames; it rewards edges where the real frame has them."""
    def edges(image: Tensor, dim: int) -> Tensor:
        return image.diff(dim=dim).abs()

    return sum((edges(fake, dim) - edges(real, dim)).abs().mean() for dim in (-1, -2))


class VideoRecipe:
    """What `fit` trains: batches {"frames": (N, context + future, C, H, W)}."""

    task = TASK

    def __init__(self, config: VideoNetConfig, make_data, *, context: int, future: int,
                 loss_weights: dict[str, float], teacher_forcing: float = 0.0,
                 initial_weights: dict[str, Tensor] | None = None):
        self.net_config = config
        self.initial_weights = initial_weights  # a warm start's state dict (see load_start)
        self.model_config = config.to_dict()
        self.make_data = make_data
        self.context, self.future = context, future
        self.loss_weights = {name: weight for name, weight in loss_weights.items() if weight > 0}
        self.teacher_forcing = teacher_forcing

    def build_generator(self) -> FramePredictor:
        generator = FramePredictor(self.net_config)
        if self.initial_weights is not None:
            generator.load_state_dict(self.initial_weights)
        return generator

    def build_discriminator(self) -> SequenceCritic:
        return SequenceCritic(self.net_config.channels)

    def make_dataset(self) -> Dataset:
        return self.make_data()

    def generate(self, generator, batch: dict) -> Tensor:
        """Every prediction (N, context - 1 + future, C, H, W); the last `future` are the forecast."""
        frames = batch["frames"]
        forcing = self.teacher_forcing if generator.training else 0.0
        return generator(frames[:, : self.context], self.future, truth=frames[:, self.context :], teacher_forcing=forcing)

    def real(self, batch: dict) -> Tensor:
        return batch["frames"][:, 1:]  # what each prediction should have been

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        real = self.real(batch)
        forecast, truth = fake[:, -self.future :], real[:, -self.future :]
        terms = {
            "l2": lambda: pixel_loss(forecast, truth, "l2"),
            "l1": lambda: pixel_loss(forecast, truth, "l1"),
            "bce": lambda: binary_cross_entropy(forecast, truth),
            "gdl": lambda: gradient_difference_loss(forecast, truth),
            "context": lambda: self._pixel_mix(fake[:, : -self.future], real[:, : -self.future]),
        }
        return {name: terms[name]() for name in self.loss_weights if name != "adversarial"}

    def _pixel_mix(self, fake: Tensor, real: Tensor) -> Tensor:
        """The forecast's pixel terms, with their weights, on other frames (the one-step predictions)."""
        kinds = {"l2": lambda: pixel_loss(fake, real, "l2"), "l1": lambda: pixel_loss(fake, real, "l1"),
                 "bce": lambda: binary_cross_entropy(fake, real)}
        return sum(self.loss_weights[name] * loss() for name, loss in kinds.items() if name in self.loss_weights)

    def discriminator_input(self, image: Tensor, batch: dict) -> Tensor:
        """The real context followed by the (real or predicted) future, as (N, C, T, H, W)."""
        clip = torch.cat([batch["frames"][:, : self.context], image[:, -self.future :]], dim=1)
        return clip.transpose(1, 2)

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        """Last context frame, then truth and prediction at t+1, the middle and the last step."""
        truth = batch["frames"][:, self.context :]
        forecast = fake[:, -self.future :]
        panels = [batch["frames"][:, self.context - 1]]
        for k in sorted({0, self.future // 2, self.future - 1}):
            panels += [truth[:, k], forecast[:, k]]
        return panels


def load_start(generator: FramePredictor, start: Path) -> dict:
    """Put a previous run's weights (checkpoint, or exported .onnx + card) into `generator`; its step and seconds."""
    states = [torch.rand(1, channels, 8, 8) - 0.5 for channels in state_channels(generator.config)]
    return warm_start(start, generator, task=TASK, config=generator.config, config_of=_net_config_of,
                      parity_inputs=(torch.rand(1, generator.config.channels, 32, 32), *states), exported=OneStep)


def _net_config_of(state: dict) -> VideoNetConfig:
    return VideoNetConfig.from_dict(state["card"]["model_config"] if "card" in state else state["model_config"])


# --------------------------------------------------------------------------- held-out measurement


def measure_checkpoint(checkpoint: Path, sequences: np.ndarray, *, context: int, future: int,
                       batch: int = 25) -> dict:
    """Test MSE/MAE per frame of a checkpoint's (EMA) generator on uint8 sequences (N, T, H, W)."""
    generator, meta = generator_from_checkpoint(checkpoint, build_generator)
    predictions = []
    with torch.no_grad():
        for first in range(0, len(sequences), batch):
            clip = torch.from_numpy(sequences[first : first + batch, :context]).unsqueeze(2).float() / 255.0
            predictions.append(generator(clip, future)[:, -future:, 0].numpy())
    truth = sequences[:, context : context + future].astype(np.float32) / 255.0
    squared, absolute = frame_errors(np.concatenate(predictions), truth)  # (N, future) each
    return {"step": meta["step"], "train_seconds": round(meta["seconds"], 1), "sequences": len(sequences),
            "test_mse": round(float(squared.mean()), 2), "test_mae": round(float(absolute.mean()), 2),
            "test_mse_per_horizon": [round(float(value), 2) for value in squared.mean(axis=0)]}


def train_in_chunks(recipe: VideoRecipe, config: TrainConfig, *, resume: bool, eval_every: int,
                    measure=None) -> RunResult:
    """`fit` up to config.steps, stopping every `eval_every` steps to append measure(checkpoint) to eval.jsonl."""
    latest = config.run_dir / LATEST_NAME
    done = load_checkpoint(latest)["step"] if resume and latest.is_file() else 0
    result = None
    while result is None or done < config.steps:
        target = min(config.steps, (done // eval_every + 1) * eval_every)
        result = fit(recipe, config, resume=resume or done > 0, progress=sys.stderr.isatty(), pause_at=target)
        done = result.steps_done
        if result.interrupted:
            break
        if measure is not None:
            record = {**measure(result.checkpoint), "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with (config.run_dir / EVAL_LOG).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(f"step {record['step']}: test MSE {record['test_mse']} on {record['sequences']} sequences "
                  f"after {record['train_seconds']:.0f} s of training", file=sys.stderr, flush=True)
    return result


def read_eval_log(run_dir: Path) -> list[dict]:
    path = run_dir / EVAL_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- `imgan train video`


def _widths(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UsageError(f"{option} takes positive integers separated by commas, got {text!r}", hint=f"e.g. {option} 64,64")
    return values


def train_video(*, steps: int, videos: Path | None, size: int, gray: bool, mnist: Path | None, context: int,
                future: int, hidden: str, widths: str, kernel: int, batch_size: int, lr: float, l2: float, l1: float,
                bce: float, context_loss: float, gdl: float, adversarial: float, gan_mode: str, teacher_forcing: float,
                eval_every: int, eval_sequences: int, name: str | None, run_dir: Path | None, resume: bool,
                threads: int | None, device: str, seed: int, init_from: Path | None = None,
                lr_schedule: str = "constant", motion_kernel: int = 0, draw_new: bool = False,
                frame_difference: bool = False) -> RunResult:
    """Train on Moving MNIST (default) or on the clips in `videos`; the options are `imgan train video`'s."""
    from imgan.weights import imgan_home

    if threads:
        torch.set_num_threads(threads)
    name = name or ("convlstm-clips" if videos else "convlstm-mmnist")
    run_dir = run_dir or imgan_home() / "runs" / f"{TASK}-{name}"
    channels = 1 if videos is None or gray else 3
    encoder_widths = _widths(widths, "--widths")
    if len(encoder_widths) != 2:
        raise UsageError("--widths takes two numbers (channels at 1/2 and 1/4 resolution)", hint="e.g. --widths 32,64")
    if motion_kernel and motion_kernel % 2 == 0:
        raise UsageError(f"--motion-kernel must be odd, got {motion_kernel}", hint="e.g. --motion-kernel 9")
    net = VideoNetConfig(channels=channels, widths=encoder_widths, hidden=_widths(hidden, "--hidden"), kernel=kernel,
                         motion_kernel=motion_kernel, draw_new=draw_new, frame_difference=frame_difference)
    length = context + future
    if videos is not None:
        make_data = lambda: ClipWindows(videos, size=size, channels=channels, length=length)  # noqa: E731
    else:
        digits = mmnist.load_digits(mnist)
        make_data = lambda: MovingMnist(digits, length)  # noqa: E731
    weights = {"l2": l2, "l1": l1, "bce": bce, "context": context_loss if context > 1 else 0.0, "gdl": gdl,
               "adversarial": adversarial}
    settings = {"name": name, "context": context, "future": future, "size": size if videos else 64,
                "data": str(videos) if videos else "moving-mnist"}
    initial_weights = None
    if resume:  # keep what the run started from
        settings = {**_run_settings(run_dir), **settings}
    elif init_from is not None:  # read and checked once, not again for every chunk of train_in_chunks
        start = FramePredictor(net)
        settings["init_from"] = load_start(start, init_from)
        initial_weights = start.state_dict()
    recipe = VideoRecipe(net, make_data, context=context, future=future, loss_weights=weights,
                         teacher_forcing=teacher_forcing, initial_weights=initial_weights)
    if not recipe.loss_weights:
        raise UsageError("every loss weight is 0: nothing to train", hint="e.g. --l2 1")
    # Adam's usual momentum for regression; the GAN one (0.5) only when a critic is trained.
    betas = (0.5, 0.999) if adversarial > 0 else (0.9, 0.999)
    config = TrainConfig(run_dir=run_dir, steps=steps, batch_size=batch_size, lr_g=lr, lr_d=lr, betas=betas,
                         adversarial=gan_mode, device=device, seed=seed, checkpoint_every=eval_every,
                         sample_every=eval_every, log_every=10, grad_clip=1.0, lr_schedule=lr_schedule)
    measure = None
    if videos is None and eval_sequences > 0:
        held_out = mmnist.fixed_test_set(digits, eval_sequences, length=length)
        measure = lambda checkpoint: measure_checkpoint(checkpoint, held_out, context=context, future=future)  # noqa: E731
    _save_run_settings(run_dir, settings)
    result = train_in_chunks(recipe, config, resume=resume, eval_every=eval_every, measure=measure)
    return result


RUN_SETTINGS = "video.json"


def _run_settings(run_dir: Path) -> dict:
    path = run_dir / RUN_SETTINGS
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_run_settings(run_dir: Path, settings: dict) -> None:
    """What export needs besides the checkpoint (context/future lengths, frame size, data)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")


# --------------------------------------------------------------------------- export


def _describe(config: VideoNetConfig) -> str:
    parts = ["encoder", "stacked ConvLSTM cells", "decoder"]
    if config.motion_kernel:
        parts.append(f"{config.motion_kernel}-tap per-pixel motion kernels over the last frame"
                     + (", blended with drawn pixels" if config.draw_new else ""))
    if config.frame_difference:
        parts.append("frame differences in")
    return f"ConvLSTM next-frame predictor ({', '.join(parts)}); one step per call"


def export(checkpoint: Path, output: Path, name: str | None = None) -> ExportReport:
    """One prediction step to ONNX: (frame, h0, c0, ...) -> (next_frame, h0', c0', ...)."""
    generator, meta = generator_from_checkpoint(checkpoint, build_generator)
    config = generator.config
    run_dir = Path(checkpoint).parent
    settings = _run_settings(run_dir)
    start = settings.get("init_from") or {}
    names = state_names(config)
    axes = {"frame": {0: "batch", 2: "height", 3: "width"}, "next_frame": {0: "batch", 2: "height", 3: "width"}}
    for state in names:
        axes[state] = axes[f"{state}_out"] = {0: "batch", 2: "state_height", 3: "state_width"}
    generator_cpu = torch.Generator().manual_seed(0)

    def example(batch: int, height: int, width: int) -> tuple[Tensor, ...]:
        # Random states, not zeros: parity must hold for the state paths too.
        frame = torch.rand(batch, config.channels, height, width, generator=generator_cpu)
        states = [torch.rand(batch, channels, height // DOWNSCALE, width // DOWNSCALE, generator=generator_cpu) - 0.5
                  for channels in state_channels(config)]
        return (frame, *states)

    size = int(settings.get("size", 64))
    evals = [record for record in read_eval_log(run_dir) if record["step"] == meta["step"]]
    card = {
        "name": name or settings.get("name") or Path(output).stem.removeprefix(f"{TASK}-"),
        "task": TASK,
        "version": 1,
        "scale": 1,
        "pad_multiple": DOWNSCALE,
        "input_convention": "gray01" if config.channels == 1 else "rgb01",
        "tile_overlap": 0,
        "description": _describe(config),
        "licence": "CC BY-SA 3.0 (trained on MNIST digits)" if settings.get("data", "moving-mnist") == "moving-mnist" else "",
        "context_frames": int(settings.get("context", DEFAULT_CONTEXT)),
        "future_frames": int(settings.get("future", DEFAULT_FUTURE)),
        "frame_size": [size, size],
        "channels": config.channels,
        "state_names": names,
        "model_config": config.to_dict(),
        "recipe": {"data": settings.get("data", "moving-mnist"), "steps": meta["step"],
                   "train_seconds": round(meta["seconds"] + start.get("seconds", 0.0), 1),
                   "train_config": meta["train_config"],
                   **({"init_from": {"weights": Path(start["from"]).name, "step": start["step"]}} if start else {})},
        "metrics": {"heldout_during_training": evals[-1]} if evals else {},
    }
    return export_onnx(OneStep(generator), example(1, size, size), output, input_names=["frame", *names],
                       output_names=["next_frame", *[f"{state}_out" for state in names]], dynamic_axes=axes,
                       parity_inputs=[example(2, 32, 48)], card=card)
