"""VGG19 features by layer name, for perceptual and style losses.

Weights are data with their input convention: the network always takes RGB in [0, 1] and
converts internally, because the two common VGG19 weight sets want different inputs:

- "torchvision": torchvision's ImageNet weights, RGB normalised by the ImageNet mean/std;
- "caffe": the original Oxford weights, BGR in 0–255 minus the per-channel means.

Only the layers a weight file actually contains can be asked for; nothing ever falls back to
random weights, because a perceptual loss on a random network trains silently into garbage.

Weight files are data, never code: every .pth is read with ``torch.load(weights_only=True)``,
and checked before it is read when its sha256 is known: files named like torch hub downloads
(``vgg19-<first 8 hex of sha256>.pth``, torchvision's own cache included) must match the hash
in their name, and the files of ``_KNOWN_NAMES`` their full sha256.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import TrainingError
from ..weights import sha256_of

Convention = Literal["torchvision", "caffe"]
WEIGHTS_ENV = "IMGAN_VGG19_WEIGHTS"

_BLOCK_CONVS = (2, 2, 4, 4, 4)
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def _layer_names() -> tuple[str, ...]:
    """Names in the order of torchvision's ``vgg19().features``, so position == module index."""
    names: list[str] = []
    for block, convs in enumerate(_BLOCK_CONVS, start=1):
        for k in range(1, convs + 1):
            names += [f"conv{block}_{k}", f"relu{block}_{k}"]
        names.append(f"pool{block}")
    return tuple(names)


VGG19_LAYERS: tuple[str, ...] = _layer_names()  # conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., relu5_4, pool5
_LAYER_INDEX = {name: index for index, name in enumerate(VGG19_LAYERS)}

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Files whose convention cannot be read from the file itself (sha256 -> convention).
_KNOWN_FILES: dict[str, Convention] = {
    # /work/shared/assets/vgg19/vgg19_imagenet_conv1_1-conv3_4.pth: Oxford weights via Keras
    "9666a55ef5dc866e7ea792d4aa8d3f72556b00b236dc1e9407b2e05802391fe5": "caffe",
}
# Known files by name: one with this name and another sha256 is corrupt or not what it claims.
_KNOWN_NAMES: dict[str, str] = {
    "vgg19_imagenet_conv1_1-conv3_4.pth": "9666a55ef5dc866e7ea792d4aa8d3f72556b00b236dc1e9407b2e05802391fe5",
}
# torch hub names its downloads <arch>-<first 8 hex of sha256>.pth, e.g. vgg19-dcbb9e9d.pth
_TORCH_HUB_NAME = re.compile(r"^vgg19-([0-9a-f]{8})\.pth$")
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # VGG19_Weights.IMAGENET1K_V1

_FULL_WEIGHTS_HINT = (
    f"pass full VGG19 weights via --vgg-weights or {WEIGHTS_ENV} "
    "(e.g. torchvision's vgg19-dcbb9e9d.pth), or choose layers from the available ones"
)


@dataclass(frozen=True)
class VGGWeights:
    """One VGG19 weight set. ``file`` None means torchvision's downloadable ImageNet weights."""

    name: str
    file: Path | None
    convention: Convention
    available_layers: tuple[str, ...]
    sha256: str | None


TORCHVISION_IMAGENET = VGGWeights(
    name="torchvision:IMAGENET1K_V1",
    file=None,
    convention="torchvision",
    available_layers=VGG19_LAYERS,
    sha256=None,
)


def resolve_vgg_weights(path: str | os.PathLike | None = None, *, convention: Convention | None = None) -> VGGWeights:
    """Pick the weights: ``path`` > $IMGAN_VGG19_WEIGHTS > torchvision's ImageNet weights.

    The convention of a file comes from ``convention``, else a ``<file>.json`` beside it with
    ``{"convention": ...}``, else a table of known files (by sha256, or torch hub's file name).
    """
    chosen = path if path not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
    if chosen is None:
        return TORCHVISION_IMAGENET
    file = Path(chosen).expanduser()
    if not file.is_file():
        raise TrainingError("VGG19 weights file not found", path=file, hint=f"check --vgg-weights / {WEIGHTS_ENV}")
    digest = verified_digest(file)  # before torch reads a byte of it
    state = read_features_state_dict(file)
    return VGGWeights(
        name=file.stem,
        file=file,
        convention=convention or _file_convention(file, digest),
        available_layers=_available_layers(state),
        sha256=digest,
    )


