from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from imgan.errors import InputError, OutputError, UsageError
from imgan.fs import atomic_write
from imgan.io.images import (
    DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, Picture, from_float, is_image_path, read_image,
    resize_plane, to_float, write_image,
)

REPO = Path(__file__).resolve().parents[1]
ORIENTATION = 0x0112
RED, BLUE = (255, 0, 0), (0, 0, 255)
VALUES_16 = np.array([[[0, 1, 65535], [40000, 2, 3], [7, 8, 9]],
                      [[65534, 300, 12345], [256, 257, 258], [1000, 20000, 30000]]], dtype=np.uint16)  # (2, 3, 3)
ALPHA_16 = np.array([[0, 65535, 1], [30000, 2, 65534]], dtype=np.uint16)


# ----------------------------------------------------------------------------------- file makers

def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "TestCam"  # Make: shows the rest of EXIF survives
    return exif.tobytes()


def exif_of(data: bytes | None) -> dict:
    exif = Image.Exif()
    if data:
        exif.load(data)
    return dict(exif)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_16bit(planes: np.ndarray, colour_type: int, *, width: int | None = None, height: int | None = None) -> bytes:
    """A 16-bit PNG by hand (Pillow and OpenCV write no 16-bit gray+alpha). Header size may lie."""
    rows = planes.astype(">u2").reshape(planes.shape[0], -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width or planes.shape[1], height or planes.shape[0], 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def two_colour_image(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue: a non-square image whose rotation is easy to see."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = RED
    array[:, width // 2:] = BLUE
    return Image.fromarray(array)


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256], axis=-1).astype(np.uint8)


def saved(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


# ----------------------------------------------------------------------------------- orientation

@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_like_pillow_does(tmp_path, orientation):
    pixels = np.arange(3 * 2 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10  # (2, 3, 3): every pixel differs
    path = saved(Image.fromarray(pixels), tmp_path / "o.png", exif=exif_bytes(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    picture = read_image(path)
    np.testing.assert_array_equal(picture.rgb, expected)
    assert exif_of(picture.exif) == {ORIENTATION: 1, 0x010F: "TestCam"}


@pytest.mark.parametrize("orientation, top_left, top_right, size", [
    (6, RED, RED, (20, 40)),  # turned 90° clockwise: the left (red) half ends on top
    (3, BLUE, RED, (40, 20)),  # turned 180°: red ends on the right
])
def test_rotated_jpeg_comes_out_upright_and_is_written_with_orientation_1(tmp_path, orientation, top_left,
                                                                          top_right, size):
    path = saved(two_colour_image(40, 20), tmp_path / "photo.jpg", exif=exif_bytes(orientation), quality=95)
    picture = read_image(path)
    assert picture.size == size
    np.testing.assert_allclose(picture.rgb[2, 2], top_left, atol=8)
    np.testing.assert_allclose(picture.rgb[2, -3], top_right, atol=8)

    written = write_image(picture, tmp_path / "out.jpg")
    assert Image.open(written).getexif()[ORIENTATION] == 1
    assert read_image(written).size == size  # not turned a second time


def test_orientation_is_applied_to_16_bit_colour_read_through_opencv(tmp_path):
    bgr = VALUES_16[..., ::-1]
    ok, data = cv2.imencodeWithMetadata(".png", bgr, [cv2.IMAGE_METADATA_EXIF],
                                        [np.frombuffer(exif_bytes(6)[6:], dtype=np.uint8)])
    path = tmp_path / "rotated16.png"
    path.write_bytes(data.tobytes())
    picture = read_image(path)
    np.testing.assert_array_equal(picture.rgb, np.rot90(VALUES_16, -1))
    assert exif_of(picture.exif)[ORIENTATION] == 1


# ------------------------------------------------------------------------------------ pixel modes

def test_grayscale_is_read_as_equal_rgb_channels(tmp_path):
    gray = np.array([[0, 50], [200, 255]], dtype=np.uint8)
    picture = read_image(saved(Image.fromarray(gray), tmp_path / "gray.png"))
    assert picture.gray and picture.alpha is None and picture.bit_depth == 8
    np.testing.assert_array_equal(picture.rgb, np.repeat(gray[..., None], 3, axis=2))


def test_rgba_and_la_split_into_colour_and_alpha(tmp_path):
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 128]]], dtype=np.uint8)
    picture = read_image(saved(Image.fromarray(rgba), tmp_path / "rgba.png"))
    np.testing.assert_array_equal(picture.rgb, rgba[..., :3])
    np.testing.assert_array_equal(picture.alpha, [[0, 128]])
    assert not picture.gray

    la = np.array([[[90, 255], [30, 7]]], dtype=np.uint8)
    picture = read_image(saved(Image.fromarray(la), tmp_path / "la.png"))
    assert picture.gray
    np.testing.assert_array_equal(picture.rgb[..., 1], [[90, 30]])
    np.testing.assert_array_equal(picture.alpha, [[255, 7]])


@pytest.mark.parametrize("transparency, expected_alpha", [(1, [255, 0, 255]), (bytes([10, 20, 255]), [10, 20, 255])])
def test_palette_transparency_becomes_alpha(tmp_path, transparency, expected_alpha):
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.putdata([0, 1, 2])
    picture = read_image(saved(palette, tmp_path / "palette.png", transparency=transparency))
    np.testing.assert_array_equal(picture.rgb[0], [RED, (0, 255, 0), BLUE])
    np.testing.assert_array_equal(picture.alpha[0], expected_alpha)


def test_one_bit_image_reads_as_black_and_white_gray(tmp_path):
    bits = Image.fromarray(np.array([[0, 255, 0, 255]], dtype=np.uint8)).convert("1")
    picture = read_image(saved(bits, tmp_path / "bits.png"))
    assert picture.gray
    np.testing.assert_array_equal(picture.rgb[0, :, 0], [0, 255, 0, 255])


@pytest.mark.parametrize("cmyk, rgb", [((0, 255, 255, 0), RED), ((0, 0, 255, 0), (255, 255, 0)),
                                       ((0, 0, 0, 255), (0, 0, 0))])
def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, cmyk, rgb):
    picture = read_image(saved(Image.new("CMYK", (16, 16), cmyk), tmp_path / "print.jpg"))
    np.testing.assert_allclose(picture.rgb[8, 8], rgb, atol=6)
    assert picture.icc_profile is None


