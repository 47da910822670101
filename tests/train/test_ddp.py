from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from imgan.train.checkpoint import generator_from_checkpoint, load_checkpoint
from tests.train.test_loop import build_tiny_generator

REPO = Path(__file__).resolve().parents[2]

# Each rank trains the tiny recipe of test_loop.py, then saves its own final G and D weights so
# the test can check that DistributedDataParallel kept the ranks in step. wgan-gp with spectral norm:
# the gradient penalty's double backward and D's in-place power iteration are the DDP-sensitive paths.
SCRIPT = """
import os
import sys
from pathlib import Path

import torch
import torch.distributed

sys.path.insert(0, {repo!r})
from tests.train.test_loop import TinyRecipe, tiny_config
from imgan.train.loop import fit

run_dir = Path({run_dir!r})
recipe = TinyRecipe(dataset_size=24)
config = tiny_config(run_dir, 6, adversarial="wgan-gp", spectral_norm=True, ema_decay=0.9, checkpoint_every=3)
captured = {{}}

def keeping(name, build):
    def build_and_keep():
        captured[name] = build()
        return captured[name]
    return build_and_keep

recipe.build_generator = keeping("generator", recipe.build_generator)
recipe.build_discriminator = keeping("discriminator", recipe.build_discriminator)
result = fit(recipe, config, progress=False)
rank = int(os.environ["RANK"])
torch.save({{name: module.state_dict() for name, module in captured.items()}}, run_dir / f"rank{{rank}}.pt")
assert result.steps_done == 6 and not result.interrupted
assert not torch.distributed.is_initialized(), "fit must leave no process group behind"
"""


@pytest.mark.slow
def test_two_process_ddp_run_trains_in_step_and_writes_once(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT).format(repo=str(REPO), run_dir=str(run_dir)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script)]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-3000:]

    rank0 = torch.load(run_dir / "rank0.pt", weights_only=True)
    rank1 = torch.load(run_dir / "rank1.pt", weights_only=True)
    for part in ("generator", "discriminator"):  # gradients were averaged across the ranks
        for name, tensor in rank0[part].items():
            assert torch.equal(tensor, rank1[part][name]), (part, name)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2, 3, 4, 5, 6]  # only rank 0 logs
    state = load_checkpoint(run_dir / "latest.pt")
    assert state["step"] == 6
    # 24 items, 2 ranks x batch 4: 3 steps per epoch, so 6 steps end exactly at epoch 1's end
    assert (state["epoch"], state["position"]) == (1, 24)
    assert torch.equal(state["generator"]["0.weight"], rank0["generator"]["0.weight"])
    generator, info = generator_from_checkpoint(run_dir / "latest.pt", build_tiny_generator)
    assert info["task"] == "tiny"
    assert generator(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
