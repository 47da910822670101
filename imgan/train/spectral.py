"""A 2-D real FFT written as matrix products, so that it exports to ONNX.

``torch.fft.rfftn``/``irfftn`` do not export (the TorchScript exporter has no complex tensors, and
ONNX's DFT op needs an opset ONNX Runtime's CPU kernels run slowly at best). Fourier blocks (LaMa's
FFC, Suvorov et al. 2022) use the FFT only on small feature maps (a 512² image is 64² after three
downsamplings), where a DFT as two matmuls per channel is cheap and runs at matmul speed. The DFT
matrices are built from the input's own size, so the exported graph keeps a dynamic height and width.

Both functions keep the real and imaginary parts as two real tensors; ``norm="ortho"`` scaling.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _angles(size: Tensor | int, bins: Tensor | int, like: Tensor) -> Tensor:
    """(size, bins) matrix of 2π·n·k/size: the DFT phase of sample n at frequency k."""
    samples = torch.arange(size, device=like.device, dtype=like.dtype)
    frequencies = torch.arange(bins, device=like.device, dtype=like.dtype)
    return samples[:, None] * frequencies[None, :] * (2.0 * math.pi / size)


def rfft2(x: Tensor) -> tuple[Tensor, Tensor]:
    """(..., H, W) real -> real and imaginary parts of shape (..., H, W//2 + 1), as torch.fft.rfftn(dim=(-2, -1),
    norm="ortho")."""
    height, width = x.shape[-2], x.shape[-1]
    along_w = _angles(width, width // 2 + 1, x)                      # (W, Wr)
    re = x @ torch.cos(along_w)
    im = -(x @ torch.sin(along_w))
    along_h = _angles(height, height, x)                             # (H, H), symmetric
    cos_h, sin_h = torch.cos(along_h), torch.sin(along_h)
    # (C - iS)(re + i im) along H
    scale = torch.rsqrt(x.new_ones(()) * (height * width))  # a traced size stays dynamic
    return (cos_h @ re + sin_h @ im) * scale, (cos_h @ im - sin_h @ re) * scale


def irfft2(re: Tensor, im: Tensor, width: Tensor | int) -> Tensor:
    """The inverse of ``rfft2``: half spectra (..., H, W//2 + 1) -> (..., H, width) real, as torch.fft.irfftn(
    s=(H, width), dim=(-2, -1), norm="ortho") (the imaginary parts of the DC and Nyquist bins are ignored)."""
    height, bins = re.shape[-2], re.shape[-1]
    along_h = _angles(height, height, re)
    cos_h, sin_h = torch.cos(along_h), torch.sin(along_h)
    # (C + iS)(re + i im) along H: the full complex inverse
    re_h, im_h = cos_h @ re - sin_h @ im, cos_h @ im + sin_h @ re
    # complex-to-real along W: every bin but DC (and Nyquist for an even width) stands for itself and
    # its conjugate mirror, hence the weight 2
    frequencies = torch.arange(bins, device=re.device, dtype=re.dtype)
    weights = torch.where((frequencies == 0) | (frequencies * 2 == width), 1.0, 2.0)
    along_w = _angles(width, bins, re).transpose(0, 1)                # (Wr, W)
    cos_w, sin_w = torch.cos(along_w) * weights[:, None], torch.sin(along_w) * weights[:, None]
    scale = torch.rsqrt(re.new_ones(()) * (height * width))
    return (re_h @ cos_w - im_h @ sin_w) * scale


def lama_fourier_unit_forward(unit: torch.nn.Module, x: Tensor) -> Tensor:
    """LaMa's ``FourierUnit.forward`` (spandrel's copy) with ``rfft2``/``irfft2`` in place of torch.fft: the same
    arithmetic, exportable. Covers the 2-D unit every published LaMa uses (no 3-D FFT, no rescaling inside)."""
    if unit.ffc3d or unit.spatial_scale_factor is not None or unit.fft_norm != "ortho":
        raise NotImplementedError("only the 2-D, unscaled, ortho-normalised Fourier unit exports")
    batch, width = x.shape[0], x.shape[-1]
    re, im = rfft2(x.float())
    spectrum = torch.stack((re, im), dim=2)                          # (batch, c, 2, h, w/2+1)
    spectrum = spectrum.reshape(batch, -1, spectrum.shape[-2], spectrum.shape[-1])
    if unit.spectral_pos_encoding:
        height, bins = spectrum.shape[-2], spectrum.shape[-1]
        vertical = torch.linspace(0, 1, height, dtype=spectrum.dtype)[None, None, :, None].expand(batch, 1, height, bins)
        horizontal = torch.linspace(0, 1, bins, dtype=spectrum.dtype)[None, None, None, :].expand(batch, 1, height, bins)
        spectrum = torch.cat((vertical, horizontal, spectrum), dim=1)
    if unit.use_se:
        spectrum = unit.se(spectrum)
    spectrum = unit.relu(unit.bn(unit.conv_layer(spectrum)))
    spectrum = spectrum.reshape(batch, -1, 2, spectrum.shape[-2], spectrum.shape[-1])
    return irfft2(spectrum[:, :, 0], spectrum[:, :, 1], width)
