"""Typed errors. Library code raises these; only the CLI turns them into a message and exit code.

Every message should say what went wrong, which file, and what to do about it.
"""
from __future__ import annotations


class ImganError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, path: object | None = None, hint: str | None = None):
        self.message = message
        self.path = path
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class UsageError(ImganError):
    """The command line or API call itself is wrong (bad option value, unknown name)."""

    exit_code = 2


class InputError(ImganError):
    """An input file cannot be used: missing, unreadable, truncated, too large, wrong shape."""


class OutputError(ImganError):
    """An output cannot be written: exists without --overwrite, folder missing, no permission."""


class WeightsError(ImganError):
    """Weights are missing, corrupt (sha256 mismatch) or incompatible with the task."""


class ProviderError(ImganError):
    """The requested ONNX Runtime execution provider (e.g. CUDA) could not be loaded."""


class PluginError(ImganError):
    """A plugin is broken or registers something invalid (e.g. a duplicate task name)."""


class TrainingError(ImganError):
    """Training or export cannot proceed (bad checkpoint, missing data, layer not in weights)."""


class BatchFailed(ImganError):
    """Some files of a batch failed; `failures` maps each file to its error message."""

    def __init__(self, failures: dict[str, str], total: int):
        self.failures = failures
        self.total = total
        super().__init__(f"{len(failures)} of {total} inputs failed")


class InferenceError(ImganError):
    """ONNX Runtime failed while running a model on an input (bad shape, out of memory, kernel error)."""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; `report` holds what was finished before it (a BatchReport)."""

    def __init__(self, report: object, finished: int, total: int):
        self.report = report
        self.finished = finished
        self.total = total
        super().__init__(f"interrupted after {finished} of {total} files")
