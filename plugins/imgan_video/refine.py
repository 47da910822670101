"""Learned frame interpolation, torch side: the classical flow method refined by a small U-Net.

`imgan interpolate --method learned` (task "video-interp"). The net is the refinement stage of
Super SloMo (Jiang et al. 2018) on top of classical flows: the dense flows A->B and B->A come from
OpenCV (Farnebäck, as for --method flow, computed outside the net), the linear-motion
approximation turns them into flows from time t back to A and to B, and the net, seeing both
neighbours, both warps, the flows and t, predicts
  - a correction of each flow from t (where Farnebäck or the linear approximation is wrong),
  - a visibility logit v (which neighbour shows a pixel the other one occludes),
  - a small residual r (what neither warp shows), and composes

    I(t) = w A(x + F(t->A) + dA) + (1 - w) B(x + F(t->B) + dB) + r,    w = sigmoid(logit(1 - t) + v).

Its last layer starts at zero, so an untrained net *is* the flow method (up to OpenCV's 1/32-px
remap rounding): training only has to improve on the baseline it is measured against. Warping
runs in the graph (GridSample), so the exported ONNX takes (a, b, flow_ab, flow_ba, t) and returns
the frame; inference is NumPy + OpenCV + ONNX Runtime (interpolate.py).

Training data: triplets (A, in-between, B) at gaps of 2-4 frames from real clips at their own
resolution and from synthetic camera motion over photos (camera.py), where the in-between frame
is exact. Every `eval_every` steps the checkpoint is measured on the held-back frames of a clip it
never saw, against the flow method (RUN_DIR/eval.jsonl): the quality-vs-time curve.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgan.cards import ModelCard, Running
from imgan.config import JsonConfig
from imgan.errors import TrainingError, UsageError
from imgan.train.checkpoint import as_numpy_model, generator_from_checkpoint
from imgan.train.loop import Recipe, RunResult, TrainConfig
from imgan.train.losses import pixel_loss
from imgan.train.run import default_run_dir
from imgan.train.spec import ModelSpec

from . import camera
from .interpolate import (METHOD_FUNCTIONS, dense_flow, flows_from_t, measure_sequences, refiner_frames,
                          refiner_inputs)
from .model import data_licence
from .spec import CAMERA_DATA, INTERP_INPUTS, INTERP_NAME, INTERP_TASK

DOWNSCALE = 4  # two stride-2 levels: frame sides must be multiples of this
FLOW_SCALE = 16.0  # px: flows enter and leave the net in these units, so its numbers stay near 1
INPUT_CHANNELS = 3 + 3 + 3 + 3 + 2 + 2 + 1  # a, b, both warps, both flows from t, t
HEAD_CHANNELS = 2 + 2 + 1 + 3  # flow corrections for A and B, visibility logit, residual
GAPS = (2, 3, 4)  # frames between A and B in training triplets: t in {1/2, 1/3, 2/3, 1/4, 3/4}
EPOCH_ITEMS = 10_000  # the triplets are drawn endlessly; an "epoch" is this many
METHOD = ("Super SloMo-style refinement (Jiang et al. 2018) of Farnebäck flows: flow corrections, visibility, "
          "residual; pixel loss to the held-back frame")


@dataclass(frozen=True)
class RefinerConfig(JsonConfig):
    """widths: channels at full, 1/2 and 1/4 resolution of the U-Net."""

    widths: tuple[int, int, int] = (32, 64, 96)


# --------------------------------------------------------------------------- the net


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """image (N,C,H,W) sampled at x + flow(x) (N,2,H,W in px): bilinear, edges repeated, like interpolate.warp.

    The pixel grid comes from cumulative sums of ones rather than from the tensor's shape, so the
    exported graph takes any frame size."""
    ones = torch.ones_like(flow[:, :1])
    columns, rows = ones.cumsum(3) - 1.0, ones.cumsum(2) - 1.0
    last_column, last_row = columns[:, :, :1, -1:], rows[:, :, -1:, :1]  # W - 1 and H - 1
    grid_x = (columns + flow[:, :1]) * 2.0 / last_column - 1.0
    grid_y = (rows + flow[:, 1:]) * 2.0 / last_row - 1.0
    grid = torch.cat([grid_x, grid_y], dim=1).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(channels_in: int, channels_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, stride, 1), nn.LeakyReLU(0.1))


def _up(features: Tensor) -> Tensor:
    return F.interpolate(features, scale_factor=2.0, mode="bilinear", align_corners=False)


class FlowRefiner(nn.Module):
    """(a, b, flow_ab, flow_ba, t) -> the frame at t. Frames (N,3,H,W) in [0, 1], flows in px
    (a(x) ~ b(x + flow_ab(x))), t (N,1,1,1) in (0, 1); H and W multiples of DOWNSCALE."""

    def __init__(self, config: RefinerConfig = RefinerConfig()):
        super().__init__()
        full, half, quarter = config.widths
        self.encode_full = nn.Sequential(_conv(INPUT_CHANNELS, full), _conv(full, full))
        self.encode_half = nn.Sequential(_conv(full, half, 2), _conv(half, half))
        self.encode_quarter = nn.Sequential(_conv(half, quarter, 2), _conv(quarter, quarter))
        self.decode_half = nn.Sequential(_conv(quarter + half, half), _conv(half, half))
        self.decode_full = nn.Sequential(_conv(half + full, full), _conv(full, full))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He init for the leaky ReLUs: torch's default shrinks the activations ~3x per layer,
                # so the head saw almost nothing and the first run learnt next to nothing in 500 steps
                nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        self.head = nn.Conv2d(full, HEAD_CHANNELS, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # an untrained net is the flow method
        nn.init.zeros_(self.head.bias)

    def forward(self, a: Tensor, b: Tensor, flow_ab: Tensor, flow_ba: Tensor, t: Tensor) -> Tensor:
        to_a, to_b = flows_from_t(flow_ab, flow_ba, t)
        seen = torch.cat([a, b, warp(a, to_a), warp(b, to_b), to_a / FLOW_SCALE, to_b / FLOW_SCALE,
                          t * torch.ones_like(a[:, :1])], dim=1)
        full = self.encode_full(seen)
        half = self.encode_half(full)
        quarter = self.encode_quarter(half)
        half = self.decode_half(torch.cat([_up(quarter), half], dim=1))
        full = self.decode_full(torch.cat([_up(half), full], dim=1))
        out = self.head(full)
        fix_a, fix_b, visibility, residual = out[:, 0:2], out[:, 2:4], out[:, 4:5], out[:, 5:8]
        weight = torch.sigmoid(torch.log(1.0 - t) - torch.log(t) + visibility)
        warped_a = warp(a, to_a + fix_a * FLOW_SCALE)
        warped_b = warp(b, to_b + fix_b * FLOW_SCALE)
        return weight * warped_a + (1.0 - weight) * warped_b + residual


def build(model_config: Mapping[str, Any]) -> FlowRefiner:
    return FlowRefiner(RefinerConfig.from_dict(dict(model_config)))


def example_inputs(model_config: Mapping[str, Any], height: int, width: int) -> tuple[Tensor, ...]:
    """Frames, flows of a few px and two times, the same on every call (parity must hold for t != 1/2 too)."""
    draw = torch.Generator().manual_seed(0)
    a, b = (torch.rand(2, 3, height, width, generator=draw) for _ in range(2))
    flow_ab, flow_ba = ((torch.rand(2, 2, height, width, generator=draw) - 0.5) * 8.0 for _ in range(2))
    return a, b, flow_ab, flow_ba, torch.tensor([0.5, 0.25]).view(2, 1, 1, 1)


def dynamic_axes(model_config: Mapping[str, Any]) -> dict:
    image = {0: "batch", 2: "height", 3: "width"}
    return {"a": image, "b": image, "flow_ab": image, "flow_ba": image, "t": {0: "batch"}, "frame": image}


def running(model_config: Mapping[str, Any]) -> Running:
    frame = f"N3HW float32 RGB in [0, 1], sides multiples of {DOWNSCALE}"
    flow = "N2HW float32 (dx, dy) in px, Farnebäck (imgan_video.interpolate.dense_flow): a(x) ~ b(x + flow_ab(x))"
    return Running(scale=1, pad_multiple=DOWNSCALE, tile_overlap=0, input_convention="rgb01",
                   inputs={"a": frame, "b": frame, "flow_ab": flow, "flow_ba": flow.replace("a(x) ~ b(x + flow_ab(x))",
                                                                                      "b(x) ~ a(x + flow_ba(x))"),
                           "t": "N111 float32 in (0, 1): the time of the frame between a (0) and b (1)"},
                   outputs={"frame": f"{frame} (not clamped)"}, inference={"flow": "farneback"})


def finish_card(card: ModelCard, context: dict) -> ModelCard:
    """The description, the data's licence and the held-out figures measured at the exported step."""
    from imgan.train.run import read_eval_log

    recipe = context["run"].get("recipe") or {}
    step = context["checkpoint"]["step"]
    evals = [record for record in read_eval_log(context["run_dir"]) if record.get("step") == step]
    widths = RefinerConfig.from_dict(dict(card.model_config)).widths
    return card.replace(description=f"frame interpolation: Farnebäck flows refined by a U-Net {list(widths)} "
                                    "(flow corrections, visibility, residual); one in-between frame per t",
                        licence=data_licence(str(recipe.get("data", ""))) or card.licence,
                        metrics={**card.metrics, **({"heldout_during_training": evals[-1]} if evals else {})})