# ---------------------------------------------------------------------------------------- 16 bits

@pytest.mark.parametrize("name, array", [
    ("I16.png", ALPHA_16),  # Pillow: I;16
    ("I16B.tif", ALPHA_16.astype(">u2")),  # Pillow: I;16B
    ("I32.tif", ALPHA_16.astype(np.int32)),  # Pillow: I
])
def test_16_bit_grayscale_stays_uint16(tmp_path, name, array):
    picture = read_image(saved(Image.fromarray(array), tmp_path / name))
    assert picture.gray and picture.rgb.dtype == np.uint16 and picture.bit_depth == 16
    np.testing.assert_array_equal(picture.rgb, np.repeat(ALPHA_16[..., None], 3, axis=2))


def test_16_bit_colour_png_from_opencv_reads_in_rgb_order(tmp_path):
    path = tmp_path / "bgr16.png"
    path.write_bytes(cv2.imencode(".png", VALUES_16[..., ::-1].copy())[1].tobytes())  # OpenCV stores BGR arrays
    picture = read_image(path)
    assert picture.rgb.dtype == np.uint16 and not picture.gray
    np.testing.assert_array_equal(picture.rgb, VALUES_16)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("alpha", [None, ALPHA_16])
def test_16_bit_colour_round_trip_is_exact(tmp_path, ext, alpha):
    written = write_image(Picture(VALUES_16, alpha), tmp_path / f"deep{ext}")
    picture = read_image(written)
    assert picture.rgb.dtype == np.uint16
    np.testing.assert_array_equal(picture.rgb, VALUES_16)
    if alpha is None:
        assert picture.alpha is None
    else:
        np.testing.assert_array_equal(picture.alpha, alpha)


