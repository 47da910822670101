"""The Task descriptor: what a plugin registers, and the registry that collects them.

A Task is the single source of truth about a task for the core: the CLI adds its image verb,
its `imgan train/eval` commands; the weights catalogue takes its default; export, warm starts and
the shipped-parity test rebuild its generator through its ModelSpec. Everything heavy is named by
a reference ``"package.module:attribute"`` and imported on first use, so registering a task (and
``import imgan``) loads neither typer nor torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Union

from .errors import PluginError, UsageError

# A callable, or "package.module:attribute" naming one (imported when first needed).
Ref = Union[Callable[..., Any], str]


@dataclass(frozen=True)
class Task:
    """One image-to-image job a plugin offers.

    name:            id of `imgan train/export/eval NAME`, the weights catalogue and output names
                     (`<stem>.<name>.<ext>`).
    verb:            the image command the core adds (`imgan VERB INPUTS...`), or None.
    default_weights: the catalogue name used when no --weights is given.
    make_transform:  ``make_transform(weights=None, device="auto", threads=None, tile=None,
                     **verb_options) -> (Picture -> Picture)``: the per-image function used for
                     files, folder batches and video frames alike (numpy + ONNX Runtime).
    verb_options:    a function whose Typer-annotated parameters are the verb's own options.
    validate:        ``validate(verb_options: dict)``, raising UsageError before any work.
    model:           an ``imgan.train.spec.ModelSpec``: builds, exports and checks the generator.
    train, evaluate: Typer-style functions behind `imgan train NAME` and `imgan eval NAME`.
    """

    name: str
    summary: str
    verb: str | None = None
    default_weights: str | None = None
    make_transform: Ref | None = None
    verb_options: Ref | None = None
    validate: Ref | None = None
    model: Ref | None = None
    train: Ref | None = None
    evaluate: Ref | None = None
    plugin: str = ""

    def __post_init__(self) -> None:
        for label, value in (("task", self.name), ("verb", self.verb or "x")):
            if not value or not value.replace("-", "").replace("_", "").isalnum():
                raise PluginError(f"invalid {label} name {value!r}: use letters, digits, '-' or '_'")
        if self.verb is not None and self.make_transform is None:
            raise PluginError(f"task {self.name!r} has a verb but no make_transform")

    def resolve(self, part: str) -> Any:
        """The object behind one of the reference fields (None where the task has none)."""
        return resolve_ref(getattr(self, part), owner=f"task {self.name!r} ({part})")


def resolve_ref(ref: Ref | None, *, owner: str) -> Any:
    if ref is None or not isinstance(ref, str):
        return ref
    module_name, _, attribute = ref.partition(":")
    try:
        value = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            value = getattr(value, part)
    except (ImportError, AttributeError) as error:
        raise PluginError(f"{owner}: cannot load {ref!r}: {error}") from None
    return value


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
        verbs = {known.verb: known.name for known in self._tasks.values() if known.verb}
        if task.verb in verbs:
            raise PluginError(f"verb {task.verb!r} of task {task.name!r} is already taken by task {verbs[task.verb]!r}")
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
