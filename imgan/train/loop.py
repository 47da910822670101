"""The one GAN training loop every imgan plugin trains through.

A plugin describes *what* to train in a `Recipe` (models, data, loss terms); `fit` does the rest:
optimisers, the discriminator/generator alternation, EMA of the generator, AMP, learning-rate
schedule, DistributedDataParallel under torchrun, progress bar, log.jsonl, sample grids, loss
curves, checkpoints, Ctrl-C and exact resume.

    result = fit(MyRecipe(...), TrainConfig(run_dir=Path("runs/sr"), steps=20_000), resume=False)

One step (`_train_step`):
    fake = recipe.generate(G, batch)
    if a discriminator is trained:           n_critic times
        D loss = discriminator_loss(D(real), D(fake.detach()))  [+ gradient penalty for wgan-gp]
    G loss = sum(loss_weights[k] * content[k]) + loss_weights["adversarial"] * adversarial(D(fake))
    EMA(G) <- lerp towards G

Randomness and exact resume
---------------------------
No random state is carried from one step to the next; every draw is derived from the config's
seed and a position:
  * epoch e visits the dataset in the order randperm(seed, e);
  * the item at position p of epoch e is loaded with the global RNGs seeded from (seed, e, p), so
    random crops and flips are the same in any loader worker, on any rank, and after a resume;
  * step s runs (noise, random masks, the gradient penalty's mixing) with the RNGs seeded from
    (seed, s, rank).
A checkpoint therefore needs only (step, epoch, position) besides weights and optimiser states,
and a resumed run reproduces the uninterrupted run's losses and weights exactly on the CPU (on
CUDA up to the non-determinism of some kernels). The learning rate is a pure function of the step.

Distributed: launched with torchrun (WORLD_SIZE > 1), fit joins the process group (gloo on the
CPU, nccl on CUDA), wraps G and D in DistributedDataParallel and splits each epoch between the
ranks. Only rank 0 writes checkpoints, samples, logs and the progress bar; its losses are the ones
logged. Resuming needs run_dir on a filesystem every rank can read.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from imgan.config import JsonConfig
from imgan.errors import OutputError, ProviderError, TrainingError, UsageError
from imgan.train.checkpoint import (
    CHECKPOINT_FORMAT,
    LATEST_NAME,
    load_checkpoint,
    load_state_strict,
    save_run_checkpoint,
)
from imgan.train.data import make_loader, seed_everything
from imgan.train.losses import (
    ADVERSARIAL_MODES,
    discriminator_loss,
    generator_adversarial_loss,
    gradient_penalty,
)
from imgan.train.plot import LOG_NAME, plot_losses

LR_SCHEDULES = ("constant", "cosine", "step")
SAMPLE_ROWS = 4
HISTORY_TAIL = 100  # log records kept in each checkpoint
# Loss names the loop itself logs; a recipe's content terms must not reuse them.
RESERVED_LOSS_NAMES = ("adversarial", "g_total", "d_total", "d_real", "d_fake", "gradient_penalty")
# Run folders this process paused (pause_at) -> the step: going on from there is no resumption.
_PAUSED: dict[Path, int] = {}


class Recipe(Protocol):
    """What a plugin supplies to train one task. Subclass it to inherit the two optional defaults.

    task:           the task name, e.g. "style"; a checkpoint only resumes under the same task.
    model_config:   JSON-able dict from which `build_generator` rebuilds the generator; stored in
                    every checkpoint so export needs nothing else (generator_from_checkpoint).
    loss_weights:   weight per content term name, plus "adversarial" for the generator's GAN term
                    (absent or 0: no discriminator is built or trained).
    """

    task: str
    model_config: dict
    loss_weights: dict[str, float]
    model_spec: Any = None  # the task's imgan.train.spec.ModelSpec: needed for TrainConfig.init_from

    def build_generator(self) -> nn.Module:
        """A fresh generator (random init) for `model_config`; by default the ModelSpec's."""
        return self.model_spec.build(self.model_config)

    def describe(self) -> dict:
        """Optional: what run.json (and so the model card) records of the recipe: data, crops, losses."""
        return {}

    def build_discriminator(self) -> nn.Module | None:
        """A fresh discriminator returning raw logits, or None for content-only training."""
        ...

    def make_dataset(self) -> Dataset:
        """The training set. Items are dict[str, Tensor], batched by torch's default collate."""
        ...

    def generate(self, generator: nn.Module, batch: dict) -> Tensor:
        """The generator's output for a batch, e.g. generator(batch["lr"]). May draw noise/masks
        from torch's global RNG (seeded per step by the loop)."""
        ...

    def real(self, batch: dict) -> Tensor:
        """What the discriminator sees as real, e.g. batch["hr"]."""
        ...

    def content_losses(self, fake: Tensor, batch: dict) -> dict[str, Tensor]:
        """Named, *unweighted* scalar terms (e.g. {"pixel": ..., "perceptual": ...})."""
        ...

    def discriminator_input(self, image: Tensor, batch: dict) -> Tensor:
        """Optional: what D is fed for a real or fake image (inpainting concatenates the mask)."""
        return image

    def sample_panels(self, batch: dict, fake: Tensor) -> list[Tensor]:
        """Optional: (N,C,H,W) images in [0, 1] shown side by side in the sample grid, e.g.
        [input, output, target]; C is 1 or 3, sizes may differ (smaller ones are enlarged)."""
        return [self.real(batch), fake]