def test_16_bit_gray_with_alpha_png_keeps_both_planes(tmp_path):
    path = tmp_path / "la16.png"
    path.write_bytes(png_16bit(np.stack([ALPHA_16, ALPHA_16[::-1]], axis=-1), colour_type=4))
    picture = read_image(path)
    assert picture.gray and picture.rgb.dtype == np.uint16
    np.testing.assert_array_equal(picture.rgb[..., 2], ALPHA_16)
    np.testing.assert_array_equal(picture.alpha, ALPHA_16[::-1])


# ------------------------------------------------------------------------------------ ICC profile

@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_icc_profile_survives_read_and_write(tmp_path, ext):
    profile = srgb_profile()
    source = saved(Image.fromarray(gradient(16, 16)), tmp_path / f"in{ext}", icc_profile=profile)
    picture = read_image(source)
    assert picture.icc_profile == profile
    assert read_image(write_image(picture, tmp_path / f"out{ext}")).icc_profile == profile


def test_icc_profile_survives_16_bit_png(tmp_path):
    profile = srgb_profile()  # made once: a profile's header holds the second it was created in
    picture = Picture(VALUES_16, None, icc_profile=profile)
    assert read_image(write_image(picture, tmp_path / "deep.png")).icc_profile == profile


# ---------------------------------------------------------------------------------------- writing

@pytest.mark.parametrize("ext, magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8"), (".JPEG", b"\xff\xd8"),
                                        (".webp", b"RIFF"), (".bmp", b"BM"), (".tiff", b"II*\x00")])
def test_format_follows_the_extension(tmp_path, ext, magic):
    written = write_image(Picture(gradient(), None), tmp_path / f"out{ext}")
    assert written.read_bytes().startswith(magic)


def test_unknown_output_extension_names_the_supported_ones(tmp_path):
    with pytest.raises(UsageError) as caught:
        write_image(Picture(gradient(), None), tmp_path / "out.gif")
    assert ".gif" in caught.value.message and ".png" in caught.value.hint and ".webp" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext, default", [(".jpg", 95), (".webp", 90)])
def test_quality_default_and_override(tmp_path, ext, default):
    picture = Picture(gradient(), None)
    implicit = write_image(picture, tmp_path / f"implicit{ext}").read_bytes()
    explicit = write_image(picture, tmp_path / f"explicit{ext}", quality=default).read_bytes()
    small = write_image(picture, tmp_path / f"small{ext}", quality=20).read_bytes()
    assert implicit == explicit
    assert len(small) < len(explicit)
    with pytest.raises(UsageError, match="between 1 and 100"):
        write_image(picture, tmp_path / f"bad{ext}", quality=0)


@pytest.mark.parametrize("ext, exact", [(".png", True), (".tif", True), (".webp", False)])
def test_alpha_is_kept_where_the_format_holds_it(tmp_path, ext, exact):
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    picture = read_image(write_image(Picture(gradient(), alpha), tmp_path / f"out{ext}"))
    np.testing.assert_allclose(picture.alpha, alpha, atol=0 if exact else 2)


@pytest.mark.parametrize("ext", [".jpg", ".bmp"])
def test_alpha_is_composited_on_white_for_jpeg_and_bmp(tmp_path, ext):
    black = np.zeros((8, 24, 3), dtype=np.uint8)
    alpha = np.repeat(np.array([0, 128, 255], dtype=np.uint8), 8)[None].repeat(8, axis=0)  # (8, 24) in 3 bands
    picture = read_image(write_image(Picture(black, alpha), tmp_path / f"flat{ext}"))
    assert picture.alpha is None
    np.testing.assert_allclose(picture.rgb[4, [4, 12, 20]], [[255] * 3, [127] * 3, [0] * 3], atol=3)


@pytest.mark.parametrize("ext, dtype", [(".png", np.uint16), (".tif", np.uint16), (".jpg", np.uint8),
                                        (".webp", np.uint8), (".bmp", np.uint8)])
