"""Next-frame prediction: an encoder, stacked ConvLSTM cells and a decoder; a 3-D critic.

    frame (N,C,H,W) -> encoder: 2 strided convs (H/4, W/4)
                    -> ConvLSTM layers (Shi et al. 2015), each with its own (h, c) state
                    -> decoder: 2 transposed convs (H, W) over all layers' h
                    -> the next frame (N,C,H,W) in [0, 1], drawn (sigmoid) or, with
                       motion_kernel k > 0, mostly moved: per pixel a k-tap softmax kernel along
                       x, then one along y, over the input frame (a dynamic filter, after
                       De Brabandere et al. 2016 and Finn et al. 2016),
                       blended by a predicted mask with drawn pixels for what is new

A clip is rolled out one frame at a time: the context frames go in one by one (each step also
predicts the frame after it), then each prediction is fed back in as the next input. `step` is
exactly the graph exported to ONNX (frame + states in, frame + states out), so ONNX Runtime can
roll out any number of frames with the same arithmetic.

The discriminator is a small 3-D convolutional (spatio-temporal) critic over whole sequences
(N,C,T,H,W): it sees motion, not just single frames.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from imgan.cards import ModelCard, Running
from imgan.config import JsonConfig
from imgan.train.spec import ModelSpec

from .spec import CAMERA_DATA, DEFAULT_CONTEXT, DEFAULT_FUTURE, MMNIST_DATA, MMNIST_LICENCE, NATURAL_LICENCE

DOWNSCALE = 4  # two stride-2 convolutions: frame sides must be multiples of 4
# Per ConvLSTM layer (h, c), each (N, hidden, H/4, W/4); with frame_difference, then (previous,):
# the last input frame folded to (N, 16 C, H/4, W/4), so every state has the same sides.
State = list[tuple[Tensor, ...]]


@dataclass(frozen=True)
class VideoNetConfig(JsonConfig):
    """channels: 1 (gray) or 3 (RGB). widths: encoder channels at 1/2 and 1/4 resolution.
    hidden: one ConvLSTM layer per entry, its hidden channels. kernel: the gate convolution's size.
    motion_kernel: 0 draws every pixel; k > 0 (odd) moves the input frame's pixels by up to k // 2
    with a predicted per-pixel kernel, which keeps digits sharp and in place where drawing blurs.
    draw_new: with a motion kernel, also draw pixels and blend them in by a predicted mask, for
    content that appears (off for Moving MNIST: a mask learns "draw" before motion is learnt,
    and then the kernels get no gradient).
    frame_difference: the encoder sees the frame and its difference to the previous input frame
    (carried as one more state), so motion is visible in a single step, not learnt through memory."""

    channels: int = 1
    widths: tuple[int, int] = (32, 64)
    hidden: tuple[int, ...] = (64, 64)
    kernel: int = 3
    motion_kernel: int = 0
    draw_new: bool = False
    frame_difference: bool = False


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: the four gates come from a single convolution over [x, h].

        i, f, o = sigmoid(.), g = tanh(.);  c' = f * c + i * g;  h' = o * tanh(c')

    No peephole connections (Shi et al. have them; they add little and complicate export).
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)
        with torch.no_grad():
            # forget-gate bias 1: the cell keeps its memory by default early in training
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # 4 x (N, hidden, h, w)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def zero_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(h, c) of zeros matching x's batch and spatial size."""
        zeros = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
        return zeros, zeros.clone()


