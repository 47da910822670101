"""`imgan weights import`: a community model file (ESRGAN, Real-ESRGAN Compact, SPAN, SwinIR...) -> imgan weights.

The file is read without running any of it: ``.safetensors`` holds tensors only, and a
``.pth``/``.pt``/``.ckpt`` is read with ``torch.load(weights_only=True)``, which refuses a pickle that
would build anything but tensors and plain containers (a pickle can run code: such a file is
refused, never executed). spandrel recognises the architecture from the tensor names and shapes
and rebuilds the network; it is exported through the project's one export (ONNX checker + ONNX
Runtime vs PyTorch parity at two sizes) with a model card, into ``$IMGAN_HOME/weights``, where
every image verb finds it by name. Running it afterwards needs ONNX Runtime only.
"""
from __future__ import annotations

import os
import pickle
import re
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..cards import ModelCard, Provenance, Running, portable_paths
from ..errors import OutputError, TrainingError, UsageError, WeightsError
from ..weights import sha256_of, user_weights_dir
from .export import export_onnx

SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
TASK_CHOICES = ("sr", "restore", "inpaint")
UNKNOWN_LICENCE = "unknown: set it with --licence"
# Context each tile gets, in input pixels, by spandrel architecture id. Convolutional nets see a
# few dozen pixels; window-attention and global (FFT) models see more, so they get more context.
TILE_OVERLAP = {"ESRGAN": 32, "Compact": 32, "SPAN": 32, "PLKSR": 48, "RealCUGAN": 48, "LaMa": 64}
DEFAULT_TILE_OVERLAP = 64
# (height, width) of the traced example, then of the second parity check; rounded up to the
# model's multiple and minimum. Small: an imported ESRGAN is 16.7 M parameters, on CPU.
EXPORT_SIZES = ((40, 48), (32, 24))
INPAINT_WORKING_SIZE = 512
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class ImportReport:
    path: Path
    card_path: Path
    task: str
    name: str
    architecture: str
    architecture_name: str
    scale: int
    parameters: int
    parity_max_abs_diff: float
    parity_sizes: list[tuple[int, int]]
    seconds: float
    fp16_path: Path | None = None
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------ reading


def _spandrel():
    try:
        import spandrel
    except ImportError:
        raise TrainingError("importing community models needs spandrel",
                            hint="pip install 'imgan[train]' (or pip install spandrel)") from None
    return spandrel


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a model file, read without executing anything in it (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("no such model file", path=path, hint="give the path of a .safetensors or .pth file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"unsupported model file type {suffix or '(none)'!r}", path=path,
                         hint=f"imgan imports {', '.join(SUFFIXES)}; ONNX files need no import: pass them to --weights")
    spandrel = _spandrel()
    try:
        if suffix == ".safetensors":
            loaded: Any = spandrel.ModelLoader().load_state_dict_from_file(path)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).splitlines()
        reason = next((line.strip() for line in detail if "Unsupported global" in line or "GLOBAL" in line), "")
        raise WeightsError(f"refused: the file is a pickle that needs more than tensors to load (it could run code)"
                           f"{': ' + reason if reason else ''}", path=path,
                           hint="nothing in it was run; get a .safetensors copy of the model, or re-save only its "
                                "state_dict") from None
    except Exception as error:  # a truncated file, a TorchScript archive, a foreign format
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"unreadable model file: {first}", path=path,
                           hint="is it a complete PyTorch or safetensors model file?") from None
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"the file holds a {type(loaded).__name__}, not a state dict of tensors", path=path)
    state = spandrel.canonicalize_state_dict(dict(loaded))
    tensors = {str(key): value for key, value in state.items() if isinstance(value, Tensor)}
    if not tensors:
        raise WeightsError("the file holds no tensors", path=path, hint="is it a model file?")
    # fp16 (or bf16) files are common: the export and its parity check run in float32
    return {key: value.float() if value.is_floating_point() else value for key, value in tensors.items()}


