"""Turn the user's inputs (files, folders, globs) into jobs: a source and the output it gets.

Outputs: ``-o FILE`` for one input, ``-o DIR`` mirroring each input folder's tree, or by default
``<stem>.<task>.<ext>`` beside the input. Files that look like our own outputs are never taken
as inputs, so running a folder twice does not process its results.

`-` is stdin as an input and stdout as an output (one image; format from --ext, default PNG).
Planning checks what it can before any image is computed: writable formats, mirrored outputs
that would land outside ``-o DIR`` (``..`` after a wildcard), folders that hold no image.
Folders named like images and broken links inside a folder are reported, never skipped silently.
"""
from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import InputError, UsageError
from .images import READABLE_EXTENSIONS as IMAGE_EXTENSIONS
from .images import SUPPORTED_EXTENSIONS as WRITABLE_IMAGE_EXTENSIONS
from .images import check_writable_extension
from .video import VIDEO_EXTENSIONS

# Video containers we encode H.264 into; other containers (.avi, .webm) are written as .mp4.
VIDEO_OUTPUT_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".m4v"})
GLOB_CHARACTERS = set("*?[")
STDIO = "-"  # stdin as an input, stdout as an output
STDIN_NAME = Path("<stdin>")  # how the stdin input is named in messages and reports
DEFAULT_STREAM_EXTENSION = ".png"


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    explicit: bool  # named directly by the user (not found in a folder or glob)
    single_output: bool = False  # the user named this output file with -o FILE
    stdin: bool = False  # the source is read from stdin (`-`); `source` is then STDIN_NAME
    stdout_ext: str | None = None  # set: the output goes to stdout, encoded as this extension

    @property
    def is_video(self) -> bool:
        return not self.stdin and self.source.suffix.lower() in VIDEO_EXTENSIONS

    @property
    def to_stdout(self) -> bool:
        return self.stdout_ext is not None


class JobList(list):
    """plan_jobs' result: the jobs, plus `warnings` about inputs that were seen but not taken."""

    def __init__(self, jobs: Iterable[Job] = (), warnings: Sequence[str] = ()):
        super().__init__(jobs)
        self.warnings: list[str] = list(warnings)


@dataclass(frozen=True)
class _Found:
    path: Path
    root: Path | None  # the folder the user named (None for a file named directly)
    stdin: bool = False


def is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def _looks_like_output(path: Path, task: str) -> bool:
    return path.stem.endswith(f".{task}")


def _is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _scan_folder(folder: Path, recursive: bool, accept: Callable[[Path], bool], skip: Path | None,
                 warnings: list[str]) -> list[Path]:
    """The files to take from `folder`. A broken link with an image name is taken (reading it
    then fails with its own message); a folder named like an image is a warning (without -r)."""
    pattern = "**/*" if recursive else "*"
    taken = []
    for path in sorted(folder.glob(pattern)):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if skip is not None and skip in path.parents:
            continue
        if (path.is_file() or _is_broken_link(path)) and accept(path):
            taken.append(path)
        elif path.is_dir() and is_media(path) and not recursive:
            warnings.append(f"{path}: is a folder, not an image file; skipped (-r descends into sub-folders)")
    if not taken:
        raise InputError(f"no images found in {folder}", hint=_why_nothing_found(folder, recursive))
    return taken


def _why_nothing_found(folder: Path, recursive: bool) -> str:
    entries = list(folder.iterdir())
    if any(is_media(p) and p.is_file() for p in entries):
        return "its images are named like outputs of this task (<stem>.<task>.<ext>); rename them or use -o"
    if not recursive and any(p.is_dir() for p in entries):
        return "pass -r to look in its sub-folders"
    return (f"images are files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}; "
            f"videos in {', '.join(sorted(VIDEO_EXTENSIONS))}")


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if set(p) & GLOB_CHARACTERS)]]
    return Path(*fixed) if fixed else Path(".")


def find_inputs(inputs: Sequence[str | os.PathLike], *, recursive: bool, accept: Callable[[Path], bool],
                skip: Path | None = None, warnings: list[str] | None = None) -> list[_Found]:
    """What each input names; `warnings` (if given) collects inputs seen but not taken."""
    found: list[_Found] = []
    warnings = [] if warnings is None else warnings
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if text == STDIO:
            if len(inputs) > 1:
                raise UsageError("'-' (stdin) must be the only input", hint="run stdin and files separately")
            found.append(_Found(STDIN_NAME, None, stdin=True))
        elif path.is_file():
            found.append(_Found(path, None))
        elif path.is_dir():
            found.extend(_Found(p, path) for p in _scan_folder(path, recursive, accept, skip, warnings))
        elif set(text) & GLOB_CHARACTERS:
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            if not matches:
                raise InputError("the pattern matched no file", path=text)
            root = _glob_root(text)
            taken = [_Found(m, root) for m in matches if accept(m)]
            if not taken:
                raise InputError("the pattern matched no image or video", path=text)
            found.extend(taken)
        elif _is_broken_link(path):
            found.append(_Found(path, None))  # reading it reports the missing target
        else:
            raise InputError("no such file or folder", path=text, hint="check the spelling, or quote a glob pattern")
    return found


