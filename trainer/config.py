"""Settings of `wit train` and `wit eval` (TOML sections [train] and [eval]).

Kept free of torch imports so that `wit --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wit_builder.core.options import StageConfig, WitError, option

PRESETS = sorted(path.stem for path in (Path(__file__).parent / "configs").glob("*.toml"))

@dataclass
class TrainConfig(StageConfig):
    model: str = option("tiny", f"model preset: {', '.join(PRESETS)} (trainer/configs/) or a path "
                                f"to a .toml; its [train] table gives defaults the options "
                                f"override")
    train: str = option("data/shards/train-*.tar", "training shards: a folder (its train-*.tar), "
                                                    "brace pattern, glob, URL, pipe: or fsspec "
                                                    "URL; join several with ::")
    name: str = option("", "run name: outputs go to runs/NAME/ (empty: the preset's name)")
    batch_size: int = option(64, "samples per step on each process", min=1)
    steps: int = option(200, "optimizer steps", min=1)
    lr: float = option(5e-4, "peak learning rate", above=0)
    resume: bool = option(False, "continue from runs/NAME/checkpoints/latest.pt")
    warmup: int = option(20, "steps of linear learning-rate warmup before the cosine decay", min=0)
    weight_decay: float = option(0.2, "AdamW decoupled weight decay (none on biases, norms, "
                                      "embeddings and the logit scale)", min=0)
    beta1: float = option(0.9, "AdamW beta1", min=0, below=1)
    beta2: float = option(0.98, "AdamW beta2", min=0, below=1)
    eps: float = option(1e-6, "AdamW epsilon", above=0)
    grad_clip: float = option(1.0, "clip the gradient norm to this (0: no clipping)", min=0)
    tokenizer: str = option("", "'' trains a byte-level BPE on the training captions and saves it "
                                "to the run; 'clip' is the original CLIP BPE (needs open_clip); "
                                "else a tokenizer.json path")
    vocab_size: int = option(49_152, "BPE vocabulary size when the tokenizer is trained", min=259)
    tokenizer_samples: int = option(100_000, "captions read from the shards to train the BPE",
                                    min=1)
    workers: int = option(2, "data loader processes per training process (0: in process)", min=0)
    shuffle: int = option(1000, "shuffle buffer in samples (per data loader process)", min=0)
    resampled: bool = option(False, "draw shards with replacement (always on with several "
                                    "processes, so that every rank sees a full stream)")
    samples_per_epoch: int = option(0, "samples in one epoch over all processes; the stream is "
                                       "reshuffled at each epoch (0: one endless epoch)", min=0)
    crop_scale: float = option(0.9, "smallest area share of the random square crop (1: no crop)",
                               above=0, max=1)
    device: str = option("auto", "where to train", choices=["auto", "cpu", "cuda"])
    precision: str = option("auto", "auto is bf16 autocast on CUDA and fp32 on CPU",
                            choices=["auto", "fp32", "bf16"])
    grad_checkpointing: bool = option(False, "recompute activations in backward to save memory")
    compile: bool = option(False, "torch.compile the model")
    gather_with_grad: bool = option(True, "all-gather features with gradients (exact gradients "
                                          "of the global-batch loss under DDP)")
    local_loss: bool = option(True, "each rank computes the loss rows of its own samples only "
                                    "(same loss, less memory)")
    threads: int = option(0, "torch CPU threads per process; 0: the cores left idle by other "
                             "processes and this run's data workers, shared among the local "
                             "processes, re-measured every 5 s (a busy machine then slows "
                             "training in proportion, not many-fold); N: exactly N", min=0)
    log_every: int = option(10, "steps between lines of metrics.jsonl", min=1)
    checkpoint_every: int = option(100, "steps between checkpoints (and at the end)", min=1)
    keep_checkpoints: int = option(2, "step checkpoints kept: older ones are deleted once a new "
                                      "one and latest.pt are written (0: keep all)", min=0)
    tensorboard: bool = option(False, "also log to runs/NAME/tensorboard (needs tensorboard)")
    eval_every: int = option(0, "steps between zero-shot and retrieval evaluations, logged to "
                                "metrics.jsonl (0: never)", min=0)
    eval_zeroshot: list[str] = option([], "labelled sets evaluated during training, as "
                                          "`wit eval --zeroshot` (repeatable; none: retrieval "
                                          "only)", metavar="DIR")
    eval_retrieval: str = option("", "shards for retrieval recall@k during training (empty: "
                                     "`wit eval`'s default, data/shards/val-*.tar)")
    eval_retrieval_samples: int = option(5000, "pairs read for retrieval during training (0: "
                                               "all); the other ranks wait meanwhile", min=0)


@dataclass
class EvalConfig(StageConfig):
    checkpoint: str = option("runs/tiny/checkpoints/latest.pt", "checkpoint to evaluate")
    zeroshot: list[str] = option([], "labelled sets: WebDataset dirs (.jpg + .cls, classnames.txt) "
                                     "or image folders with a sub-folder per class, named by the "
                                     "folder (light_pink: 'light pink') or by a classnames.txt "
                                     "(a name a line in folder order, or 'n01440764 tench' "
                                     "lines) (repeatable)", metavar="DIR")
    retrieval: str = option("data/shards/val-*.tar", "shards for image<->text retrieval recall@k "
                                                     "('' : no retrieval)")
    retrieval_samples: int = option(5000, "pairs read from the retrieval shards (0: all)", min=0)
    templates: str = option("", "prompt templates: a text file, one a line with {c} or {} for "
                                "the class name; a Python file of open_clip-style `lambda c: "
                                "f'...{c}...'` items (parsed, never run); or an open_clip set "
                                "name: openai_imagenet, simple_imagenet ('': each set's "
                                "templates.txt, else our default prompts)", metavar="FILE|NAME")
    batch_size: int = option(128, "images or prompts encoded at once", min=1)
    device: str = option("auto", "where to evaluate", choices=["auto", "cpu", "cuda"])
    metrics: bool = option(True, "append the results to the run's metrics.jsonl")


@dataclass
class ExportConfig(StageConfig):
    checkpoint: str = option("runs/tiny/checkpoints/latest.pt", "checkpoint file or run folder "
                                                                "(runs/NAME) to export")
    out: str = option("", "folder to write the open_clip model to (open_clip_config.json, "
                          "open_clip_model.safetensors, NAME.json, the tokenizer)", metavar="DIR")
    name: str = option("", "model name of NAME.json, for open_clip.add_model_config (empty: "
                           "witbuilder-RUN)")
    check: bool = option(True, "rebuild the model with open_clip (when installed) and refuse the "
                               "export unless its embeddings equal ours to 1e-5")


def require_local_workdir(config: StageConfig, stage: str) -> None:
    """Runs, checkpoints and metrics are local files: the data stages' fsspec workdirs do not
    apply here (shards can still be read from URLs, given to --train or --retrieval)."""
    from wit_builder.core import store

    if store.is_url(config.workdir):
        raise WitError(f"{stage}: --workdir '{config.workdir}' is a URL; training and evaluation "
                       f"write their runs locally: give a local --workdir, and the shards' URLs "
                       f"to --train or --retrieval")
