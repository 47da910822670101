"""Training of the video predictor (PyTorch; never imported by inference; export is model.SPEC's).

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

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from imgan.errors import TrainingError, UsageError
from imgan.train.checkpoint import generator_from_checkpoint
from imgan.train.loop import Recipe, RunResult, TrainConfig, fit_in_chunks
from imgan.train.losses import pixel_loss
from imgan.train.run import default_run_dir

from . import TASK, camera, mmnist
from .evaluate import frame_errors
from .infer import load_clip
from .model import SPEC, SequenceCritic, VideoNetConfig, build_generator
from .spec import (CAMERA_DATA, CLIPS_NAME, DEFAULT_WEIGHTS, MMNIST_DATA, NATURAL_NAME, NATURAL_WORKING_SIZE,
                   check_train_options)

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
        clips = [load_clip(path, size=size, channels=channels) for path in video_files(folder)]
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


class NaturalFootage(Dataset):
    """Natural video for the RGB model: {"frames": (T, 3, crop, crop)} from real clips and from
    synthetic camera motion over photos (camera.py), half each when both are given.

    Clips are decoded once at their working size (longer side `working_size`, aspect kept, as
    `imgan predict` runs the model), each item a random crop x crop window of `length` frames,
    flipped left-right half the time. Photos are resized once so a crop x crop window has room to
    pan and zoom. Items are drawn like MovingMnist's, from the loop's per-item seed, so a resumed
    run sees what an uninterrupted one would.
    """

    def __init__(self, clips_folder: Path | None, photos_folder: Path | None, *, working_size: int, crop: int,
                 length: int, motion: camera.CameraMotion = camera.CameraMotion()):
        self.clips = _working_clips(clips_folder, working_size, crop, length) if clips_folder else []
        self.photos = camera.load_photos(photos_folder, long_side=crop) if photos_folder else []
        if not self.clips and not self.photos:
            raise TrainingError("no training footage: no clip of the length needed and no photo",
                                path=clips_folder or photos_folder, hint="pass --videos DIR and/or --photos DIR")
        self.crop, self.length, self.motion = crop, length, motion

    def __len__(self) -> int:
        return EPOCH_SEQUENCES

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng((index, int(np.random.randint(0, 2**31 - 1))))
        if self.clips and (not self.photos or rng.random() < 0.5):
            frames = self._clip_window(rng)
        else:
            frames = camera.camera_clip(self.photos, rng, height=self.crop, width=self.crop, length=self.length,
                                        motion=self.motion)
        return {"frames": torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)}

    def _clip_window(self, rng: np.random.Generator) -> np.ndarray:
        clip = self.clips[rng.integers(len(self.clips))]
        start = rng.integers(len(clip) - self.length + 1)
        top, left = rng.integers(clip.shape[1] - self.crop + 1), rng.integers(clip.shape[2] - self.crop + 1)
        window = clip[start : start + self.length, top : top + self.crop, left : left + self.crop]
        return window[:, :, ::-1] if rng.random() < 0.5 else window


def _working_clips(folder: Path, working_size: int, crop: int, length: int) -> list[np.ndarray]:
    """The clips in `folder` at their working size, (T, H, W, 3) uint8, those long and large enough."""
    clips = [load_clip(path, channels=3, working_size=working_size) for path in video_files(folder)]
    return [clip for clip in clips if len(clip) >= length and min(clip.shape[1:3]) >= crop]


def video_files(folder: Path) -> list[Path]:
    """The video files under `folder`, sorted (the training clips of --videos)."""
    from imgan.io.video import is_video_path

    if not folder.is_dir():
        raise TrainingError("video folder not found", path=folder, hint="pass --videos DIR with video files")
    return sorted(path for path in folder.rglob("*") if path.is_file() and is_video_path(path))


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


class VideoRecipe(Recipe):
    """What `fit` trains: batches {"frames": (N, context + future, C, H, W)}.

    data: "moving-mnist" or the clips' folder, and size: the frame side, for run.json (and so the card)."""

    task = TASK
    model_spec = SPEC

    def __init__(self, config: VideoNetConfig, make_data, *, context: int, future: int,
                 loss_weights: dict[str, float], teacher_forcing: float = 0.0, data: str = MMNIST_DATA,
                 size: int = mmnist.FRAME_SIZE, working_size: int | None = None):
        self.net_config = config
        self.model_config = config.to_dict()
        self.make_data = make_data
        self.context, self.future = context, future
        self.loss_weights = {name: weight for name, weight in loss_weights.items() if weight > 0}
        self.teacher_forcing = teacher_forcing
        self.data, self.size, self.working_size = data, size, working_size

    def describe(self) -> dict:
        working = {"working_size": self.working_size} if self.working_size else {}
        motion = {"camera_motion": dataclasses.asdict(camera.CameraMotion())} if CAMERA_DATA in self.data else {}
        return {"data": self.data, "context": self.context, "future": self.future, "size": self.size, **working,
                "loss_weights": self.loss_weights, "teacher_forcing": self.teacher_forcing, **motion}

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