def _normal_extension(ext: str) -> str:
    return ext if ext.startswith(".") else f".{ext}"


def _output_suffix(source: Path, output_ext: str | None) -> str:
    if source.suffix.lower() in VIDEO_EXTENSIONS:
        return source.suffix if source.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS else ".mp4"
    if output_ext:
        return _normal_extension(output_ext)
    if source.suffix.lower() not in WRITABLE_IMAGE_EXTENSIONS:  # read-only formats (GIF) are written as PNG
        return DEFAULT_STREAM_EXTENSION
    return source.suffix


def _output_for(item: _Found, *, task: str, output: Path | None, single_file: bool, output_ext: str | None) -> Path:
    suffix = _output_suffix(item.path, output_ext)
    if output is None:
        return item.path.with_name(f"{item.path.stem}.{task}{suffix}")
    if single_file:
        return output
    relative = _mirrored_path(item) if item.root is not None else Path(item.path.name)
    return output / relative.with_suffix(suffix)


def _mirrored_path(item: _Found) -> Path:
    """The input's path below the folder or pattern root it was found in, `..` resolved; a path
    that would climb out of the output folder (a glob with `..` after a wildcard) is an error."""
    try:
        relative = Path(os.path.normpath(item.path.relative_to(item.root)))
    except ValueError:
        relative = None
    if relative is None or relative.is_absolute() or relative.parts[:1] == ("..",) or relative == Path("."):
        raise UsageError(f"{item.path} would be mirrored outside the output folder",
                         hint=f"give a pattern without '..' after its first wildcard (root: {item.root})")
    return relative


def plan_jobs(inputs: Sequence[str | os.PathLike], *, task: str, output: str | os.PathLike | None = None,
              recursive: bool = False, output_ext: str | None = None,
              accept: Callable[[Path], bool] = is_media) -> list[Job]:
    """The jobs for a command line, in a stable order. Raises on inputs that do not exist."""
    if not inputs:
        raise UsageError("no input given", hint="name image/video files, folders or glob patterns")
    if output_ext:
        check_writable_extension(ext=output_ext)
    to_stdout = output is not None and str(output) == STDIO
    output_path = Path(output) if output is not None and not to_stdout else None
    wanted = lambda p: accept(p) and not (output is None and _looks_like_output(p, task))  # noqa: E731
    warnings: list[str] = []
    found = find_inputs(inputs, recursive=recursive, accept=wanted, skip=output_path, warnings=warnings)
    if to_stdout or (found and found[0].stdin):
        return JobList([_stream_job(found, output_path, output_ext)], warnings)
    single_file = (
        output_path is not None and len(found) == 1 and found[0].root is None
        and not output_path.is_dir() and output_path.suffix != ""
    )
    if output_path is not None and not single_file and output_path.suffix and not output_path.is_dir() and len(found) > 1:
        raise UsageError(f"-o {output_path} looks like a file but there are {len(found)} inputs",
                         hint="give a folder to -o for several inputs")
    jobs = [Job(f.path, _output_for(f, task=task, output=output_path, single_file=single_file, output_ext=output_ext),
                explicit=f.root is None, single_output=single_file) for f in found]
    for job in jobs:
        _check_output_format(job)
    _refuse_collisions(jobs)
    return JobList(jobs, warnings)


def _stream_job(found: list[_Found], output: Path | None, output_ext: str | None) -> Job:
    """The one job of a run that reads stdin and/or writes stdout."""
    if len(found) != 1 or found[0].root is not None:
        raise UsageError("-o - (stdout) takes exactly one image", hint="name one image file, or give -o a folder")
    item = found[0]
    if not item.stdin and item.path.suffix.lower() in VIDEO_EXTENSIONS:
        raise UsageError("a video cannot be written to stdout", path=item.path, hint="give -o a video file name")
    if output is not None:  # stdin to a file
        job = Job(item.path, output, explicit=True, single_output=True, stdin=True)
        if output.is_dir() or not output.suffix:
            raise UsageError("stdin needs -o FILE with an image extension, or -o -", path=output)
        _check_output_format(job)
        return job
    if sys.stdout.isatty():
        raise UsageError("will not write image data to a terminal", hint="redirect stdout (> out.png) or pass -o FILE")
    return Job(item.path, Path(STDIO), explicit=True, single_output=True, stdin=item.stdin,
               stdout_ext=_normal_extension(output_ext or DEFAULT_STREAM_EXTENSION))


def _check_output_format(job: Job) -> None:
    """A usage error now, not after the computing: an output name no writer can write."""
    if job.is_video:
        if job.output.suffix.lower() not in VIDEO_EXTENSIONS:
            raise UsageError(f"a video's output must be a video file ({', '.join(sorted(VIDEO_EXTENSIONS))})",
                             path=job.output, hint="use e.g. -o out.mp4, or -o a folder")
    else:
        check_writable_extension(job.output)


def _refuse_collisions(jobs: list[Job]) -> None:
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen:
            raise UsageError(f"{seen[key]} and {job.source} would both be written to {job.output}",
                             hint="rename one, or use -o with a folder")
        if key == job.source.resolve():
            raise UsageError(f"the output {job.output} is the input itself", hint="choose another -o")
        seen[key] = job.source