SPEC = ModelSpec(build=build, example_inputs=example_inputs, running=running, input_names=INTERP_INPUTS,
                 output_names=("frame",), dynamic_axes=dynamic_axes, export_sizes=((32, 48), (24, 36)),
                 finish_card=finish_card)


# --------------------------------------------------------------------------- data


class InBetweenFrames(Dataset):
    """Triplets from real clips (at their own resolution) and from camera motion over photos, half each:
    {"a", "b", "truth": (3, crop, crop), "flow_ab", "flow_ba": (2, crop, crop) in px, "t": (1, 1, 1)}.

    A and B are `gap` frames apart (GAPS), the truth one of the frames between. Flows are computed
    on a window `margin` px larger on every side, then cut like the frames, so their edges are
    not the crop's. Random left-right flips and time reversal (B first, 1 - t). Items are drawn
    from the loop's per-item seed, so a resumed run sees what an uninterrupted one would."""

    def __init__(self, clips: list[np.ndarray], photos: list[np.ndarray], *, crop: int, margin: int = 16,
                 motion: camera.CameraMotion = camera.INTERPOLATION_MOTION):
        if not clips and not photos:
            raise TrainingError("no training footage: no clip and no photo", hint="pass --videos DIR and/or --photos DIR")
        self.clips, self.photos = clips, photos
        self.crop, self.margin, self.motion = crop, margin, motion

    def __len__(self) -> int:
        return EPOCH_ITEMS

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng((index, int(np.random.randint(0, 2**31 - 1))))
        gap = int(rng.choice(GAPS))
        inner = int(rng.integers(1, gap))
        side = self.crop + 2 * self.margin
        if self.clips and (not self.photos or rng.random() < 0.5):
            a, truth, b = self._clip_triplet(rng, gap, inner, side)
        else:
            frames = camera.camera_clip(self.photos, rng, height=side, width=side, length=gap + 1, motion=self.motion)
            a, truth, b = frames[0], frames[inner], frames[gap]
        if rng.random() < 0.5:
            a, truth, b = (np.ascontiguousarray(frame[:, ::-1]) for frame in (a, truth, b))
        t = inner / gap
        if rng.random() < 0.5:
            a, b, t = b, a, 1.0 - t
        flow_ab, flow_ba = dense_flow(a, b), dense_flow(b, a)
        cut = slice(self.margin, self.margin + self.crop)

        def image(frame: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(frame[cut, cut])).permute(2, 0, 1).float().div_(255.0)

        def flow(field: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(field[cut, cut])).permute(2, 0, 1)

        return {"a": image(a), "b": image(b), "truth": image(truth), "flow_ab": flow(flow_ab),
                "flow_ba": flow(flow_ba), "t": torch.full((1, 1, 1), t, dtype=torch.float32)}

    def _clip_triplet(self, rng: np.random.Generator, gap: int, inner: int, side: int) -> tuple[np.ndarray, ...]:
        clip = self.clips[rng.integers(len(self.clips))]
        start = int(rng.integers(len(clip) - gap))
        top, left = rng.integers(clip.shape[1] - side + 1), rng.integers(clip.shape[2] - side + 1)
        return tuple(clip[start + k, top : top + side, left : left + side] for k in (0, inner, gap))


