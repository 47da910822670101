from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from imgan.errors import InputError, OutputError, UsageError
from imgan.io import video

FPS = 12.5
FRAMES = 24
WIDTH, HEIGHT = 64, 48
BACKGROUND_RGB = (200, 40, 90)
TREE = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "videos" / "tree.avi"

needs_ffmpeg = pytest.mark.skipif(video.find_ffmpeg() is None, reason="no ffmpeg binary")


def square_frame(index: int) -> np.ndarray:
    """RGB (48, 64, 3): a white 12x12 square moving 2 px right per frame on a coloured background."""
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    frame[:] = BACKGROUND_RGB
    frame[10:22, 2 * index : 2 * index + 12] = 255
    return frame


def square_column(frame: np.ndarray) -> int:
    """Left edge of the white square: first column whose mean over its rows is bright."""
    return int(np.argmax(frame[10:22].mean(axis=(0, 2)) > 200))


@pytest.fixture
def square_clip(tmp_path: Path) -> Path:
    # Made with OpenCV's own writer so the tests do not depend on the code they test.
    path = tmp_path / "square.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for index in range(FRAMES):
        writer.write(cv2.cvtColor(square_frame(index), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def audio_clip(tmp_path: Path) -> Path:
    exe = video.find_ffmpeg()
    if exe is None:
        pytest.skip("no ffmpeg binary")
    path = tmp_path / "with_audio.mp4"
    subprocess.run(
        [exe, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}:duration=1.92",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(path)],
        check=True,
    )
    return path


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def decoded(path: Path) -> list[np.ndarray]:
    return list(video.read_frames(path))


# --- probing and reading -------------------------------------------------------------------


def test_is_video_path_by_extension():
    assert video.is_video_path("a/clip.MP4") and video.is_video_path("x.webm")
    assert not video.is_video_path("photo.png") and not video.is_video_path("noext")


def test_probe_reports_the_clip(square_clip: Path):
    info = video.probe_video(square_clip)
    assert (info.fps, info.frame_count, info.width, info.height) == (FPS, FRAMES, WIDTH, HEIGHT)
    assert info.duration == pytest.approx(FRAMES / FPS)
    assert info.has_audio is False


def test_probe_finds_audio(audio_clip: Path):
    assert video.probe_video(audio_clip).has_audio is True


def test_read_frames_are_rgb_and_in_order(square_clip: Path):
    frames = decoded(square_clip)
    assert len(frames) == FRAMES
    assert frames[0].shape == (HEIGHT, WIDTH, 3) and frames[0].dtype == np.uint8
    assert np.abs(frames[0][40, 40].astype(int) - BACKGROUND_RGB).max() < 12  # RGB, not BGR
    assert [square_column(frame) for frame in frames[:5]] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize(
    ("selection", "first", "count"),
    [
        ({"start": 0.4, "end": 1.2}, 5, 10),  # frames at 0.40 .. 1.12 s
        ({"max_frames": 7}, 0, 7),
        ({"start": 1.0}, 13, 11),  # frame 12 is at 0.96 s, before the start
        ({"start": 0.4, "max_frames": 3}, 5, 3),
        ({"end": 5.0}, 0, FRAMES),  # an end past the video just means "to the end"
    ],
)
def test_read_frames_selects_the_range(square_clip: Path, selection: dict, first: int, count: int):
    everything = decoded(square_clip)
    selected = list(video.read_frames(square_clip, **selection))
    assert len(selected) == count
    for got, expected in zip(selected, everything[first : first + count]):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "selection", [{"start": 3.0}, {"start": 1.0, "end": 0.5}, {"start": -1.0}, {"max_frames": 0}]
)
def test_impossible_ranges_are_usage_errors(square_clip: Path, selection: dict):
    with pytest.raises(UsageError):
        video.read_frames(square_clip, **selection)


def truncated_avi(tmp_path: Path, square_clip: Path) -> Path:
    # The headers survive, the frame data does not: it opens but nothing decodes.
    data = bytearray(square_clip.read_bytes())
    data[400:] = bytes(len(data) - 400)
    path = tmp_path / "broken.avi"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", ["missing", "empty", "text", "folder", "undecodable"])
def test_bad_inputs_are_input_errors(tmp_path: Path, square_clip: Path, case: str):
    path = {
        "missing": lambda: tmp_path / "nope.mp4",
        "empty": lambda: (tmp_path / "empty.mp4").write_bytes(b"") or tmp_path / "empty.mp4",
        "text": lambda: (tmp_path / "notes.mp4").write_text("not a video\n" * 50) and tmp_path / "notes.mp4",
        "folder": lambda: tmp_path,
        "undecodable": lambda: truncated_avi(tmp_path, square_clip),
    }[case]()
    with pytest.raises(InputError) as caught:
        video.probe_video(path)
    assert caught.value.path == path and caught.value.hint
    with pytest.raises(InputError):
        video.transform_video(path, tmp_path / "out.mp4", lambda frame: frame)
    assert not (tmp_path / "out.mp4").exists()


# --- transform_video -----------------------------------------------------------------------


@needs_ffmpeg
def test_transform_keeps_count_and_fps_and_applies_the_function(square_clip: Path, out_dir: Path):
    calls = []
    result = video.transform_video(
        square_clip, out_dir / "inverted.mp4", lambda frame: 255 - frame, progress=lambda *call: calls.append(call)
    )
    assert result.output == out_dir / "inverted.mp4" and result.frames == FRAMES and result.fps == FPS
    assert calls == [(done, FRAMES) for done in range(1, FRAMES + 1)]
    info = video.probe_video(result.output)
    assert (info.frame_count, info.fps, info.width, info.height) == (FRAMES, FPS, WIDTH, HEIGHT)
    source, output = np.stack(decoded(square_clip)), np.stack(decoded(result.output))
    assert len(output) == FRAMES
    # Inverted colours, up to H.264/yuv420p loss: per-channel means and the square's motion.
    np.testing.assert_allclose(output.mean(axis=(0, 1, 2)), 255 - source.mean(axis=(0, 1, 2)), atol=4)
    assert [square_column(255 - frame) for frame in output[:4]] == [0, 2, 4, 6]
    assert sorted(path.name for path in out_dir.iterdir()) == ["inverted.mp4"]  # no temp files left


@needs_ffmpeg
@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".avi", ".mov"])
def test_frame_fn_may_change_the_size(square_clip: Path, out_dir: Path, suffix: str):
    upscaled = out_dir / f"x2{suffix}"
    result = video.transform_video(
        square_clip, upscaled, lambda frame: cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST),
        max_frames=6,
    )
    info = video.probe_video(upscaled)
    assert result.frames == 6 and len(decoded(upscaled)) == 6
    assert (info.width, info.height, info.fps) == (2 * WIDTH, 2 * HEIGHT, FPS)


