"""Video in, video out: decode → per-frame function → encode, with the source's audio kept.

OpenCV decodes (it reads every common container without a subprocess per frame). The ffmpeg
binary shipped by imageio-ffmpeg encodes, because OpenCV's writer can neither make browser-playable
H.264 nor carry audio; OpenCV's writer is only the fallback when no ffmpeg can be found.

`transform_video` runs decoding and encoding in their own threads, joined to the caller's thread
by bounded queues, so a slow model is the only thing the caller waits for. Outputs are written to
a hidden temp file beside the destination and renamed only once ffmpeg has succeeded.

Frames are RGB uint8 arrays of shape (H, W, 3) everywhere in this module. Frame rates are assumed
constant: a frame's time is its index / fps.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from imgan.errors import ImganError, InputError, OutputError, UsageError
from imgan.fs import atomic_write

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})

FrameFn = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]

_POLL_S = 0.1  # how often a waiting stage checks whether another stage failed
_PROBE_TIMEOUT_S = 60


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@functools.lru_cache(maxsize=1)
def find_ffmpeg() -> str | None:
    """The ffmpeg binary: imageio-ffmpeg's (or $IMAGEIO_FFMPEG_EXE), else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


# ---------------------------------------------------------------------------------------------
# Probing and decoding
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    frame_count: int  # as the container reports it; files with dropped frames decode fewer
    width: int
    height: int
    has_audio: bool  # False when no ffmpeg is available to look
    duration: float  # frame_count / fps, in seconds


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open `path`, decode its first frame and read its metadata. Raises InputError if unusable."""
    path = Path(path)
    _check_input_file(path)
    capture = _open_capture(path)
    try:
        first_frame = _read_first_frame(capture, path)
        fps = _frame_rate(capture, path)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if frame_count <= 0:  # raw streams without an index report nothing useful
        frame_count = _count_frames_by_decoding(path)
    height, width = first_frame.shape[:2]
    return VideoInfo(
        path=path,
        fps=fps,
        frame_count=frame_count,
        width=width,
        height=height,
        has_audio=_has_audio_stream(path),
        duration=frame_count / fps,
    )


def read_frames(
    path: str | os.PathLike,
    *,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """RGB uint8 (H, W, 3) frames with start <= index / fps < end, at most `max_frames` of them.

    The file and the range are checked now, not at the first `next()`.
    """
    info = probe_video(path)
    return _decode_range(info.path, _select_frames(info, start=start, end=end, max_frames=max_frames))


def first_frame_at_or_after(path: str | os.PathLike, seconds: float | None) -> float:
    """The time (index / fps) of the first frame that ``read_frames(path, start=seconds)`` returns."""
    info = probe_video(path)
    return _first_index_at_or_after(seconds or 0.0, info.fps) / info.fps


def _select_frames(
    info: VideoInfo, *, start: float | None = None, end: float | None = None, max_frames: int | None = None
) -> range:
    """Indices of the frames whose time (index / fps) lies in [start, end), capped at max_frames."""
    if start is not None and start < 0:
        raise UsageError(f"start must be >= 0 seconds, got {start}")
    if start is not None and end is not None and end <= start:
        raise UsageError(f"end ({end} s) must come after start ({start} s)")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"max_frames must be >= 1, got {max_frames}")
    first = _first_index_at_or_after(start or 0.0, info.fps)
    stop = info.frame_count if end is None else min(info.frame_count, _first_index_at_or_after(end, info.fps))
    if max_frames is not None:
        stop = min(stop, first + max_frames)
    if stop <= first:
        raise UsageError(
            f"the range selects no frames: the video lasts {info.duration:.3f} s ({info.frame_count} frames)",
            path=info.path,
            hint="choose a start before the end of the video",
        )
    return range(first, stop)


def _first_index_at_or_after(seconds: float, fps: float) -> int:
    # The epsilon keeps an exact product (1.2 s * 12.5 fps = 15.000000000000002) from rounding up.
    return max(0, math.ceil(seconds * fps - 1e-6))


def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise InputError("file not found", path=path, hint="check the path")
    if not path.is_file():
        raise InputError("not a file", path=path, hint="pass a video file, not a folder")
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path=path, hint="the copy or download may have failed")


def _open_capture(path: Path) -> cv2.VideoCapture:
    # CAP_FFMPEG: the default backend list would open "frame_%03d.png"-like names as image sequences.
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise InputError(
            "cannot be opened as a video",
            path=path,
            hint=f"use a video file ({', '.join(sorted(VIDEO_EXTENSIONS))}) that ffmpeg can play",
        )
    return capture


def _read_first_frame(capture: cv2.VideoCapture, path: Path) -> np.ndarray:
    ok, frame = capture.read()
    if not ok or frame is None:
        raise InputError(
            "no video frame could be decoded",
            path=path,
            hint="the file may be truncated or use a codec OpenCV cannot decode; re-encode it, e.g. with ffmpeg",
        )
    return frame


def _frame_rate(capture: cv2.VideoCapture, path: Path) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not math.isfinite(fps) or fps <= 0:
        raise InputError("the video has no frame rate", path=path, hint="re-encode it with ffmpeg and -r FPS")
    return fps


def _count_frames_by_decoding(path: Path) -> int:
    capture = _open_capture(path)
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def _decode_range(path: Path, frames: range) -> Iterator[np.ndarray]:
    """Decode frames[0] .. frames[-1] as RGB; stops early if the file holds fewer frames."""
    capture = _open_capture(path)
    try:
        # Skip by decoding rather than seeking: OpenCV's seek lands on key frames in some
        # containers, and a frame-exact start is what keeps audio and video aligned.
        for _ in range(frames.start):
            if not capture.grab():
                return
        for _ in frames:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def _has_audio_stream(path: Path) -> bool:
    # OpenCV ignores audio, so ask ffmpeg, whose stream listing on stderr names each "Audio:" stream.
    exe = find_ffmpeg()
    if exe is None:
        return False
    listing = subprocess.run(
        [exe, "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=_PROBE_TIMEOUT_S,
        check=False,  # ffmpeg exits 1 when given no output; the listing is still complete
    ).stderr
    return re.search(r"Stream #\d+:\d+.*: Audio:", listing) is not None


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Container:
    muxer: str
    video_codec: tuple[str, ...]
    audio_codec: tuple[str, ...]
    cv2_fourcc: str  # used only when no ffmpeg is available


# veryfast: about 6x the speed of x264's default preset at CRF 18, so the encoder keeps up with the
# model; at this CRF the frames look the same and the files are barely larger.
_H264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")
_AAC = ("-c:a", "aac", "-b:a", "192k")
_MP4_CONTAINER = _Container("mp4", _H264 + ("-movflags", "+faststart"), _AAC, "mp4v")
_CONTAINERS = {
    ".mp4": _MP4_CONTAINER,
    ".m4v": _MP4_CONTAINER,
    ".mov": _Container("mov", _H264 + ("-movflags", "+faststart"), _AAC, "mp4v"),
    ".mkv": _Container("matroska", _H264, _AAC, "mp4v"),
    # WebM allows only VP8/VP9/AV1 video and Vorbis/Opus audio.
    ".webm": _Container(
        "webm",
        ("-c:v", "libvpx-vp9", "-crf", "30", "-b:v", "0", "-cpu-used", "4", "-row-mt", "1", "-pix_fmt", "yuv420p"),
        ("-c:a", "libopus"),
        "VP80",
    ),
    # MPEG-4 part 2 + MP3 is what players expect inside AVI.
    ".avi": _Container(
        "avi", ("-c:v", "mpeg4", "-q:v", "2", "-tag:v", "XVID", "-pix_fmt", "yuv420p"), ("-c:a", "libmp3lame"), "MJPG"
    ),
}


@dataclass(frozen=True)
class _AudioSegment:
    """Audio to copy from `path`, starting at `start` seconds, for `duration` seconds (None: to the end)."""

    path: Path
    start: float = 0.0
    duration: float | None = None


def write_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: float,
    overwrite: bool = False,
    audio_from: str | os.PathLike | None = None,
    audio_start: float = 0.0,
    audio_duration: float | None = None,
) -> Path:
    """Encode RGB uint8 (H, W, 3) frames to `path` at `fps`, atomically; optionally with the audio
    of `audio_from` starting at `audio_start` seconds, `audio_duration` seconds of it (None: as much
    as the video lasts), cut or padded with silence to the video.

    Odd frame sizes gain one replicated row/column (H.264 in yuv420p needs even sizes). Without
    ffmpeg, OpenCV encodes and the audio is dropped with a RuntimeWarning.
    """
    path = Path(path)
    _container_for(path)
    if not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"fps must be a positive number, got {fps}")
    exe = find_ffmpeg()
    audio = _AudioSegment(Path(audio_from), audio_start, audio_duration) if audio_from is not None else None
    if audio is not None and exe is None:
        warnings.warn(_NO_FFMPEG_AUDIO, RuntimeWarning, stacklevel=2)
        audio = None
    return atomic_write(
        path, lambda temp: _encode_into(temp, frames, path, fps=fps, exe=exe, audio=audio), overwrite=overwrite
    )


_NO_FFMPEG_AUDIO = "ffmpeg not found (install imageio-ffmpeg): audio was dropped and OpenCV encoded the video"


def _encode_into(
    temp: Path, frames: Iterable[np.ndarray], destination: Path, *, fps: float, exe: str | None,
    audio: _AudioSegment | None,
) -> int:
    """Encode all `frames` into `temp` (a video for `destination`); returns how many were written."""
    encoder: _FfmpegEncoder | _Cv2Encoder | None = None
    size: tuple[int, int] | None = None
    count = 0
    try:
        for frame in frames:
            frame = _checked_frame(frame, size, count, destination)
            size = frame.shape[:2]
            frame = _padded_to_even_size(frame)
            if encoder is None:  # opened lazily: the first frame sets the size
                encoder = _open_encoder(exe, temp, destination, frame.shape, fps, audio)
            encoder.write(frame)
            count += 1
        if encoder is None:
            raise UsageError("no frames to write", path=destination)
        encoder.finish()
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    return count


def _container_for(path: Path) -> _Container:
    container = _CONTAINERS.get(path.suffix.lower())
    if container is None:
        raise UsageError(
            f"unsupported video extension {path.suffix!r}",
            path=path,
            hint=f"use one of {', '.join(sorted(VIDEO_EXTENSIONS))}",
        )
    return container


def _checked_frame(frame: np.ndarray, size: tuple[int, int] | None, index: int, path: Path) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise UsageError(
            f"frame {index} is {frame.dtype} {frame.shape}; frames must be uint8 RGB arrays of shape (H, W, 3)",
            path=path,
        )
    if size is not None and frame.shape[:2] != size:
        raise UsageError(
            f"frame {index} is {frame.shape[1]}x{frame.shape[0]} but the video is {size[1]}x{size[0]}",
            path=path,
            hint="every frame of a video must have the same size",
        )
    return frame


def _padded_to_even_size(frame: np.ndarray) -> np.ndarray:
    # yuv420p stores colour per 2x2 block, so encoders need even sizes (OpenCV's writer would crop).
    extra_rows, extra_cols = frame.shape[0] % 2, frame.shape[1] % 2
    if not (extra_rows or extra_cols):
        return frame
    return np.pad(frame, ((0, extra_rows), (0, extra_cols), (0, 0)), mode="edge")


def _open_encoder(
    exe: str | None, temp: Path, destination: Path, shape: tuple[int, ...], fps: float, audio: _AudioSegment | None
) -> _FfmpegEncoder | _Cv2Encoder:
    height, width = shape[:2]
    if exe is None:
        return _Cv2Encoder(temp, destination, fps, width, height)
    return _FfmpegEncoder(exe, temp, destination, fps, width, height, audio)


def _rate_argument(fps: float) -> str:
    # A rational keeps NTSC rates exact: 29.97002997 → 30000/1001, not a rounded 29.97.
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def _ffmpeg_encode_command(
    exe: str, temp: Path, container: _Container, fps: float, width: int, height: int, audio: _AudioSegment | None
) -> list[str]:
    command = [exe, "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", _rate_argument(fps)]
    command += ["-i", "pipe:0"]
    if audio is not None:
        if audio.start > 0:
            command += ["-ss", f"{audio.start:.6f}"]
        if audio.duration is not None:
            command += ["-t", f"{audio.duration:.6f}"]
        command += ["-i", str(audio.path)]
    command += ["-map", "0:v:0", *container.video_codec]
    if audio is not None:
        # "?" makes a silent source harmless; apad + -shortest ends the audio with the last
        # frame, so a short audio track never cuts video frames.
        command += ["-map", "1:a:0?", *container.audio_codec, "-af", "apad", "-shortest"]
    return command + ["-f", container.muxer, str(temp)]


# ffmpeg runs in its own session so that a terminal's Ctrl-C reaches only us: we decide when to
# kill it, and its half-written temp file is removed with it.
_DETACHED = (
    {"start_new_session": True} if os.name == "posix" else {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
)


class _FfmpegEncoder:
    """Feeds frames to an ffmpeg process as raw RGB on its stdin."""

    def __init__(
        self, exe: str, temp: Path, destination: Path, fps: float, width: int, height: int,
        audio: _AudioSegment | None,
    ):
        container = _CONTAINERS[destination.suffix.lower()]
        command = _ffmpeg_encode_command(exe, temp, container, fps, width, height, audio)
        # stderr goes to a file: a pipe nobody reads could fill up and stall ffmpeg.
        self._log = tempfile.TemporaryFile()
        self._destination = destination
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log, **_DETACHED
            )
        except OSError as exc:
            self._log.close()
            raise OutputError(
                f"cannot start ffmpeg ({exc.strerror or exc})", path=destination,
                hint="set IMAGEIO_FFMPEG_EXE to a working ffmpeg binary",
            ) from exc

    def write(self, frame: np.ndarray) -> None:
        try:
            self.process.stdin.write(np.ascontiguousarray(frame).data)
        except OSError as exc:  # BrokenPipeError: ffmpeg died
            raise self._failure("ffmpeg stopped accepting frames") from exc

    def finish(self) -> None:
        try:
            self.process.stdin.close()
        except OSError as exc:
            raise self._failure("ffmpeg stopped accepting frames") from exc
        if self.process.wait() != 0:
            raise self._failure(f"ffmpeg failed (exit code {self.process.returncode})")
        self._log.close()

    def abort(self) -> None:
        self._stop()
        self._log.close()

    def _stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait()

    def _failure(self, what: str) -> OutputError:
        self._stop()  # once ffmpeg has exited its log is complete
        message = f"{what}: {self._log_tail()}"
        self._log.close()
        return OutputError(message, path=self._destination, hint="check the output folder's free space and permissions")

    def _log_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "no message"


class _Cv2Encoder:
    """Fallback without ffmpeg: OpenCV's writer, which cannot carry audio."""

    def __init__(self, temp: Path, destination: Path, fps: float, width: int, height: int):
        # OpenCV picks the container from the file name, so it writes beside the temp file under a
        # name with the real extension, moved onto the temp file once complete.
        suffix = destination.suffix.lower()
        self._temp = temp
        self._staging = temp.with_name(temp.name + suffix)
        fourcc_code = _CONTAINERS[suffix].cv2_fourcc
        self._writer = cv2.VideoWriter(str(self._staging), cv2.VideoWriter_fourcc(*fourcc_code), fps, (width, height))
        if not self._writer.isOpened():
            self.abort()
            raise OutputError(
                f"OpenCV cannot encode {fourcc_code} video", path=destination, hint="install imageio-ffmpeg"
            )

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def finish(self) -> None:
        self._writer.release()
        os.replace(self._staging, self._temp)

    def abort(self) -> None:
        self._writer.release()
        self._staging.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The pipeline: decode thread → frame_fn on the caller's thread → encode thread