def load_descriptor(path: str | os.PathLike, state_dict: Mapping[str, Tensor] | None = None):
    """spandrel's model descriptor of the file (network, scale, channels, size requirements)."""
    path = Path(path)
    spandrel = _spandrel()
    state_dict = read_state_dict(path) if state_dict is None else state_dict
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))
    except spandrel.UnsupportedModelError:
        raise WeightsError(f"unknown architecture: spandrel {spandrel.__version__} recognises none in its "
                           f"{len(state_dict)} tensors", path=path,
                           hint="supported: ESRGAN/Real-ESRGAN, Real-ESRGAN Compact, SPAN, SwinIR, HAT, DAT, "
                                "LaMa and more (see spandrel's list)") from None
    except Exception as error:  # recognised, but the shapes do not fit the architecture
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"the architecture was recognised but its weights do not fit it: {first}",
                           path=path) from None
    return descriptor.float().eval()


# ------------------------------------------------------------------------------------ the module


class _Restorer(nn.Module):
    """image (N, C, H, W) in [0, 1] -> (N, C_out, H*scale, W*scale) in [0, 1], as spandrel runs it."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model
        self.call = getattr(descriptor, "_call_fn", None) or (lambda net, image: net(image))

    def forward(self, image: Tensor) -> Tensor:
        return self.call(self.net, image).clamp(0.0, 1.0)


class _Inpainter(nn.Module):
    """(image, mask 1 = hole) -> the composite: the image outside the hole, the model's fill inside."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model
        self.call = getattr(descriptor, "_call_fn", None) or (lambda net, image, mask: net(image, mask))

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        fill = self.call(self.net, image, mask).clamp(0.0, 1.0)
        return image * (1.0 - mask) + fill * mask


def _make_exportable(network: nn.Module) -> None:
    """Rewrite, in place, the parts of a community network the ONNX exporter cannot write, keeping its arithmetic.

    LaMa's Fourier units call torch.fft (complex tensors): they get the same transform as real matmuls
    (``spectral.lama_fourier_unit_forward``); the parity check that follows proves the equivalence.
    """
    from .spectral import lama_fourier_unit_forward

    for module in network.modules():
        if type(module).__name__ == "FourierUnit" and hasattr(module, "fft_norm"):
            module.forward = types.MethodType(lama_fourier_unit_forward, module)


# ------------------------------------------------------------------------------------ import


def default_name(path: str | os.PathLike) -> str:
    """``RealESRGAN_x4plus.safetensors`` -> ``realesrgan_x4plus``."""
    name = re.sub(r"[^a-z0-9._-]+", "-", Path(path).stem.lower()).strip("-._")
    return name or "imported"


def choose_task(purpose: str, scale: int, requested: str | None) -> tuple[str, list[str]]:
    """The imgan task for a spandrel purpose, and notes on what was decided."""
    from ..plugins import get_tasks

    if requested is not None and requested not in TASK_CHOICES:
        raise UsageError(f"unknown --task {requested!r}", hint=f"choose one of {', '.join(TASK_CHOICES)}")
    masked = purpose == "Inpainting"
    if masked != (requested == "inpaint") and requested is not None:
        kind = "an inpainting model (image + mask in)" if masked else f"a {purpose} model (one image in)"
        raise UsageError(f"this is {kind}, not a model for --task {requested}", hint="leave out --task")
    if requested == "restore" and scale > 1:
        raise UsageError(f"this is a ×{scale} super-resolution model, not a restoration (×1) one",
                         hint="leave out --task")
    if masked:
        return "inpaint", []
    if scale > 1:
        return "sr", []
    if "restore" in {task.name for task in get_tasks().all()}:
        return "restore", []
    return "sr", [f"no restore task is installed: this ×1 {purpose.lower()} model is a task 'sr' weight of scale 1"]


