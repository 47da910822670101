"""The one image reader and writer: EXIF orientation, alpha, palettes, 16 bits, ICC profiles.

Pixels come out upright, as (H, W, 3) RGB uint8 or uint16 with an optional alpha plane. Pillow
decodes almost everything; OpenCV decodes and encodes 16-bit colour PNG/TIFF, which Pillow cuts
to 8 bits. Every failure is an `InputError`/`OutputError`/`UsageError` that names the file.

Writing keeps what the output format can hold and reduces the rest, on purpose and documented:
alpha is composited on white for JPEG/BMP, 16 bits become 8 for JPEG/WebP/BMP, and a 16-bit
gray picture with alpha is stored as 16-bit RGBA (OpenCV writes no two-channel images). ICC and
EXIF are not stored in 16-bit colour TIFF (OpenCV's TIFF encoder has no metadata) nor in BMP, and
the tags of a TIFF source are not carried over as EXIF. CMYK is converted without colour management.
GIF is read (its first frame; transparency kept) but not written. `read_image_bytes` and
`write_image_stream` are the same reader and writer for stdin and stdout (`-`).
"""
from __future__ import annotations

import dataclasses
import io
import os
import struct
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from PIL import Image

from ..errors import InputError, OutputError, UsageError
from ..fs import atomic_write

from . import DEFAULT_MAX_PIXELS  # noqa: F401  (re-exported)

_FORMAT_BY_EXTENSION = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                        ".tif": "TIFF", ".tiff": "TIFF"}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMAT_BY_EXTENSION)  # read and written
READABLE_EXTENSIONS: frozenset[str] = SUPPORTED_EXTENSIONS | {".gif"}  # GIF: input only, its first frame
# Decoding is limited to these formats whatever the extension says, so an odd file never reaches
# a rarely used decoder. (Pillow's JPEG opener also covers multi-picture JPEGs from cameras.)
_READABLE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
_FORMATS_WITH_ALPHA = {"PNG", "WEBP", "TIFF"}
_FORMATS_WITH_16_BITS = {"PNG", "TIFF"}
_DEFAULT_QUALITY = {"JPEG": 95, "WEBP": 90}
_ORIENTATION_TAG = 0x0112
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"
_MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

# EXIF orientation -> the array operation that makes the picture upright.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


@dataclass
class Picture:
    rgb: np.ndarray  # (H, W, 3) uint8 or uint16, upright
    alpha: np.ndarray | None  # (H, W), same dtype as rgb
    gray: bool = False  # the source had one channel; written back as grayscale
    icc_profile: bytes | None = None
    exif: bytes | None = None  # Orientation already reset to 1
    source: Path | None = None

    def __post_init__(self) -> None:
        rgb, alpha = self.rgb, self.alpha
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in _MAX_VALUE:
            raise UsageError(f"Picture.rgb must be (H, W, 3) uint8 or uint16, got {rgb.shape} {rgb.dtype}")
        if alpha is not None and (alpha.shape != rgb.shape[:2] or alpha.dtype != rgb.dtype):
            raise UsageError(f"Picture.alpha must be {rgb.shape[:2]} {rgb.dtype}, got {alpha.shape} {alpha.dtype}")

    @property
    def bit_depth(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def replace(self, **changes) -> Picture:
        return dataclasses.replace(self, **changes)


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


# ---------------------------------------------------------------------------------------- values

def to_float(array: np.ndarray) -> np.ndarray:
    """uint8 / 255 or uint16 / 65535 as float32 in [0, 1]; float arrays pass through as float32."""
    if array.dtype in _MAX_VALUE:
        return array.astype(np.float32) / np.float32(_MAX_VALUE[array.dtype])
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise UsageError(f"to_float takes uint8, uint16 or float arrays, got {array.dtype}")


def from_float(array: np.ndarray, dtype) -> np.ndarray:
    """[0, 1] floats to uint8/uint16: clipped, then rounded to the nearest level."""
    dtype = np.dtype(dtype)
    if dtype not in _MAX_VALUE:
        raise UsageError(f"from_float makes uint8 or uint16, not {dtype}")
    scaled = np.clip(array, 0.0, 1.0) * np.float32(_MAX_VALUE[dtype])
    return np.rint(scaled).astype(dtype)


def long_side_size(height: int, width: int, long_side: int, *, multiple: int = 1) -> tuple[int, int]:
    """(width, height), as resize_plane takes it, of a picture scaled (aspect kept) to a longer side
    of `long_side`; both rounded to multiples of `multiple` (at least one multiple)."""
    scale = long_side / max(height, width)
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (width, height))


