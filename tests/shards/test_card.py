"""What `wit shards` writes beside the training shards for other tools: sizes.json (read by
open_clip_train itself here), _info.json and the dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import webdataset as wds

from support.shards_data import build_raw_dataset
from wit_builder.cli import load_config
from wit_builder.shards import run as shards


def run_shards(workdir: Path) -> Path:
    build_raw_dataset(workdir)
    (workdir / "manifests" / "crawl_stats.json").write_text(json.dumps({
        "dropped": {"not_en": 17, "no_query": 5, "pages": 40},
        "language": {"detector": "auto", "lang": "en", "min_lang_prob": 0.5},
        "per_query": 20000, "balance_mode": "exact", "sources": ["web:https://example.org/"]}))
    config = load_config("shards", None, {"workdir": str(workdir), "samples_per_shard": 8,
                                          "val_fraction": 0.2, "workers": 1, "report": False})
    assert shards.run(config) == 0
    return workdir / "data" / "shards"


def samples_in(tar: Path) -> int:
    return sum(1 for _ in wds.WebDataset(str(tar), shardshuffle=False, empty_check=False))


def test_sizes_json_is_what_open_clip_train_reads(tmp_path):
    from open_clip_train.data import get_dataset_size

    folder = run_shards(tmp_path)
    sizes = json.loads((folder / "sizes.json").read_text())
    tars = sorted(folder.glob("*.tar"))
    assert sorted(sizes) == [tar.name for tar in tars]
    assert all(sizes[tar.name] == samples_in(tar) for tar in tars)
    train = sorted(str(tar) for tar in tars if tar.name.startswith("train-"))
    total, count = get_dataset_size("::".join(train))  # open_clip's own reader
    assert (total, count) == (sum(sizes[Path(t).name] for t in train), len(train))


def test_info_json_totals_match_the_shards(tmp_path):
    folder = run_shards(tmp_path)
    info = json.loads((folder / "_info.json").read_text())
    dataset = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    for split in ("train", "val"):
        files = sorted(tar.name for tar in folder.glob(f"{split}-*.tar"))
        assert info["splits"][split]["files"] == files
        assert info["splits"][split]["samples"] == dataset["totals"][split] \
            == sum(samples_in(folder / name) for name in files)
    assert info["total_samples"] == dataset["totals"]["train"] + dataset["totals"]["val"]


def test_the_dataset_card_states_the_recorded_counts(tmp_path):
    folder = run_shards(tmp_path)
    card = (folder / "README.md").read_text()
    dataset = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    for heading in ("## Contents", "## Sources", "## What each step kept and dropped",
                    "## Filters and their settings", "## Languages", "## Opt-outs and safety",
                    "## Licences", "## Citation"):
        assert heading in card
    assert f"| train samples | {dataset['totals']['train']:,} |" in card
    assert f"| ok | {dataset['per_status']['ok']:,} |" in card
    assert "| not_en | 17 |" in card and "| pages |" not in card   # pages are not pairs
    assert "detector `auto`, least probability 0.5" in card
    assert f"{dataset['totals']['duplicates']:,} duplicates removed" in card
    assert "`web:https://example.org/`" in card
    # The same inputs give the same card, byte for byte.
    first = card
    folder = run_shards(tmp_path / "again")
    assert (folder / "README.md").read_text().replace(str(tmp_path / "again"), str(tmp_path)) \
        == first
