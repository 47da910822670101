"""Plugin discovery and the hooks: an in-test plugin, entry-point plugins, allow/deny lists, broken plugins."""
from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import imgan
from imgan import hookspecs, plugins
from imgan.errors import PluginError, UsageError
from imgan.tasks import Task, TaskRegistry

from .conftest import gradient_image, run_cli, save_png

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("register_"))


def make_invert_plugin(card_dir: Path | None = None) -> types.ModuleType:
    """A plugin that registers a task, a command and a weights card: each hook once."""
    module = types.ModuleType("invert_plugin")

    def make_transform(*, weights=None, device="auto", threads=None, tile=None, amount: float = 1.0):
        def transform(picture, progress=None):
            return picture.replace(rgb=(255 - picture.rgb).astype(picture.rgb.dtype))
        return transform

    @imgan.hookimpl
    def register_tasks(register):
        register(Task(name="invert", summary="invert colours", make_transform=make_transform))

    @imgan.hookimpl
    def register_commands(app):
        from imgan.cli_support import add_image_command

        add_image_command(app, "invert", task="invert", help="Invert colours.")

        @app.command("hello")
        def hello(name: str = "world"):
            print(f"hello {name}")

    @imgan.hookimpl
    def register_weights(register):
        if card_dir is not None:
            register(card_dir)

    module.register_tasks = register_tasks
    module.register_commands = register_commands
    module.register_weights = register_weights
    return module


@pytest.fixture
def invert_plugin(tmp_path):
    card_dir = tmp_path / "cards"
    card_dir.mkdir()
    (card_dir / "invert-full.onnx").write_bytes(b"not really onnx")
    (card_dir / "invert-full.json").write_text(json.dumps({"name": "full", "task": "invert", "file": "invert-full.onnx", "sha256": "0" * 64}))
    plugins.register_plugin(make_invert_plugin(card_dir), name="invert-plugin")
    yield
    plugins.unregister_plugin("invert-plugin")


def test_every_hookspec_has_a_docstring_and_is_documented():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    assert HOOKS == ["register_commands", "register_tasks", "register_weights"]
    for name in HOOKS:
        assert getattr(hookspecs, name).__doc__.strip()
        assert f"{name}(" in docs, f"{name} is not documented in docs/plugins.md"


def test_register_tasks_hook_adds_the_task(invert_plugin):
    task = imgan.get_task("invert")
    assert task.plugin == "invert-plugin"
    assert "invert" in [t.name for t in imgan.list_tasks()]


