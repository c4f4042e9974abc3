"""`wit shards --exclude DIR ...` (issue 20, item 1): training samples that copy an image of an
evaluation set (an image folder or WebDataset tars), exactly or within --exclude-bits, are
removed, recorded in dedup.parquet with the evaluation file they copy, counted per set, and are in
no training shard; nothing else changes."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import webdataset as wds
from PIL import Image

from support.shards_data import build_raw_dataset, read_shards, render_picture
from wit_builder.cli import load_config, main
from wit_builder.core.tarsamples import sample_block
from wit_builder.shards import run as shards


def raw_samples(workdir: Path) -> list[dict]:
    return list(wds.WebDataset(sorted(str(p) for p in (workdir / "data" / "raw").glob("*.tar")),
                               shardshuffle=False, empty_check=False))


def uid_of(sample: dict) -> str:
    return json.loads(sample["json"])["uid"]


def png_at(jpeg: bytes, scale: float) -> bytes:
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def run(workdir: Path, **overrides) -> dict:
    config = load_config("shards", None, {"workdir": str(workdir), "samples_per_shard": 8,
                                          "val_fraction": 0.2, "workers": 1, "report": False,
                                          **overrides})
    assert shards.run(config) == 0
    return json.loads((workdir / "manifests" / "dataset.json").read_text())


def test_copies_of_evaluation_images_are_removed_and_named(tmp_path):
    raw = build_raw_dataset(tmp_path / "run")
    involved = set(raw.exact_copies) | set(raw.exact_copies.values()) | set(raw.near_copies) \
        | set(raw.near_copies.values())
    plain = [s for s in raw_samples(tmp_path / "run") if uid_of(s) not in involved]
    exact, shrunk, recompressed = plain[2], plain[11], plain[30]
    # Set A: an ImageNet-style image folder with the exact file and a smaller PNG of another.
    folder = tmp_path / "evals" / "setA"
    (folder / "n0001").mkdir(parents=True)
    (folder / "n0001" / "exact.jpg").write_bytes(exact["jpg"])
    (folder / "n0001" / "small.png").write_bytes(png_at(shrunk["jpg"], 0.7))
    unrelated = io.BytesIO()
    render_picture(random.Random(99), 64, False).save(unrelated, format="JPEG")
    (folder / "n0002").mkdir()
    (folder / "n0002" / "other.jpg").write_bytes(unrelated.getvalue())
    (folder / "classnames.txt").write_text("one\ntwo\n")   # not an image: ignored
    # Set B: WebDataset shards, one sample re-encoded at a lower quality.
    tars = tmp_path / "evals" / "setB"
    tars.mkdir()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(recompressed["jpg"])).save(buffer, format="JPEG", quality=60)
    (tars / "eval-000000.tar").write_bytes(
        sample_block("k1", {"jpg": buffer.getvalue(), "cls": b"3"}) + bytes(10240))

    dataset = run(tmp_path / "run", exclude=[str(folder), str(tars)])
    removals = [row for row in pq.read_table(tmp_path / "run" / "manifests" / "dedup.parquet")
                .to_pylist() if row["kind"] == "eval"]
    assert {row["uid"]: row["duplicate_of"] for row in removals} == {
        uid_of(exact): "setA/n0001/exact.jpg", uid_of(shrunk): "setA/n0001/small.png",
        uid_of(recompressed): "setB/eval-000000.tar:k1.jpg"}
    assert [row["distance"] for row in removals if row["uid"] == uid_of(exact)] == [0]
    kept = {sample["uid"] for split in ("train", "val")
            for sample in read_shards(tmp_path / "run" / "data" / "shards", split)}
    assert not kept & {row["uid"] for row in removals}
    assert dataset["per_exclude_set"] == {"setA": 2, "setB": 1}
    assert dataset["per_dedup_kind"]["eval"] == 3
    # Nothing else changed: the same run without --exclude keeps exactly these three more.
    again = build_raw_dataset(tmp_path / "plain")
    assert again.ok_uids == raw.ok_uids
    plain_dataset = run(tmp_path / "plain")
    assert plain_dataset["totals"]["samples"] == dataset["totals"]["samples"] + 3
    assert "per_exclude_set" not in plain_dataset


def test_a_folder_without_images_is_a_clear_error(tmp_path, capsys):
    build_raw_dataset(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    assert main(["shards", "--workdir", str(tmp_path / "run"), "--exclude",
                 str(tmp_path / "empty")]) == 2
    assert "holds no image" in capsys.readouterr().err
    assert main(["shards", "--workdir", str(tmp_path / "run"), "--exclude",
                 str(tmp_path / "missing")]) == 2
    assert "is not a folder of evaluation images" in capsys.readouterr().err