def load_training_clips(folder: Path | None, side: int) -> list[np.ndarray]:
    """Every clip under `folder` at its own resolution, (T, H, W, 3) uint8: those with room for a triplet."""
    from .infer import load_clip
    from .recipe import video_files

    if folder is None:
        return []
    clips = [load_clip(path, channels=3) for path in video_files(folder)]
    return [clip for clip in clips if len(clip) > max(GAPS) and min(clip.shape[1:3]) >= side]


# --------------------------------------------------------------------------- the recipe


class RefinerRecipe(Recipe):
    """What `fit` trains: a pixel loss (MSE by default) between the refined in-between frame and the held-back one."""

    task = INTERP_TASK
    model_spec = SPEC

    def __init__(self, config: RefinerConfig, make_data: Callable[[], Dataset], *, data: str, crop: int,
                 loss_weights: Mapping[str, float]):
        self.model_config = config.to_dict()
        self.make_data = make_data
        self.data, self.crop = data, crop
        self.loss_weights = {name: weight for name, weight in loss_weights.items() if weight > 0}

    def describe(self) -> dict:
        motion = {"camera_motion": dataclasses.asdict(camera.INTERPOLATION_MOTION)} if CAMERA_DATA in self.data else {}
        return {"method": METHOD, "data": self.data, "crop": self.crop, "gaps": list(GAPS),
                "loss_weights": self.loss_weights, **motion}

    def build_discriminator(self) -> None:
        return None

    def make_dataset(self) -> Dataset:
        return self.make_data()

    def generate(self, generator: nn.Module, batch: dict) -> Tensor:
        return generator(batch["a"], batch["b"], batch["flow_ab"], batch["flow_ba"], batch["t"])

    def real(self, batch: dict) -> Tensor:
        return batch["truth"]

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        return {kind: pixel_loss(fake, batch["truth"], kind) for kind in self.loss_weights}

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        return [batch["a"], fake.clamp(0.0, 1.0), batch["truth"], batch["b"]]


