"""Dataclass configs that travel as JSON (checkpoints, model cards, recipe files).

A model config stored in a checkpoint is what rebuilds the model later (nanoGPT's way), so the
round trip must be exact: JSON has no tuples and no paths, hence the conversions here.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import PurePath
from typing import Any, TypeVar

from .errors import UsageError

C = TypeVar("C", bound="JsonConfig")


class JsonConfig:
    """Mixin for dataclasses: ``to_dict`` gives JSON values, ``from_dict`` rebuilds the instance.

    Unknown keys are skipped, so a checkpoint written by a newer version that added a setting
    still loads, unless the class sets ``refuse_unknown_keys`` (settings a user typed, where a
    misspelt key must not pass silently).
    """

    refuse_unknown_keys = False

    def to_dict(self) -> dict[str, Any]:
        return {key: _to_json(value) for key, value in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        known = {item.name for item in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if cls.refuse_unknown_keys and unknown:
            raise UsageError(f"unknown {cls.__name__} settings: {', '.join(unknown)}",
                             hint=f"known: {', '.join(sorted(known))}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in values.items() if key in known})


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, PurePath):
        return str(value)
    return value
