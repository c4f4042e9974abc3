"""`wit train` end to end on shape shards: the loss falls, the run directory holds what DESIGN.md
promises, corrupt samples are counted, and a killed run resumes exactly where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest
import torch

from trainer.config import TrainConfig
from trainer.loss import ClipLoss
from trainer.model import MAX_LOGIT_SCALE
from wit_builder.cli import load_config
from trainer.train import (apply_preset_defaults, autocast_context, build_optimizer, run,
                           training_step)
from support.trainer_data import (build_test_clip, tiny_train_config, train_options,
                              write_shape_shards, write_test_preset)
from wit_builder.core.options import WitError


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    write_shape_shards(workdir / "shards", shards=4, per_shard=64, size=40, corrupt=(7, 100),
                       scenes="synthweb")
    config = tiny_train_config(workdir, steps=120, batch_size=32, workers=1, warmup=10,
                               checkpoint_every=40)
    assert run(config) == 0
    return workdir / "runs" / "test"


def test_tiny_run_on_synthweb_shards_lowers_the_loss_clearly(finished_run):
    losses = [record["loss"] for record in read_metrics(finished_run)]
    assert len(losses) == 120
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    # Chance level for 32 pairs is ln 32 = 3.47; the captions must have been learnt to go lower.
    assert first > 3.0 and last < 0.7 * first, (first, last)


def test_run_directory_holds_config_metrics_checkpoints_and_tokenizer(finished_run):
    names = sorted(p.name for p in (finished_run / "checkpoints").iterdir())
    # Checkpoints at 40, 80 and 120; --keep-checkpoints 2 (the default) deleted step 40.
    assert names == ["latest.pt", "step-0000080.pt", "step-0000120.pt"]
    settings = tomllib.loads((finished_run / "config.toml").read_text())
    assert settings["train"]["steps"] == 120 and settings["model"]["embed_dim"] == 64
    assert (finished_run / "tokenizer.json").exists()
    record = read_metrics(finished_run)[-1]
    assert set(record) >= {"step", "loss", "lr", "logit_scale", "samples_per_s", "data_wait"}
    assert record["step"] == 120 and record["lr"] == 0.0 and 0 <= record["data_wait"] < 1


def test_checkpoint_loads_with_weights_only_and_restores_the_model(finished_run):
    from trainer.model import CLIP, ModelConfig

    state = torch.load(finished_run / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 120
    model = CLIP(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    assert float(model.logit_scale.detach()) <= torch.log(torch.tensor(100.0))


def test_corrupt_jpegs_are_counted_as_skipped_and_training_goes_on(finished_run):
    # 120 steps of 32 read 3840 samples: every sample of the 256 came by several times.
    assert read_metrics(finished_run)[-1]["skipped"] >= 2


def test_existing_run_is_not_overwritten_without_resume(finished_run):
    config = tiny_train_config(finished_run.parent.parent, steps=120)
    with pytest.raises(WitError, match="already holds a run; pass --resume"):
        run(config)


def test_options_override_preset_defaults(tmp_path):
    preset = {"batch_size": 256, "lr": 1e-3}
    config = apply_preset_defaults(TrainConfig(batch_size=8), preset)
    assert (config.batch_size, config.lr) == (8, 1e-3)
    with pytest.raises(WitError, match="unknown key 'batch'"):
        apply_preset_defaults(TrainConfig(), {"batch": 3})


def test_an_option_typed_at_its_default_value_still_beats_the_preset():
    default_batch = TrainConfig().batch_size
    typed = load_config("train", None, {"batch_size": default_batch})
    config = apply_preset_defaults(typed, {"batch_size": 256, "lr": 1e-3})
    assert (config.batch_size, config.lr) == (default_batch, 1e-3)


def one_step(clip, precision: str) -> torch.Tensor:
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    tokens = torch.tensor([[1, 5, 6, 2]] * 8)
    return training_step(clip, clip, ClipLoss(), build_optimizer(clip, TrainConfig(), "cpu"),
                         images, tokens, autocast_context("cpu", precision), grad_clip=1.0)


def test_bf16_autocast_step_keeps_float32_weights_and_a_finite_loss(tmp_path):
    clip = build_test_clip(write_test_preset(tmp_path))
    before = clip.text_projection.weight.detach().clone()
    loss = one_step(clip, "bf16")
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert clip.text_projection.weight.dtype == torch.float32
    assert not torch.equal(clip.text_projection.weight, before)


def test_resume_after_kill_gives_the_same_losses_as_a_straight_run(tmp_path):
    write_shape_shards(tmp_path / "shards", shards=3, per_shard=40, size=40)
    # 7 steps an epoch: the kill lands mid-epoch, with the second loader worker's turn next.
    options = {"steps": 20, "workers": 2, "checkpoint_every": 10, "samples_per_epoch": 112}
    run(tiny_train_config(tmp_path, name="straight", **options))
    straight = [r["loss"] for r in read_metrics(tmp_path / "runs" / "straight")]

    killed = tiny_train_config(tmp_path, name="killed", **options)
    command = [sys.executable, "-m", "wit_builder.cli", "train", *train_options(killed)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = tmp_path / "runs" / "killed" / "checkpoints" / "step-0000010.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run died before its first checkpoint"
    assert not (checkpoint.parent / "step-0000020.pt").exists(), "the run ended before the kill"

    run(tiny_train_config(tmp_path, name="killed", resume=True, **options))
    resumed = read_metrics(tmp_path / "runs" / "killed")
    assert [r["step"] for r in resumed] == list(range(1, 21))
    assert [r["epoch"] for r in resumed] == [0] * 7 + [1] * 7 + [2] * 6
    assert [r["loss"] for r in resumed] == pytest.approx(straight, abs=1e-5)


def test_logit_scale_is_clamped_to_log_100_after_a_step(tmp_path):
    clip = build_test_clip(write_test_preset(tmp_path))
    assert float(clip.logit_scale.detach().exp()) == pytest.approx(1 / 0.07)
    clip.logit_scale.data.fill_(6.0)
    one_step(clip, "fp32")
    assert float(clip.logit_scale.detach()) == pytest.approx(MAX_LOGIT_SCALE)


def test_wit_train_with_no_matching_shards_exits_with_a_clear_message(tmp_path, capsys):
    from wit_builder.cli import main

    assert main(["train", "--workdir", str(tmp_path), "--train", "missing-*.tar"]) == 2
    assert "no shard matches 'missing-*.tar'" in capsys.readouterr().err


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    preset = write_test_preset(tmp_path)
    torch.manual_seed(0)
    plain = build_test_clip(preset)
    torch.manual_seed(0)
    recomputed = build_test_clip(preset)
    recomputed.set_grad_checkpointing()
    assert recomputed.visual.grad_checkpointing and recomputed.text.grad_checkpointing
    images = torch.randn(4, 3, 32, 32)
    tokens = torch.tensor([[1, 5, 6, 2]] * 4)
    for clip in (plain, recomputed):
        ClipLoss()(*clip(images, tokens)).backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), recomputed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("stage", ["train", "eval"])
def test_a_url_workdir_is_a_clear_error_not_a_local_folder_named_s3(stage, tmp_path,
                                                                     monkeypatch):
    from trainer import evaluate, train

    monkeypatch.chdir(tmp_path)
    config = load_config(stage, None, {"workdir": "s3://bucket/run"})
    with pytest.raises(WitError, match=f"{stage}: --workdir 's3://bucket/run' is a URL"):
        (train if stage == "train" else evaluate).run(config)
    assert not any(tmp_path.iterdir())