@needs_ffmpeg
def test_odd_sizes_are_padded_to_even(square_clip: Path, out_dir: Path):
    result = video.transform_video(square_clip, out_dir / "odd.mp4", lambda frame: frame[:-1, :-3].copy())
    info = video.probe_video(result.output)
    assert (info.width, info.height, info.frame_count) == (WIDTH - 2, HEIGHT, FRAMES)


def test_transform_selects_the_range(square_clip: Path, out_dir: Path):
    result = video.transform_video(square_clip, out_dir / "part.mp4", lambda frame: frame, start=0.4, end=1.2)
    output = decoded(result.output)
    assert result.frames == len(output) == 10
    assert square_column(output[0]) == 10  # frame 5 comes first


def test_audio_is_kept_for_the_selected_range(audio_clip: Path, out_dir: Path):
    result = video.transform_video(audio_clip, out_dir / "kept.mp4", lambda frame: frame, start=0.5)
    info = video.probe_video(result.output)
    assert result.audio_kept and info.has_audio
    assert info.frame_count == result.frames == FRAMES - 7  # frames 7 .. 23 (0.56 .. 1.84 s)

    silent = video.transform_video(audio_clip, out_dir / "silent.mp4", lambda frame: frame, keep_audio=False)
    assert not silent.audio_kept and not video.probe_video(silent.output).has_audio


def test_write_video_takes_audio_from_another_file(audio_clip: Path, out_dir: Path):
    frames = (square_frame(index) for index in range(FRAMES))
    path = video.write_video(frames, out_dir / "dubbed.mp4", fps=FPS, audio_from=audio_clip, audio_start=0.2)
    info = video.probe_video(path)
    assert info.has_audio and info.frame_count == FRAMES and info.fps == FPS


def test_without_ffmpeg_opencv_encodes_and_audio_is_dropped(audio_clip: Path, out_dir: Path, monkeypatch):
    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    for name in ("fallback.avi", "fallback.mp4"):
        result = video.transform_video(audio_clip, out_dir / name, lambda frame: 255 - frame[:-1, :-1])
        info = video.probe_video(result.output)
        assert (info.width, info.height) == (WIDTH, HEIGHT)  # odd sizes padded, as with ffmpeg
        assert result.frames == FRAMES and len(decoded(result.output)) == FRAMES
        assert not result.audio_kept and any("ffmpeg" in warning for warning in result.warnings)
    assert sorted(path.name for path in out_dir.iterdir()) == ["fallback.avi", "fallback.mp4"]


def test_existing_output_is_refused_without_overwrite(square_clip: Path, out_dir: Path):
    target = out_dir / "exists.mp4"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError) as caught:
        video.transform_video(square_clip, target, lambda frame: frame)
    assert "--overwrite" in caught.value.hint and target.read_bytes() == b"keep me"

    video.transform_video(square_clip, target, lambda frame: frame, overwrite=True, max_frames=3)
    assert video.probe_video(target).frame_count == 3


