"""DDP on CPU (gloo): two processes with half the batch each take the same step as one process
with the whole batch, for every way of gathering the features."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from support import trainer_data
from support.trainer_data import ddp_update, write_test_preset

FIXTURES = Path(trainer_data.__file__)


def run_torchrun(nproc: int, out: Path) -> None:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", str(FIXTURES), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_take_the_same_step_as_one_with_the_doubled_batch(tmp_path):
    write_test_preset(tmp_path)
    run_torchrun(2, tmp_path / "ddp.pt")
    ddp_update(tmp_path / "single.pt")
    distributed = torch.load(tmp_path / "ddp.pt", weights_only=True)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    assert set(distributed) == {"True-True", "True-False", "False-False"}
    for variant, expected in single.items():
        got = distributed[variant]
        assert abs(got["loss"] - expected["loss"]) < 1e-6, variant
        for name, grad in expected["grads"].items():
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-6,
                                       msg=lambda m: f"{variant} grad {name}: {m}")
        for name, param in expected["params"].items():
            torch.testing.assert_close(got["params"][name], param, rtol=1e-5, atol=1e-7,
                                       msg=lambda m: f"{variant} param {name}: {m}")


def test_wit_train_under_torchrun_trains_and_saves_every_ranks_data_position(tmp_path):
    from support.trainer_data import tiny_train_config, train_options, write_shape_shards

    write_shape_shards(tmp_path / "shards", shards=4, per_shard=16, size=40)
    config = tiny_train_config(tmp_path, steps=4, batch_size=8, checkpoint_every=2)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0",
               "-m", "wit_builder.cli", "train", *train_options(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "test"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4
    state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 4 and len(state["data"]) == 2
    assert all(sum(position["consumed"].values()) >= 32 for position in state["data"])
    # Each rank's streams can resume without reading again the shards they finished.
    assert all(set(position["streams"]) == set(position["consumed"]) for position in state["data"])