# ---------------------------------------------------------------------------------------------


@dataclass
class VideoResult:
    output: Path
    frames: int
    fps: float
    seconds: float  # wall-clock time of the whole run
    audio_kept: bool
    warnings: list[str] = field(default_factory=list)


class _Aborted(Exception):
    """Raised inside a stage when another stage failed; the other stage's error is the one reported."""


class _PassedThrough(Exception):
    """Carries an OSError of the decoder or of frame_fn past atomic_write, which would report it as
    a failure to write the output (the encoders raise OutputError themselves)."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


_END = object()  # sent after the last frame


class _Pipeline:
    """Bounded queues between stages; the first error in any stage stops all of them."""

    def __init__(self, queue_size: int):
        self.decoded: queue.Queue = queue.Queue(maxsize=queue_size)
        self.transformed: queue.Queue = queue.Queue(maxsize=queue_size)
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def spawn(self, name: str, work: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                work()
            except _Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self.fail(exc)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def fail(self, error: BaseException) -> None:
        self._errors.append(error)
        self._abort.set()

    def put(self, channel: queue.Queue, item: object) -> None:
        while True:
            if self._abort.is_set():
                raise _Aborted
            try:
                channel.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def drain(self, channel: queue.Queue) -> Iterator[np.ndarray]:
        """Items of `channel` up to the end marker; raises _Aborted as soon as any stage failed."""
        while True:
            if self._abort.is_set():
                raise _Aborted
            try:
                item = channel.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def stop(self) -> None:
        self._abort.set()
        self.join()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def first_error(self) -> BaseException | None:
        return self._errors[0] if self._errors else None


def transform_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    frame_fn: FrameFn,
    *,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    overwrite: bool = False,
    keep_audio: bool = True,
    queue_size: int = 8,
    progress: Progress | None = None,
    strict: bool = False,
) -> VideoResult:
    """Write `frame_fn(frame)` for each selected frame of `src` to `dst`, same fps, same frame count.

    frame_fn takes and returns RGB uint8 (H, W, 3) and may change the size (all outputs alike).
    It runs on the calling thread while other threads decode and encode. The source's audio
    for the selected range is kept when `keep_audio` and ffmpeg is available. `progress(done,
    total)` is called after each frame; if the file holds fewer frames than its header says, a
    last call reports (done, done) and the result carries a warning with both numbers (with
    `strict`, an InputError instead, and no output). Nothing is left at `dst` if anything fails
    or is interrupted.
    """
    began = time.perf_counter()
    src, dst = Path(src), Path(dst)
    info = probe_video(src)
    _check_destination(src, dst)
    selected = _select_frames(info, start=start, end=end, max_frames=max_frames)
    audio, notes = _audio_plan(info, selected, keep_audio)
    if queue_size < 1:
        raise UsageError(f"queue_size must be >= 1, got {queue_size}")
    counts: dict[str, int] = {}

    def run_into(temp: Path) -> None:
        # On the caller's thread inside atomic_write, so the temp file is removed even when
        # Ctrl-C lands here, after the stages have stopped.
        try:
            counts["transformed"], counts["encoded"] = _run_pipeline(
                src, temp, dst, frame_fn, selected, fps=info.fps, audio=audio, queue_size=queue_size,
                progress=progress,
            )
        except OSError as exc:
            raise _PassedThrough(exc) from None
        if counts["transformed"] != len(selected):
            shortfall = _shortfall(info, selected, counts["transformed"])
            if strict:  # before the rename: no output that looks complete
                raise InputError(shortfall, path=src, hint="re-encode or re-download the file")
            notes.append(f"{src}: {shortfall}; wrote the {counts['transformed']} decoded frames")

    try:
        output = atomic_write(dst, run_into, overwrite=overwrite)
    except _PassedThrough as carrier:
        raise carrier.error from None
    if counts["encoded"] != counts["transformed"]:  # a broken invariant, not a user error
        raise ImganError(f"encoded {counts['encoded']} frames but transformed {counts['transformed']}", path=dst)
    return VideoResult(
        output=output,
        frames=counts["encoded"],
        fps=info.fps,
        seconds=time.perf_counter() - began,
        audio_kept=audio is not None,
        warnings=notes,
    )


def _shortfall(info: VideoInfo, selected: range, decoded: int) -> str:
    if len(selected) == info.frame_count:
        announced = f"{len(selected)} frames"
    else:
        announced = f"{len(selected)} selected frames (of {info.frame_count})"
    return f"only {decoded} of the {announced} its header announces could be decoded (truncated file?)"


def _check_destination(src: Path, dst: Path) -> None:
    _container_for(dst)
    if dst.exists() and src.resolve() == dst.resolve():
        raise UsageError("the output is the input file", path=dst, hint="choose another output path")


def _run_pipeline(
    src: Path, temp: Path, dst: Path, frame_fn: FrameFn, selected: range, *, fps: float,
    audio: _AudioSegment | None, queue_size: int, progress: Progress | None,
) -> tuple[int, int]:
    """Decode thread → frame_fn here → encode thread; returns (frames transformed, frames encoded)."""
    pipeline = _Pipeline(queue_size)
    encoded: list[int] = []
    exe = find_ffmpeg()
    pipeline.spawn("imgan-video-decode", lambda: _decode_stage(pipeline, src, selected))
    pipeline.spawn(
        "imgan-video-encode",
        lambda: encoded.append(
            _encode_into(temp, pipeline.drain(pipeline.transformed), dst, fps=fps, exe=exe, audio=audio)
        ),
    )
    try:
        transformed = _transform_stage(pipeline, frame_fn, len(selected), progress, src)
        pipeline.put(pipeline.transformed, _END)
        pipeline.join()
    except BaseException as exc:
        pipeline.stop()
        # A stage's own error explains an abort better than the abort itself.
        if isinstance(exc, _Aborted) and pipeline.first_error() is not None:
            raise pipeline.first_error() from None
        raise
    if pipeline.first_error() is not None:  # the encoder can fail after the last frame
        raise pipeline.first_error()
    return transformed, encoded[0]


def _audio_plan(info: VideoInfo, selected: range, keep_audio: bool) -> tuple[_AudioSegment | None, list[str]]:
    if not keep_audio:
        return None, []
    if find_ffmpeg() is None:
        return None, [_NO_FFMPEG_AUDIO]
    if not info.has_audio:
        return None, []
    # The audio of exactly the selected frames: from the first frame's time, for their duration.
    segment = _AudioSegment(info.path, start=selected.start / info.fps, duration=len(selected) / info.fps)
    return segment, []


def _decode_stage(pipeline: _Pipeline, src: Path, selected: range) -> None:
    for frame in _decode_range(src, selected):
        pipeline.put(pipeline.decoded, frame)
    pipeline.put(pipeline.decoded, _END)


def _transform_stage(
    pipeline: _Pipeline, frame_fn: FrameFn, total: int, progress: Progress | None, src: Path
) -> int:
    done = 0
    for frame in pipeline.drain(pipeline.decoded):
        pipeline.put(pipeline.transformed, frame_fn(frame))
        done += 1
        if progress is not None:
            progress(done, total)
    if done == 0:
        raise InputError("no frame in the selected range could be decoded", path=src, hint="try another range")
    if done != total and progress is not None:
        progress(done, done)
    return done
