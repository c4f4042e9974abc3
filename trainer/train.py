"""`wit train`: contrastive training of a CLIP model on WebDataset shards, on one CPU, one GPU, or
many GPUs and nodes under torchrun. Reads top to bottom: config -> data -> model -> optimizer ->
loop -> checkpoint.

    wit train --model tiny --train 'data/shards/train-*.tar'
    torchrun --nproc_per_node 8 -m wit_builder.cli train --model vit-b-32 --batch-size 256
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from trainer.device import pick_device
from trainer.checkpoint import (load_checkpoint, newest_checkpoint, restore_rng_states, rng_states,
                                save_checkpoint)
from trainer.config import TrainConfig, require_local_workdir
from trainer.data import ClipStream, expand_shards, make_loader, normalize, read_captions
from trainer.loss import ClipLoss
from trainer.threads import ThreadGovernor
from trainer.model import CLIP, ModelConfig, load_preset
from trainer.tokenizer import TextTokenizer, clip_tokenizer, load_bpe, save_bpe, train_bpe
from wit_builder.core import atomic
from wit_builder.core.config import check_value, field_types
from wit_builder.core.options import WitError

logger = logging.getLogger(__name__)

NO_DECAY = ("token_embedding", "positional_embedding", "pos_embed", "cls_token", "logit_scale")
# While rank 0 evaluates or writes a checkpoint the other ranks wait in a collective; NCCL's and
# gloo's default of 10 minutes would kill a run whose evaluation or upload takes longer.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """Join the torchrun process group (nccl on CUDA, gloo on CPU); a lone process needs none."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)  # before NCCL starts, so each rank owns its own GPU
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Distributed()
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, local_world)


def apply_preset_defaults(config: TrainConfig, preset: dict[str, Any]) -> TrainConfig:
    """The preset's [train] values, for every option the config file and the command line left
    unset (or, for a config built in code, left at its default)."""
    defaults, types = TrainConfig(), field_types(TrainConfig)
    explicit = getattr(config, "explicit", None)
    changes = {}
    for key, value in preset.items():
        if key not in types:
            raise WitError(f"model: unknown key '{key}' in the [train] table of preset "
                           f"'{config.model}'")
        unset = key not in explicit if explicit is not None else \
            getattr(config, key) == getattr(defaults, key)
        if unset:
            changes[key] = check_value("train", key, value, types[key], f"preset '{config.model}'")
    return dataclasses.replace(config, **changes)


def prepare_tokenizer(config: TrainConfig, run_dir: Path, urls: list[str], context_length: int,
                      ddp: Distributed) -> TextTokenizer:
    """CLIP's BPE, a given tokenizer.json, or one trained on the captions and kept in the run."""
    if config.tokenizer == "clip":
        return clip_tokenizer(context_length)
    if config.tokenizer:
        return load_bpe(config.path(config.tokenizer), context_length)
    saved = run_dir / "tokenizer.json"
    if not saved.exists():
        if ddp.is_main:
            logger.info("training a %d-token BPE on up to %d captions", config.vocab_size,
                        config.tokenizer_samples)
            save_bpe(train_bpe(read_captions(urls, config.tokenizer_samples), config.vocab_size),
                     saved)
        if ddp.world_size > 1:
            dist.barrier()
    return load_bpe(saved, context_length)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only: not on biases, norms, embeddings or the scale."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.ndim < 2 or any(part in name for part in NO_DECAY):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, config: TrainConfig, device: str
                    ) -> torch.optim.Optimizer:
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr,
                             betas=(config.beta1, config.beta2), eps=config.eps,
                             fused=device == "cuda")


def warmup_cosine(warmup: int, steps: int):
    """Multiplier of the peak learning rate: linear warmup, then cosine decay to zero."""
    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return multiplier


