"""Files on disk: atomic writes (temp file + rename), shared by images, video, checkpoints and cards."""
from __future__ import annotations

import os
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
    """
    path = Path(path)
    _check_output_path(path, overwrite)
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
