"""DDP on CPU (gloo): two processes with half the batch each take the same step as one process
with the whole batch, for every way of gathering the features."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import trainer_fixtures
from trainer_fixtures import ddp_update, write_test_preset

FIXTURES = Path(trainer_fixtures.__file__)


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