def autocast_context(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16" or (precision == "auto" and device == "cuda"):
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_step(model: torch.nn.Module, clip: CLIP, loss_fn: ClipLoss,
                  optimizer: torch.optim.Optimizer, images: torch.Tensor, tokens: torch.Tensor,
                  autocast: contextlib.AbstractContextManager, grad_clip: float = 0.0,
                  backward_scale: float = 1.0) -> torch.Tensor:
    """One optimizer step on a batch (uint8 images on the device); returns this rank's loss.

    `model` is what runs forward (maybe DDP-wrapped or compiled), `clip` the bare module.
    """
    with autocast:
        image_features, text_features, logit_scale = model(normalize(images), tokens)
        loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
    optimizer.zero_grad(set_to_none=True)
    (loss * backward_scale).backward()
    if backward_scale != 1:
        clip.logit_scale.grad /= backward_scale  # every rank already saw the scale's full role
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(clip.parameters(), grad_clip)
    optimizer.step()
    clip.clamp_logit_scale()
    return loss.detach()


def backward_scale(config: TrainConfig, world_size: int) -> float:
    """Makes DDP's gradient average equal the global-batch gradient.

    Without gather_with_grad each rank's loss reaches only its own features, and DDP averages over
    ranks, so the full-matrix loss needs scaling by the world size (except for the logit scale,
    whose gradient every rank computes whole: `training_step` undoes it there). With local_loss
    and no gather_with_grad the cross terms are missing (as in open_clip): an approximation.
    """
    if world_size == 1 or config.gather_with_grad:
        return 1.0
    if config.local_loss:
        logger.warning("local_loss without gather_with_grad: gradients approximate the "
                       "global-batch gradient (add --gather-with-grad for exact ones)")
        return 1.0
    return float(world_size)


def stream_batches(config: TrainConfig, urls: list[str], tokenizer: TextTokenizer,
                   image_size: int, ddp: Distributed, step: int, position: dict[str, Any],
                   pin_memory: bool = False
                   ) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """(epoch, batch) from `step` on, one data loader per epoch, fast-forwarded to `position`."""
    workers = max(1, config.workers)
    global_batch = config.batch_size * ddp.world_size
    per_epoch = config.samples_per_epoch // global_batch if config.samples_per_epoch else 0
    if config.samples_per_epoch and per_epoch == 0:
        raise WitError(f"train: --samples-per-epoch {config.samples_per_epoch} is less than one "
                       f"global batch ({global_batch})")
    while True:
        epoch = step // per_epoch if per_epoch else 0
        done = step - epoch * per_epoch
        remaining = per_epoch - done if per_epoch else 1 << 62
        same_epoch = position.get("epoch") == epoch
        stream = ClipStream(
            urls, tokenizer, config.batch_size, image_size, crop_scale=config.crop_scale,
            shuffle=config.shuffle, resampled=config.resampled or ddp.world_size > 1,
            seed=config.seed, epoch=epoch, rank=ddp.rank, world_size=ddp.world_size,
            max_batches=math.ceil(remaining / workers),
            # The loader asks worker 0 first: it plays the role whose turn came next.
            rotation=done % workers, skip=dict(position.get("consumed", {})) if same_epoch else {},
            states=dict(position.get("streams", {})) if same_epoch else {})
        loader = make_loader(stream, config.workers, pin_memory=pin_memory)
        for count, batch in enumerate(loader, start=1):
            yield epoch, batch
            if count == remaining:
                break
        step += remaining


def write_config_toml(path: Path, config: TrainConfig, model_config: ModelConfig) -> None:
    """The resolved settings of the run, readable back as a `wit train` config."""
    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{k} = {value(v)}" for k, v in item.items()) + " }"
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        return json.dumps(item) if isinstance(item, str) else repr(item)

    lines = ["# Settings of this run, as resolved by `wit train` (preset + config + options)."]
    for name, table in (("train", dataclasses.asdict(config)),
                        ("model", dataclasses.asdict(model_config))):
        lines += [f"\n[{name}]"] + [f"{key} = {value(item)}" for key, item in table.items()]
    atomic.write_text(path, "\n".join(lines) + "\n")


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop metrics lines past `step` (a killed run logged them; the resumed run redoes them)."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line + "\n")
    atomic.write_text(path, "".join(kept))


def global_mean(value: torch.Tensor, ddp: Distributed) -> float:
    if ddp.world_size > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= ddp.world_size
    return float(value)


def gather_objects(item: Any, ddp: Distributed) -> list[Any]:
    """`item` of every rank, in rank order."""
    if ddp.world_size == 1:
        return [item]
    gathered: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(gathered, item)
    return gathered


