"""The model card: one typed, torch-free description of an ONNX file, written and read here only.

A card ``<task>-<name>.json`` sits beside ``<task>-<name>.onnx``. Its groups:

    identity     task, name, version, file, sha256, licence, description, card_format
    running      what the runtime reads to run the file: scale, pad_multiple, tile_overlap,
                 input_convention, the model's inputs and outputs, and ``inference``: a small
                 mapping of task knobs (a working size, a thumbnail, the number of context frames)
    model_config exactly the dict a training checkpoint stores and the task's generator builder
                 accepts, so the file can be rebuilt in PyTorch (warm starts, parity tests)
    provenance   how it was trained: steps, seconds, recipe, train_config, data, command,
                 init_from, resumptions (paths relative, never a machine's absolute paths)
    metrics      measured figures, keyed by protocol; evaluators add theirs with update_metrics
    export       opset, when, parity figures, the optional fp16 copy

Cards written before this format (no ``card_format``) are converted on reading, so old user
files still load; ``imgan weights migrate`` rewrites them once.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .errors import WeightsError
from .fs import atomic_write

CARD_FORMAT = 2
CARD_SUFFIX = ".json"
DEFAULT_TILE_OVERLAP = 16
INPUT_CONVENTIONS = ("rgb01", "gray01")


@dataclass(frozen=True)
class Running:
    """What the runtime needs to run the file correctly."""

    scale: int = 1
    pad_multiple: int = 1
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    input_convention: str = "rgb01"  # rgb01: NCHW float32 RGB in [0, 1]; gray01: N1HW in [0, 1]
    inputs: Mapping[str, str] = field(default_factory=lambda: {"input": "NCHW float32 RGB in [0, 1]"})
    outputs: Mapping[str, str] = field(default_factory=lambda: {"output": "NCHW float32 RGB in [0, 1]"})
    inference: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provenance:
    """How the weights were made; every path relative (see portable_path)."""

    steps: int = 0
    seconds: float = 0.0
    recipe: Mapping[str, Any] = field(default_factory=dict)
    train_config: Mapping[str, Any] = field(default_factory=dict)
    data: str | None = None
    command: str | None = None
    init_from: Mapping[str, Any] | None = None
    resumptions: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ExportInfo:
    opset: int | None = None
    exported_at: str | None = None
    parity_max_abs_diff: float | None = None
    parity_sizes: tuple[tuple[int, int], ...] = ()
    fp16_file: str | None = None
    fp16_sha256: str | None = None
    fp16_parity_max_abs_diff: float | None = None


@dataclass(frozen=True)
class ModelCard:
    task: str
    name: str
    file: str
    sha256: str
    version: int = 1
    licence: str = ""
    description: str = ""
    running: Running = field(default_factory=Running)
    model_config: Mapping[str, Any] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    export: ExportInfo = field(default_factory=ExportInfo)
    card_format: int = CARD_FORMAT

    @property
    def id(self) -> str:
        return f"{self.task}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: Path | None = None) -> "ModelCard":
        """A card from its JSON form; older layouts are converted (see _from_legacy)."""
        if "card_format" not in data:
            data = _from_legacy(data)
        if data["card_format"] > CARD_FORMAT:
            raise WeightsError(f"model card format {data['card_format']} is newer than this imgan reads ({CARD_FORMAT})",
                               path=path, hint="upgrade imgan")
        missing = [key for key in ("task", "name", "file", "sha256") if not data.get(key)]
        if missing:
            raise WeightsError(f"model card lacks {', '.join(missing)}", path=path,
                               hint="re-export the model (`imgan export`) or add the missing fields")
        try:
            return cls(
                **{key: data[key] for key in ("task", "name", "file", "sha256") },
                version=int(data.get("version", 1)),
                licence=str(data.get("licence", "")),
                description=str(data.get("description", "")),
                running=_build(Running, data.get("running", {})),
                model_config=dict(data.get("model_config") or {}),
                provenance=_build(Provenance, data.get("provenance", {}), resumptions=tuple),
                metrics=dict(data.get("metrics") or {}),
                export=_build(ExportInfo, data.get("export", {}),
                              parity_sizes=lambda sizes: tuple(tuple(size) for size in sizes)),
                card_format=int(data["card_format"]),
            )
        except (TypeError, ValueError) as error:
            raise WeightsError(f"model card has an invalid field: {error}", path=path,
                               hint="re-export the model (`imgan export`)") from None

    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)


def _build(kind: type, values: Mapping[str, Any], **converters: Any):
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{kind.__name__.lower()} has unknown keys {', '.join(unknown)}")
    return kind(**{key: converters[key](value) if key in converters and value is not None else value
                   for key, value in values.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


# ----------------------------------------------------------------------------------- files


def card_path_for(onnx_path: str | os.PathLike) -> Path:
    return Path(onnx_path).with_suffix(CARD_SUFFIX)


def read_card(path: str | os.PathLike) -> ModelCard:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"unreadable model card: {error}", path=path,
                           hint="restore the .json that `imgan export` wrote beside the .onnx") from None
    if not isinstance(data, dict):
        raise WeightsError("a model card must be a JSON object", path=path)
    return ModelCard.from_dict(data, path=path)


def write_card(card: ModelCard, path: str | os.PathLike) -> Path:
    """Write the card atomically (a crash never leaves half a card)."""
    text = json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return atomic_write(Path(path), lambda temp: temp.write_text(text, encoding="utf-8"), overwrite=True)


def update_metrics(path: str | os.PathLike, metrics: Mapping[str, Any]) -> ModelCard:
    """Merge ``metrics`` (protocol -> figures) into the card at ``path`` and rewrite it."""
    card = read_card(path)
    card = card.replace(metrics={**card.metrics, **_plain(metrics)})
    write_card(card, path)
    return card


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def portable_path(path: str | os.PathLike | None, *, start: str | os.PathLike | None = None) -> str | None:
    """A path as a card should record it: ``~/…`` under the home folder, else relative to ``start``
    (default: the working folder) when it lies beside it, else only its last two parts. A card travels to
    other machines, where an absolute path means nothing and tells about the machine it came from."""
    if path is None:
        return None
    text = str(path)
    if not os.path.isabs(text):
        return text
    home = str(Path.home())
    if text.startswith(home + os.sep):
        return "~" + text[len(home):]
    relative = os.path.relpath(text, os.path.abspath(start or os.getcwd()))
    if relative.split(os.sep).count("..") <= 1:
        return relative
    return os.path.join(*Path(text).parts[-2:])


def portable_paths(value: Any) -> Any:
    """``value`` (a mapping, list or string) with every absolute path in it made portable, also
    inside command lines."""
    if isinstance(value, Mapping):
        return {key: portable_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable_paths(item) for item in value]
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith("/") and
                                   (" " not in value or os.path.exists(value))):
        return portable_path(value)
    if isinstance(value, str) and (" /" in value or value.startswith("/")):  # a command line, or words about paths
        import shlex

        try:
            words = shlex.split(value)
        except ValueError:  # prose with an apostrophe, not a command line
            return value
        return shlex.join(portable_path(word) if word.startswith("/") else word for word in words)
    return value


# ----------------------------------------------------------------------------------- old cards

# Top-level keys of the first card layouts, by the group they belong to now.
_LEGACY_RUNNING = ("scale", "pad_multiple", "tile_overlap", "input_convention")
_LEGACY_INFERENCE = ("working_size", "max_hole_radius", "thumbnail", "style_image", "context_frames",
                     "future_frames", "frame_size", "channels", "state_names")
_LEGACY_EXPORT = ("opset", "exported_at", "parity_max_abs_diff", "parity_sizes", "fp16_file", "fp16_sha256",
                  "fp16_parity_max_abs_diff")
_LEGACY_DROPPED = ("architecture", "style_image_path", "output", "inputs", "steps", "training_seconds")


def _from_legacy(old: Mapping[str, Any]) -> dict[str, Any]:
    """The card_format 2 form of a card written before it (four per-task layouts)."""
    recipe = dict(old.get("recipe") or {}) if isinstance(old.get("recipe"), Mapping) else {}
    metrics = dict(old.get("metrics") or {})
    model_config = _legacy_model_config(old, recipe)
    recipe.pop("model_config", None)
    running = {key: old[key] for key in _LEGACY_RUNNING if key in old}
    inputs = old.get("inputs")
    if isinstance(inputs, list):
        running["inputs"] = {name: "" for name in inputs}
    elif isinstance(inputs, Mapping):
        running["inputs"] = dict(inputs)
    if isinstance(old.get("output"), str):
        running["outputs"] = {"output": old["output"]}
    running["inference"] = {key: old[key] for key in _LEGACY_INFERENCE if key in old}
    identity = {"task", "name", "file", "sha256", "version", "licence", "description", "recipe", "metrics",
                "model_config"}
    leftover = {key: value for key, value in old.items()
                if key not in identity and key not in _LEGACY_RUNNING and key not in _LEGACY_INFERENCE
                and key not in _LEGACY_EXPORT and key not in _LEGACY_DROPPED}
    train_config = dict(recipe.pop("train_config", {}) or {})
    train_config.pop("run_dir", None)
    steps = old.get("steps") or recipe.pop("steps", None) or train_config.get("steps") or 0
    seconds = (old.get("training_seconds") or recipe.pop("train_seconds", None)
               or metrics.pop("training_seconds", None) or 0.0)
    init_from = recipe.pop("init_from", None)
    provenance = {
        "steps": int(steps),
        "seconds": float(seconds),
        "recipe": {**leftover, **recipe},
        "train_config": train_config,
        "data": portable_path(recipe.pop("data", None)),
        "command": recipe.pop("command", None),
        "init_from": {"from": portable_path(init_from)} if isinstance(init_from, str) else init_from,
        "resumptions": tuple(recipe.pop("resumed", ()) or ()),
    }
    provenance["recipe"] = {key: value for key, value in provenance["recipe"].items()
                            if key not in ("data", "command", "resumed", "started_at")}
    provenance = portable_paths(provenance)
    return {
        "card_format": CARD_FORMAT,
        **{key: old[key] for key in ("task", "name", "file", "sha256") if key in old},
        "version": old.get("version", 1),
        "licence": old.get("licence", ""),
        "description": old.get("description", ""),
        "running": running,
        "model_config": model_config,
        "provenance": provenance,
        "metrics": metrics,
        "export": {key: old[key] for key in _LEGACY_EXPORT if key in old},
    }


def _legacy_model_config(old: Mapping[str, Any], recipe: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(old.get("model_config"), Mapping):  # video
        return dict(old["model_config"])
    if isinstance(recipe.get("model_config"), Mapping):  # inpaint
        return dict(recipe["model_config"])
    architecture = old.get("architecture")
    if isinstance(architecture, Mapping) and "generator" in architecture:  # sr
        return {"generator": dict(architecture["generator"])}
    if isinstance(recipe.get("net"), Mapping):  # style: the net's shape and the style settings
        style = {"image": old.get("style_image", ""), **dict(recipe.get("style") or {})}
        return {**dict(recipe["net"]), "style": style}
    return {}