# --------------------------------------------------------------------------- held-out measurement


def torch_in_betweens(generator: nn.Module) -> Callable[[np.ndarray, np.ndarray, int], list[np.ndarray]]:
    """interpolate.InBetweens for a torch refiner: what the ONNX file will do, from a checkpoint."""
    def in_betweens(a: np.ndarray, b: np.ndarray, factor: int) -> list[np.ndarray]:
        inputs, crop = refiner_inputs(a, b, factor, DOWNSCALE)
        return refiner_frames(model(*inputs), crop)

    model = as_numpy_model(generator)
    return in_betweens


def measure_checkpoint(checkpoint: Path, clips: list[list[np.ndarray]], factor: int = 2) -> dict:
    """PSNR of a checkpoint's refiner and of the flow method on the held-back frames of `clips`."""
    generator, meta = generator_from_checkpoint(checkpoint, build)
    figures = measure_sequences(clips, factor, methods={"learned": torch_in_betweens(generator.eval()),
                                                        "flow": METHOD_FUNCTIONS["flow"]})
    return {"step": meta["step"], "train_seconds": round(meta["seconds"], 1), "held_back": figures["held_back"],
            **{f"{name}_psnr": values["psnr"] for name, values in figures["methods"].items()}}


# --------------------------------------------------------------------------- `imgan train video-interp`