def run(config: TrainConfig) -> int:
    """Entry point of `wit train`: train, checkpoint, and return the exit status."""
    require_local_workdir(config, "train")
    model_config, preset_train = load_preset(config.model)
    config = apply_preset_defaults(config, preset_train)
    device = pick_device(config.device)
    ddp = setup_distributed(device)
    try:
        train(config, model_config, device, ddp)
    finally:
        if ddp.world_size > 1:
            dist.destroy_process_group()
    return 0


def train(config: TrainConfig, model_config: ModelConfig, device: str, ddp: Distributed) -> None:
    threads = ThreadGovernor(config.threads, ddp.local_world_size)  # the cores others leave
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the data workers are forked
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    # Run directory, data, tokenizer.
    run_dir = Path(config.path(Path("runs") / (config.name or Path(config.model).stem)))
    checkpoints = run_dir / "checkpoints"
    newest = newest_checkpoint(checkpoints)
    if newest and not config.resume:
        raise WitError(f"train: {run_dir} already holds a run; pass --resume to continue it or "
                       f"--name for a new one")
    state = load_checkpoint(newest or checkpoints / "latest.pt") if config.resume else None
    urls = expand_shards(config.train, config.workdir)
    tokenizer = prepare_tokenizer(config, run_dir, urls, model_config.context_length, ddp)
    model_config.vocab_size, model_config.eot_token_id = tokenizer.vocab_size, tokenizer.end_id

    # Model, optimizer, schedule, and the state of a resumed run.
    clip = CLIP(model_config).to(device)
    if config.grad_checkpointing:
        clip.set_grad_checkpointing()
    optimizer = build_optimizer(clip, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  warmup_cosine(config.warmup, config.steps))
    step, position = 0, {"epoch": 0, "consumed": {}, "streams": {}, "skipped": 0,
                         "skipped_by_role": {}}
    if state is not None:
        clip.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, positions = state["step"], state["data"]
        if len(positions) == ddp.world_size:
            position = positions[ddp.rank]
        else:
            logger.warning("resumed on %d processes instead of %d: the data streams start afresh",
                           ddp.world_size, len(positions))
        position["skipped_by_role"] = {}  # the new loader's workers count their skips afresh
        restore_rng_states(state["rng"])
        if position.get("workers", max(1, config.workers)) != max(1, config.workers):
            logger.warning("resumed with %d data workers instead of %d: the data order differs "
                           "from an uninterrupted run", config.workers, position["workers"])
            position["streams"] = {}  # their shard orders differ: the saved states do not apply
        logger.info("resumed %s at step %d", run_dir, step)
    model: torch.nn.Module = clip
    if ddp.world_size > 1:
        model = DistributedDataParallel(clip, device_ids=[ddp.local_rank] if device == "cuda"
                                        else None)
    if config.compile:
        model = torch.compile(model)
    loss_fn = ClipLoss(local_loss=config.local_loss, gather_with_grad=config.gather_with_grad)
    scale = backward_scale(config, ddp.world_size)
    autocast = autocast_context(device, config.precision)

    metrics = Metrics(run_dir, config, ddp, step)
    evaluation = None
    if ddp.is_main:
        write_config_toml(run_dir / "config.toml", config, model_config)
        if config.eval_every:
            from trainer import evaluate  # imported when used: it loads the eval sets' code
            evaluation = evaluate.training_eval_sets(config.eval_zeroshot, config.eval_retrieval,
                                                     config.workdir)
    logger.info("training %s (%.1f M parameters) on %s x%d, %d samples per step, steps %d..%d",
                config.model, sum(p.numel() for p in clip.parameters()) / 1e6, device,
                ddp.world_size, config.batch_size * ddp.world_size, step + 1, config.steps)

    # The loop.
    batches = stream_batches(config, urls, tokenizer, model_config.image_size, ddp, step, position,
                             pin_memory=device == "cuda")
    progress = tqdm(total=config.steps, initial=step, disable=not ddp.is_main, unit="step")
    with progress, metrics:
        while step < config.steps:
            waited = time.perf_counter()
            epoch, (images, tokens, reached) = next(batches)
            metrics.data_wait += time.perf_counter() - waited
            advance_position(position, epoch, reached, max(1, config.workers))
            images = images.to(device, non_blocking=True)
            tokens = tokens.to(device, non_blocking=True)
            threads.update()
            loss = training_step(model, clip, loss_fn, optimizer, images, tokens, autocast,
                                 config.grad_clip, scale)
            scheduler.step()
            step += 1
            progress.update()
            if step % config.log_every == 0 or step == config.steps:
                record = metrics.log(step, epoch, global_mean(loss, ddp),
                                     scheduler.get_last_lr()[0], clip, position["skipped"],
                                     threads.threads)
                progress.set_postfix(loss=f"{record['loss']:.3f}")
            if step % config.checkpoint_every == 0 or step == config.steps:
                positions = gather_objects(position, ddp)  # every rank's place in its stream
                if ddp.is_main:
                    save_checkpoint(checkpoints, {
                        "step": step, "model": clip.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "data": positions, "rng": rng_states(),
                        "model_config": dataclasses.asdict(model_config),
                        "tokenizer": tokenizer.source, "config": dataclasses.asdict(config)},
                        keep=config.keep_checkpoints)
            if evaluation and step % config.eval_every == 0:  # the main rank only; others wait
                metrics.write(evaluate.evaluate_during_training(
                    clip, tokenizer, evaluation, config.workdir, step, device,
                    config.eval_retrieval_samples))
    logger.info("done: %s at step %d (%d samples skipped)", checkpoints / "latest.pt", step,
                position["skipped"])


