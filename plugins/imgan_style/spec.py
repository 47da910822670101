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

# Universal style transfer (WCT, Li et al. 2017): any painting in one pass
UNIVERSAL_TASK = "style-universal"  # the VGG19 encoders and the decoders that invert them
LEVELS = ("relu3_1", "relu2_1", "relu1_1")  # coarse to fine, the order the transfer runs in
LEVEL_MULTIPLE = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4}  # max-pools before the level: sides divide by this
DEFAULT_UNIVERSAL_SIZE = 512  # longest side of the one-pass universal path (and of a painting's statistics)
METHODS = ("universal", "optimise")  # --style-image: WCT in one pass, or Gatys optimisation (torch)
STYLE_STATS_DIR = "style-stats"  # beside the weights: one <name>.npz + <name>.json + <name>.png per painting

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
    # Scales at which the output and the painting are compared (the style term is their mean): at
    # 1/2 and 1/4 scale relu3_x's 48-px receptive field spans 96 and 192 px of the picture, the scale
    # of brush strokes and shapes, not only of fine texture. (1.0,) is the single-scale loss.
    pyramid: tuple[float, ...] = (1.0, 0.5, 0.25)

    def loss_weights(self) -> dict[str, float]:
        return {"style": self.style_weight, "content": self.content_weight, "tv": self.tv_weight}


def check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {strength:g}", hint="1 = full style, 0 = the original")


def check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")


def check_method(method: str | None) -> None:
    if method is not None and method not in METHODS:
        raise UsageError(f"unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}")


def validate_options(options: dict) -> None:
    """The checks of `imgan stylize`'s own options, before any work."""
    check_strength(options["strength"])
    check_optimizer(options["optimizer"])
    check_method(options.get("method"))
    if options["style_image"] is not None and options["style"]:
        raise UsageError("give either --style (a named style) or --style-image (a painting file), not both")
    if options.get("method") == "optimise" and options["style_image"] is None:
        raise UsageError("--method optimise works on a painting file", hint="give it with --style-image FILE")