@dataclass(frozen=True)
class RefinerSettings:
    """How the refiner trains (the Typer signature of `imgan train video-interp` mirrors it)."""

    videos: Path | None = None
    photos: Path | None = None
    heldout: Path | None = None
    steps: int = 2000
    batch_size: int = 8
    crop: int = 128
    widths: tuple[int, int, int] = (32, 64, 96)
    lr: float = 3e-4
    lr_schedule: str = "cosine"
    # MSE, not L1: most pixels are already right after the warp, and L1's gradient there is the sign
    # of tiny errors (noise); MSE's comes from the few badly wrong pixels (occlusions). It is also PSNR.
    pixel_loss: str = "l2"
    eval_every: int = 250
    name: str = INTERP_NAME
    run_dir: Path | None = None
    resume: bool = False
    init_from: Path | None = None
    threads: int | None = None
    device: str = "auto"
    seed: int = 0


def train_refiner(settings: RefinerSettings, *, progress: bool = False,
                  on_eval: Callable[[dict], None] | None = None) -> RunResult:
    """Train the refiner on `videos` and/or camera motion over `photos`; every eval_every steps,
    measure it against the flow method on the held-back frames of the `heldout` clip."""
    from .infer import load_clip
    from imgan.train.loop import fit_in_chunks

    from .recipe import data_name

    if settings.videos is None and settings.photos is None:
        raise UsageError("no training footage", hint="pass --videos DIR and/or --photos DIR")
    if settings.pixel_loss not in ("l1", "l2", "charbonnier"):
        raise UsageError(f"unknown pixel loss {settings.pixel_loss!r}", hint="use l1, l2 or charbonnier")
    if settings.crop % DOWNSCALE:
        raise UsageError(f"--crop must be a multiple of {DOWNSCALE}, got {settings.crop}")
    side = settings.crop + 32
    clips = load_training_clips(settings.videos, side)
    photos = camera.load_photos(settings.photos, long_side=side) if settings.photos else []
    if settings.videos is not None and not clips:
        raise TrainingError(f"no clip of more than {max(GAPS)} frames and at least {side} px a side", path=settings.videos)
    data = data_name(settings.videos, settings.photos)
    recipe = RefinerRecipe(RefinerConfig(widths=tuple(settings.widths)),
                           lambda: InBetweenFrames(clips, photos, crop=settings.crop), data=data, crop=settings.crop,
                           loss_weights={settings.pixel_loss: 1.0})
    config = TrainConfig(run_dir=settings.run_dir or default_run_dir(INTERP_TASK, settings.name), steps=settings.steps,
                         batch_size=settings.batch_size, lr_g=settings.lr, betas=(0.9, 0.999), device=settings.device,
                         seed=settings.seed, checkpoint_every=settings.eval_every, sample_every=settings.eval_every,
                         log_every=10, grad_clip=1.0, lr_schedule=settings.lr_schedule, threads=settings.threads,
                         init_from=str(settings.init_from) if settings.init_from is not None else None)
    measure = None
    if settings.heldout is not None:
        held_out = [list(load_clip(settings.heldout, channels=3))]
        measure = lambda checkpoint: measure_checkpoint(checkpoint, held_out)  # noqa: E731
    return fit_in_chunks(recipe, config, resume=settings.resume, every=settings.eval_every, measure=measure,
                           progress=progress, on_eval=on_eval)
