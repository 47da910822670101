"""Files on disk: atomic writes (temp file + rename), shared by images, video, checkpoints and cards."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Callable

from .errors import OutputError

TEMP_SUFFIX = ".part"


def atomic_write(path: str | os.PathLike, write_fn: Callable[[Path], None], *, overwrite: bool) -> Path:
    """Call write_fn(temp) for a hidden temp file beside `path`, then rename it onto `path`.

    Readers of `path` see the old file or the complete new one, never a partial one, even if the
    process is killed. The temp file is removed on any exception, Ctrl-C included. (No fsync: this
    guards against crashes of the process, not of the machine, at no cost per file.)
    A kill -9 cannot be cleaned up after, so the temp files an earlier, killed write of this same
    `path` left (`.<name>.<8 hex>.part`) are removed first.
    """
    path = Path(path)
    _check_output_path(path, overwrite)
    remove_stale_temp_files(path)
    temp = _new_temp_file(path)
    try:
        write_fn(temp)
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write the file ({exc.strerror or exc})", path=path,
                              hint="check free disk space and the folder's permissions") from exc
        raise
    return path


def _check_output_path(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise OutputError("the output folder does not exist", path=path,
                          hint=f"create it first (mkdir -p '{path.parent}')")
    if path.is_dir():
        raise OutputError("a folder already has this name", path=path, hint="choose an output file name")
    if path.exists() and not overwrite:
        raise OutputError("output exists", path=path, hint="pass --overwrite to replace it")


def _new_temp_file(path: Path) -> Path:
    """Create an unused hidden `.<name>.<random>.part` beside `path`, with the usual permissions."""
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot create a file in the output folder ({exc.strerror or exc})", path=path,
                              hint="check the folder's permissions and free disk space") from exc


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files of earlier writes of `path` (exactly `.<name>.<8 hex>.part` beside it,
    as a process killed mid-write leaves them); returns what was removed. Nothing else is touched."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"[0-9a-f]{8}" + re.escape(TEMP_SUFFIX))
    removed = []
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return removed
    for candidate in candidates:
        try:
            if candidate.is_file() and not candidate.is_symlink():
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            pass  # not ours to fight over: the write itself reports real problems
    return removed


def check_output_folder(folder: str | os.PathLike) -> None:
    """OutputError unless files can be written in `folder`, or it can be created (its nearest
    existing ancestor is a writable folder). Probes by creating and removing a temp file, which
    also catches read-only file systems and root-owned mounts where permission bits say nothing."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError("cannot create the output folder: a file of that name is in the way", path=existing,
                          hint=f"choose another output folder than '{folder}'")
    probe = existing / f".imgan-write-check.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        probe.unlink()
    except OSError as exc:
        what = "is not writable" if existing == folder else "cannot be created"
        raise OutputError(f"the output folder {what} ({exc.strerror or type(exc).__name__})", path=folder,
                          hint="check the folder's permissions, or choose another output folder") from None