def verified_digest(file: Path, expected: str | None = None) -> str:
    """The file's sha256, after checking it against what is known of it: `expected`, the full
    hash of a known file name, or the hash prefix of a torch-hub name. TrainingError on mismatch."""
    digest = sha256_of(file)
    hub_name = _TORCH_HUB_NAME.match(file.name)
    known = expected or _KNOWN_NAMES.get(file.name)
    if known is not None and digest != known:
        raise TrainingError(f"sha256 {digest[:16]}… is not the expected {known[:16]}…", path=file,
                            hint="the file is corrupt or not the one it claims to be; download it again")
    if hub_name and not digest.startswith(hub_name.group(1)):
        raise TrainingError(f"sha256 {digest[:16]}… does not start with the {hub_name.group(1)} its name promises",
                            path=file, hint="a corrupt or tampered download: delete it and download it again")
    return digest


def _file_convention(file: Path, digest: str) -> Convention:
    sidecar = file.with_name(file.name + ".json")
    if sidecar.is_file():
        try:
            value = json.loads(sidecar.read_text(encoding="utf-8")).get("convention")
        except (OSError, ValueError, AttributeError) as exc:
            raise TrainingError(f"unreadable VGG weights description: {exc}", path=sidecar) from None
        if value not in ("torchvision", "caffe"):
            raise TrainingError(f"convention must be 'torchvision' or 'caffe', not {value!r}", path=sidecar)
        return value
    if digest in _KNOWN_FILES:
        return _KNOWN_FILES[digest]
    hub_name = _TORCH_HUB_NAME.match(file.name)
    if hub_name and digest.startswith(hub_name.group(1)):
        return "torchvision"
    raise TrainingError(
        "cannot tell the input convention of this VGG19 weights file",
        path=file,
        hint=f'write {file.name}.json beside it with {{"convention": "torchvision"}} (RGB mean/std) '
        'or {"convention": "caffe"} (BGR 0-255 minus means)',
    )


def read_features_state_dict(file: Path) -> dict[str, Tensor]:
    """The ``features`` part of a VGG19 checkpoint, keyed by module index (``"0.weight"``)."""
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
        raw = _load_without_mmap(file)
    except Exception as exc:
        raise TrainingError(f"cannot read VGG19 weights: {exc}", path=file) from None
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise TrainingError("not a state dict", path=file, hint="save it with torch.save(model.state_dict(), ...)")
    if any("running_mean" in key for key in raw):
        raise TrainingError("batch-norm VGG19 (vgg19_bn) is not supported", path=file, hint=_FULL_WEIGHTS_HINT)
    features: dict[str, Tensor] = {}
    for key, value in raw.items():
        short = key.removeprefix("features.")
        if re.fullmatch(r"\d+\.(weight|bias)", short) and isinstance(value, Tensor):
            features[short] = value
    if not features:
        raise TrainingError("no VGG19 feature weights (features.N.weight) in this file", path=file)
    return features


def _load_without_mmap(file: Path) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"cannot read VGG19 weights: {exc}", path=file) from None


def _available_layers(state: Mapping[str, Tensor]) -> tuple[str, ...]:
    """Every layer whose convolutions, up to and including its own, have weights in ``state``."""
    available: list[str] = []
    for index, name in enumerate(VGG19_LAYERS):
        if name.startswith("conv") and not {f"{index}.weight", f"{index}.bias"} <= state.keys():
            break
        available.append(name)
    return tuple(available)


def torchvision_cache_file() -> Path:
    """Where torchvision keeps its VGG19 download: $TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth."""
    from torch.hub import get_dir

    return Path(get_dir()) / "checkpoints" / TORCHVISION_VGG19_URL.rsplit("/", 1)[-1]


def _torchvision_state_dict() -> dict[str, Tensor]:
    """torchvision's ImageNet VGG19 features, from its cache or downloaded into it.

    Not through torchvision's own loader, which unpickles the cached file in full and checks no
    hash: the file must match the hash in its name and is read with weights_only=True."""
    from torch.hub import download_url_to_file

    file = torchvision_cache_file()
    if not file.is_file():
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            # hash_prefix: the download is checked before it is moved into the cache
            prefix = _TORCH_HUB_NAME.match(file.name).group(1)
            download_url_to_file(TORCHVISION_VGG19_URL, str(file), hash_prefix=prefix, progress=False)
        except Exception as exc:  # URLError, OSError, hash mismatch: all mean "no usable weights"
            raise TrainingError(
                f"could not download torchvision's VGG19 ImageNet weights: {' '.join(str(exc).split())}",
                hint=f"without internet, set {WEIGHTS_ENV} (or --vgg-weights) to a local VGG19 .pth file",
            ) from None
    verified_digest(file)
    return read_features_state_dict(file)


