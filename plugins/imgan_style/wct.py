"""Whitening and colouring transforms (Li et al. 2017), in NumPy.

Features are (C, N) arrays: C channels of one VGG level, N positions. A picture's statistics at a
level are the mean (C,) and the covariance (C, C) of its features.

    whiten(f)  = E_c D_c^-1/2 E_c^T (f - m_c)            identity covariance, zero mean
    colour(w)  = E_s D_s^+1/2 E_s^T  w + m_s              the style's covariance and mean
    result     = strength * colour(whiten(f)) + (1 - strength) * f

where cov_c = E_c D_c E_c^T and cov_s = E_s D_s E_s^T (eigendecompositions). Eigenvalues under
EIGEN_FLOOR (relative to the largest) are dropped, as in the paper: flat directions of the
content would otherwise be blown up into noise. A blend of styles mixes their colouring
transforms (the matrix square roots of the covariances, and the means) with the blend's weights,
which is the paper's interpolation of the coloured features, done once on the statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

EIGEN_FLOOR = 1e-5  # eigenvalues below this fraction of the largest count as zero
EPS = 1e-8


@dataclass(frozen=True)
class Stats:
    """mean (C,) and covariance (C, C), float64, of one level's features."""

    mean: np.ndarray
    cov: np.ndarray

    @property
    def channels(self) -> int:
        return self.mean.shape[0]

    @cached_property
    def root(self) -> np.ndarray:
        """cov^1/2, the colouring matrix (computed once: a style colours many pictures)."""
        return matrix_power(self.cov, 0.5)


def as_matrix(features: np.ndarray) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) or (C, N) features -> (C, N) float64."""
    features = np.asarray(features)
    if features.ndim == 4:
        if features.shape[0] != 1:
            raise ValueError(f"one picture's features at a time, got batch {features.shape[0]}")
        features = features[0]
    return features.reshape(features.shape[0], -1).astype(np.float64)


def stats_of(features: np.ndarray) -> Stats:
    """The mean and (unbiased) covariance of (C, N) features (or (C, H, W)); float32 features
    (the encoders') are summed in float32, the product's only large cost, others in float64."""
    features = np.asarray(features)
    dtype = np.float32 if features.dtype == np.float32 else np.float64
    matrix = (features[0] if features.ndim == 4 and features.shape[0] == 1 else features)
    matrix = matrix.reshape(matrix.shape[0], -1).astype(dtype, copy=False)
    mean = matrix.mean(axis=1, dtype=np.float64)
    centred = matrix - mean[:, None].astype(dtype)
    count = max(1, matrix.shape[1] - 1)
    return Stats(mean=mean, cov=(centred @ centred.T).astype(np.float64) / count)


def _eigen(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and vectors of a symmetric matrix, those under the floor dropped."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2.0)
    keep = values > max(values.max(initial=0.0) * EIGEN_FLOOR, EPS)
    return values[keep], vectors[:, keep]


def matrix_power(cov: np.ndarray, power: float) -> np.ndarray:
    """cov^power on the kept eigen-directions (power -1/2: whitening, +1/2: colouring)."""
    values, vectors = _eigen(cov)
    return (vectors * values ** power) @ vectors.T


def whitening_matrix(content: Stats) -> np.ndarray:
    return matrix_power(content.cov, -0.5)


def colouring_matrix(style: Stats) -> np.ndarray:
    return style.root


def whiten(features: np.ndarray, content: Stats | None = None) -> np.ndarray:
    """(C, N) -> whitened (C, N): zero mean, identity covariance on the kept directions."""
    matrix = as_matrix(features)
    content = content or stats_of(matrix)
    return whitening_matrix(content) @ (matrix - content.mean[:, None])


def colour(whitened: np.ndarray, style: Stats) -> np.ndarray:
    """Whitened (C, N) -> features with the style's covariance and mean."""
    return colouring_matrix(style) @ as_matrix(whitened) + style.mean[:, None]


@dataclass(frozen=True)
class Transform:
    """One level's affine map, f -> matrix @ f + offset, with strength folded in:
    strength * (colour(whiten(f))) + (1 - strength) * f. Fixed statistics, so every tile of a
    picture gets the same map."""

    matrix: np.ndarray  # (C, C)
    offset: np.ndarray  # (C,)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(N, C, h, w), (C, h, w) or (C, N) features -> the same shape; float64 stays float64,
        anything else is computed in float32 (the ONNX features)."""
        features = np.asarray(features)
        dtype = np.float64 if features.dtype == np.float64 else np.float32
        shape = features.shape
        rows = features.reshape(1, *shape) if features.ndim == 2 else features.reshape(-1, shape[-3], shape[-2] * shape[-1])
        out = np.matmul(self.matrix.astype(dtype), rows.astype(dtype, copy=False)) + self.offset.astype(dtype)[:, None]
        return out.reshape(shape)


def transform_for(content: Stats, style: Stats, strength: float = 1.0) -> Transform:
    """The WCT map that takes features with the `content` statistics to the `style` ones."""
    if content.channels != style.channels:
        raise ValueError(f"content has {content.channels} channels, the style {style.channels}")
    colouring = colouring_matrix(style) @ whitening_matrix(content)
    offset = style.mean - colouring @ content.mean
    identity = np.eye(content.channels)
    return Transform(matrix=strength * colouring + (1.0 - strength) * identity, offset=strength * offset)


def wct(features: np.ndarray, style: Stats, strength: float = 1.0, content: Stats | None = None) -> np.ndarray:
    """Whiten `features` with their own statistics (or `content`'s) and colour them with the style's."""
    matrix = as_matrix(features)
    return transform_for(content or stats_of(matrix), style, strength)(matrix)


def blend(stats: Sequence[Stats], weights: Sequence[float]) -> Stats:
    """A mix of styles: colouring matrices (cov^1/2) and means mixed with `weights` (normalised to sum 1)."""
    if not stats or len(stats) != len(weights):
        raise ValueError("a blend needs one weight per style")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError("blend weights must be >= 0 and not all 0")
    shares = [float(weight) / total for weight in weights]
    if len(stats) == 1:
        return stats[0]
    root = sum(share * colouring_matrix(item) for share, item in zip(shares, stats))
    mean = sum(share * item.mean for share, item in zip(shares, stats))
    return Stats(mean=mean, cov=root @ root.T)