def test_register_commands_hook_adds_a_runnable_command(invert_plugin, tmp_path):
    from imgan.cli import build_app

    source = save_png(tmp_path / "in.png", gradient_image())
    result = CliRunner().invoke(build_app(), ["invert", str(source), "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), 255 - gradient_image())
    hello = CliRunner().invoke(build_app(), ["hello", "--name", "plugin"])
    assert hello.output.strip() == "hello plugin"


def test_register_weights_hook_adds_to_catalogue(invert_plugin):
    from imgan.weights import catalogue

    entry = catalogue()["invert"]["full"]
    assert entry.origin == "plugin" and entry.file.name == "invert-full.onnx"


def test_plugins_command_lists_tasks_commands_weights(invert_plugin):
    from imgan.cli import build_app

    result = CliRunner().invoke(build_app(), ["plugins", "--json"])
    rows = {row["plugin"]: row for row in json.loads(result.output)["plugins"]}
    assert rows["invert-plugin"]["tasks"] == ["invert"]
    assert set(rows["invert-plugin"]["commands"]) >= {"invert", "hello"}
    assert rows["invert-plugin"]["weights"] == ["invert/full"]
    assert "bicubic" in rows  # the built-in plugin, found through its entry point


def test_duplicate_task_name_is_refused():
    registry = TaskRegistry()
    registry.register(Task(name="a", summary=""), plugin="one")
    with pytest.raises(PluginError, match="already registered by one"):
        registry.register(Task(name="a", summary=""), plugin="two")


def test_unknown_task_lists_known_ones():
    with pytest.raises(UsageError) as info:
        imgan.get_task("nope")
    assert "bicubic" in info.value.one_line()


def _install_fake_distribution(site: Path, name: str, module_source: str) -> None:
    """A dist-info with an `imgan` entry point on a path we control: real entry-point discovery."""
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[imgan]\n{name} = {name}\n")


GOOD_PLUGIN = """
    import imgan

    @imgan.hookimpl
    def register_commands(app):
        @app.command("shout")
        def shout(word: str):
            print(word.upper())
"""


@pytest.fixture
def fake_site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install_fake_distribution(site, "imgan_shout", GOOD_PLUGIN)
    _install_fake_distribution(site, "imgan_broken", "raise ImportError('missing dependency xyz')\n")
    return site


def test_entry_point_plugin_is_discovered_and_runs(fake_site):
    result = run_cli("shout", "hi", env={"PYTHONPATH": str(fake_site)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HI"
    assert "imgan_broken" in result.stderr and "missing dependency xyz" in result.stderr


def test_plugins_json_reports_version_and_warning(fake_site):
    result = run_cli("plugins", "--json", env={"PYTHONPATH": str(fake_site)})
    data = json.loads(result.stdout)
    rows = {row["plugin"]: row for row in data["plugins"]}
    assert rows["imgan_shout"]["version"] == "0.3" and rows["imgan_shout"]["commands"] == ["shout"]
    assert any("imgan_broken" in w for w in data["warnings"])


def test_disable_and_load_lists(fake_site):
    env = {"PYTHONPATH": str(fake_site), "IMGAN_DISABLE_PLUGINS": "imgan_broken,bicubic"}
    result = run_cli("plugins", "--json", env=env)
    names = {row["plugin"] for row in json.loads(result.stdout)["plugins"]}
    assert "imgan_broken" not in names and "bicubic" not in names and "imgan_shout" in names
    assert "imgan_broken" not in result.stderr
    only = run_cli("plugins", "--json", env={"PYTHONPATH": str(fake_site), "IMGAN_LOAD_PLUGINS": "imgan_shout"})
    assert {row["plugin"] for row in json.loads(only.stdout)["plugins"]} == {"imgan_shout"}


def test_plugin_whose_hook_raises_is_a_warning_not_a_dead_cli(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install_fake_distribution(site, "imgan_badhook", """
        import imgan

        @imgan.hookimpl
        def register_tasks(register):
            raise RuntimeError("hook exploded")
    """)
    result = run_cli("weights", "list", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0
    plugins_out = run_cli("plugins", env={"PYTHONPATH": str(site)})
    assert plugins_out.returncode == 0 and "hook exploded" in plugins_out.stderr



BUILTIN_PLUGIN_PACKAGES = ("imgan_bicubic", "imgan_srgan", "imgan_style", "imgan_inpaint", "imgan_video")
IMPORT_SUBMODULES_THEN_BUILD_CLI = """
import importlib, pkgutil, sys, json
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(name + "." + info.name)
from typer.testing import CliRunner
from imgan.cli import build_app
from imgan.plugins import get_tasks
roles = ("make_transform", "verb_options", "validate", "train", "evaluate")
bad = [(t.name, role) for t in get_tasks().all() for role in roles
       if getattr(t, role) is not None and not callable(t.resolve(role))]
bad += [(t.name, "model") for t in get_tasks().all() if t.model is not None and not hasattr(t.resolve("model"), "build")]
result = CliRunner().invoke(build_app(), ["plugins", "--json"])
print(json.dumps({"bad": bad, "exit": result.exit_code}))
"""


def test_builtin_tasks_survive_their_submodules_being_imported_first():
    """Importing every submodule first (imgan_srgan.evaluate once replaced a package attribute of the
    same name) must leave every Task reference resolving to what the core expects."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", IMPORT_SUBMODULES_THEN_BUILD_CLI, *BUILTIN_PLUGIN_PACKAGES],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"bad": [], "exit": 0}


def test_entry_point_reader_follows_sys_path_order_and_reads_versions(tmp_path, monkeypatch):
    from imgan.entry_points import entry_points

    first, second = tmp_path / "first", tmp_path / "second"
    for site, version in ((first, "2.0"), (second, "1.0")):
        info = site / f"imgan_dup-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: imgan-dup\nVersion: {version}\n\nVersion: body\n")
        (info / "entry_points.txt").write_text("[imgan]\nDup = imgan_dup.hooks:Plugin.hooks\n[other]\nx = y\n")
    egg = second / "imgan_egg.egg-info"
    egg.mkdir()
    (egg / "entry_points.txt").write_text("[imgan]\negg = json\n")
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: imgan_egg\nVersion: 0.5\n")
    broken = second / "imgan_bad-1.dist-info"
    broken.mkdir()
    (broken / "entry_points.txt").write_text("[imgan\nnot ini at all")
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])

    found = {point.name: point for point in entry_points("imgan")}
    assert sorted(found) == ["Dup", "egg"]  # the second imgan_dup is shadowed; the broken file is skipped
    assert found["Dup"].value == "imgan_dup.hooks:Plugin.hooks" and found["Dup"].version == "2.0"
    assert found["egg"].version == "0.5" and found["egg"].load() is json
