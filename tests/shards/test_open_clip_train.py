"""witbuilder beside open_clip's trainer (issue 19, item 1): open_clip_torch[training] pins
webdataset<=0.2.86, and open_clip_train fails on later webdataset releases (KeyError 'fname' in
its group_by_keys_nothrow). So witbuilder accepts webdataset 0.2.86, the two install together, and
open_clip_train trains on the shards `wit shards` wrote, finding their size in sizes.json."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from support.realdata import venv
from support.shards_data import build_raw_dataset
from wit_builder.cli import load_config
from wit_builder.shards import run as shards

ROOT = Path(__file__).resolve().parents[2]
OPEN_CLIP_WEBDATASET = "0.2.86"   # the newest open_clip_torch[training] allows

# A tiny open_clip model (open_clip's `local-dir:` schema), a few CPU steps.
TINY = {"model_cfg": {"embed_dim": 32,
                      "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16,
                                     "head_width": 32},
                      "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64,
                                   "heads": 2, "layers": 1}},
        "preprocess_cfg": {}}


def our_requirement(name: str) -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return next(Requirement(line) for line in project["dependencies"]
                if Requirement(line).name == name)


def test_our_webdataset_range_meets_open_clip_trainings():
    theirs = next(Requirement(line.split(";")[0])
                  for line in importlib.metadata.requires("open_clip_torch")
                  if line.startswith("webdataset") and 'extra == "training"' in line)
    ours = our_requirement("webdataset")
    assert OPEN_CLIP_WEBDATASET in theirs.specifier and OPEN_CLIP_WEBDATASET in ours.specifier


def test_open_clip_train_trains_on_wit_shards_with_webdataset_0_2_86(tmp_path):
    python = venv("webdataset", OPEN_CLIP_WEBDATASET)
    build_raw_dataset(tmp_path)
    shards.run(load_config("shards", None, {"workdir": str(tmp_path), "samples_per_shard": 16,
                                            "val_fraction": 0.1, "workers": 1, "report": False}))
    folder = tmp_path / "data" / "shards"
    train = sorted(folder.glob("train-*.tar"))
    samples = sum(json.loads((folder / "sizes.json").read_text())[tar.name] for tar in train)
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "open_clip_config.json").write_text(json.dumps(TINY))
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    version = subprocess.run([str(python), "-c", "import webdataset; print(webdataset.__version__)"],
                             capture_output=True, text=True, env=environment)
    assert version.stdout.strip() == OPEN_CLIP_WEBDATASET
    done = subprocess.run(
        [str(python), "-m", "open_clip_train.main", "--dataset-type", "webdataset",
         "--train-data", "::".join(str(tar) for tar in train),   # no --train-num-samples
         "--model", f"local-dir:{model}", "--batch-size", "8", "--epochs", "1", "--workers", "0",
         "--precision", "fp32", "--lr", "1e-3", "--warmup", "1", "--report-to", "",
         "--save-frequency", "0", "--log-every-n-steps", "1", "--logs", str(tmp_path / "logs"),
         "--name", "wit"],
        capture_output=True, text=True, env=environment, timeout=600, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert f"[{samples}/{samples} (100%)]" in log   # the epoch's size came from sizes.json
    losses = [float(value) for value in re.findall(r"Contrastive_loss: ([0-9.]+) ", log)]
    assert len(losses) == samples // 8 and all(0 < loss < 10 for loss in losses)


def test_our_trainer_reads_its_shards_with_webdataset_0_2_86(tmp_path):
    python = venv("webdataset", OPEN_CLIP_WEBDATASET)
    build_raw_dataset(tmp_path)
    shards.run(load_config("shards", None, {"workdir": str(tmp_path), "samples_per_shard": 16,
                                            "val_fraction": 0.1, "workers": 1, "report": False}))
    script = ("import sys, webdataset; from trainer.data import ClipStream, expand_shards; "
              "from trainer.tokenizer import clip_tokenizer; "
              "urls = expand_shards('data/shards/train-*.tar', sys.argv[1]); "
              "images, tokens, _ = next(iter(ClipStream(urls, clip_tokenizer(), 4, 32, shuffle=0))); "
              "print(webdataset.__version__, tuple(images.shape), tokens.shape[0])")
    done = subprocess.run([str(python), "-c", script, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [OPEN_CLIP_WEBDATASET, "(4,", "3,", "32,", "32)", "4"]


def test_the_installed_webdataset_satisfies_our_range():
    assert importlib.metadata.version("webdataset") in our_requirement("webdataset").specifier
