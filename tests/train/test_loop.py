from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from imgan.errors import InputError, OutputError, TrainingError, UsageError
from imgan.train.checkpoint import generator_from_checkpoint, load_checkpoint
from imgan.train.loop import Recipe, TrainConfig, fit
from imgan.train.plot import plot_losses


def build_tiny_generator(model_config: dict) -> nn.Module:
    channels = model_config["channels"]
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1)
    )


class TinyPairs(torch.utils.data.Dataset):
    """x: a fixed random 8x8 image plus random jitter drawn at load time; y: a fixed function of x."""

    def __init__(self, size: int):
        generator = torch.Generator().manual_seed(1234)
        self.images = torch.rand(size, 3, 8, 8, generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index]
        jitter = 0.05 * torch.randn_like(image)  # exercises the loop's per-item seeding
        return {"x": image + jitter, "y": 1.0 - image.flip(-1)}


class TinyRecipe(Recipe):
    task = "tiny"

    def __init__(self, *, adversarial_weight: float = 0.1, channels: int = 8, dataset_size: int = 12):
        self.model_config = {"channels": channels}
        self.loss_weights = {"l1": 1.0, "adversarial": adversarial_weight}
        self.dataset_size = dataset_size
        self.initial: dict[str, dict] = {}

    def build_generator(self) -> nn.Module:
        generator = build_tiny_generator(self.model_config)
        self.initial["generator"] = {k: v.clone() for k, v in generator.state_dict().items()}
        return generator

    def build_discriminator(self) -> nn.Module:
        discriminator = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, padding=1)
        )
        self.initial["discriminator"] = {k: v.clone() for k, v in discriminator.state_dict().items()}
        return discriminator

    def make_dataset(self):
        return TinyPairs(self.dataset_size)

    def generate(self, generator, batch):
        # noise drawn from the global RNG: the loop must make it reproducible per step
        return generator(batch["x"] + 0.01 * torch.randn_like(batch["x"]))

    def real(self, batch):
        return batch["y"]

    def content_losses(self, fake, batch):
        return {"l1": (fake - batch["y"]).abs().mean()}


def tiny_config(run_dir: Path, steps: int, **overrides) -> TrainConfig:
    settings = dict(run_dir=run_dir, steps=steps, batch_size=4, log_every=1, sample_every=1000, checkpoint_every=1000)
    settings.update(overrides)
    return TrainConfig(**settings)


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "mode, spectral_norm",
    [("vanilla", False), ("lsgan", False), ("hinge", False), ("wgan-gp", False), ("vanilla", True)],
)
def test_each_adversarial_mode_trains_both_networks(tmp_path, mode, spectral_norm):
    recipe = TinyRecipe()
    result = fit(recipe, tiny_config(tmp_path, 3, adversarial=mode, spectral_norm=spectral_norm, n_critic=2), progress=False)

    records = read_log(tmp_path)
    assert [record["step"] for record in records] == [1, 2, 3]
    expected = {"l1", "adversarial", "g_total", "d_total", "d_real", "d_fake"}
    expected |= {"gradient_penalty"} if mode == "wgan-gp" else set()
    assert expected <= set(records[-1])
    assert all(torch.isfinite(torch.tensor(float(record[name]))) for record in records for name in expected)
    assert result.final_losses.keys() == expected
    state = load_checkpoint(result.checkpoint)
    for name, before in recipe.initial["generator"].items():
        assert not torch.equal(state["generator"][name], before), name
    weight_key = "0.parametrizations.weight.original" if spectral_norm else "0.weight"
    assert weight_key in state["discriminator"]
    assert not torch.equal(state["discriminator"][weight_key], recipe.initial["discriminator"]["0.weight"])


def test_content_only_recipe_learns_without_a_discriminator(tmp_path):
    recipe = TinyRecipe(adversarial_weight=0.0)
    fit(recipe, tiny_config(tmp_path, 30, lr_g=1e-2, ema_decay=None), progress=False)

    records = read_log(tmp_path)
    assert "d_total" not in records[-1] and "adversarial" not in records[-1]
    first, last = records[0]["l1"], records[-1]["l1"]
    assert last < 0.5 * first
    state = load_checkpoint(tmp_path / "latest.pt")
    assert state["discriminator"] is None and state["generator_ema"] is None


