from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from imgan.errors import TrainingError
from imgan.train.checkpoint import (
    CHECKPOINT_FORMAT,
    generator_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
    save_run_checkpoint,
)


def build_linear(model_config: dict) -> nn.Module:
    return nn.Linear(model_config["features"], 2)


def checkpoint_state(step: int = 1, *, features: int = 3, ema: bool = True) -> dict:
    torch.manual_seed(step)
    raw, averaged = build_linear({"features": features}), build_linear({"features": features})
    return {
        "format": CHECKPOINT_FORMAT,
        "task": "toy",
        "model_config": {"features": features},
        "train_config": {"steps": 10, "betas": [0.5, 0.999]},
        "step": step,
        "generator": raw.state_dict(),
        "generator_ema": averaged.state_dict() if ema else None,
        "history": [{"step": step, "l1": 0.5}],
    }


def test_save_then_load_round_trips_and_leaves_no_temporary_files(tmp_path):
    state = checkpoint_state()
    path = save_checkpoint(tmp_path / "run" / "a.pt", state)
    save_checkpoint(path, state)  # overwriting is fine

    loaded = load_checkpoint(path)
    assert loaded["model_config"] == {"features": 3} and loaded["history"] == [{"step": 1, "l1": 0.5}]
    assert torch.equal(loaded["generator"]["weight"], state["generator"]["weight"])
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]


def test_run_checkpoints_keep_the_last_two_and_latest_is_the_newest(tmp_path):
    for step in (100, 200, 300):
        latest = save_run_checkpoint(tmp_path, checkpoint_state(step))
    assert latest == tmp_path / "latest.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step_000200.pt", "step_000300.pt"]
    assert load_checkpoint(latest)["step"] == 300


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"not a checkpoint at all", "cannot read checkpoint"),
        ("pickled-class", "cannot read checkpoint"),
        ({"format": 99}, "unsupported checkpoint format 99"),
        ([1, 2], "unsupported checkpoint format 'list'"),
    ],
)
def test_unusable_files_raise_training_errors(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "pickled-class":
        torch.save({"format": CHECKPOINT_FORMAT, "object": pickle.PickleError("code")}, path)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(TrainingError, match=message) as raised:
        load_checkpoint(path)
    assert raised.value.path == path


def test_generator_is_rebuilt_from_model_config_with_ema_or_raw_weights(tmp_path):
    state = checkpoint_state(features=5)
    save_checkpoint(tmp_path / "c.pt", state)

    averaged, info = generator_from_checkpoint(tmp_path / "c.pt", build_linear)
    raw, _ = generator_from_checkpoint(tmp_path / "c.pt", build_linear, ema=False)

    assert averaged.in_features == 5 and not averaged.training
    assert torch.equal(averaged.weight, state["generator_ema"]["weight"])
    assert torch.equal(raw.weight, state["generator"]["weight"])
    assert info == {k: v for k, v in state.items() if k not in ("generator", "generator_ema")}


def test_a_run_without_ema_rebuilds_its_raw_weights(tmp_path):
    state = checkpoint_state(ema=False)
    save_checkpoint(tmp_path / "c.pt", state)
    model, _ = generator_from_checkpoint(tmp_path / "c.pt", build_linear)
    assert torch.equal(model.weight, state["generator"]["weight"])


def test_weights_that_do_not_fit_the_model_say_so(tmp_path):
    save_checkpoint(tmp_path / "c.pt", checkpoint_state())
    with pytest.raises(TrainingError, match="generator EMA weights do not fit") as raised:
        generator_from_checkpoint(tmp_path / "c.pt", lambda config: nn.Linear(4, 2))
    assert "model code" in raised.value.hint
