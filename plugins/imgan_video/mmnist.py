"""Moving MNIST, made by code: two MNIST digits bouncing inside a 64x64 frame.

As in Srivastava et al. (2015): each 28x28 digit starts at a random place, moves in a random
direction at a constant speed (a tenth of the free range per frame, 3.6 px at 64x64) and bounces
off the frame's edges; overlapping digits combine by their maximum. Training sequences use MNIST
test digits 0-7999 and are drawn afresh every time; the test set is 2,000 sequences from digits
8000-9999, sequence i generated from the seed (TEST_SEED, i) alone, so the first N of it are
the same whoever asks for N. NumPy only: evaluation and `imgan predict --mmnist` use it too.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from imgan.errors import InputError

DIGIT_SIZE = 28
FRAME_SIZE = 64
SEQUENCE_LENGTH = 20  # 10 context + 10 future
DIGITS_PER_SEQUENCE = 2
SPEED = 0.1  # per frame, as a fraction of the range a digit can move in
TRAIN_DIGITS = range(0, 8000)
TEST_DIGITS = range(8000, 10000)
TEST_SEQUENCES = 2000
TEST_SEED = 20150701
MNIST_FILE = "t10k-images-idx3-ubyte.gz"
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions


def find_mnist(path: str | os.PathLike | None = None) -> Path:
    """The MNIST images file: `path`, else $IMGAN_MNIST, else $IMGAN_HOME/mnist/, else a development
    checkout's ../shared/assets/mnist/. InputError naming what to pass when none exists."""
    if path is not None:
        return _existing(Path(path).expanduser())
    if os.environ.get("IMGAN_MNIST"):
        return _existing(Path(os.environ["IMGAN_MNIST"]).expanduser())
    from imgan.weights import imgan_home

    candidates = [imgan_home() / "mnist" / MNIST_FILE,
                  Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "mnist" / MNIST_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError("the MNIST digits for Moving MNIST were not found",
                     hint=f"pass --mnist PATH/{MNIST_FILE} (the MNIST test set, IDX format) or set IMGAN_MNIST")


def _existing(path: Path) -> Path:
    if path.is_dir():
        path = path / MNIST_FILE
    if not path.is_file():
        raise InputError("MNIST file not found", path=path, hint=f"pass the path of {MNIST_FILE}")
    return path


def load_digits(path: str | os.PathLike | None = None) -> np.ndarray:
    """All digits of an IDX image file (gzipped or not) as (count, 28, 28) uint8."""
    source = find_mnist(path)
    opener = gzip.open if source.suffix == ".gz" else open
    try:
        with opener(source, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read the MNIST file ({exc})", path=source, hint="the file may be truncated") from None
    header = np.frombuffer(raw[:16], dtype=">u4") if len(raw) >= 16 else np.zeros(0)
    if len(header) != 4 or header[0] != _IDX_IMAGES_MAGIC:
        raise InputError("not an IDX image file", path=source, hint=f"pass {MNIST_FILE} from the MNIST distribution")
    count, rows, cols = (int(value) for value in header[1:])
    if len(raw) != 16 + count * rows * cols:
        raise InputError(f"the IDX header announces {count} images of {rows}x{cols}, the file holds "
                         f"{len(raw) - 16} bytes", path=source, hint="the file is truncated")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def make_sequence(digits: np.ndarray, rng: np.random.Generator, *, length: int = SEQUENCE_LENGTH,
                  size: int = FRAME_SIZE, count: int = DIGITS_PER_SEQUENCE) -> np.ndarray:
    """One sequence (length, size, size) uint8 of `count` digits picked from `digits` (n, d, d)."""
    digit_size = digits.shape[1]
    free = size - digit_size  # positions a digit's top-left corner can take: 0..free
    frames = np.zeros((length, size, size), dtype=np.uint8)
    for _ in range(count):
        digit = digits[rng.integers(len(digits))]
        rows, cols = _bouncing_path(rng, length, free)
        for frame, top, left in zip(frames, rows, cols):
            window = frame[top : top + digit_size, left : left + digit_size]
            np.maximum(window, digit, out=window)
    return frames


def _bouncing_path(rng: np.random.Generator, length: int, free: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer top-left corners (rows, cols) of a digit moving straight and bouncing off the edges."""
    position = rng.uniform(0.0, free, size=2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    velocity = SPEED * free * np.array([np.sin(angle), np.cos(angle)])
    path = np.empty((length, 2))
    for t in range(length):
        path[t] = position
        position = position + velocity
        for axis in range(2):  # reflect at the walls: the distance past a wall is travelled back
            if position[axis] < 0:
                position[axis], velocity[axis] = -position[axis], -velocity[axis]
            elif position[axis] > free:
                position[axis], velocity[axis] = 2 * free - position[axis], -velocity[axis]
    corners = np.clip(np.rint(path), 0, free).astype(np.int64)
    return corners[:, 0], corners[:, 1]


def digit_split(all_digits: np.ndarray, split: str) -> np.ndarray:
    """The digits of the "train" (0-7999) or "test" (8000-9999) split."""
    chosen = TRAIN_DIGITS if split == "train" else TEST_DIGITS
    return all_digits[chosen.start : chosen.stop]


def fixed_test_set(all_digits: np.ndarray, count: int = TEST_SEQUENCES, *, start: int = 0,
                   length: int = SEQUENCE_LENGTH) -> np.ndarray:
    """Sequences start .. start+count-1 of the fixed test set: (count, length, 64, 64) uint8."""
    if start < 0 or count < 1 or start + count > TEST_SEQUENCES:
        raise InputError(f"the Moving MNIST test set has {TEST_SEQUENCES} sequences; asked for "
                         f"{start}..{start + count - 1}", hint=f"ask for 1 to {TEST_SEQUENCES} sequences")
    pool = digit_split(all_digits, "test")
    return np.stack([make_sequence(pool, np.random.default_rng((TEST_SEED, index)), length=length)
                     for index in range(start, start + count)])
