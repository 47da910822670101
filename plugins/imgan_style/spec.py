"""The style task's constants, defaults, loss settings and option checks (no typer, torch or numpy)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgan.config import JsonConfig
from imgan.errors import UsageError

TASK = "style"
DEFAULT_STYLE = "monet"
DEFAULT_SIZE = 1024  # longest side the fast styles are applied at (never enlarging by default)
DEFAULT_OPTIMISATION_SIZE = 384  # each optimisation step runs VGG forward and backward over the whole picture
DEFAULT_REFERENCE_SIZE = 512  # longest side of the whole-image reference whose statistics normalise every tile
MULTIPLE = 4  # two stride-2 convolutions: sides must divide by 4 for the upsampling to match
WHOLE_PASS_PIXELS = 1100 * 1100  # working images up to this go through the fast net in one pass
THUMBNAIL_SIDE = 128  # the painting's thumbnail beside the weights (for --compare and `imgan styles`)
OPTIMIZERS = ("lbfgs", "adam")

REPO = Path(__file__).resolve().parents[2]
SHARED_ASSETS = REPO.parent / "shared" / "assets"
DEFAULT_TEST_PHOTOS = SHARED_ASSETS / "photos" / "bsds500" / "test"  # `imgan eval style`: never trained on


@dataclass(frozen=True)
class StyleSettings(JsonConfig):
    """What the loss looks at and how much each term counts; stored in the model_config of every
    checkpoint and card (under "style", with the painting)."""

    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu3_4")
    content_layer: str = "relu2_2"
    style_size: int = 512  # the painting's longest side when its Gram matrices are taken
    style_weight: float = 1.0
    content_weight: float = 2e-5
    tv_weight: float = 0.5

    def loss_weights(self) -> dict[str, float]:
        return {"style": self.style_weight, "content": self.content_weight, "tv": self.tv_weight}


def scaled_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """(width, height) of a picture scaled, aspect kept, so that its longest side is `longest`."""
    factor = longest / max(height, width)
    return max(1, round(width * factor)), max(1, round(height * factor))


def check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {strength:g}", hint="1 = full style, 0 = the original")


def check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")


def validate_options(options: dict) -> None:
    """The checks of `imgan stylize`'s own options, before any work."""
    check_strength(options["strength"])
    check_optimizer(options["optimizer"])
    if options["style_image"] is not None and options["style"] is not None:
        raise UsageError("give either --style (a fast style) or --style-image (optimisation), not both")