# --------------------------------------------------------------------------- `imgan train video`


def train_video(*, steps: int, videos: Path | None, size: int, gray: bool, mnist: Path | None, context: int,
                future: int, hidden: str, widths: str, kernel: int, batch_size: int, lr: float, l2: float, l1: float,
                bce: float, context_loss: float, gdl: float, adversarial: float, gan_mode: str, teacher_forcing: float,
                eval_every: int, eval_sequences: int, name: str | None, run_dir: Path | None, resume: bool,
                threads: int | None, device: str, seed: int, init_from: Path | None = None,
                lr_schedule: str = "constant", motion_kernel: int = 0, draw_new: bool = False,
                frame_difference: bool = False, progress: bool = False, photos: Path | None = None,
                working_size: int | None = None, on_eval: Callable[[dict], None] | None = None) -> RunResult:
    """Train on Moving MNIST (default), on the clips in `videos` (square frames of `size`), or on
    natural footage (`working_size` and/or `photos`: clips at that working size and camera motion
    over the photos, random size x size crops; see NaturalFootage); the options are `imgan train video`'s.

    On Moving MNIST with eval_sequences > 0, every eval_every steps the checkpoint's test figures
    go to RUN_DIR/eval.jsonl and to on_eval(record)."""
    natural = photos is not None or working_size is not None
    if natural:
        working_size = working_size or NATURAL_WORKING_SIZE
        if size % 4 or size > working_size:
            raise UsageError(f"--size {size} must be a multiple of 4 and at most the working size {working_size}",
                             hint="the crops are taken from frames of that longer side")
    name = name or (NATURAL_NAME if natural else CLIPS_NAME if videos else DEFAULT_WEIGHTS)
    run_dir = run_dir or default_run_dir(TASK, name)
    weights = {"l2": l2, "l1": l1, "bce": bce, "context": context_loss if context > 1 else 0.0, "gdl": gdl,
               "adversarial": adversarial}
    encoder_widths, hidden_channels = check_train_options(widths=widths, hidden=hidden, motion_kernel=motion_kernel,
                                                          loss_weights=weights)
    channels = 3 if natural else 1 if videos is None or gray else 3
    net = VideoNetConfig(channels=channels, widths=encoder_widths, hidden=hidden_channels, kernel=kernel,
                         motion_kernel=motion_kernel, draw_new=draw_new, frame_difference=frame_difference)
    length = context + future
    if natural:
        make_data = lambda: NaturalFootage(videos, photos, working_size=working_size, crop=size, length=length)  # noqa: E731
    elif videos is not None:
        make_data = lambda: ClipWindows(videos, size=size, channels=channels, length=length)  # noqa: E731
    else:
        digits = mmnist.load_digits(mnist)
        make_data = lambda: MovingMnist(digits, length)  # noqa: E731
    recipe = VideoRecipe(net, make_data, context=context, future=future, loss_weights=weights,
                         teacher_forcing=teacher_forcing, data=data_name(videos, photos),
                         size=size if videos or natural else mmnist.FRAME_SIZE,
                         working_size=working_size if natural else None)
    # Adam's usual momentum for regression; the GAN one (0.5) only when a critic is trained.
    betas = (0.5, 0.999) if adversarial > 0 else (0.9, 0.999)
    config = TrainConfig(run_dir=run_dir, steps=steps, batch_size=batch_size, lr_g=lr, lr_d=lr, betas=betas,
                         adversarial=gan_mode, device=device, seed=seed, checkpoint_every=eval_every,
                         sample_every=eval_every, log_every=10, grad_clip=1.0, lr_schedule=lr_schedule,
                         threads=threads, init_from=str(init_from) if init_from is not None else None)
    measure = None
    if videos is None and not natural and eval_sequences > 0:
        held_out = mmnist.fixed_test_set(digits, eval_sequences, length=length)
        measure = lambda checkpoint: measure_checkpoint(checkpoint, held_out, context=context, future=future)  # noqa: E731
    return fit_in_chunks(recipe, config, resume=resume, every=eval_every, measure=measure, progress=progress,
                           on_eval=on_eval)


def data_name(videos: Path | None, photos: Path | None) -> str:
    """What run.json and the card record as the data."""
    if videos is None and photos is None:
        return MMNIST_DATA
    parts = ([str(videos)] if videos else []) + ([f"{CAMERA_DATA} {photos}"] if photos else [])
    return " + ".join(parts)