@dataclass
class TrainConfig(JsonConfig):
    """How to train (the Recipe says what). `steps` is the total to reach, also when resuming."""

    run_dir: Path
    steps: int
    batch_size: int = 4
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam with the usual GAN momentum
    adversarial: str = "vanilla"  # one of losses.ADVERSARIAL_MODES
    n_critic: int = 1  # discriminator updates per generator update
    gp_weight: float = 10.0  # wgan-gp only
    spectral_norm: bool = False  # on every conv/linear layer of D
    ema_decay: float | None = 0.999  # EMA of G's weights; the exported model when enabled
    grad_clip: float | None = None  # max global gradient norm, per network
    lr_schedule: str = "constant"  # constant | cosine (to 10 %) | step (x0.1 at half of steps)
    warmup_steps: int = 0  # linear warm-up before the schedule
    amp: bool = False  # float16 autocast + GradScaler; only on CUDA
    device: str = "auto"  # auto: cuda if available, else cpu
    checkpoint_every: int = 500
    sample_every: int = 200
    log_every: int = 10
    seed: int = 0
    workers: int = 0  # DataLoader worker processes
    label_smoothing: float = 0.1  # one-sided, vanilla mode only
    threads: int | None = None  # torch CPU threads (None: torch's default)
    init_from: str | None = None  # a checkpoint or exported .onnx (+ card) a new run starts from

    refuse_unknown_keys = True  # not annotated: a class setting, not a field

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        self._validate()

    def _validate(self) -> None:
        problems = []
        if self.adversarial not in ADVERSARIAL_MODES:
            problems.append(f"adversarial must be one of {', '.join(ADVERSARIAL_MODES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        for name in ("steps", "batch_size", "n_critic", "checkpoint_every", "sample_every", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            problems.append("ema_decay must be in (0, 1), or None to disable EMA")
        if self.warmup_steps < 0 or self.seed < 0 or self.workers < 0:
            problems.append("warmup_steps, seed and workers must be >= 0")
        if problems:
            raise UsageError(f"invalid training config: {'; '.join(problems)}")


@dataclass
class RunResult:
    run_dir: Path
    steps_done: int
    checkpoint: Path
    final_losses: dict[str, float]
    seconds: float  # wall time of this fit call
    interrupted: bool  # stopped by Ctrl-C; the checkpoint holds the last completed step


# --------------------------------------------------------------------------- public entry point


def fit(
    recipe: Recipe,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
    pause_at: int | None = None,
) -> RunResult:
    """Train `recipe` for config.steps steps (in total) and return where the result is.

    `pause_at` stops (with a checkpoint) after that step, to measure the run before resuming it;
    the learning-rate schedule still spans config.steps, and going on from the pause in the same
    process is not noted as a resumption in run.json.

    `resume=True` continues run_dir/latest.pt (TrainingError if absent or for another task or
    model_config); without it, a run_dir that already holds a checkpoint is an OutputError.
    `on_log` gets every log record ({"step", "time", losses..., "lr"}) on rank 0.
    Ctrl-C finishes the current step, saves a checkpoint and returns with interrupted=True.
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    cluster, device = _join_cluster(config.device)
    try:
        return _fit(recipe, config, cluster, device, resume=resume, progress=progress, on_log=on_log,
                    pause_at=pause_at)
    finally:
        _leave_cluster(cluster)


def fit_in_chunks(recipe: Recipe, config: TrainConfig, *, resume: bool, every: int,
                  measure: Callable[[Path], dict] | None = None, progress: bool = False,
                  on_eval: Callable[[dict], None] | None = None) -> RunResult:
    """`fit` up to config.steps, pausing every `every` steps to append measure(checkpoint) to
    RUN_DIR/eval.jsonl (and pass it to on_eval): a run's quality curve, measured as it trains, with
    no checkpoints kept aside. Only the first chunk of a new run starts from config.init_from; the
    others resume the run."""
    from imgan.train.run import append_eval

    latest = config.run_dir / LATEST_NAME
    done = load_checkpoint(latest)["step"] if resume and latest.is_file() else 0
    result = None
    while result is None or done < config.steps:
        target = min(config.steps, (done // every + 1) * every)
        result = fit(recipe, config, resume=resume or done > 0, progress=progress, pause_at=target)
        done = result.steps_done
        if result.interrupted:
            break
        if measure is not None:
            record = {**measure(result.checkpoint), "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            append_eval(config.run_dir, record)
            if on_eval is not None:
                on_eval(record)
    return result


# --------------------------------------------------------------------------- the loop


@dataclass
class _Cluster:
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # we initialised the process group, so we destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class _Position:
    step: int = 0  # completed steps
    epoch: int = 0
    position: int = 0  # items of this epoch's order already consumed (by all ranks)
    seconds: float = 0.0  # training time over all sessions of the run


@dataclass
class _Parts:
    generator: nn.Module  # the plain module: saved, averaged, sampled from
    optimizer_g: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    ema: nn.Module | None = None
    discriminator: nn.Module | None = None
    optimizer_d: torch.optim.Optimizer | None = None
    scaler_d: torch.amp.GradScaler | None = None
    # What the training step calls: the module itself, or its DistributedDataParallel wrapper.
    generator_train: nn.Module | None = None
    discriminator_train: nn.Module | None = None
    started_from: dict | None = None  # the warm start's {"from", "step", "seconds"}


@dataclass
class _Run:
    """Everything one fit call works with, and the outputs only rank 0 writes."""

    recipe: Recipe
    config: TrainConfig
    cluster: _Cluster
    amp: bool
    model_config: dict
    parts: _Parts
    at: _Position
    history: list[dict] = field(default_factory=list)  # the latest log records
    saved_step: int | None = None
    sample_batch: Any = None

    def save(self) -> None:
        if self.cluster.is_main:
            state = _checkpoint_state(self.recipe.task, self.model_config, self.config, self.parts, self.at, self.history)
            save_run_checkpoint(self.config.run_dir, state)
        self.saved_step = self.at.step

    def log(self, losses: dict[str, Tensor], display: _Display, on_log: Callable[[dict], None] | None) -> None:
        record = _log_record(self.at.step, self.at.seconds, losses, self.parts.optimizer_g)
        _check_finite(record, self.config.run_dir)  # on every rank, so that all of them stop
        self.history = (self.history + [record])[-HISTORY_TAIL:]
        if self.cluster.is_main:
            _append_log(self.config.run_dir / LOG_NAME, record)
            display.show(record)
            if on_log is not None:
                on_log(record)

    def write_sample(self) -> None:
        if self.cluster.is_main:
            path = self.config.run_dir / "samples" / f"step_{self.at.step:06d}.png"
            _write_sample(path, self.recipe, self.parts, self.sample_batch, self.config.seed)


def _fit(recipe, config, cluster, device, *, resume, progress, on_log, pause_at) -> RunResult:
    started = time.perf_counter()
    run = _start_run(recipe, config, cluster, device, resume)
    dataset = recipe.make_dataset()
    batches = _batch_stream(dataset, config, cluster, device, run.at.epoch, run.at.position)
    if cluster.is_main:
        run.sample_batch = _fixed_sample_batch(dataset, config.seed, device)

    losses: dict[str, Tensor] = {}
    interrupted = False
    session_start, earlier_seconds = time.perf_counter(), run.at.seconds
    with _progress_display(progress and cluster.is_main, config.steps, run.at.step) as display, _graceful_sigint() as stop:
        try:
            while run.at.step < min(config.steps, pause_at or config.steps):
                step = run.at.step + 1
                epoch, position, batch = next(batches)
                seed_everything(_derive_seed(config.seed, "step", step, cluster.rank))
                _set_learning_rates(run.parts, config, step)
                losses = _train_step(recipe, run.parts, config, batch, run.amp, device)
                if run.parts.ema is not None:
                    _update_ema(run.parts.ema, run.parts.generator, config.ema_decay, step)
                run.at = _Position(step, epoch, position, earlier_seconds + time.perf_counter() - session_start)
                display.advance()
                if step % config.log_every == 0 or step == config.steps:
                    run.log(losses, display, on_log)
                if step % config.sample_every == 0:
                    run.write_sample()
                if step % config.checkpoint_every == 0:
                    run.save()
                if _agreed_to_stop(stop.is_set(), cluster, device):
                    interrupted = True
                    break
        except KeyboardInterrupt:
            # A second Ctrl-C, or one raised inside a step: the checkpoint is labelled with the last
            # completed step, though a discriminator update of the broken step may be in it.
            interrupted = True
    if run.saved_step != run.at.step:
        run.save()
    if pause_at is not None and run.at.step == pause_at < config.steps and not interrupted:
        _PAUSED[config.run_dir.resolve()] = run.at.step
    if cluster.is_main and run.history:
        plot_losses(config.run_dir)
    final = {name: float(value) for name, value in losses.items()} or _losses_of(run.history[-1] if run.history else {})
    return RunResult(
        run_dir=config.run_dir,
        steps_done=run.at.step,
        checkpoint=config.run_dir / LATEST_NAME,
        final_losses=final,
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
    )


def _start_run(recipe: Recipe, config: TrainConfig, cluster: _Cluster, device: torch.device, resume: bool) -> _Run:
    """Build G (and D) with their optimisers; load the checkpoint when resuming; wrap for DDP."""
    model_config = _plain_model_config(recipe)
    checkpoint = _checkpoint_to_resume(config.run_dir, recipe.task, model_config, resume)
    amp = config.amp and device.type == "cuda"
    seed_everything(_derive_seed(config.seed, "init"))
    start = config.init_from if checkpoint is None else None
    parts = _build_parts(recipe, config, device, amp, start=start, model_config=model_config)
    run = _Run(recipe, config, cluster, amp, model_config, parts, at=_Position())
    if checkpoint is not None:
        parts.started_from = checkpoint.get("init_from")  # a resumed run keeps its lineage
        run.at = _restore(parts, checkpoint, config, config.run_dir / LATEST_NAME)
        run.history, run.saved_step = list(checkpoint["history"]), run.at.step
    _wrap_for_ddp(parts, cluster, device)
    if cluster.is_main:
        config.run_dir.mkdir(parents=True, exist_ok=True)
        _truncate_log(config.run_dir / LOG_NAME, after_step=run.at.step)
        _record_run(recipe, config, model_config, checkpoint, parts.started_from)
    return run


def _record_run(recipe: Recipe, config: TrainConfig, model_config: dict, checkpoint: dict | None,
                started_from: dict | None) -> None:
    """run.json: written when a run starts, a resumption noted when it goes on (imgan.train.run)."""
    from imgan.train.run import record_resumption, record_start

    train_config = config.to_dict()
    if checkpoint is not None and _PAUSED.pop(config.run_dir.resolve(), None) == checkpoint["step"]:
        return  # fit called again after its own pause_at: the same session goes on
    if checkpoint is not None:
        record_resumption(config.run_dir, step=int(checkpoint["step"]), train_config=train_config)
    else:
        record_start(config.run_dir, task=recipe.task, recipe=recipe.describe(), model_config=model_config,
                     train_config=train_config, init_from=started_from)


def _train_step(recipe: Recipe, parts: _Parts, config: TrainConfig, batch: Any, amp: bool, device: torch.device) -> dict[str, Tensor]:
    """One generator update, preceded by n_critic discriminator updates when D is trained."""
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=amp)
    with autocast:
        fake = recipe.generate(parts.generator_train, batch)
    losses: dict[str, Tensor] = {}
    if parts.discriminator is not None:
        losses.update(_update_discriminator(recipe, parts, config, batch, fake.detach(), autocast))

    with autocast:
        content = recipe.content_losses(fake, batch)
        _check_content_terms(content, recipe.loss_weights)
        terms = [recipe.loss_weights[name] * value for name, value in content.items()]
        if parts.discriminator is not None:
            # The plain D, not its DDP wrapper: D's parameters are frozen here, and only G's
            # gradients are reduced across ranks in this backward pass.
            _set_trainable(parts.optimizer_d, False)
            fake_logits = parts.discriminator(_discriminator_input(recipe, fake, batch))
            adversarial = generator_adversarial_loss(config.adversarial, fake_logits)
            terms.append(recipe.loss_weights["adversarial"] * adversarial)
            losses["adversarial"] = adversarial.detach()
        g_total = torch.stack([term.float() for term in terms]).sum()
    _optimizer_step(g_total, parts.optimizer_g, parts.scaler_g, parts.generator, config.grad_clip)
    if parts.discriminator is not None:
        _set_trainable(parts.optimizer_d, True)
    losses.update({name: value.detach() for name, value in content.items()})
    losses["g_total"] = g_total.detach()
    return losses


def _update_discriminator(recipe, parts: _Parts, config: TrainConfig, batch, fake: Tensor, autocast) -> dict[str, Tensor]:
    real_input = _discriminator_input(recipe, recipe.real(batch), batch)
    fake_input = _discriminator_input(recipe, fake, batch)
    for _ in range(config.n_critic):
        with autocast:
            real_logits = parts.discriminator_train(real_input)
            fake_logits = parts.discriminator_train(fake_input)
            d_total = discriminator_loss(config.adversarial, real_logits, fake_logits, smooth=config.label_smoothing)
        logged = {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
        if config.adversarial == "wgan-gp":
            # In float32: the penalty differentiates D's gradient, which float16 would underflow.
            # The plain D: autograd.grad through a DDP forward is unsupported; its parameters'
            # gradients still join the DDP reduction of this backward pass.
            with torch.autocast(real_input.device.type, enabled=False):
                penalty = gradient_penalty(
                    parts.discriminator, real_input.float(), fake_input.float(), weight=config.gp_weight
                )
            d_total = d_total.float() + penalty
            logged["gradient_penalty"] = penalty.detach()
        _optimizer_step(d_total, parts.optimizer_d, parts.scaler_d, parts.discriminator, config.grad_clip)
    return {"d_total": d_total.detach(), **logged}


def _optimizer_step(loss: Tensor, optimizer, scaler: torch.amp.GradScaler, module: nn.Module, grad_clip: float | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


def _set_trainable(optimizer: torch.optim.Optimizer, trainable: bool) -> None:
    # The optimiser's parameters only: a network's deliberately frozen layers stay frozen.
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.requires_grad_(trainable)


def _check_content_terms(content: dict[str, Tensor], weights: dict[str, float]) -> None:
    problem = None
    if clashing := sorted(set(content) & set(RESERVED_LOSS_NAMES)):
        problem = f"content terms named like the loop's own: {', '.join(clashing)}"
    elif unweighted := sorted(set(content) - set(weights)):
        problem = f"content terms without a weight: {', '.join(unweighted)}"
    elif not content and weights.get("adversarial", 0.0) <= 0:
        problem = "nothing to train: no content terms and no adversarial weight"
    if problem:
        raise TrainingError(f"recipe error: {problem}", hint="fix the plugin's content_losses / loss_weights")


def _discriminator_input(recipe: Recipe, image: Tensor, batch: Any) -> Tensor:
    method = getattr(recipe, "discriminator_input", None)
    return image if method is None else method(image, batch)


# --------------------------------------------------------------------------- models and optimisers


def _build_parts(recipe: Recipe, config: TrainConfig, device: torch.device, amp: bool, *,
                 start: str | None = None, model_config: dict | None = None) -> _Parts:
    generator = recipe.build_generator()
    started_from = _warm_start(recipe, generator, start, model_config) if start else None
    generator = generator.to(device)
    parts = _Parts(
        generator=generator,
        optimizer_g=_adam(generator, config.lr_g, config.betas),
        scaler_g=torch.amp.GradScaler(device.type, enabled=amp),
        started_from=started_from,
    )
    if config.ema_decay is not None:
        parts.ema = copy.deepcopy(generator).eval().requires_grad_(False)
    if recipe.loss_weights.get("adversarial", 0.0) > 0:
        discriminator = recipe.build_discriminator()
        if discriminator is None:
            raise TrainingError(
                "recipe error: loss_weights has an adversarial weight but build_discriminator returned None",
                hint="set the adversarial weight to 0 for content-only training",
            )
        if config.spectral_norm:
            _apply_spectral_norm(discriminator)
        parts.discriminator = discriminator.to(device)
        parts.optimizer_d = _adam(parts.discriminator, config.lr_d, config.betas)
        parts.scaler_d = torch.amp.GradScaler(device.type, enabled=amp)
    return parts


def _warm_start(recipe: Recipe, generator: nn.Module, start: str, model_config: dict) -> dict:
    from imgan.train.checkpoint import warm_start

    if recipe.model_spec is None:
        raise TrainingError(f"recipe error: the {recipe.task} recipe has no model_spec, so it cannot start from weights")
    return warm_start(start, generator, task=recipe.task, spec=recipe.model_spec, model_config=model_config)


def _adam(module: nn.Module, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
    if not trainable:
        raise TrainingError(f"recipe error: {type(module).__name__} has no trainable parameters")
    return torch.optim.Adam(trainable, lr=lr, betas=betas)


def _apply_spectral_norm(discriminator: nn.Module) -> None:
    layer_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
    for layer in list(discriminator.modules()):
        if isinstance(layer, layer_types) and not torch.nn.utils.parametrize.is_parametrized(layer, "weight"):
            torch.nn.utils.parametrizations.spectral_norm(layer)


def _update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    # Warm-up (as in TensorFlow's ExponentialMovingAverage): early on the average would be mostly
    # the random initialisation, which would make short runs export an untrained model.
    decay = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters()):
            averaged.lerp_(current, 1.0 - decay)
        for averaged, current in zip(ema.buffers(), model.buffers()):
            averaged.copy_(current)  # e.g. BatchNorm statistics: not averaged, just followed


def _lr_factor(config: TrainConfig, step: int) -> float:
    """Multiplier on lr_g and lr_d at `step` (1-based)."""
    if step <= config.warmup_steps:
        return step / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.lr_schedule == "cosine":
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if config.lr_schedule == "step":
        return 0.1 if progress > 0.5 else 1.0  # SRGAN: lr / 10 for the second half
    return 1.0


def _set_learning_rates(parts: _Parts, config: TrainConfig, step: int) -> None:
    factor = _lr_factor(config, step)
    for optimizer, base in ((parts.optimizer_g, config.lr_g), (parts.optimizer_d, config.lr_d)):
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = base * factor


# --------------------------------------------------------------------------- checkpoints and resume


def _plain_model_config(recipe: Recipe) -> dict:
    try:
        return json.loads(json.dumps(recipe.model_config))  # tuples -> lists, as a checkpoint stores them
    except (TypeError, ValueError) as error:
        raise TrainingError(f"recipe error: model_config is not JSON-able ({error})") from error


def _checkpoint_to_resume(run_dir: Path, task: str, model_config: dict, resume: bool) -> dict | None:
    latest = run_dir / LATEST_NAME
    if not resume:
        if latest.exists():
            raise OutputError(
                "the run directory already holds a training run",
                path=run_dir,
                hint="resume it (--resume) or choose a new run directory",
            )
        return None
    if not latest.is_file():
        raise TrainingError("nothing to resume: no checkpoint", path=latest, hint="start the run without --resume")
    state = load_checkpoint(latest)
    if state["task"] != task:
        raise TrainingError(
            f"the checkpoint is for task {state['task']!r}, not {task!r}",
            path=latest,
            hint="resume with the task it was trained for, or use a new run directory",
        )
    if state["model_config"] != model_config:
        differing = sorted(
            key for key in set(model_config) | set(state["model_config"])
            if model_config.get(key) != state["model_config"].get(key)
        )
        raise TrainingError(
            f"the model settings differ from the checkpoint's ({', '.join(differing)})",
            path=latest,
            hint="resume with the run's model options, or use a new run directory",
        )
    return state


def _checkpoint_state(task, model_config, config, parts: _Parts, at: _Position, history) -> dict[str, Any]:
    def state_of(thing):
        return None if thing is None else thing.state_dict()

    return {
        "format": CHECKPOINT_FORMAT,
        "task": task,
        "model_config": model_config,
        "train_config": config.to_dict(),
        "step": at.step,
        "epoch": at.epoch,
        "position": at.position,
        "seconds": at.seconds,
        "generator": state_of(parts.generator),
        "generator_ema": state_of(parts.ema),
        "discriminator": state_of(parts.discriminator),
        "optimizer_g": state_of(parts.optimizer_g),
        "optimizer_d": state_of(parts.optimizer_d),
        "scaler_g": state_of(parts.scaler_g),
        "scaler_d": state_of(parts.scaler_d),
        "history": list(history),
        # What the run started from, with that start's own totals: a run started from this checkpoint
        # counts the whole lineage (start_state), not only this run's steps.
        "init_from": parts.started_from,
    }


def _restore(parts: _Parts, state: dict, config: TrainConfig, path: Path) -> _Position:
    if (state["discriminator"] is None) != (parts.discriminator is None):
        had = "a discriminator" if state["discriminator"] is not None else "no discriminator"
        raise TrainingError(
            f"the checkpoint was trained with {had}; the recipe's adversarial weight now says otherwise",
            path=path,
            hint="resume with the run's loss weights, or use a new run directory",
        )
    load_state_strict(parts.generator, state["generator"], what="generator", path=path)
    if parts.ema is not None:
        # A run that had EMA off starts averaging from its current weights.
        ema_state = state["generator_ema"] if state["generator_ema"] is not None else state["generator"]
        load_state_strict(parts.ema, ema_state, what="generator EMA", path=path)
    _load_optimizer(parts.optimizer_g, state["optimizer_g"], config.betas, path)
    if parts.discriminator is not None:
        load_state_strict(parts.discriminator, state["discriminator"], what="discriminator", path=path)
        _load_optimizer(parts.optimizer_d, state["optimizer_d"], config.betas, path)
    for scaler, scaler_state in ((parts.scaler_g, state["scaler_g"]), (parts.scaler_d, state["scaler_d"])):
        if scaler is not None and scaler.is_enabled() and scaler_state:
            scaler.load_state_dict(scaler_state)  # empty when the saved run had AMP off
    return _Position(step=state["step"], epoch=state["epoch"], position=state["position"], seconds=state["seconds"])


def _load_optimizer(optimizer, optimizer_state: dict, betas: tuple[float, float], path: Path) -> None:
    try:
        optimizer.load_state_dict(optimizer_state)
    except (ValueError, KeyError) as error:
        raise TrainingError(
            f"optimizer state does not fit the model: {error}", path=path, hint="the model code changed since this checkpoint"
        ) from error
    for group in optimizer.param_groups:
        group["betas"] = betas  # the config wins over the saved hyper-parameters


# --------------------------------------------------------------------------- data


def _derive_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from the run seed and a position, e.g. (seed, "step", 12, rank)."""
    words = [part if isinstance(part, int) else zlib.crc32(part.encode()) for part in parts]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _seed_cpu_rngs(seed: int) -> None:
    """seed_everything without CUDA: items load on the CPU, and seeding CUDA before it is
    initialised (always so in loader workers) costs milliseconds per call, i.e. per item."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


def _epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(_derive_seed(seed, "epoch", epoch))
    return torch.randperm(size, generator=generator).tolist()


class _EpochItems(Dataset):
    """The rest of one epoch, in its shuffled order, each item loaded with RNGs seeded by its position."""

    def __init__(self, dataset: Dataset, order: list[int], *, seed: int, epoch: int, start: int):
        self.dataset, self.order, self.seed, self.epoch, self.start = dataset, order, seed, epoch, start

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int):
        _seed_cpu_rngs(_derive_seed(self.seed, "item", self.epoch, self.start + index))
        return self.dataset[self.order[index]]

    def preload(self) -> None:
        if hasattr(self.dataset, "preload"):  # make_loader calls it before forking workers
            self.dataset.preload()


def _batch_stream(dataset: Dataset, config: TrainConfig, cluster: _Cluster, device, epoch: int, position: int) -> Iterator:
    """Yield (epoch, position after this batch, batch on device) forever, from (epoch, position).

    The loader does not shuffle: the order is ours (_epoch_order), so skipping to a position is
    slicing a list. With several ranks the sampler deals positions round-robin, so after k steps
    exactly the first k * batch_size * world_size positions are consumed.
    """
    per_step = config.batch_size * cluster.world_size
    while True:
        remaining = _epoch_order(len(dataset), config.seed, epoch)[position:]
        if len(remaining) >= per_step or position == 0:  # position 0: let make_loader reject a tiny dataset
            items = _EpochItems(dataset, remaining, seed=config.seed, epoch=epoch, start=position)
            loader = make_loader(
                items, config.batch_size, seed=config.seed, workers=config.workers,
                shuffle=False, distributed=cluster.world_size > 1, drop_last=True,
            )
            for batch in loader:
                position += per_step
                yield epoch, position, _to_device(batch, device)
        epoch, position = epoch + 1, 0


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _fixed_sample_batch(dataset: Dataset, seed: int, device: torch.device) -> Any:
    """The first few items, always loaded the same way, so samples show progress on one input."""
    items = []
    for index in range(min(SAMPLE_ROWS, len(dataset))):
        _seed_cpu_rngs(_derive_seed(seed, "sample", index))
        items.append(dataset[index])
    return _to_device(default_collate(items), device)


# --------------------------------------------------------------------------- outputs: log, samples, progress


def _log_record(step: int, seconds: float, losses: dict[str, Tensor], optimizer_g) -> dict:
    values = {name: float(value) for name, value in losses.items()}
    return {"step": step, "time": round(seconds, 3), **values, "lr": optimizer_g.param_groups[0]["lr"]}


def _losses_of(record: dict) -> dict[str, float]:
    return {key: value for key, value in record.items() if key not in ("step", "time", "lr")}


def _check_finite(record: dict, run_dir: Path) -> None:
    broken = [name for name, value in _losses_of(record).items() if not math.isfinite(value)]
    if broken:
        raise TrainingError(
            f"training diverged at step {record['step']}: {', '.join(broken)} not finite",
            path=run_dir,
            hint="resume from the last checkpoint with a lower learning rate or grad_clip",
        )


def _truncate_log(path: Path, *, after_step: int) -> None:
    """Drop records past the checkpoint we start from (a resumed run logs those steps again)."""
    kept = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= after_step:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    path.write_text("".join(kept))


def _append_log(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _write_sample(path: Path, recipe: Recipe, parts: _Parts, batch: Any, seed: int) -> None:
    """A grid: one row per batch item (at most SAMPLE_ROWS), one column per panel."""
    from torchvision.utils import make_grid, save_image  # only needed here

    model = parts.ema if parts.ema is not None else parts.generator
    was_training = model.training
    model.eval()
    seed_everything(_derive_seed(seed, "sample"))  # the same noise/masks in every sample
    with torch.no_grad():
        fake = recipe.generate(model, batch)
        method = getattr(recipe, "sample_panels", None)
        panels = method(batch, fake) if method is not None else [recipe.real(batch), fake]
    model.train(was_training)
    tiles = _sample_tiles(panels)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(tiles, nrow=len(panels), padding=2, pad_value=1.0), path)


def _sample_tiles(panels: list[Tensor]) -> list[Tensor]:
    """Row-major (C=3, H, W) tiles, every panel enlarged (nearest) to the largest panel's size."""
    for panel in panels:
        if panel.ndim != 4 or panel.shape[1] not in (1, 3):
            raise TrainingError(
                f"recipe error: sample panel of shape {tuple(panel.shape)}",
                hint="sample_panels must return (N,C,H,W) images with C = 1 or 3",
            )
    height = max(panel.shape[-2] for panel in panels)
    width = max(panel.shape[-1] for panel in panels)
    rows = min(SAMPLE_ROWS, min(panel.shape[0] for panel in panels))
    tiles = []
    for row in range(rows):
        for panel in panels:
            tile = panel[row : row + 1].detach().float().cpu().clamp(0.0, 1.0)
            if tile.shape[-2:] != (height, width):
                tile = torch.nn.functional.interpolate(tile, size=(height, width), mode="nearest")
            tiles.append(tile[0].expand(3, -1, -1))
    return tiles


class _Display:
    """The rich progress bar (steps, s/step, ETA, latest losses); does nothing when disabled."""

    def __init__(self, progress, task_id, start_step: int):
        self.progress, self.task_id = progress, task_id
        self.last_step, self.last_time = start_step, None

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task_id)

    def show(self, record: dict) -> None:
        if self.progress is None:
            return
        speed = ""
        if self.last_time is not None and record["step"] > self.last_step:
            speed = f"{(record['time'] - self.last_time) / (record['step'] - self.last_step):.3g} s/step"
        self.last_step, self.last_time = record["step"], record["time"]
        losses = "  ".join(f"{name} {value:.4g}" for name, value in _losses_of(record).items())
        self.progress.update(self.task_id, speed=speed, losses=losses)


