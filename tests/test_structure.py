"""The shape of the tree: no import circles, and inference/evaluation never reach the CLI layer."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"imgan": REPO / "imgan", **{path.name: path for path in (REPO / "plugins").iterdir()
                                       if (path / "__init__.py").is_file()}}
TEMPLATE = ("__init__.py", "spec.py", "cli.py", "infer.py", "model.py", "recipe.py", "evaluate.py")
CLI_LAYER = ("typer", "rich", "imgan.cli", "imgan.cli_support")


def module_name(path: Path) -> str:
    for package, root in PACKAGES.items():
        if path.is_relative_to(root):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def imports_of(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules ``path`` imports (relative imports resolved); only those run at import time if asked."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            found.update(submodules)
            if not all(_is_module(name) for name in submodules):  # names from the module itself
                found.add(base)
    return found


def _is_module(name: str) -> bool:
    package, _, rest = name.partition(".")
    root = PACKAGES.get(package)
    if root is None:
        return False
    target = root.joinpath(*rest.split(".")) if rest else root
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def project_files() -> list[Path]:
    return sorted(path for root in PACKAGES.values() for path in root.rglob("*.py"))


def test_no_import_circles_at_import_time():
    modules = {module_name(path): path for path in project_files()}
    # Every import counts, also inside functions: a circle of lazy imports is still one. Only a
    # package __init__'s hook bodies are left out (they load the plugin's cli for the CLI).
    graph = {name: {other for other in imports_of(path, top_level_only=path.name == "__init__.py")
                    if other in modules and other != name}
             for name, path in modules.items()}
    circles = []

    def visit(name: str, stack: list[str]) -> None:
        for other in graph[name]:
            if other in stack:
                circles.append(stack[stack.index(other):] + [other])
            elif other not in done:
                visit(other, stack + [other])
        done.add(name)

    done: set[str] = set()
    for name in graph:
        if name not in done:
            visit(name, [name])
    assert not circles, circles


@pytest.mark.parametrize("plugin", sorted(name for name in PACKAGES if name.startswith("imgan_")))
def test_every_plugin_has_the_template_files(plugin):
    files = {path.name for path in PACKAGES[plugin].glob("*.py")}
    wanted = set(TEMPLATE) if plugin != "imgan_bicubic" else {"__init__.py", "infer.py"}
    assert wanted <= files, sorted(wanted - files)


@pytest.mark.parametrize("path", [path for path in project_files()
                                  # __init__ may import .cli inside register_commands: the hook is CLI code
                                  if path.parent.name.startswith("imgan_") and path.name not in ("cli.py", "__init__.py")],
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_only_the_plugin_cli_reaches_the_cli_layer(path):
    plugin = path.parent.name
    reached = {name for name in imports_of(path, top_level_only=False)
               if name.startswith(CLI_LAYER) or name == f"{plugin}.cli" or name.startswith(f"{plugin}.cli.")}
    assert not reached, f"{path.relative_to(REPO)} imports {sorted(reached)}"


def test_no_private_names_imported_across_modules():
    offenders = []
    for path in project_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                offenders += [f"{path.relative_to(REPO)}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not offenders, offenders
