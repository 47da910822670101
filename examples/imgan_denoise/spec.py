"""Task constants, option checks and the training settings (no typer, torch or numpy)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgan.errors import UsageError

SIGMA = 25.0  # noise standard deviation in 8-bit levels (0..255), for training and evaluation
STRENGTH = 1.0  # `imgan denoise --strength`: the model's output as it is; less blends in the input


def validate_options(options: dict) -> None:
    """The verb's own options, checked before any work (by the CLI and by make_transform)."""
    if not 0.0 <= options["strength"] <= 1.0:
        raise UsageError(f"--strength {options['strength']} is outside [0, 1]",
                         hint="0 keeps the input, 1 is the model's full output")


@dataclass
class TrainSettings:
    """What `imgan train denoise` takes: the Typer signature in cli.py passes exactly these."""

    data: Path
    name: str = "tiny"
    run_dir: Path | None = None
    steps: int = 200
    batch_size: int = 8
    crop: int = 48
    lr: float = 1e-3
    sigma: float = SIGMA
    channels: int = 16
    layers: int = 3
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    resume: bool = False
    init_from: Path | None = None