def advance_position(position: dict[str, Any], epoch: int, progress: dict[str, Any],
                     workers: int) -> None:
    """Record where the batch's worker stands in its stream (for resume) and count its skips."""
    role, skipped = progress["role"], progress["skipped"]
    if position["epoch"] != epoch:
        position.update(epoch=epoch, consumed={}, streams={}, skipped_by_role={})
    previous = position["skipped_by_role"].get(role, 0)
    position["consumed"][role] = progress["consumed"]
    position.setdefault("streams", {})[role] = progress["state"]
    position["skipped"] += skipped - previous
    position["skipped_by_role"][role] = skipped
    position["workers"] = workers


class Metrics:
    """metrics.jsonl (and TensorBoard) on the main rank: one line per logged step."""

    def __init__(self, run_dir: Path, config: TrainConfig, ddp: Distributed, step: int):
        self.path, self.ddp = run_dir / "metrics.jsonl", ddp
        self.samples_per_step = config.batch_size * ddp.world_size
        self.board = None
        if ddp.is_main:
            keep_metrics_until(self.path, step)
            self.board = open_tensorboard(run_dir) if config.tensorboard else None
        self.handle = None
        self.last_step, self.since, self.data_wait = step, time.perf_counter(), 0.0

    def __enter__(self) -> Metrics:
        if self.ddp.is_main:
            # Appended line by line (one write each); a resume drops lines past its checkpoint.
            self.handle = open(self.path, "a")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle:
            self.handle.close()
        if self.board:
            self.board.close()

    def write(self, record: dict[str, Any]) -> None:
        if self.handle:
            self.handle.write(json.dumps(record) + "\n")
            self.handle.flush()

    def log(self, step: int, epoch: int, loss: float, lr: float, clip: CLIP,
            skipped: int, threads: int = 0) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.since
        record = {"step": step, "epoch": epoch, "loss": loss, "lr": lr,
                  "logit_scale": float(clip.logit_scale.detach().exp()),
                  "samples_per_s": (step - self.last_step) * self.samples_per_step / elapsed,
                  "data_wait": self.data_wait / elapsed, "skipped": skipped,
                  "threads": threads}
        if not math.isfinite(loss):
            raise WitError(f"train: the loss is {loss} at step {step}; lower --lr or raise "
                           f"--warmup")
        if self.handle:
            self.handle.write(json.dumps(record) + "\n")
            self.handle.flush()
        if self.board:
            for key, value in record.items():
                self.board.add_scalar(f"train/{key}", value, step)
        self.last_step, self.since, self.data_wait = step, time.perf_counter(), 0.0
        return record


def open_tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise WitError("train: --tensorboard needs the tensorboard package (pip install "
                       "tensorboard)") from None
    return SummaryWriter(str(run_dir / "tensorboard"))