def test_16_bits_are_kept_or_reduced_to_8_by_format(tmp_path, ext, dtype):
    flat = np.full((16, 16, 3), [65535, 32896, 0], dtype=np.uint16)  # 8-bit equivalents: 255, 128, 0
    picture = read_image(write_image(Picture(flat, None), tmp_path / f"out{ext}"))
    assert picture.rgb.dtype == dtype
    expected = flat if dtype == np.uint16 else np.full((16, 16, 3), [255, 128, 0])
    np.testing.assert_allclose(picture.rgb, expected, atol=0 if ext in (".png", ".tif", ".bmp") else 3)


@pytest.mark.parametrize("ext, depth, mode", [(".png", 8, "L"), (".jpg", 8, "L"), (".bmp", 8, "L"), (".tif", 8, "L"),
                                              (".png", 16, "I;16"), (".tif", 16, "I;16")])
def test_gray_pictures_are_written_as_grayscale(tmp_path, ext, depth, mode):
    gray = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    gray = gray.astype(np.uint16) * 257 if depth == 16 else gray
    written = write_image(Picture(np.repeat(gray[..., None], 3, axis=2), None, gray=True), tmp_path / f"g{ext}")
    assert Image.open(written).mode == mode
    if ext != ".jpg":
        np.testing.assert_array_equal(read_image(written).rgb[..., 0], gray)


def test_picture_checks_its_arrays_and_reports_size_and_depth():
    picture = Picture(np.zeros((2, 5, 3), dtype=np.uint16), np.zeros((2, 5), dtype=np.uint16))
    assert picture.size == (5, 2) and picture.bit_depth == 16
    assert picture.replace(gray=True).gray and not picture.gray
    with pytest.raises(UsageError):
        Picture(np.zeros((2, 5), dtype=np.uint8), None)
    with pytest.raises(UsageError):
        picture.replace(alpha=np.zeros((2, 5), dtype=np.uint8))


# ------------------------------------------------------------------------------- size guard (bombs)

def test_too_many_pixels_is_refused_with_a_hint(tmp_path):
    path = saved(Image.fromarray(gradient(100, 100)), tmp_path / "big.png")
    with pytest.raises(InputError) as caught:
        read_image(path, max_pixels=9_999)
    assert caught.value.path == path and "pass --max-pixels N to allow it" in caught.value.hint
    assert read_image(path, max_pixels=10_000).size == (100, 100)


def test_size_is_checked_from_the_header_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"  # claims 50000 x 50000 but holds one row of pixels
    bomb.write_bytes(png_16bit(np.zeros((1, 4), dtype=np.uint16), colour_type=0, width=50_000, height=50_000))
    with pytest.raises(InputError, match="more than the limit") as caught:
        read_image(bomb)
    assert f"{DEFAULT_MAX_PIXELS:,}" in caught.value.message


