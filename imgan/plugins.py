"""Plugin discovery: one pluggy PluginManager, filled from the ``imgan`` entry-point group.

``IMGAN_LOAD_PLUGINS=a,b`` loads only those entry points (by entry-point or distribution name);
``IMGAN_DISABLE_PLUGINS=a,b`` skips them. A plugin that fails to import or whose hooks raise
is reported as a warning naming it: the CLI keeps working with the other plugins.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .entry_points import EntryPoint, entry_points
from .errors import ImganError
from .tasks import Task, TaskRegistry

hookimpl = pluggy.HookimplMarker("imgan")
ENTRY_POINT_GROUP = "imgan"


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    tasks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)


@dataclass
class PluginState:
    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _tasks: TaskRegistry | None = None


_state: PluginState | None = None


def _names_from_env(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _is_wanted(entry_point: EntryPoint) -> bool:
    names = {entry_point.name, entry_point.dist}
    allow = _names_from_env("IMGAN_LOAD_PLUGINS")
    deny = _names_from_env("IMGAN_DISABLE_PLUGINS") or set()
    if allow is not None and not names & allow:
        return False
    return not names & deny


def _warn(state: PluginState, text: str) -> None:
    state.warnings.append(text)
    print(f"imgan: warning: {text}", file=sys.stderr)


def warn_about_plugin(plugin: str, text: str) -> None:
    """A plugin's fault found after loading (e.g. a Task reference that does not import): a warning."""
    _warn(get_state(), f"plugin {plugin!r}: {text}")


def _load_entry_points(state: PluginState) -> None:
    seen: set[str] = set()
    for entry_point in entry_points(ENTRY_POINT_GROUP):
        # entry_points() already keeps the first of each distribution; this keeps the first of each name.
        if entry_point.name in seen or not _is_wanted(entry_point):
            continue
        seen.add(entry_point.name)
        try:
            module = entry_point.load()
            state.manager.register(module, name=entry_point.name)
        except Exception as exc:  # a broken third-party plugin must not kill the CLI
            _warn(state, f"plugin {entry_point.name!r} failed to load and was skipped: {exc}")
            continue
        state.infos[entry_point.name] = PluginInfo(
            name=entry_point.name,
            version=entry_point.version,
            module=entry_point.value,
        )


def get_state() -> PluginState:
    """The loaded plugins (loaded once per process)."""
    global _state
    if _state is None:
        manager = pluggy.PluginManager("imgan")
        manager.add_hookspecs(hookspecs)
        _state = PluginState(manager=manager)
        _load_entry_points(_state)
    return _state


def register_plugin(module: Any, name: str, version: str = "local") -> None:
    """Register an in-process plugin object (used by tests and embedding applications)."""
    state = get_state()
    state.manager.register(module, name=name)
    state.infos[name] = PluginInfo(name=name, version=version, module=getattr(module, "__name__", repr(module)))
    state._tasks = None


def unregister_plugin(name: str) -> None:
    state = get_state()
    state.manager.unregister(name=name)
    state.infos.pop(name, None)
    state._tasks = None


def _call_per_plugin(state: PluginState, hook_name: str, make_callback: Callable[[str], Callable]) -> None:
    """Call one hook plugin by plugin, so a failure is pinned on the plugin that caused it."""
    for impl in getattr(state.manager.hook, hook_name).get_hookimpls():
        plugin_name = impl.plugin_name
        try:
            impl.function(make_callback(plugin_name))
        except ImganError as exc:
            _warn(state, f"plugin {plugin_name!r}: {exc.one_line()}")
        except Exception as exc:
            _warn(state, f"plugin {plugin_name!r} raised in {hook_name}: {exc!r}")


def _info(state: PluginState, plugin_name: str) -> PluginInfo:
    return state.infos.setdefault(plugin_name, PluginInfo(name=plugin_name, version="?", module="?"))


def get_tasks() -> TaskRegistry:
    state = get_state()
    if state._tasks is None:
        registry = TaskRegistry()

        def make_register(plugin_name: str):
            def register(task: Task) -> None:
                registry.register(task, plugin=plugin_name)
                _info(state, plugin_name).tasks.append(task.name)

            return register

        _call_per_plugin(state, "register_tasks", make_register)
        state._tasks = registry
    return state._tasks


def get_task(name: str) -> Task:
    return get_tasks().get(name)


def add_plugin_commands(app) -> None:
    """Let every plugin add its Typer commands; record which plugin added which."""
    state = get_state()
    for impl in state.manager.hook.register_commands.get_hookimpls():
        before = {id(c) for c in app.registered_commands}
        try:
            impl.function(app)
        except Exception as exc:
            _warn(state, f"plugin {impl.plugin_name!r} raised in register_commands: {exc!r}")
            continue
        added = [c for c in app.registered_commands if id(c) not in before]
        names = [c.name or c.callback.__name__.replace("_", "-") for c in added]
        _info(state, impl.plugin_name).commands.extend(names)


def collect_registered_weights() -> list[tuple[str, Any]]:
    """(plugin name, Weights or card path) pairs offered through ``register_weights``."""
    state = get_state()
    offered: list[tuple[str, Any]] = []

    def make_register(plugin_name: str):
        return lambda item: offered.append((plugin_name, item))

    _call_per_plugin(state, "register_weights", make_register)
    return offered


def build_transform(task: str, *, weights: str | os.PathLike | None = None, device: str = "auto",
                    threads: int | None = None, tile: int | None = None, **task_options: Any):
    """The per-picture transform of a task, with its weights loaded once."""
    descriptor = get_task(task)
    make_transform = descriptor.resolve("make_transform")
    if make_transform is None:
        from .errors import UsageError

        raise UsageError(f"task {task!r} has no image inference")
    return make_transform(weights=weights, device=device, threads=threads, tile=tile, **task_options)
