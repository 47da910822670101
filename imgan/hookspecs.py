"""Every extension point of imgan. A plugin implements any of these with `@imgan.hookimpl`.

Plugins are found through the entry-point group ``imgan``; the built-in tasks in ``plugins/``
load exactly the same way. Hooks take a ``register`` callback rather than returning values so
that one plugin can offer several things and the order of plugins never matters.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("imgan")


@hookspec
def register_tasks(register):
    """Offer tasks: call ``register(Task(...))`` once per task.

    A :class:`imgan.tasks.Task` names the task, its image verb and default weights, and (as
    "module:attr" references, imported on first use) its per-image transform, the verb's options
    and their check, its ModelSpec, and its training and evaluation commands. From it the core
    adds ``imgan VERB``, ``imgan train/eval NAME`` and ``imgan export NAME``. Task names and verbs
    must be unique across all plugins.
    """


@hookspec
def register_commands(app):
    """Add extra Typer commands to the ``imgan`` CLI: ``@app.command()`` on the given Typer app.

    Only for commands a Task does not describe (e.g. ``imgan styles``): the core already adds each
    task's verb and its train/eval commands.

    Keep the command bodies thin: parse, call one library function, render.
    Import heavy modules (numpy, onnxruntime, torch) inside the command, not at module level,
    so that ``imgan --help`` stays fast.
    """


@hookspec
def register_weights(register):
    """Offer weights that live outside the shipped ``weights/`` folder and ``$IMGAN_HOME``.

    Call ``register(path)`` with a model card (``*.json``) or a folder of model cards, or
    ``register(Weights(...))`` with a descriptor. Cards beside their ONNX files are the usual way.
    """