def vgg_input(rgb01: Tensor, convention: Convention) -> Tensor:
    """(N,3,H,W) RGB in [0, 1] -> what weights of ``convention`` were trained on."""
    if convention == "caffe":
        mean = torch.tensor(CAFFE_MEAN_BGR, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
        return rgb01.flip(1) * 255.0 - mean
    mean = torch.tensor(TORCHVISION_MEAN, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    std = torch.tensor(TORCHVISION_STD, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    return (rgb01 - mean) / std


def _build_features(last_index: int) -> nn.Sequential:
    """torchvision's ``vgg19().features[: last_index + 1]`` with the same module indices,
    but non-inplace ReLUs so a conv output asked for is not overwritten by its ReLU."""
    modules: list[nn.Module] = []
    channels = 3
    for name in VGG19_LAYERS[: last_index + 1]:
        if name.startswith("conv"):
            block = int(name[4])
            modules.append(nn.Conv2d(channels, _BLOCK_CHANNELS[block - 1], kernel_size=3, padding=1))
            channels = _BLOCK_CHANNELS[block - 1]
        elif name.startswith("relu"):
            modules.append(nn.ReLU(inplace=False))
        else:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


def _as_weights(weights: VGGWeights | str | os.PathLike | None) -> VGGWeights:
    return weights if isinstance(weights, VGGWeights) else resolve_vgg_weights(weights)


def check_layers(layers: Sequence[str], weights: VGGWeights) -> None:
    """Raise TrainingError for a layer name that VGG19 or these weights do not have."""
    unknown = [name for name in layers if name not in _LAYER_INDEX]
    if unknown:
        raise TrainingError(
            f"unknown VGG19 layer {', '.join(unknown)}",
            hint=f"valid names: {', '.join(VGG19_LAYERS)}",
        )
    missing = [name for name in layers if name not in weights.available_layers]
    if missing:
        raise TrainingError(
            f"VGG19 layer {', '.join(missing)} is not in weights {weights.name}; "
            f"available layers: {', '.join(weights.available_layers)}",
            path=weights.file,
            hint=_FULL_WEIGHTS_HINT,
        )


class VGGFeatures(nn.Module):
    """Frozen VGG19, built only up to the deepest requested layer; always in eval mode."""

    def __init__(self, layers: Sequence[str], weights: VGGWeights | str | os.PathLike | None = None):
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise TrainingError("VGGFeatures needs at least one layer name")
        self.weights = _as_weights(weights)
        check_layers(layers, self.weights)
        self.layers = tuple(dict.fromkeys(layers))
        self._wanted = {_LAYER_INDEX[name]: name for name in self.layers}
        self.body = _build_features(max(self._wanted))
        self._load(self.weights)
        self.requires_grad_(False)
        super().train(False)

    @property
    def convention(self) -> Convention:
        return self.weights.convention

    def _load(self, weights: VGGWeights) -> None:
        if weights.file is None:
            state = _torchvision_state_dict()
        else:  # checked again: the file may have changed since resolve_vgg_weights hashed it
            verified_digest(weights.file, weights.sha256)
            state = read_features_state_dict(weights.file)
        needed = self.body.state_dict().keys()
        absent = sorted(set(needed) - state.keys())
        if absent:
            raise TrainingError(f"VGG19 weights lack {', '.join(absent)}", path=weights.file, hint=_FULL_WEIGHTS_HINT)
        try:
            self.body.load_state_dict({key: state[key] for key in needed})
        except RuntimeError as exc:  # shape mismatch: not VGG19
            raise TrainingError(f"weights do not fit VGG19: {exc}", path=weights.file) from None

    def train(self, mode: bool = True) -> "VGGFeatures":
        # A loss network must never switch to training mode with the model around it.
        return super().train(False)

    def forward(self, rgb01: Tensor) -> dict[str, Tensor]:
        """(N,3,H,W) RGB in [0, 1] -> {layer name: (N,C,H',W')}."""
        if rgb01.ndim != 4 or rgb01.shape[1] != 3:
            raise TrainingError(f"VGGFeatures wants (N,3,H,W) RGB, got shape {tuple(rgb01.shape)}")
        x = vgg_input(rgb01, self.convention)
        found: dict[str, Tensor] = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self._wanted:
                found[self._wanted[index]] = x
        return found


def default_layers(weights: VGGWeights | str | os.PathLike | None = None) -> dict[str, object]:
    """Recommended layers for these weights.

    Returns {"style": tuple of layers, "content": layer, "perceptual": layer}. Full VGG19
    follows Gatys et al. (style relu1_1…relu5_1, content relu4_2) and SRGAN's VGG54;
    weights cut after conv3_4 use the deepest layers they have (SRGAN's VGG34 idea).
    """
    chosen = _as_weights(weights)
    if "relu5_4" in chosen.available_layers:
        return {
            "style": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
            "content": "relu4_2",
            "perceptual": "relu5_4",
        }
    if "relu3_4" in chosen.available_layers:
        return {"style": ("relu1_1", "relu2_1", "relu3_1", "relu3_4"), "content": "relu2_2", "perceptual": "relu3_4"}
    raise TrainingError(
        f"weights {chosen.name} stop before relu3_4; too shallow for the default layers",
        path=chosen.file,
        hint=_FULL_WEIGHTS_HINT,
    )
