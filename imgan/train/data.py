"""Image-folder datasets, random crops, seeds and loaders for training.

All augmentation randomness comes from torch's RNG (the global generator in the main
process, the per-worker seed in loader workers), so a run resumed with its saved torch RNG
state and loader generator state draws the same crops.
"""
from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import TrainingError, UsageError

TRAINING_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, sorted so every run sees the same order."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise TrainingError("training image folder not found", path=root, hint="check the --data path")
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in TRAINING_IMAGE_EXTENSIONS)
    if not files:
        raise TrainingError(
            "no training images found",
            path=root,
            hint=f"put {', '.join(TRAINING_IMAGE_EXTENSIONS)} files there" + ("" if recursive else " or search recursively"),
        )
    return files


def _read_image(path: Path, grayscale: bool) -> np.ndarray:
    """(H,W,3) or (H,W) uint8, with the EXIF orientation applied."""
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("L" if grayscale else "RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise TrainingError(f"cannot read training image: {exc}", path=path, hint="remove or replace the file") from None


def _fit_to_crop(pixels: np.ndarray, crop: int) -> np.ndarray:
    """Upscale (bicubic, aspect kept) an image whose shorter side is below ``crop``."""
    height, width = pixels.shape[:2]
    if min(height, width) >= crop:
        return pixels
    factor = crop / min(height, width)
    size = (max(crop, math.ceil(width * factor)), max(crop, math.ceil(height * factor)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))


class ImageFolderCrops(Dataset):
    """Random ``crop`` x ``crop`` patches of a set of images, as (C,crop,crop) float32 in [0, 1].

    C is 3 (RGB), or 1 with ``grayscale``. ``flips``: random horizontal flip; ``rotations``:
    random multiple of 90° (with flips, all 8 symmetries of the square). Images smaller than
    the crop are upscaled to fit. Length is len(files) * repeats: each item is a fresh random
    crop of image ``index % len(files)``. With ``cache`` each decoded image is kept as uint8.
    """

    def __init__(
        self,
        folder_or_files: str | os.PathLike | Sequence[str | os.PathLike],
        crop: int,
        *,
        flips: bool = True,
        rotations: bool = False,
        repeats: int = 1,
        cache: bool = True,
        grayscale: bool = False,
    ):
        if crop < 1 or repeats < 1:
            raise UsageError(f"crop and repeats must be positive, got crop={crop}, repeats={repeats}")
        if isinstance(folder_or_files, (str, os.PathLike)):
            self.files = list_images(folder_or_files)
        else:
            self.files = [Path(p) for p in folder_or_files]
            if not self.files:
                raise TrainingError("no training images given")
        self.crop = crop
        self.flips = flips
        self.rotations = rotations
        self.repeats = repeats
        self.cache = cache
        self.grayscale = grayscale
        self._cached: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.files) * self.repeats

    def image(self, file_index: int) -> Tensor:
        """(C,H,W) uint8 of one file, at least ``crop`` on each side."""
        if file_index in self._cached:
            return self._cached[file_index]
        pixels = _fit_to_crop(_read_image(self.files[file_index], self.grayscale), self.crop)
        planes = torch.from_numpy(np.array(pixels))  # a writable copy of PIL's read-only buffer
        planes = planes.unsqueeze(0) if planes.ndim == 2 else planes.permute(2, 0, 1).contiguous()
        if self.cache:
            self._cached[file_index] = planes
        return planes

    def preload(self) -> None:
        """Decode every image now, e.g. before forking loader workers so they share the cache."""
        if self.cache:
            for file_index in range(len(self.files)):
                self.image(file_index)

    def __getitem__(self, index: int) -> Tensor:
        if not 0 <= index < len(self):
            raise IndexError(index)
        planes = self.image(index % len(self.files))
        height, width = planes.shape[1:]
        top = int(torch.randint(0, height - self.crop + 1, ()).item())
        left = int(torch.randint(0, width - self.crop + 1, ()).item())
        patch = planes[:, top : top + self.crop, left : left + self.crop]
        if self.flips and torch.rand(()) < 0.5:
            patch = patch.flip(-1)
        if self.rotations:
            patch = torch.rot90(patch, int(torch.randint(0, 4, ()).item()), dims=(1, 2))
        return patch.float().div_(255.0)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Give each loader worker distinct, reproducible NumPy and ``random`` seeds.

    torch already seeds worker i with base_seed + i (base_seed drawn from the loader's
    generator); the other libraries would otherwise repeat the parent's state in every worker.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    workers: int = 0,
    shuffle: bool = True,
    distributed: bool = False,
    drop_last: bool = True,
) -> DataLoader:
    """A DataLoader whose order and worker seeds follow ``seed``.

    The shuffle order and the workers' base seed come from ``loader.generator``; save and
    restore its state (with torch's RNG state) to resume exactly. With ``distributed`` a
    DistributedSampler splits the data; call ``loader.sampler.set_epoch(epoch)`` every epoch.
    Workers are not persistent, so each epoch's workers are reseeded from the generator;
    a dataset with ``preload`` is decoded first so forked workers share its cache.
    """
    if batch_size < 1 or workers < 0:
        raise UsageError(f"batch size must be >= 1 and workers >= 0, got {batch_size} and {workers}")
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last) if distributed else None
    per_replica = len(sampler) if sampler is not None else len(dataset)
    if drop_last and per_replica < batch_size:
        raise TrainingError(
            f"only {per_replica} samples for batch size {batch_size}: every batch would be dropped",
            hint="use more images, a larger repeats, or a smaller batch size",
        )
    if workers > 0 and hasattr(dataset, "preload"):
        dataset.preload()
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        worker_init_fn=worker_init_fn if workers > 0 else None,
        generator=generator,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
    )


def bicubic_downscale(hr: Tensor, factor: int) -> Tensor:
    """(N,C,H,W) or (C,H,W) in [0, 1] -> sides / factor, antialiased bicubic, clamped to [0, 1].

    H and W must be multiples of ``factor`` so the low- and high-resolution pixels align.
    """
    if factor < 1:
        raise UsageError(f"downscale factor must be >= 1, got {factor}")
    height, width = hr.shape[-2:]
    if height % factor or width % factor:
        raise UsageError(
            f"image size {height}x{width} is not a multiple of {factor}",
            hint="crop the high-resolution image to a multiple of the scale first",
        )
    batched = hr.unsqueeze(0) if hr.ndim == 3 else hr
    low = F.interpolate(
        batched, size=(height // factor, width // factor), mode="bicubic", align_corners=False, antialias=True
    ).clamp_(0.0, 1.0)
    return low.squeeze(0) if hr.ndim == 3 else low