def test_pillows_own_bomb_check_does_not_fire_and_is_restored(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would warn above 100 and fail above 200
    path = saved(Image.fromarray(gradient(30, 30)), tmp_path / "ok.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(path, max_pixels=None).size == (30, 30)
        assert read_image(path, max_pixels=1_000).size == (30, 30)
    assert Image.MAX_IMAGE_PIXELS == 100


# ------------------------------------------------------------------------------------- bad inputs

def noise(size: int = 64) -> Image.Image:
    """Incompressible pixels: cutting the file in half cuts the pixel data, not the header."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.png", "not found"),
    (lambda d: written(d / "empty.png", b""), "empty"),
    (lambda d: written(d / "notes.png", b"not an image"), "not a readable image"),
    (lambda d: cut_in_half(saved(noise(), d / "cut.png")), "truncated"),
    (lambda d: cut_in_half(saved(noise(), d / "cut.jpg")), "truncated"),
    (lambda d: d, "folder"),
])
def test_bad_inputs_raise_input_error_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as caught:
        read_image(path)
    assert caught.value.path == path and caught.value.hint


def test_unicode_paths_read_and_write(tmp_path):
    path = saved(Image.fromarray(gradient()), tmp_path / "fotos" / "ünïcødé 画像.png")
    assert read_image(path).source == path
    written = write_image(Picture(VALUES_16, None), tmp_path / "fotos" / "ausgabe 画像.png")  # OpenCV path
    np.testing.assert_array_equal(read_image(written).rgb, VALUES_16)


# ----------------------------------------------------------------------------------- atomic write

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("error", [RuntimeError("encoder failed"), KeyboardInterrupt()])
def test_failed_write_leaves_no_output_and_no_temp_file(tmp_path, error):
    def write_half_then_fail(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(tmp_path / "out.png", write_half_then_fail, overwrite=False)
    assert leftovers(tmp_path) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="exists") as caught:
        atomic_write(target, lambda temp: temp.write_bytes(b"new"), overwrite=False)
    assert "--overwrite" in caught.value.hint and target.read_bytes() == b"old"
    assert atomic_write(target, lambda temp: temp.write_bytes(b"new"), overwrite=True) == target
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == ["out.bin"]


def test_missing_output_folder_is_an_output_error_with_a_hint(tmp_path):
    with pytest.raises(OutputError, match="folder does not exist") as caught:
        write_image(Picture(gradient(), None), tmp_path / "nope" / "out.png")
    assert "mkdir" in caught.value.hint


def test_temp_file_is_hidden_beside_the_target(tmp_path):
    seen = []
    atomic_write(tmp_path / "out.png", lambda temp: seen.append(temp) or temp.write_bytes(b"x"), overwrite=False)
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".out.png.") and seen[0].suffix == ".part"


KILLED_WRITER = r"""
import sys
from pathlib import Path
from imgan.fs import atomic_write

def write_slowly(temp: Path) -> None:
    with open(temp, "wb") as file:
        file.write(b"n" * 4_000_000)
        file.flush()
        print("halfway", flush=True)
        sys.stdin.readline()  # waits here, mid-file, until the test kills the process
        file.write(b"n" * 4_000_000)

atomic_write(Path(sys.argv[1]), write_slowly, overwrite=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("old_content", [None, b"old file"])
def test_killed_writer_leaves_the_old_file_or_nothing(tmp_path, old_content):
    target = tmp_path / "big.bin"
    if old_content is not None:
        target.write_bytes(old_content)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert writer.stdout.readline() == "halfway\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    if old_content is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == old_content
    partial = [p for p in tmp_path.iterdir() if p != target]  # a kill cannot clean up: the temp stays, hidden
    assert len(partial) == 1 and partial[0].name.startswith(".big.bin.") and partial[0].stat().st_size == 4_000_000


# ------------------------------------------------------------------------------ values and helpers

def test_to_float_and_from_float_scale_and_round():
    np.testing.assert_allclose(to_float(np.array([0, 51, 255], dtype=np.uint8)), [0.0, 0.2, 1.0])
    np.testing.assert_allclose(to_float(np.array([0, 65535], dtype=np.uint16)), [0.0, 1.0])
    assert to_float(np.array([0.5], dtype=np.float64)).dtype == np.float32
    np.testing.assert_array_equal(from_float(np.array([-0.5, 0.0, 0.5, 1.0, 2.0]), np.uint8), [0, 0, 128, 255, 255])
    np.testing.assert_array_equal(from_float(np.array([0.5, 1.0]), np.uint16), [32768, 65535])
    with pytest.raises(UsageError):
        from_float(np.zeros(2), np.int32)


def test_resize_plane_takes_width_height_and_keeps_dtype():
    flat = np.full((10, 20), 40000, dtype=np.uint16)
    bigger = resize_plane(flat, (80, 40))
    assert bigger.shape == (40, 80) and bigger.dtype == np.uint16 and (bigger == 40000).all()
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    np.testing.assert_allclose(resize_plane(checker, (4, 4)), 127.5, atol=1)  # area average, no aliasing
    assert resize_plane(np.zeros((4, 4, 1), dtype=np.float32), (2, 2)).shape == (2, 2, 1)


def test_is_image_path_uses_the_supported_extensions():
    assert SUPPORTED_EXTENSIONS == {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
    assert is_image_path("a/B.PNG") and is_image_path("c.tiff")
    assert not is_image_path("a.gif") and not is_image_path(".out.png.1234.part") and not is_image_path("png")