@pytest.mark.parametrize("error", [RuntimeError("model exploded"), KeyboardInterrupt()])
def test_a_failing_frame_fn_leaves_no_file_and_no_process(square_clip: Path, out_dir: Path, monkeypatch, error):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    seen = []

    def fails_on_frame_5(frame: np.ndarray) -> np.ndarray:
        seen.append(frame)
        if len(seen) == 6:
            raise error
        return frame

    with pytest.raises(type(error)) as caught:
        video.transform_video(square_clip, out_dir / "never.mp4", fails_on_frame_5)
    assert caught.value is error
    assert list(out_dir.iterdir()) == []
    encoders = [process for process in started if "pipe:0" in process.args]
    if video.find_ffmpeg() is not None:
        assert len(encoders) == 1  # it had received frames 0-4 before the failure
    assert all(process.poll() is not None for process in started)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("imgan-video")]


@pytest.mark.parametrize(
    ("frame_fn", "message"),
    [
        (lambda frame: frame.astype(np.float32), "uint8"),
        (lambda frame: frame if square_column(frame) < 6 else frame[:-2], "same size"),
    ],
)
def test_bad_frames_from_frame_fn_stop_the_run(square_clip: Path, out_dir: Path, frame_fn, message: str):
    with pytest.raises(UsageError) as caught:
        video.transform_video(square_clip, out_dir / "bad.mp4", frame_fn)
    assert message in caught.value.one_line()
    assert list(out_dir.iterdir()) == []


def test_a_failing_decoder_is_reported(square_clip: Path, out_dir: Path, monkeypatch):
    def broken_decode(path, frames):
        yield square_frame(0)
        raise OSError("disk read error")

    monkeypatch.setattr(video, "_decode_range", broken_decode)
    with pytest.raises(OSError, match="disk read error"):
        video.transform_video(square_clip, out_dir / "never.mp4", lambda frame: frame)
    assert list(out_dir.iterdir()) == []


@needs_ffmpeg
def test_decode_and_encode_run_beside_the_model(square_clip: Path, out_dir: Path, monkeypatch):
    threads: dict[str, set[int]] = {"decode": set(), "model": set(), "encode": set()}
    real_decode, real_write = video._decode_range, video._FfmpegEncoder.write

    def recording_decode(path, frames):
        for frame in real_decode(path, frames):
            threads["decode"].add(threading.get_ident())
            yield frame

    def recording_write(encoder, frame):
        threads["encode"].add(threading.get_ident())
        real_write(encoder, frame)

    def slow_model(frame: np.ndarray) -> np.ndarray:
        threads["model"].add(threading.get_ident())
        time.sleep(0.02)
        return frame

    monkeypatch.setattr(video, "_decode_range", recording_decode)
    monkeypatch.setattr(video._FfmpegEncoder, "write", recording_write)
    result = video.transform_video(square_clip, out_dir / "threads.mp4", slow_model, queue_size=2)
    assert result.frames == FRAMES
    assert threads["model"] == {threading.get_ident()}  # frame_fn runs on the caller's thread
    assert len(threads["decode"]) == len(threads["encode"]) == 1
    assert len(threads["decode"] | threads["model"] | threads["encode"]) == 3


@pytest.mark.skipif(not TREE.exists(), reason="shared assets not present")
def test_tree_clip_with_dropped_frames_reports_what_it_decoded(out_dir: Path):
    # tree.avi's index lists 444 frames of which only 68 hold pictures.
    calls = []
    result = video.transform_video(TREE, out_dir / "tree.mp4", lambda frame: frame, progress=lambda *c: calls.append(c))
    assert result.frames == 68 and calls[-1] == (68, 68)
    assert video.probe_video(result.output).frame_count == 68


@needs_ffmpeg
def test_a_truncated_clip_is_a_warning_with_the_numbers_or_with_strict_an_error(tmp_path: Path, out_dir: Path):
    # 30 frames announced by the header, the second half of the file gone.
    path = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for index in range(30):
        writer.write(cv2.cvtColor(square_frame(index % FRAMES), cv2.COLOR_RGB2BGR))
    writer.release()
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    assert video.probe_video(cut).frame_count == 30
    result = video.transform_video(cut, out_dir / "cut.mp4", lambda frame: frame)
    assert 0 < result.frames < 30
    assert any(f"only {result.frames} of the 30 frames" in w and "cut.avi" in w for w in result.warnings)
    with pytest.raises(InputError, match="of the 30 frames"):
        video.transform_video(cut, out_dir / "strict.mp4", lambda frame: frame, strict=True)
    assert sorted(p.name for p in out_dir.iterdir()) == ["cut.mp4"]  # nothing for the strict run, no temp file