class InterruptingRecipe(TinyRecipe):
    """Interrupts during the `at_step`-th training step, either raising or as a real Ctrl-C."""

    def __init__(self, at_step: int, how: str):
        super().__init__()
        self.at_step, self.how, self.calls = at_step, how, 0

    def generate(self, generator, batch):
        self.calls += 1
        if self.calls == self.at_step:
            if self.how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
        return super().generate(generator, batch)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"adversarial": "wgan-gp", "spectral_norm": True, "n_critic": 2, "lr_schedule": "cosine", "warmup_steps": 2}],
)
def test_resumed_run_reproduces_the_uninterrupted_run(tmp_path, overrides):
    straight, split = tmp_path / "straight", tmp_path / "split"
    fit(TinyRecipe(), tiny_config(straight, 8, **overrides), progress=False)
    first = fit(InterruptingRecipe(5, "raise"), tiny_config(split, 8, **overrides), progress=False)
    assert first.interrupted and first.steps_done == 4
    resumed = fit(TinyRecipe(), tiny_config(split, 8, **overrides), resume=True, progress=False)
    assert resumed.steps_done == 8 and not resumed.interrupted

    straight_log, split_log = read_log(straight), read_log(split)
    assert [record["step"] for record in split_log] == list(range(1, 9))  # no step logged twice
    for expected, got in zip(straight_log[4:], split_log[4:]):  # steps 5..8; dataset 12 / batch 4: mid-epoch
        assert {k: v for k, v in got.items() if k != "time"} == {k: v for k, v in expected.items() if k != "time"}
    straight_state, split_state = load_checkpoint(straight / "latest.pt"), load_checkpoint(split / "latest.pt")
    for part in ("generator", "generator_ema", "discriminator"):
        for name, tensor in straight_state[part].items():
            assert torch.equal(split_state[part][name], tensor), (part, name)


def test_a_run_paused_for_measuring_keeps_the_whole_runs_schedule(tmp_path):
    """pause_at stops early with a checkpoint, but the cosine schedule still spans config.steps."""
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    fit(TinyRecipe(), tiny_config(straight, 8, lr_schedule="cosine"), progress=False)
    for pause in (3, 6, None):
        result = fit(TinyRecipe(), tiny_config(paused, 8, lr_schedule="cosine"), resume=pause != 3, progress=False,
                     pause_at=pause)
        assert result.steps_done == (pause or 8) and not result.interrupted
    straight_rates = [record["lr"] for record in read_log(straight)]
    assert [record["lr"] for record in read_log(paused)] == straight_rates
    assert straight_rates[2] > 0.5 * straight_rates[0]  # a schedule over 3 steps would be at 10 % there
    for name, tensor in load_checkpoint(straight / "latest.pt")["generator"].items():
        assert torch.equal(load_checkpoint(paused / "latest.pt")["generator"][name], tensor), name


def test_ema_differs_from_raw_weights_and_is_what_the_checkpoint_rebuilds(tmp_path):
    recipe = TinyRecipe(channels=5)  # not the default: the model must be rebuilt from model_config
    fit(recipe, tiny_config(tmp_path, 6, lr_g=1e-2), progress=False)
    state = load_checkpoint(tmp_path / "latest.pt")

    ema_model, info = generator_from_checkpoint(tmp_path / "latest.pt", build_tiny_generator)
    raw_model, _ = generator_from_checkpoint(tmp_path / "latest.pt", build_tiny_generator, ema=False)

    assert info["model_config"] == {"channels": 5} and info["step"] == 6 and "generator" not in info
    assert not ema_model.training
    assert ema_model[0].weight.shape[0] == 5
    assert torch.equal(ema_model[0].weight, state["generator_ema"]["0.weight"])
    assert torch.equal(raw_model[0].weight, state["generator"]["0.weight"])
    assert not torch.allclose(ema_model[0].weight, raw_model[0].weight)


def test_checkpoint_is_plain_data_that_loads_with_weights_only(tmp_path):
    config = tiny_config(tmp_path, 2, checkpoint_every=1)
    fit(TinyRecipe(), config, progress=False)

    state = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert state["task"] == "tiny" and state["step"] == 2 and state["format"] == 1
    assert TrainConfig.from_dict(state["train_config"]) == config
    assert set(state["optimizer_g"]) == {"state", "param_groups"}
    assert [record["step"] for record in state["history"]] == [1, 2]
    assert sorted(path.name for path in tmp_path.glob("step_*.pt")) == ["step_000001.pt", "step_000002.pt"]


def test_keyboard_interrupt_inside_a_step_saves_the_last_completed_step(tmp_path):
    result = fit(InterruptingRecipe(3, "raise"), tiny_config(tmp_path, 10), progress=False)

    assert result.interrupted and result.steps_done == 2
    assert load_checkpoint(result.checkpoint)["step"] == 2
    resumed = fit(TinyRecipe(), tiny_config(tmp_path, 4), resume=True, progress=False)
    assert resumed.steps_done == 4 and [r["step"] for r in read_log(tmp_path)] == [1, 2, 3, 4]


def test_ctrl_c_finishes_the_current_step_then_stops(tmp_path):
    previous = signal.getsignal(signal.SIGINT)
    result = fit(InterruptingRecipe(3, "signal"), tiny_config(tmp_path, 10), progress=False)

    assert result.interrupted and result.steps_done == 3
    assert load_checkpoint(result.checkpoint)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is previous


