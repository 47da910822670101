"""Turn the user's inputs (files, folders, globs) into jobs: a source and the output it gets.

Outputs: ``-o FILE`` for one input, ``-o DIR`` mirroring each input folder's tree, or by default
``<stem>.<task>.<ext>`` beside the input. Files that look like our own outputs are never taken
as inputs, so running a folder twice does not process its results.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import InputError, UsageError
from .images import SUPPORTED_EXTENSIONS as IMAGE_EXTENSIONS
from .video import VIDEO_EXTENSIONS

# Video containers we encode H.264 into; other containers (.avi, .webm) are written as .mp4.
VIDEO_OUTPUT_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".m4v"})
GLOB_CHARACTERS = set("*?[")


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    explicit: bool  # named directly by the user (not found in a folder or glob)
    single_output: bool = False  # the user named this output file with -o FILE

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class _Found:
    path: Path
    root: Path | None  # the folder the user named (None for a file named directly)


def is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def _looks_like_output(path: Path, task: str) -> bool:
    return path.stem.endswith(f".{task}")


def _scan_folder(folder: Path, recursive: bool, accept: Callable[[Path], bool], skip: Path | None) -> Iterable[Path]:
    pattern = "**/*" if recursive else "*"
    for path in sorted(folder.glob(pattern)):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if skip is not None and skip in path.parents:
            continue
        if path.is_file() and accept(path):
            yield path


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if set(p) & GLOB_CHARACTERS)]]
    return Path(*fixed) if fixed else Path(".")


def find_inputs(inputs: Sequence[str | os.PathLike], *, recursive: bool, accept: Callable[[Path], bool],
                skip: Path | None = None) -> list[_Found]:
    found: list[_Found] = []
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_file():
            found.append(_Found(path, None))
        elif path.is_dir():
            found.extend(_Found(p, path) for p in _scan_folder(path, recursive, accept, skip))
        elif set(text) & GLOB_CHARACTERS:
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            if not matches:
                raise InputError("the pattern matched no file", path=text)
            root = _glob_root(text)
            found.extend(_Found(m, root) for m in matches if accept(m))
        else:
            raise InputError("no such file or folder", path=text, hint="check the spelling, or quote a glob pattern")
    return found


def _output_suffix(source: Path, output_ext: str | None) -> str:
    if source.suffix.lower() in VIDEO_EXTENSIONS:
        return source.suffix if source.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS else ".mp4"
    if output_ext:
        return output_ext if output_ext.startswith(".") else f".{output_ext}"
    return source.suffix


def _output_for(item: _Found, *, task: str, output: Path | None, single_file: bool, output_ext: str | None) -> Path:
    suffix = _output_suffix(item.path, output_ext)
    if output is None:
        return item.path.with_name(f"{item.path.stem}.{task}{suffix}")
    if single_file:
        return output
    relative = item.path.relative_to(item.root) if item.root is not None else Path(item.path.name)
    return output / relative.with_suffix(suffix)


def plan_jobs(inputs: Sequence[str | os.PathLike], *, task: str, output: str | os.PathLike | None = None,
              recursive: bool = False, output_ext: str | None = None,
              accept: Callable[[Path], bool] = is_media) -> list[Job]:
    """The jobs for a command line, in a stable order. Raises on inputs that do not exist."""
    if not inputs:
        raise UsageError("no input given", hint="name image/video files, folders or glob patterns")
    output_path = Path(output) if output is not None else None
    wanted = lambda p: accept(p) and not (output_path is None and _looks_like_output(p, task))  # noqa: E731
    found = find_inputs(inputs, recursive=recursive, accept=wanted, skip=output_path)
    single_file = (
        output_path is not None and len(found) == 1 and found[0].root is None
        and not output_path.is_dir() and output_path.suffix != ""
    )
    if output_path is not None and not single_file and output_path.suffix and not output_path.is_dir() and len(found) > 1:
        raise UsageError(f"-o {output_path} looks like a file but there are {len(found)} inputs",
                         hint="give a folder to -o for several inputs")
    jobs = [Job(f.path, _output_for(f, task=task, output=output_path, single_file=single_file, output_ext=output_ext),
                explicit=f.root is None, single_output=single_file) for f in found]
    _refuse_collisions(jobs)
    return jobs


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