def resize_plane(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) array to size=(width, height), keeping its dtype.

    Area averaging when shrinking (no aliasing), bicubic when enlarging; integer results are
    clipped to their range by OpenCV.
    """
    width, height = size
    if array.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise UsageError(f"resize_plane takes uint8, uint16 or float arrays, got {array.dtype}")
    if width < 1 or height < 1:
        raise UsageError(f"resize_plane needs a positive size, got {size}")
    if (width, height) == (array.shape[1], array.shape[0]):
        return array.copy()
    shrinking = width * height < array.shape[0] * array.shape[1]
    resized = cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return resized.reshape((height, width) + array.shape[2:])  # OpenCV drops a trailing 1-channel axis


# ------------------------------------------------------------------------------------------ read

def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode an image file into an upright Picture. max_pixels=None disables the size guard."""
    path = Path(path)
    _check_input_file(path)
    return _read(path, path, max_pixels)


def read_image_bytes(data: bytes, *, name: str | os.PathLike = "<stdin>",
                     max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """read_image for an encoded image held in memory (e.g. stdin); `name` labels errors and the Picture."""
    label = Path(name)
    if not data:
        raise InputError("no image data (0 bytes)", path=label,
                         hint="pipe an image file in, e.g. `cat a.png | imgan ...`")
    return _read(io.BytesIO(data), label, max_pixels)


def _read(source: Path | io.BytesIO, path: Path, max_pixels: int | None) -> Picture:
    with _pillow_size_check_off(), _decode_errors_named(path):
        with Image.open(source, formats=_READABLE_FORMATS) as image:
            _check_pixel_count(image.size, max_pixels, path)  # header only: no pixel decoded yet
            image.load()
            rgb, alpha, gray = _decode_planes(image, source, path)
            orientation, exif = _upright_exif(image)
            icc = _rgb_icc_profile(image)
    rgb, alpha = (_make_upright(plane, orientation) for plane in (rgb, alpha))
    return Picture(rgb=rgb, alpha=alpha, gray=gray, icc_profile=icc, exif=exif, source=path)


def _check_input_file(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise InputError(f"broken symbolic link: its target '{os.readlink(path)}' does not exist", path=path,
                         hint="fix or remove the link")
    if path.is_dir():
        raise InputError("is a folder, not an image file", path=path, hint="pass the path of an image file")
    if not path.exists():
        raise InputError("file not found", path=path, hint="check the spelling and the current folder")
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path=path,
                         hint="it may still be downloading or copying; re-create the file")


def _check_pixel_count(size: tuple[int, int], max_pixels: int | None, path: Path) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(f"image is {width}x{height} = {width * height:,} pixels, more than the limit of "
                         f"{max_pixels:,} (a guard against decompression bombs)", path=path,
                         hint="pass --max-pixels N to allow it")


_size_check_lock = threading.Lock()
_size_check_users = 0
_size_check_saved: int | None = None


@contextmanager
def _pillow_size_check_off() -> Iterator[None]:
    """Turn Pillow's own decompression-bomb check off while reading: max_pixels is the one limit.

    Counted so that reads in several threads restore Pillow's value only when the last one ends.
    """
    global _size_check_users, _size_check_saved
    with _size_check_lock:
        if _size_check_users == 0:
            _size_check_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _size_check_users += 1
    try:
        yield
    finally:
        with _size_check_lock:
            _size_check_users -= 1
            if _size_check_users == 0:
                Image.MAX_IMAGE_PIXELS = _size_check_saved


@contextmanager
def _decode_errors_named(path: Path) -> Iterator[None]:
    """Pillow and OpenCV raise many types for bad files; callers get one InputError that names the file."""
    try:
        yield
    except PermissionError as exc:
        raise InputError("permission denied", path=path, hint="check the file's read permissions") from exc
    except Image.UnidentifiedImageError as exc:
        raise InputError("not a readable image (unknown format or damaged header)", path=path,
                         hint=f"supported formats: {', '.join(sorted(READABLE_EXTENSIONS))}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, zlib.error,
            cv2.error) as exc:
        raise InputError(f"cannot decode the image ({exc})", path=path,
                         hint="the file may be truncated or corrupt; re-export or re-download it") from exc


def _decode_planes(image: Image.Image, source: Path | io.BytesIO,
                   path: Path) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Colour (H, W, 3), alpha (H, W) or None, and whether the source is grayscale; not yet upright."""
    bits, gray = _stored_layout(image, source)
    if bits == 16 and not image.mode.startswith("I"):
        return _decode_with_opencv(source, path, gray)  # Pillow would keep only 8 of the 16 bits
    if image.mode == "F":
        raise InputError("32-bit float images are not supported", path=path,
                         hint="convert it to an 8- or 16-bit image first")
    if image.mode.startswith("I"):
        return _gray_as_rgb(_as_uint16(np.asarray(image), path)), None, True
    return _decode_with_pillow(image)


def _stored_layout(image: Image.Image, source: Path | io.BytesIO) -> tuple[int, bool]:
    """(bits per sample, grayscale) as the PNG or TIFF header states them; (8, False) otherwise."""
    if image.format == "PNG":
        # IHDR is the first chunk: bit depth, then colour type
        header = bytes(source.getbuffer()[24:26]) if isinstance(source, io.BytesIO) else _file_bytes(source, 24, 2)
        bit_depth, colour_type = header
        return bit_depth, colour_type in (0, 4)
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, 8)  # BitsPerSample: one value, or one per channel
        return max(bits) if isinstance(bits, tuple) else bits, image.tag_v2.get(262) in (0, 1)
    return 8, False


def _file_bytes(path: Path, offset: int, count: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(count)


def _decode_with_pillow(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool]:
    gray = image.mode in ("1", "L", "LA", "La")
    has_alpha = "A" in image.getbands() or "transparency" in image.info  # tRNS of palette/L/RGB images
    mode = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
    # CMYK becomes RGB by Pillow's plain formula (no colour management).
    array = np.array(image if image.mode == mode else image.convert(mode))  # (H, W) or (H, W, C)
    colour = _gray_as_rgb(array[..., 0] if has_alpha else array) if gray else array[..., :3]
    return colour, array[..., -1] if has_alpha else None, gray


def _decode_with_opencv(source: Path | io.BytesIO, path: Path,
                        gray: bool) -> tuple[np.ndarray, np.ndarray | None, bool]:
    # imdecode of the bytes, not imread: it accepts any path name. UNCHANGED keeps 16 bits and alpha
    # and ignores EXIF orientation, which read_image applies itself.
    data = (np.frombuffer(source.getbuffer(), dtype=np.uint8) if isinstance(source, io.BytesIO)
            else np.fromfile(source, dtype=np.uint8))
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError("OpenCV could not decode this 16-bit image", path=path,
                         hint="re-export it, or save it with 8 bits per channel")
    array = array[..., None] if array.ndim == 2 else array  # (H, W, C), BGR(A) or gray(+alpha)
    channels = array.shape[2]
    colour = _gray_as_rgb(array[..., 0]) if channels <= 2 else array[..., 2::-1]
    return colour, array[..., -1] if channels in (2, 4) else None, gray


def _gray_as_rgb(plane: np.ndarray) -> np.ndarray:
    return np.repeat(plane[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)


def _as_uint16(array: np.ndarray, path: Path) -> np.ndarray:
    """Pillow's 16/32-bit integer gray modes (I;16, I;16B, I) as native uint16."""
    if array.dtype != np.uint16 and array.size and (array.min() < 0 or array.max() > 65535):
        raise InputError("integer image values outside the 16-bit range 0-65535", path=path,
                         hint="rescale it to 16 bits per pixel first")
    return array.astype(np.uint16)


def _rgb_icc_profile(image: Image.Image) -> bytes | None:
    # A CMYK profile describes the CMYK values, not the RGB ones read_image makes from them.
    return None if image.mode == "CMYK" else image.info.get("icc_profile") or None


def _upright_exif(image: Image.Image) -> tuple[int, bytes | None]:
    """The EXIF orientation, and EXIF bytes that say "upright" for the pixels read_image returns."""
    exif = image.getexif()
    orientation = exif.get(_ORIENTATION_TAG, 1)
    # A TIFF's "EXIF" is its own layout (strip offsets, sizes): meaningless in another file.
    if not exif or image.format == "TIFF":
        return orientation, None
    if _ORIENTATION_TAG in exif:
        exif[_ORIENTATION_TAG] = 1
    return orientation, exif.tobytes()


def _make_upright(plane: np.ndarray | None, orientation: int) -> np.ndarray | None:
    if plane is None:
        return None
    return np.ascontiguousarray(_UPRIGHT.get(orientation, lambda a: a)(plane))


# ----------------------------------------------------------------------------------------- write

def write_image(picture: Picture, path: str | os.PathLike, *, quality: int | None = None,
                overwrite: bool = False) -> Path:
    """Encode in the format the extension names, atomically. quality: JPEG/WebP only (1-100)."""
    path = Path(path)
    fmt = _format_for(path)
    quality = _quality_for(fmt, quality)
    picture = _fit_to_format(picture, fmt)
    return atomic_write(path, lambda temp: _encode(picture, fmt, quality, temp), overwrite=overwrite)


def write_image_stream(picture: Picture, stream, *, ext: str = ".png", quality: int | None = None) -> None:
    """write_image into a binary stream (e.g. stdout's buffer), in the format `ext` names.

    Encoded in memory first, so a failing encoder writes nothing to the stream."""
    fmt = _format_for(None, ext)
    quality = _quality_for(fmt, quality)
    buffer = io.BytesIO()
    _encode(_fit_to_format(picture, fmt), fmt, quality, buffer)
    stream.write(buffer.getbuffer())
    stream.flush()


def check_writable_extension(path: str | os.PathLike | None = None, *, ext: str | None = None) -> None:
    """UsageError unless write_image can write the format that `path`'s extension, or `ext`
    (e.g. "jpg", ".png"), names: a check to make before any work."""
    _format_for(None if path is None else Path(path), ext)


def _extension_list() -> str:
    return ", ".join(sorted(SUPPORTED_EXTENSIONS))


def _format_for(path: Path | None, ext: str | None = None) -> str:
    """The format for `path`'s extension, or for `ext` when no path is given."""
    if path is not None:
        suffix = path.suffix
    else:
        suffix = ext if ext.startswith(".") else f".{ext}"
    fmt = _FORMAT_BY_EXTENSION.get(suffix.lower())
    if fmt is None:
        what = f"cannot write images with the extension '{suffix}'"
        if suffix.lower() == ".gif":
            what += " (GIF is only read, as its first frame)"
        raise UsageError(what, path=path, hint=f"use one of {_extension_list()}")
    return fmt


def _quality_for(fmt: str, quality: int | None) -> int | None:
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, got {quality}", hint="pass --quality 1-100")
    return _DEFAULT_QUALITY.get(fmt) if quality is None else quality


def _fit_to_format(picture: Picture, fmt: str) -> Picture:
    if picture.alpha is not None and fmt not in _FORMATS_WITH_ALPHA:
        picture = _composite_on_white(picture)
    if picture.bit_depth == 16 and fmt not in _FORMATS_WITH_16_BITS:
        alpha = None if picture.alpha is None else from_float(to_float(picture.alpha), np.uint8)
        picture = picture.replace(rgb=from_float(to_float(picture.rgb), np.uint8), alpha=alpha)
    return picture


def _composite_on_white(picture: Picture) -> Picture:
    alpha = to_float(picture.alpha)[..., None]  # (H, W, 1)
    flat = to_float(picture.rgb) * alpha + (1.0 - alpha)
    return picture.replace(rgb=from_float(flat, picture.rgb.dtype), alpha=None)


def _encode(picture: Picture, fmt: str, quality: int | None, target: Path | io.BytesIO) -> None:
    if picture.bit_depth == 16 and (picture.alpha is not None or not picture.gray):
        _encode_with_opencv(picture, fmt, target)  # Pillow has no 16-bit colour modes
    else:
        _encode_with_pillow(picture, fmt, quality, target)


def _writes_gray(picture: Picture, fmt: str) -> bool:
    return picture.gray and fmt != "WEBP"  # WebP stores colour only


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) luminance, same dtype; exact for the equal channels of a gray source."""
    return np.rint(rgb.astype(np.float32) @ _LUMA_WEIGHTS).astype(rgb.dtype)


def _encode_with_pillow(picture: Picture, fmt: str, quality: int | None, target: Path | io.BytesIO) -> None:
    gray = _writes_gray(picture, fmt)
    colour = _luma(picture.rgb)[..., None] if gray else picture.rgb  # (H, W, 1 or 3)
    planes = colour if picture.alpha is None else np.dstack([colour, picture.alpha])
    image = Image.fromarray(planes[..., 0] if planes.shape[2] == 1 else planes)  # L, I;16, LA, RGB, RGBA
    image.save(target, format=fmt, **_pillow_options(picture, fmt, quality, gray))


def _pillow_options(picture: Picture, fmt: str, quality: int | None, gray: bool) -> dict:
    options: dict = {}
    icc = _matching_icc(picture.icc_profile, gray)
    if icc and fmt != "BMP":
        options["icc_profile"] = icc
    if picture.exif and fmt != "BMP":
        options["exif"] = picture.exif
    if fmt == "JPEG":
        # Full-resolution colour at high quality: halved chroma blurs the edges a model sharpened.
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        options.update(quality=quality)
    elif fmt == "TIFF":
        options.update(compression="tiff_lzw")
    return options


def _matching_icc(icc: bytes | None, gray: bool) -> bytes | None:
    """The profile if it describes the written channels (GRAY or RGB); a mismatched one is invalid."""
    if not icc or len(icc) < 20:
        return None
    return icc if icc[16:20] == (b"GRAY" if gray else b"RGB ") else None


def _encode_with_opencv(picture: Picture, fmt: str, target: Path | io.BytesIO) -> None:
    bgr = picture.rgb[..., ::-1]
    planes = bgr if picture.alpha is None else np.dstack([bgr, picture.alpha])  # (H, W, 3 or 4)
    kinds, blobs = _opencv_metadata(picture, fmt)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "PNG" else []
    ok, buffer = cv2.imencodeWithMetadata(".png" if fmt == "PNG" else ".tiff", planes, kinds, blobs, params)
    if not ok:
        raise OutputError(f"OpenCV could not encode this 16-bit {fmt} image",
                          hint="write 8-bit output instead (e.g. .jpg)")
    if isinstance(target, io.BytesIO):
        target.write(buffer.tobytes())
    else:
        target.write_bytes(buffer.tobytes())


def _opencv_metadata(picture: Picture, fmt: str) -> tuple[list[int], list[np.ndarray]]:
    if fmt != "PNG":  # OpenCV stores no metadata in TIFF
        return [], []
    kinds, blobs = [], []
    icc = _matching_icc(picture.icc_profile, gray=False)
    if icc:
        kinds.append(cv2.IMAGE_METADATA_ICCP)
        blobs.append(np.frombuffer(icc, dtype=np.uint8))
    if picture.exif:
        kinds.append(cv2.IMAGE_METADATA_EXIF)
        blobs.append(np.frombuffer(picture.exif.removeprefix(b"Exif\x00\x00"), dtype=np.uint8))  # eXIf holds bare TIFF data
    return kinds, blobs

