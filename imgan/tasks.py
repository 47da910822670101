"""The Task descriptor: what a plugin registers, and the registry that collects them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PluginError, UsageError


@dataclass(frozen=True)
class Task:
    """One image-to-image job a plugin offers.

    name: short id used by `imgan train/export/eval NAME`, the weights catalogue and output
        names (`<stem>.<name>.<ext>`).
    make_transform: builds the per-image function ``Picture -> Picture`` used for files, folder
        batches and video frames alike: ``make_transform(weights=None, device="auto",
        threads=None, **task_options)``.
    train: a Typer-style function (its parameters are the CLI options) run by `imgan train NAME`.
    export: ``export(checkpoint: Path, output: Path, **kw) -> report`` run by `imgan export NAME`.
    evaluate: a Typer-style function run by `imgan eval NAME`.
    """

    name: str
    summary: str
    make_transform: Callable[..., Callable[[Any], Any]] | None = None
    default_weights: str | None = None
    verb: str | None = None
    train: Callable[..., Any] | None = None
    export: Callable[..., Any] | None = None
    evaluate: Callable[..., Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise PluginError(f"invalid task name {self.name!r}: use letters, digits, '-' or '_'")


class TaskRegistry:
    """Collects tasks from the plugins; a second task of the same name is refused."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, task: Task, plugin: str = "") -> None:
        if not isinstance(task, Task):
            raise PluginError(f"plugin {plugin or '?'} registered {task!r}, not an imgan.Task")
        if task.name in self._tasks:
            other = self._tasks[task.name].plugin or "?"
            raise PluginError(f"task {task.name!r} from plugin {plugin or '?'} is already registered by {other}")
        self._tasks[task.name] = task if task.plugin else _with_plugin(task, plugin)

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UsageError(f"unknown task {name!r}", hint=f"available tasks: {known}") from None

    def all(self) -> list[Task]:
        return [self._tasks[name] for name in sorted(self._tasks)]

    def __contains__(self, name: str) -> bool:
        return name in self._tasks


def _with_plugin(task: Task, plugin: str) -> Task:
    from dataclasses import replace

    return replace(task, plugin=plugin)