def _round_size(side: int, multiple: int, minimum: int) -> int:
    side = max(side, minimum)
    return -(-side // multiple) * multiple


def running_of(descriptor, masked: bool) -> Running:
    """The card's running group: what the runtime needs to run the exported file as spandrel runs the model."""
    sizes = descriptor.size_requirements
    pad_multiple, minimum, channels = max(1, int(sizes.multiple_of)), int(sizes.minimum), int(descriptor.input_channels)
    colour = "RGB" if channels == 3 else "grey"
    if masked:
        inputs = {"image": f"NCHW float32 {colour} in [0, 1]", "mask": "N1HW float32, 1 = hole (white in a mask image)"}
        outputs = {"output": "the composite: the image outside the hole, the model's fill inside"}
        inference: dict[str, Any] = {"working_size": _round_size(INPAINT_WORKING_SIZE, pad_multiple, minimum)}
    else:
        inputs = {"input": f"NCHW float32 {colour} in [0, 1]"}
        outputs = {"output": f"NCHW float32 {colour} in [0, 1], ×{descriptor.scale}"}
        inference = {}
    if minimum:
        inference["minimum_size"] = minimum
    # a net that first pixel-unshuffles (Real-ESRGAN x2plus) sees that many times more input pixels per layer
    unshuffle = int(getattr(descriptor.model, "shuffle_factor", None) or 1)
    overlap = TILE_OVERLAP.get(descriptor.architecture.id, DEFAULT_TILE_OVERLAP) * unshuffle
    return Running(scale=int(descriptor.scale), pad_multiple=pad_multiple, tile_overlap=overlap,
                   input_convention="rgb01" if channels == 3 else "gray01", inputs=inputs, outputs=outputs,
                   inference=inference)


def example_inputs(running: Running, channels: int, height: int, width: int) -> tuple[Tensor, ...]:
    """Random inputs of about height x width that the model accepts (its multiple and minimum)."""
    generator = torch.Generator().manual_seed(height * 1000 + width)
    minimum = int(running.inference.get("minimum_size", 0))
    height, width = (_round_size(side, running.pad_multiple, minimum) for side in (height, width))
    image = torch.rand(1, channels, height, width, generator=generator)
    if "mask" not in running.inputs:
        return (image,)
    mask = torch.zeros(1, 1, height, width)
    mask[..., height // 4: height // 2, width // 3: 2 * width // 3] = 1.0
    return image, mask


def check_importable(descriptor, path: Path, fp16: bool) -> None:
    """WeightsError/UsageError for a model imgan cannot run as spandrel does."""
    name, channels_in, channels_out = descriptor.architecture.name, descriptor.input_channels, descriptor.output_channels
    if channels_in != channels_out or channels_in not in (1, 3):
        raise WeightsError(f"{name} with {channels_in} input and {channels_out} output channels: "
                           "imgan runs RGB (3 -> 3) and grey (1 -> 1) models", path=path)
    if descriptor.size_requirements.square:
        raise WeightsError(f"{name} needs square inputs, which imgan's tiling does not make", path=path)
    if fp16 and not descriptor.supports_half:
        raise UsageError(f"{name} does not support float16", path=path, hint="import without --fp16")


def import_model(file: str | os.PathLike, *, name: str | None = None, task: str | None = None,
                 licence: str | None = None, fp16: bool = False, overwrite: bool = False,
                 command: str | None = None) -> ImportReport:
    """Import a community model file as weights ``<task>-<name>`` in $IMGAN_HOME/weights (see the module docstring)."""
    started = time.perf_counter()
    spandrel = _spandrel()
    file = Path(file)
    name = name if name is not None else default_name(file)
    if not NAME_PATTERN.match(name):
        raise UsageError(f"invalid weights name {name!r}", hint="use lower-case letters, digits, '.', '-' or '_'")
    descriptor = load_descriptor(file)
    architecture = descriptor.architecture
    masked = isinstance(descriptor, spandrel.MaskedImageModelDescriptor)
    chosen_task, notes = choose_task(descriptor.purpose, int(descriptor.scale), task)
    check_importable(descriptor, file, fp16)
    target = user_weights_dir() / f"{chosen_task}-{name}.onnx"
    _check_target(target, chosen_task, name, overwrite)

    running = running_of(descriptor, masked)
    parameters = sum(p.numel() for p in descriptor.model.parameters())
    tiling = getattr(descriptor.tiling, "name", str(descriptor.tiling)).lower()
    if tiling != "supported":
        notes.append(f"spandrel marks tiling for {architecture.name} as {tiling}: a larger --tile is safer")
    kind = "inpainting" if masked else (f"×{running.scale} super-resolution" if running.scale > 1 else "×1 restoration")
    card = ModelCard(
        task=chosen_task, name=name, file=target.name, sha256="-", licence=licence or UNKNOWN_LICENCE,
        description=f"{architecture.name} {kind} model imported from {file.name} ({parameters / 1e6:.2f} M parameters; "
                    f"{', '.join(descriptor.tags) or 'no tags'})",
        running=running,
        model_config={"architecture": architecture.id, "source_file": file.name, "source_sha256": sha256_of(file),
                      "spandrel": spandrel.__version__, "parameters": parameters,
                      "architecture_name": architecture.name, "purpose": descriptor.purpose,
                      "tags": list(descriptor.tags),
                      "size_requirements": {"minimum": int(descriptor.size_requirements.minimum),
                                            "multiple_of": running.pad_multiple, "square": False},
                      "supports_half": bool(descriptor.supports_half)},
        provenance=Provenance(recipe={"imported_from": file.name, "importer": "spandrel"}, data=None,
                              command=portable_paths(command if command is not None else _command())),
    )
    _make_exportable(descriptor.model)
    module = _Inpainter(descriptor) if masked else _Restorer(descriptor)
    channels = int(descriptor.input_channels)
    (first, *others) = [example_inputs(running, channels, *size) for size in EXPORT_SIZES]
    with warnings.catch_warnings():
        # Community code pads by Python ints taken from shapes; traced at multiples of pad_multiple
        # (which the runtime always feeds), the parity check at a second size proves the graph.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            report = export_onnx(module, first, target, input_names=tuple(running.inputs), output_names=("output",),
                                 parity_inputs=others, card=card, fp16=fp16)
        except TrainingError as error:  # an operation the ONNX exporter cannot write
            raise TrainingError(f"{architecture.name} cannot be imported: {error.message}", path=file,
                                hint=f"{error.hint}; nothing was written" if error.hint else "nothing was written") from None
    return ImportReport(path=report.path, card_path=report.card_path, task=chosen_task, name=name,
                        architecture=architecture.id, architecture_name=architecture.name, scale=running.scale,
                        parameters=parameters, parity_max_abs_diff=report.max_abs_diff,
                        parity_sizes=report.sizes_checked, seconds=round(time.perf_counter() - started, 2),
                        fp16_path=report.fp16_path, notes=tuple(notes))


def _check_target(target: Path, task: str, name: str, overwrite: bool) -> None:
    from ..weights import weights_for_task

    existing = weights_for_task(task).get(name)
    if existing is not None and existing.origin != "user":
        raise UsageError(f"{task}/{name} is a {existing.origin} weight; an import of that name would hide it",
                         hint="pass --name to choose another name")
    if target.exists() and not overwrite:
        raise OutputError("imported weights of this name exist", path=target,
                          hint="pass --overwrite to replace them, or --name to choose another name")


def _command() -> str:
    from .run import command_line

    return command_line()


def describe(report: ImportReport) -> dict[str, Any]:
    """The report as JSON values."""
    return {"task": report.task, "name": report.name, "path": str(report.path), "card": str(report.card_path),
            "architecture": report.architecture, "scale": report.scale, "parameters": report.parameters,
            "parity_max_abs_diff": report.parity_max_abs_diff, "parity_sizes": [list(s) for s in report.parity_sizes],
            "seconds": report.seconds, "fp16": str(report.fp16_path) if report.fp16_path else None,
            "notes": list(report.notes)}
