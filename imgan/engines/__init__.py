"""Engines that run a batch: ``local`` (this process, imgan.pipeline) or ``ray`` (a Ray cluster,
imgan.engines.ray_engine, loaded only when asked for). Both plan, skip, fail and report alike."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import UsageError

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'imgan[ray]'"


@dataclass(frozen=True)
class RaySettings:
    """How the ray engine spreads a batch (None: the defaults of imgan.engines.ray_engine)."""

    ray_address: str | None = None  # "auto", "HOST:PORT"; None: a local Ray started for this run
    workers: int | None = None  # actors, each with one model session
    gpus_per_worker: float | None = None
    batch_size: int | None = None  # jobs per actor call


# The keyword names of the engine choice in imgan.api.run (and the CLI's option names, with dashes).
ENGINE_KEYWORDS = frozenset({"engine"} | {f.name for f in fields(RaySettings)})


def ray_settings(engine: str, **values) -> RaySettings | None:
    """The RaySettings for `engine` (None for the local engine); a UsageError for an unknown engine
    or Ray options given to the local engine."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")
    settings = RaySettings(**values)
    if engine == "local":
        given = [f.name for f in fields(settings) if getattr(settings, f.name) is not None]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} applies to the ray engine only", hint="add --engine ray")
        return None
    return settings
