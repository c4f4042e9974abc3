"""Training shards built for the removal tests (takedown lists, the opt-out recheck), and what
they hold read back with webdataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import webdataset as wds

from support.shards_data import build_raw_dataset
from wit_builder.cli import main

SHARD_OPTIONS = ["--samples-per-shard", "8", "--val-fraction", "0.2", "--workers", "1",
                 "--no-report"]


def build_training_shards(workdir: Path, *extra: str, image_base: str = "http://images.test"
                          ) -> Path:
    """Raw shards (support.shards_data) made into training shards by `wit shards` (+ `extra`)."""
    build_raw_dataset(workdir, image_base=image_base)
    assert main(["shards", "--workdir", str(workdir), *SHARD_OPTIONS, *extra]) == 0
    return workdir / "data" / "shards"


def samples(folder: Path) -> dict[str, dict]:
    """uid -> the sample's json, shard and members, read back with webdataset."""
    found = {}
    for tar in sorted(folder.glob("*.tar")):
        for sample in wds.WebDataset(str(tar), shardshuffle=False, empty_check=False):
            meta = json.loads(sample["json"])
            found[meta["uid"]] = {**meta, "shard": tar.name, "jpg": sample["jpg"],
                                  "txt": sample["txt"]}
    return found


def digests(folder: Path) -> dict[str, str]:
    """shard name -> sha256 of its bytes."""
    return {tar.name: hashlib.sha256(tar.read_bytes()).hexdigest()
            for tar in sorted(folder.glob("*.tar"))}