class SuperResolutionLikeRecipe(TinyRecipe):
    def sample_panels(self, batch, fake):
        small_input = torch.nn.functional.avg_pool2d(batch["x"], 2)[:, :1]  # (N,1,4,4): enlarged in the grid
        return [small_input, fake, batch["y"]]


def test_samples_log_and_loss_plot_are_written(tmp_path):
    logged = []
    fit(SuperResolutionLikeRecipe(), tiny_config(tmp_path, 4, sample_every=2, log_every=2), progress=True, on_log=logged.append)

    assert [record["step"] for record in logged] == [2, 4] == [record["step"] for record in read_log(tmp_path)]
    assert {"step", "time", "lr", "l1", "g_total"} <= set(logged[0])
    samples = sorted(path.name for path in (tmp_path / "samples").iterdir())
    assert samples == ["step_000002.png", "step_000004.png"]
    with Image.open(tmp_path / "samples" / "step_000004.png") as grid:
        # 4 rows (batch items) x 3 panels of 8x8 tiles, 2-pixel padding
        assert grid.size == (3 * 10 + 2, 4 * 10 + 2)
    with Image.open(tmp_path / "losses.png") as plot:
        assert plot.width > 300 and plot.height > 200
        assert len(plot.convert("RGB").getcolors(maxcolors=100_000)) > 3  # more than a blank canvas


def test_learning_rate_follows_warmup_and_schedule(tmp_path):
    fit(TinyRecipe(), tiny_config(tmp_path, 8, lr_g=1e-3, lr_schedule="step", warmup_steps=2), progress=False)
    rates = [record["lr"] for record in read_log(tmp_path)]
    assert rates == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4])


def test_fresh_run_refuses_a_directory_with_a_checkpoint(tmp_path):
    fit(TinyRecipe(), tiny_config(tmp_path, 1), progress=False)
    with pytest.raises(OutputError, match="already holds"):
        fit(TinyRecipe(), tiny_config(tmp_path, 2), progress=False)


def test_resume_needs_a_matching_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        fit(TinyRecipe(), tiny_config(tmp_path, 2), resume=True, progress=False)
    fit(TinyRecipe(), tiny_config(tmp_path, 1), progress=False)
    with pytest.raises(TrainingError, match="channels"):
        fit(TinyRecipe(channels=4), tiny_config(tmp_path, 2), resume=True, progress=False)
    with pytest.raises(TrainingError, match="with a discriminator"):
        fit(TinyRecipe(adversarial_weight=0.0), tiny_config(tmp_path, 2), resume=True, progress=False)


def test_recipe_errors_are_reported(tmp_path):
    class UnweightedTerm(TinyRecipe):
        def content_losses(self, fake, batch):
            return {"l1": fake.abs().mean(), "tv": fake.abs().mean()}

    with pytest.raises(TrainingError, match="without a weight: tv"):
        fit(UnweightedTerm(), tiny_config(tmp_path / "a", 1), progress=False)
    with pytest.raises(TrainingError, match="4 samples for batch size 8"):
        fit(TinyRecipe(dataset_size=4), tiny_config(tmp_path / "b", 1, batch_size=8), progress=False)


def test_config_validation_and_round_trip(tmp_path):
    with pytest.raises(UsageError, match="adversarial must be one of"):
        TrainConfig(run_dir=tmp_path, steps=1, adversarial="relativistic")
    with pytest.raises(UsageError, match="unknown TrainConfig settings: colour"):
        TrainConfig.from_dict({"run_dir": str(tmp_path), "steps": 1, "colour": "red"})
    config = TrainConfig(run_dir=tmp_path, steps=5, betas=[0.0, 0.99], ema_decay=None)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_loss_plot_has_a_panel_per_value_and_survives_a_cut_log(tmp_path):
    with pytest.raises(InputError, match="no training log"):
        plot_losses(tmp_path)
    lines = [json.dumps({"step": s, "time": s / 10, "l1": 1 / s, "d_total": -s, "lr": 1e-4}) for s in range(1, 50)]
    lines += [json.dumps({"step": 50, "time": 5.0, "l1": float("nan"), "d_total": -50, "lr": 1e-4}), '{"step": 51, "l1']
    (tmp_path / "log.jsonl").write_text("\n".join(lines))

    path = plot_losses(tmp_path)
    with Image.open(path) as plot:
        assert path == tmp_path / "losses.png"
        assert plot.size == (3 * 360, 220)  # l1, d_total, lr side by side
        top_left_panel = plot.crop((0, 0, 360, 220)).convert("RGB")
        assert (31, 80, 160) in {colour for _, colour in top_left_panel.getcolors(maxcolors=100_000)}
