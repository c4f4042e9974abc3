"""Settings of `wit train` and `wit eval` (TOML sections [train] and [eval]).

Kept free of torch imports so that `wit --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from wit_builder.options import StageConfig, option


@dataclass
class TrainConfig(StageConfig):
    model: str = option("tiny", "model preset: a name in trainer/configs/ or a path to a .toml")
    train: str = option("data/shards/train-*.tar", "training shards: brace pattern, glob, "
                                                    "URL, pipe: or fsspec URL")
    name: str = option("", "run name: outputs go to runs/NAME/ (default: the model preset)")
    batch_size: int = option(64, "samples per step on each process")
    steps: int = option(200, "optimizer steps")
    lr: float = option(5e-4, "peak learning rate")
    resume: bool = option(False, "continue from runs/NAME/checkpoints/latest.pt")


@dataclass
class EvalConfig(StageConfig):
    checkpoint: str = option("runs/tiny/checkpoints/latest.pt", "checkpoint to evaluate")
    zeroshot: list[str] = option([], "labelled sets: WebDataset dirs (.jpg + .cls, classnames.txt) "
                                     "or image folders with a sub-folder per class (repeatable)",
                                 metavar="DIR")
    retrieval: str = option("data/shards/val-*.tar", "shards for image<->text retrieval recall@k")
