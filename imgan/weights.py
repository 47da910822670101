"""Weights are data: a frozen descriptor per ONNX file, read from its JSON model card.

Shipped weights live in the ``weights/`` folder (installed as the ``imgan_weights`` package);
user-trained weights go to ``$IMGAN_HOME/weights`` (default ``~/.cache/imgan/weights``);
plugins can offer more through the ``register_weights`` hook. A card ``<task>-<name>.json``
sits beside ``<task>-<name>.onnx`` and names everything needed to run the file correctly.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .cards import CARD_SUFFIX, ModelCard, card_path_for, read_card
from .errors import UsageError, WeightsError



@dataclass(frozen=True)
class Weights:
    """One ONNX file and its model card (imgan.cards.ModelCard), found in the catalogue or by path."""

    card: ModelCard
    file: Path
    origin: str = "shipped"

    name = property(lambda self: self.card.name)
    task = property(lambda self: self.card.task)
    sha256 = property(lambda self: self.card.sha256)
    version = property(lambda self: self.card.version)
    licence = property(lambda self: self.card.licence)
    description = property(lambda self: self.card.description)
    metrics = property(lambda self: self.card.metrics)
    running = property(lambda self: self.card.running)
    scale = property(lambda self: self.card.running.scale)
    pad_multiple = property(lambda self: self.card.running.pad_multiple)
    tile_overlap = property(lambda self: self.card.running.tile_overlap)
    inference = property(lambda self: self.card.running.inference)

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def card_path(self) -> Path:
        return card_path_for(self.file)

    @classmethod
    def from_card(cls, card_path: Path, origin: str = "shipped") -> "Weights":
        card = read_card(card_path)
        return cls(card=card, file=card_path.parent / card.file, origin=origin)

    def verified_path(self) -> Path:
        """The ONNX file, after checking it exists and matches its sha256."""
        if not self.file.is_file():
            raise WeightsError(
                f"weights file for {self.id} is missing",
                path=self.file,
                hint="reinstall imgan, or retrain/export it; `imgan weights list` shows what is available",
            )
        actual = sha256_of(self.file)
        if actual != self.sha256:
            raise WeightsError(
                f"sha256 mismatch for {self.id}: expected {self.sha256[:12]}…, got {actual[:12]}…",
                path=self.file,
                hint="the file is corrupt or was replaced; restore it or re-export it",
            )
        return self.file


def sha256_of(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def imgan_home() -> Path:
    return Path(os.environ.get("IMGAN_HOME") or Path.home() / ".cache" / "imgan")


def user_weights_dir() -> Path:
    return imgan_home() / "weights"


def shipped_weights_dir() -> Path:
    import imgan_weights

    return Path(imgan_weights.__file__).parent


def _cards_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{CARD_SUFFIX}") if p.with_suffix(".onnx").exists() or _names_onnx(p))


def _names_onnx(card: Path) -> bool:
    # A card may name a file with a different stem (e.g. a shared fp16 variant); accept any card with a "file".
    try:
        return str(json.loads(card.read_text(encoding="utf-8")).get("file", "")).endswith(".onnx")
    except (OSError, ValueError):
        return False


def _from_registered(item: Any) -> list[Weights]:
    if isinstance(item, Weights):
        return [item]
    path = Path(item)
    cards = _cards_in(path) if path.is_dir() else [path]
    return [Weights.from_card(card, origin="plugin") for card in cards]


def catalogue() -> dict[str, dict[str, Weights]]:
    """{task: {name: Weights}}. Later sources override earlier ones: shipped < plugins < user."""
    from .plugins import collect_registered_weights

    found: list[Weights] = [Weights.from_card(c, "shipped") for c in _cards_in(shipped_weights_dir())]
    for _plugin, item in collect_registered_weights():
        found.extend(_from_registered(item))
    found.extend(Weights.from_card(c, "user") for c in _cards_in(user_weights_dir()))
    table: dict[str, dict[str, Weights]] = {}
    for weights in found:
        current = table.setdefault(weights.task, {}).get(weights.name)
        if current is None or weights.version >= current.version or weights.origin == "user":
            table[weights.task][weights.name] = weights
    return table


def weights_for_task(task: str) -> dict[str, Weights]:
    return catalogue().get(task, {})


def resolve_weights(task: str, name_or_path: str | os.PathLike | None, default: str | None = None) -> Weights:
    """A catalogue name (``monet``), or any compatible ONNX file given by path; None: ``default``,
    else the task's default_weights."""
    if name_or_path is None and default is None:
        from .plugins import get_task

        default = get_task(task).default_weights
    choice = name_or_path if name_or_path is not None else default
    if choice is None:
        raise UsageError(f"task {task!r} has no default weights", hint="pass --weights NAME or FILE.onnx")
    text = str(choice)
    if text.endswith(".onnx") or os.sep in text:
        return weights_from_file(Path(text), task)
    available = weights_for_task(task)
    if text not in available:
        names = ", ".join(sorted(available)) or "none installed"
        raise UsageError(f"unknown {task} weights {text!r}", hint=f"available: {names}")
    return available[text]


def weights_from_file(path: Path, task: str) -> Weights:
    """A user-supplied ONNX file: its card is used when one sits beside it."""
    if not path.is_file():
        raise WeightsError("no such weights file", path=path, hint="check the path given to --weights")
    card = path.with_suffix(CARD_SUFFIX)
    if card.is_file():
        weights = Weights.from_card(card, origin="file")
        if weights.task != task:
            raise WeightsError(f"these weights are for task {weights.task!r}, not {task!r}", path=path)
        return weights
    from .runtime.probe import probed_card

    card = probed_card(path, task, digest=sha256_of(path), store=imgan_home() / "probed")
    return Weights(card=card, file=path, origin="file")


def verify_all() -> list[tuple[Weights, str | None]]:
    """(weights, error message or None) for every catalogued file."""
    results = []
    for by_name in catalogue().values():
        for weights in by_name.values():
            try:
                weights.verified_path()
                results.append((weights, None))
            except WeightsError as exc:
                results.append((weights, exc.one_line()))
    return results
