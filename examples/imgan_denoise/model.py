"""The generator (a residual CNN that predicts the noise) and its ModelSpec (torch)."""
from __future__ import annotations

import torch
from torch import nn

from imgan.cards import Running
from imgan.train.spec import ModelSpec


class DenoiseNet(nn.Module):
    """``layers`` 3x3 convolutions (ReLU between); the output is input + residual, clipped to [0, 1]."""

    def __init__(self, channels: int, layers: int):
        super().__init__()
        widths = [3] + [channels] * (layers - 1) + [3]
        convs = [nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:])]
        nn.init.zeros_(convs[-1].weight)  # starts as the identity: never worse than the input
        nn.init.zeros_(convs[-1].bias)
        self.body = nn.Sequential(*[part for conv in convs[:-1] for part in (conv, nn.ReLU())], convs[-1])

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return (noisy + self.body(noisy)).clamp(0.0, 1.0)


def describe(card, context):
    """finish_card: a description naming the noise level the run trained for (recorded in run.json)."""
    sigma = (context["run"].get("recipe") or {}).get("sigma")
    noise, config = f" (σ {sigma:g}/255)" if sigma is not None else "", card.model_config
    return card.replace(description=card.description or f"Gaussian denoiser{noise}, "
                        f"{config['layers']} conv layers of {config['channels']} channels")


SPEC = ModelSpec(
    build=lambda model_config: DenoiseNet(**model_config),
    example_inputs=lambda model_config, height, width: (torch.rand(1, 3, height, width),),
    # each 3x3 convolution sees one pixel further: with that much overlap, tiling is exact
    running=lambda model_config: Running(tile_overlap=model_config["layers"]),
    finish_card=describe,
)