@contextmanager
def _progress_display(enabled: bool, total: int, completed: int) -> Iterator[_Display]:
    if not enabled:
        yield _Display(None, None, completed)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task_id = progress.add_task("train", total=total, completed=completed, speed="", losses="")
        yield _Display(progress, task_id, completed)


@contextmanager
def _graceful_sigint() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the loop to stop after the current step, so the checkpoint holds a
    complete step (an interrupt inside optimizer.step would leave half-updated weights); a second
    Ctrl-C raises KeyboardInterrupt at once."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


# --------------------------------------------------------------------------- distributed


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProviderError("--device cuda was asked for but torch finds no CUDA GPU", hint="use --device cpu or auto")
    return device


def _join_cluster(device_name: str) -> tuple[_Cluster, torch.device]:
    device = _pick_device(device_name)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _Cluster(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns_group = not torch.distributed.is_initialized()
    if owns_group:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    cluster = _Cluster(torch.distributed.get_rank(), torch.distributed.get_world_size(), owns_group)
    return cluster, device


def _leave_cluster(cluster: _Cluster) -> None:
    if cluster.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _wrap_for_ddp(parts: _Parts, cluster: _Cluster, device: torch.device) -> None:
    parts.generator_train, parts.discriminator_train = parts.generator, parts.discriminator
    if cluster.world_size <= 1:
        return
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    parts.generator_train = DistributedDataParallel(parts.generator, device_ids=device_ids)
    if parts.discriminator is not None:
        parts.discriminator_train = DistributedDataParallel(parts.discriminator, device_ids=device_ids)


def _agreed_to_stop(requested: bool, cluster: _Cluster, device: torch.device) -> bool:
    """Every rank stops at the same step, or the others would wait forever in the next all-reduce."""
    if cluster.world_size <= 1:
        return requested
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())
