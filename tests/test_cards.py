"""The typed model card: one layout for every task, old layouts converted, written atomically."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgan.cards import (CARD_FORMAT, ModelCard, Provenance, Running, portable_path, portable_paths, read_card,
                         update_metrics, write_card)
from imgan.errors import PluginError, UsageError, WeightsError
from imgan.tasks import Task, resolve_ref
from imgan.weights import shipped_weights_dir

REPO = Path(__file__).resolve().parents[1]
# The four card layouts written before card_format 2, one per task, as they stood in weights/.
LEGACY = {
    "sr": {"name": "srresnet-x4", "task": "sr", "version": 1, "scale": 4, "pad_multiple": 1, "tile_overlap": 24,
           "input_convention": "rgb01", "architecture": {"generator": {"channels": 48, "blocks": 8}, "parameters": 5},
           "recipe": {"stage": "srresnet", "data": "/work/shared/assets/photos", "train_config": {"steps": 1400},
                      "command": "imgan train sr --data /work/shared/assets/photos"},
           "steps": 1400, "training_seconds": 8173.1, "file": "sr-srresnet-x4.onnx", "sha256": "ab" * 32,
           "opset": 17, "parity_max_abs_diff": 1e-6, "metrics": {"Set5": {"psnr_y": 30.55}}},
    "inpaint": {"name": "gated", "task": "inpaint", "scale": 1, "pad_multiple": 4, "inputs": {"image": "RGB", "mask": "1 = hole"},
                "output": "the composite", "tile_overlap": 64, "working_size": 512, "max_hole_radius": 48,
                "recipe": {"model_config": {"width": 16}, "steps": 2400, "train_seconds": 5000.0},
                "file": "inpaint-gated.onnx", "sha256": "cd" * 32},
    "style": {"name": "monet", "task": "style", "pad_multiple": 4, "inputs": ["input", "reference"], "tile_overlap": 52,
              "style_image": "monet.jpg", "style_image_path": "/abs/monet.jpg", "thumbnail": "style-monet.png",
              "recipe": {"net": {"widths": [16, 32, 64]}, "style": {"style_size": 512}, "steps": 300},
              "metrics": {"training_seconds": 1430.3}, "file": "style-monet.onnx", "sha256": "ef" * 32},
    "video": {"name": "convlstm-mmnist", "task": "video", "version": 2, "input_convention": "gray01", "tile_overlap": 0,
              "context_frames": 10, "state_names": ["h0", "c0"], "model_config": {"hidden": [64]},
              "recipe": {"steps": 5000, "train_seconds": 5100.0}, "file": "video-convlstm-mmnist.onnx", "sha256": "01" * 32},
}


def test_every_shipped_card_has_the_one_layout():
    for path in shipped_weights_dir().glob("*.json"):
        raw = json.loads(path.read_text())
        assert raw["card_format"] == CARD_FORMAT, path
        assert set(raw) == set(ModelCard.__dataclass_fields__), path
        card = read_card(path)
        assert card.to_dict() == raw, path  # reading and writing are one class: nothing lost
        assert "/work/" not in path.read_text() and "/root/" not in path.read_text(), path


@pytest.mark.parametrize("task", sorted(LEGACY))
def test_old_layouts_load_into_the_new_groups(tmp_path, task):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(LEGACY[task]))
    card = read_card(path)
    assert card.task == task and card.card_format == CARD_FORMAT and card.model_config
    expected_config = {"sr": {"generator": {"channels": 48, "blocks": 8}}, "inpaint": {"width": 16},
                       "style": {"widths": [16, 32, 64], "style": {"image": "monet.jpg", "style_size": 512}},
                       "video": {"hidden": [64]}}[task]
    assert card.model_config == expected_config
    assert card.provenance.steps == {"sr": 1400, "inpaint": 2400, "style": 300, "video": 5000}[task]
    assert card.provenance.seconds == {"sr": 8173.1, "inpaint": 5000.0, "style": 1430.3, "video": 5100.0}[task]
    assert "/work/" not in json.dumps(card.to_dict())
    if task == "inpaint":
        assert card.running.inference == {"working_size": 512, "max_hole_radius": 48}
        assert card.running.outputs == {"output": "the composite"}
    if task == "video":
        assert card.running.input_convention == "gray01" and card.running.inference["context_frames"] == 10
    if task == "sr":
        assert card.export.opset == 17 and card.metrics["Set5"]["psnr_y"] == 30.55


def test_write_read_round_trip_and_metrics_update(tmp_path):
    card = ModelCard(task="t", name="n", file="t-n.onnx", sha256="0" * 64, running=Running(scale=2),
                     provenance=Provenance(steps=3, resumptions=({"step": 1},)))
    path = write_card(card, tmp_path / "t-n.json")
    assert read_card(path) == card
    updated = update_metrics(path, {"Set5": {"psnr_y": 31.0}})
    assert read_card(path).metrics == {"Set5": {"psnr_y": 31.0}} == updated.metrics
    assert not list(tmp_path.glob(".*.part"))


def test_bad_cards_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.json"
    for text, message in [("{", "unreadable"), ("[]", "JSON object"),
                          (json.dumps({"card_format": 2, "task": "t", "name": "n", "file": "f"}), "lacks sha256"),
                          (json.dumps({"card_format": 9, "task": "t", "name": "n", "file": "f", "sha256": "x"}), "newer"),
                          (json.dumps({"card_format": 2, "task": "t", "name": "n", "file": "f", "sha256": "x",
                                       "running": {"scael": 2}}), "unknown keys scael")]:
        path.write_text(text)
        with pytest.raises(WeightsError, match=message) as info:
            read_card(path)
        assert str(path) in info.value.one_line() and "\n" not in info.value.one_line()


def test_paths_recorded_in_cards_are_portable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    home = str(Path.home())
    assert portable_path(str(tmp_path / "data" / "x.png")) == str(Path("data") / "x.png")
    assert portable_path(home + "/.cache/imgan/runs/a") == "~/.cache/imgan/runs/a"
    assert portable_path("/very/far/away/place/data") == "place/data"
    assert portable_path("relative/stays") == "relative/stays"
    converted = portable_paths({"cmd": f"imgan train sr --data {home}/photos --steps 3", "list": [home + "/x"]})
    assert converted == {"cmd": "imgan train sr --data '~/photos' --steps 3", "list": ["~/x"]}
    # words that start with a path (a run's data: two folders) keep every word, each path made portable
    assert portable_paths(f"{tmp_path}/clips + camera motion over {home}/photos") == "clips + camera motion over '~/photos'"
    spaced = tmp_path / "my photos"
    spaced.mkdir()
    assert portable_paths(str(spaced)) == "my photos"  # one existing path, spaces and all


def test_task_references_load_lazily_and_fail_clearly():
    task = Task(name="t", summary="s", verb="tee", make_transform="imgan.runtime.model_transform:model_transform")
    assert callable(task.resolve("make_transform")) and task.resolve("model") is None
    with pytest.raises(PluginError, match="cannot load 'imgan.nowhere:x'"):
        resolve_ref("imgan.nowhere:x", owner="task 't'")
    with pytest.raises(PluginError, match="no make_transform"):
        Task(name="t", summary="s", verb="tee")
    with pytest.raises(PluginError, match="invalid verb"):
        Task(name="t", summary="s", verb="a b", make_transform=print)


def test_run_names_cannot_escape_the_runs_folder(isolated_home):
    from imgan.train.run import check_run_name, default_run_dir

    assert default_run_dir("inpaint", "gated") == isolated_home / "runs" / "inpaint-gated"
    for bad in ("x/../../..", "..", "../x", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(UsageError, match="invalid name"):
            check_run_name(bad)


def test_eval_log_skips_a_line_cut_by_a_crash(tmp_path):
    from imgan.train.run import append_eval, read_eval_log

    append_eval(tmp_path, {"step": 1, "psnr": 28.0})
    append_eval(tmp_path, {"step": 2, "psnr": 28.5})
    with (tmp_path / "eval.jsonl").open("a") as handle:
        handle.write('{"step": 3, "ps')
    assert [record["step"] for record in read_eval_log(tmp_path)] == [1, 2]
    assert read_eval_log(tmp_path / "missing") == []


def test_import_imgan_and_the_card_code_load_neither_torch_nor_typer():
    code = ("import sys, imgan, imgan.cards, imgan.weights, imgan.api; imgan.list_tasks(); "
            "from imgan.weights import catalogue; catalogue(); "
            "print(sorted(m for m in ('torch', 'typer', 'rich') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