class FramePredictor(nn.Module):
    """The generator. `step` predicts one frame; `forward` rolls a clip out."""

    def __init__(self, config: VideoNetConfig):
        super().__init__()
        self.config = config
        w1, w2 = config.widths
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.encoder = nn.Sequential(
            nn.Conv2d(config.channels * (2 if config.frame_difference else 1), w1, 4, stride=2, padding=1), act(),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), act(),  # (N, w2, H/4, W/4)
        )
        inputs = [w2, *config.hidden[:-1]]
        self.cells = nn.ModuleList(ConvLSTMCell(c_in, c_h, config.kernel) for c_in, c_h in zip(inputs, config.hidden))
        # The decoder reads every layer's h (as Shi et al.'s forecaster does): lower layers keep
        # the appearance, upper ones the motion.
        k = config.motion_kernel
        # [drawn logits (C)] [mask logit] [kx logits (k), ky logits (k)]
        self.drawn_channels = config.channels if not k or config.draw_new else 0
        outputs = self.drawn_channels + (2 * k + (1 if config.draw_new else 0) if k else 0)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(sum(config.hidden), w1, 4, stride=2, padding=1), act(),  # (N, w1, H/2, W/2)
            nn.ConvTranspose2d(w1, outputs, 4, stride=2, padding=1),  # (N, outputs, H, W)
        )
        if k:
            if k % 2 == 0:
                raise ValueError(f"motion_kernel must be odd, got {k}")
            # One-hot kernels: convolutions that stack the k shifted copies of a frame along x, and
            # along y. Rebuilt, not stored: they are the same for every model with this k.
            taps = torch.eye(k)
            self.register_buffer("shifts_x", taps.reshape(k, 1, 1, k), persistent=False)
            self.register_buffer("shifts_y", taps.reshape(k, 1, k, 1), persistent=False)
            with torch.no_grad():
                # start near "copy the input frame": the centre taps lead. Natural footage (draw_new)
                # starts as a near-exact copy (centre weight ~0.98 of 9 taps, mask ~0.95 moved): a
                # blurred copy there costs 3-4 dB on static texture, more than most motion gains.
                first = self.drawn_channels + (1 if config.draw_new else 0)
                self.decoder[-1].bias[[first + k // 2, first + k + k // 2]] += 6.0 if config.draw_new else 3.0
                if config.draw_new:
                    self.decoder[-1].bias[self.drawn_channels] += 3.0

    def zero_states(self, frame: Tensor) -> State:
        """All-zero states for frames like `frame` (N,C,H,W) (see State)."""
        batch, _, height, width = frame.shape
        return [tuple(frame.new_zeros(batch, channels, height // DOWNSCALE, width // DOWNSCALE) for _ in names)
                for names, channels in _state_layout(self.config)]

    def step(self, frame: Tensor, states: State) -> tuple[Tensor, State]:
        """frame (N,C,H,W) in [0, 1] and the states after the previous frame -> the next frame, new states."""
        seen = frame
        carried: State = []
        if self.config.frame_difference:
            previous = nn.functional.pixel_shuffle(states[-1][0], DOWNSCALE)  # (N, C, H, W); zeros at the start
            seen = torch.cat([frame, frame - previous], dim=1)
            carried = [(nn.functional.pixel_unshuffle(frame, DOWNSCALE),)]
        x = self.encoder(seen)
        new_states: State = []
        for cell, state in zip(self.cells, states):
            h, c = cell(x, state)
            new_states.append((h, c))
            x = h
        new_states += carried
        out = self.decoder(torch.cat([h for h, _ in new_states[: len(self.cells)]], dim=1))
        k = self.config.motion_kernel
        if not k:
            return torch.sigmoid(out), new_states
        kernels = out[:, out.shape[1] - 2 * k :]
        along_x, along_y = torch.softmax(kernels[:, :k], dim=1), torch.softmax(kernels[:, k:], dim=1)
        moved = self._filter(self._filter(frame, along_x, self.shifts_x), along_y, self.shifts_y)
        if not self.config.draw_new:
            return moved, new_states
        drawn = torch.sigmoid(out[:, : self.drawn_channels])
        mask = torch.sigmoid(out[:, self.drawn_channels : self.drawn_channels + 1])  # (N, 1, H, W): 1 = moved pixel
        return mask * moved + (1 - mask) * drawn, new_states

    @staticmethod
    def _filter(frame: Tensor, weights: Tensor, shifts: Tensor) -> Tensor:
        """frame (N,C,H,W), weights (N,k,H,W) summing to 1 per pixel -> each pixel the weighted mean of
        its k neighbours along one axis. A translation is an x pass then a y pass, so two 1-D passes
        of k taps do what one k x k kernel would, at 2k instead of k*k products per pixel."""
        batch, channels, height, width = frame.shape
        k = shifts.shape[0]
        planes = frame.reshape(batch * channels, 1, height, width)
        padding = (shifts.shape[2] // 2, shifts.shape[3] // 2)
        shifted = nn.functional.conv2d(planes, shifts, padding=padding).reshape(batch, channels, k, height, width)
        return (shifted * weights.unsqueeze(1)).sum(dim=2)

    def forward(self, context: Tensor, future: int, *, truth: Tensor | None = None,
                teacher_forcing: float = 0.0) -> Tensor:
        """context (N,T,C,H,W) -> every prediction (N, T-1+future, C, H, W).

        Prediction k is frame k+1: the first T-1 predict context frames from the ones before
        them, the last `future` are the forecast. With `truth` (N,future,C,H,W) and
        teacher_forcing p > 0, each fed-back prediction is replaced by the true frame with
        probability p (scheduled sampling; a draw per sequence and step).
        """
        states = self.zero_states(context[:, 0])
        predictions = []
        for t in range(context.shape[1]):
            prediction, states = self.step(context[:, t], states)
            predictions.append(prediction)
        for k in range(future - 1):
            frame = predictions[-1]
            if truth is not None and teacher_forcing > 0:
                use_truth = torch.rand(frame.shape[0], 1, 1, 1, device=frame.device) < teacher_forcing
                frame = torch.where(use_truth, truth[:, k], frame)
            prediction, states = self.step(frame, states)
            predictions.append(prediction)
        return torch.stack(predictions, dim=1)


class OneStep(nn.Module):
    """`FramePredictor.step` with flat tensors, for ONNX: (frame, h0, c0, h1, c1, ...) -> (next, h0', c0', ...)."""

    def __init__(self, predictor: FramePredictor):
        super().__init__()
        self.predictor = predictor

    def forward(self, frame: Tensor, *flat_states: Tensor) -> tuple[Tensor, ...]:
        states, taken = [], 0
        for names, _ in _state_layout(self.predictor.config):
            states.append(tuple(flat_states[taken : taken + len(names)]))
            taken += len(names)
        prediction, new_states = self.predictor.step(frame, states)
        return (prediction, *[tensor for state in new_states for tensor in state])


def _state_layout(config: VideoNetConfig) -> list[tuple[tuple[str, ...], int]]:
    """The state tensors as State groups them, each group's ONNX names and channels:
    ((h0, c0), hidden[0]), ((h1, c1), hidden[1]), ... [, ((previous,), 16 C)]."""
    layout = [((f"h{layer}", f"c{layer}"), hidden) for layer, hidden in enumerate(config.hidden)]
    return layout + ([(("previous",), config.channels * DOWNSCALE**2)] if config.frame_difference else [])


def state_names(config: VideoNetConfig) -> list[str]:
    """ONNX names of the state tensors, in OneStep's order: h0, c0, h1, c1, ... [, previous]."""
    return [name for names, _ in _state_layout(config) for name in names]


def state_channels(config: VideoNetConfig) -> list[int]:
    """Channels of each state tensor, in state_names' order (all at H/4 x W/4)."""
    return [channels for names, channels in _state_layout(config) for _ in names]


class SequenceCritic(nn.Module):
    """3-D convolutional critic: (N,C,T,H,W) -> a map of raw logits, one per space-time patch."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.layers = nn.Sequential(
            nn.Conv3d(channels, width, (3, 4, 4), stride=(1, 2, 2), padding=1), act(),  # (N, w, T, H/2, W/2)
            nn.Conv3d(width, 2 * width, 4, stride=2, padding=1), act(),  # (N, 2w, T/2, H/4, W/4)
            nn.Conv3d(2 * width, 4 * width, 4, stride=2, padding=1), act(),  # (N, 4w, T/4, H/8, W/8)
            nn.Conv3d(4 * width, 1, 3, padding=1),
        )

    def forward(self, clip: Tensor) -> Tensor:
        return self.layers(clip)


def build_generator(model_config: Mapping[str, Any]) -> FramePredictor:
    return FramePredictor(VideoNetConfig.from_dict(model_config))


# --------------------------------------------------------------------------- export: one step per call

EXAMPLE_BATCH = 2  # traced and checked with two clips at once: the batch axis stays free
FRAME_SIDE = 64  # the Moving MNIST frame; a run on clips records its --size


def describe(config: VideoNetConfig) -> str:
    """The model card's description."""
    parts = ["encoder", "stacked ConvLSTM cells", "decoder"]
    if config.motion_kernel:
        parts.append(f"{config.motion_kernel}-tap per-pixel motion kernels over the last frame"
                     + (", blended with drawn pixels" if config.draw_new else ""))
    if config.frame_difference:
        parts.append("frame differences in")
    return f"ConvLSTM next-frame predictor ({', '.join(parts)}); one step per call"


def example_inputs(model_config: Mapping[str, Any], height: int, width: int) -> tuple[Tensor, ...]:
    """OneStep's inputs at that frame size: a frame, then random states (not zeros: parity must
    hold for the state paths too), the same on every call."""
    config = VideoNetConfig.from_dict(model_config)
    draw = torch.Generator().manual_seed(0)
    frame = torch.rand(EXAMPLE_BATCH, config.channels, height, width, generator=draw)
    states = [torch.rand(EXAMPLE_BATCH, channels, height // DOWNSCALE, width // DOWNSCALE, generator=draw) - 0.5
              for channels in state_channels(config)]
    return (frame, *states)


def input_names(model_config: Mapping[str, Any]) -> list[str]:
    return ["frame", *state_names(VideoNetConfig.from_dict(model_config))]


def output_names(model_config: Mapping[str, Any]) -> list[str]:
    return ["next_frame", *[f"{state}_out" for state in state_names(VideoNetConfig.from_dict(model_config))]]


def dynamic_axes(model_config: Mapping[str, Any]) -> dict:
    frames = {0: "batch", 2: "height", 3: "width"}
    axes = {"frame": frames, "next_frame": frames}
    for state in state_names(VideoNetConfig.from_dict(model_config)):
        axes[state] = axes[f"{state}_out"] = {0: "batch", 2: "state_height", 3: "state_width"}
    return axes


def running(model_config: Mapping[str, Any]) -> Running:
    """How to run the step model; the clip lengths and frame size are the protocol's until
    finish_card puts in the run's."""
    config = VideoNetConfig.from_dict(model_config)
    names = state_names(config)
    frame = f"N{config.channels}HW float32 in [0, 1], sides multiples of {DOWNSCALE}"
    state = f"NCHW float32 at a {DOWNSCALE}th of the frame's sides; zeros before the first frame"
    return Running(scale=1, pad_multiple=DOWNSCALE, tile_overlap=0,
                   input_convention="gray01" if config.channels == 1 else "rgb01",
                   inputs={"frame": frame, **{name: state for name in names}},
                   outputs={"next_frame": frame, **{f"{name}_out": state for name in names}},
                   inference={"context_frames": DEFAULT_CONTEXT, "future_frames": DEFAULT_FUTURE,
                              "frame_size": [FRAME_SIDE, FRAME_SIDE], "channels": config.channels,
                              "state_names": names})


def finish_card(card: ModelCard, context: dict) -> ModelCard:
    """What the run adds: its clip lengths and frame size, the data's licence, the test figures
    measured at the exported step while training (RUN_DIR/eval.jsonl)."""
    from imgan.train.run import read_eval_log

    recipe = context["run"].get("recipe") or {}
    side = int(recipe.get("size", FRAME_SIDE))
    inference = {**card.running.inference, "context_frames": int(recipe.get("context", DEFAULT_CONTEXT)),
                 "future_frames": int(recipe.get("future", DEFAULT_FUTURE)), "frame_size": [side, side]}
    if recipe.get("working_size"):  # a natural-video model: clips are resized to this longer side first
        inference["working_size"] = int(recipe["working_size"])
    step = context["checkpoint"]["step"]
    evals = [record for record in read_eval_log(context["run_dir"]) if record.get("step") == step]
    return card.replace(description=describe(VideoNetConfig.from_dict(card.model_config)),
                        licence=data_licence(recipe.get("data", MMNIST_DATA)),
                        running=replace(card.running, inference=inference),
                        metrics={**card.metrics, **({"heldout_during_training": evals[-1]} if evals else {})})


def data_licence(data: str) -> str:
    if data == MMNIST_DATA:
        return MMNIST_LICENCE
    return NATURAL_LICENCE if CAMERA_DATA in data else ""


SPEC = ModelSpec(build=build_generator, example_inputs=example_inputs, running=running, exportable=OneStep,
                 input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                 export_sizes=((FRAME_SIDE, FRAME_SIDE), (32, 48)), finish_card=finish_card)
