"""`wit shards` on raw shards written in the crawl's format: dedup, shuffle, split, manifests."""

from __future__ import annotations

import io
import os
import random
import shutil
import tarfile
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from support.shards_data import build_raw_dataset, encode_jpeg, read_shards, render_picture
from wit_builder.core import atomic
from wit_builder.shards import run as shards
from wit_builder.cli import main
from wit_builder.cli import load_config
from wit_builder.core.options import WitError
from wit_builder.shards.phash import phash
from wit_builder.core.tarsamples import read_samples, sample_block


def shards_config(workdir: Path, **overrides):
    settings = {"workdir": str(workdir), "samples_per_shard": 8, "val_fraction": 0.2,
                "memory_budget_mb": 0.02, "workers": 1, "report": False}
    return load_config("shards", None, {**settings, **overrides})


def all_samples(workdir: Path) -> list[dict]:
    folder = workdir / "data" / "shards"
    return read_shards(folder, "train") + read_shards(folder, "val")


def test_every_ok_sample_lands_once_unless_recorded_as_duplicate(tmp_path):
    raw = build_raw_dataset(tmp_path)
    assert shards.run(shards_config(tmp_path)) == 0
    uids = [sample["uid"] for sample in all_samples(tmp_path)]
    removals = pq.read_table(tmp_path / "manifests" / "dedup.parquet").to_pylist()
    removed = {row["uid"] for row in removals}
    assert len(uids) == len(set(uids))
    assert set(uids) | removed == set(raw.ok_uids) and not set(uids) & removed
    exact = {r["uid"]: r["duplicate_of"] for r in removals if r["kind"] == "exact"}
    near = {r["uid"]: r["duplicate_of"] for r in removals if r["kind"] == "near"}
    assert exact == raw.exact_copies
    assert near == raw.near_copies  # resized and re-encoded copies: different sha256


def test_shards_have_fixed_size_and_manifest_matches_files(tmp_path):
    build_raw_dataset(tmp_path)
    shards.run(shards_config(tmp_path, samples_per_shard=7))
    folder = tmp_path / "data" / "shards"
    rows = pq.read_table(tmp_path / "manifests" / "shards.parquet").to_pylist()
    assert sorted(row["shard"] for row in rows) == sorted(p.name for p in folder.glob("*.tar"))
    for split in ("train", "val"):
        counts = [row["samples"] for row in sorted(rows, key=lambda r: r["shard"])
                  if row["split"] == split]
        assert counts and all(count == 7 for count in counts[:-1]) and 1 <= counts[-1] <= 7
        assert sum(counts) == len(read_shards(folder, split))
    for row in rows:
        assert row["sha256"] == atomic.sha256_file(folder / row["shard"])
        assert row["bytes"] == (folder / row["shard"]).stat().st_size
    assert not (folder / ".work").exists()
    summary = __import__("json").loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert summary["totals"]["train"] + summary["totals"]["val"] == summary["totals"]["samples"]
    assert summary["per_dedup_kind"] == {"exact": 3, "near": 3}
    assert summary["per_status"]["ok"] == 60 and sum(summary["per_status"].values()) == 66
    assert summary["per_language"]["dropped_not_en"] == 7
    assert sum(summary["per_source"].values()) == summary["totals"]["samples"]


def test_same_seed_gives_byte_identical_shards_whatever_the_workers(tmp_path):
    build_raw_dataset(tmp_path, shards=2, per_shard=16)

    def shard_bytes(**overrides) -> dict[str, bytes]:
        shards.run(shards_config(tmp_path, **overrides))
        folder = tmp_path / "data" / "shards"
        return {path.name: path.read_bytes() for path in sorted(folder.glob("*.tar"))}

    first = shard_bytes(seed=3, workers=1)
    assert shard_bytes(seed=3, workers=2) == first
    assert shard_bytes(seed=4, workers=1) != first


def test_shuffle_is_a_permutation_with_uniform_positions(tmp_path):
    raw = build_raw_dataset(tmp_path, shards=4, per_shard=50, exact=0, near=0,
                            failed_per_shard=0, side=32)
    shards.run(shards_config(tmp_path, val_fraction=0.0, samples_per_shard=50, seed=11))
    order = [sample["uid"] for sample in read_shards(tmp_path / "data" / "shards", "train")]
    assert sorted(order) == sorted(raw.ok_uids)
    # 4x4 contingency of (quarter of the crawl order, quarter of the shuffled order): independent
    # if the shuffle is global. Chi-square with 9 degrees of freedom, p = 0.001 critical value.
    crawl_rank = {uid: rank for rank, uid in enumerate(raw.ok_uids)}
    table = [[0] * 4 for _ in range(4)]
    for position, uid in enumerate(order):
        table[crawl_rank[uid] * 4 // len(order)][position * 4 // len(order)] += 1
    expected = len(order) / 16
    chi_square = sum((cell - expected) ** 2 / expected for row in table for cell in row)
    assert chi_square < 27.88, table
    assert order != raw.ok_uids


def test_split_membership_stays_when_data_is_added(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    build_raw_dataset(large, shards=3, exact=0, near=0)
    for relative in ("data/raw/00000.tar", "data/raw/00001.tar", "manifests/crawl/00000.parquet",
                     "manifests/crawl/00001.parquet"):  # the small dataset: its first two shards
        (small / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(large / relative, small / relative)
    for workdir in (small, large):
        shards.run(shards_config(workdir, val_fraction=0.3, seed=5))

    def splits(workdir: Path) -> dict[str, set[str]]:
        folder = workdir / "data" / "shards"
        return {split: {s["uid"] for s in read_shards(folder, split)} for split in ("train", "val")}
    before, after = splits(small), splits(large)
    assert before["val"] and before["val"] <= after["val"] and before["train"] <= after["train"]


def test_peak_memory_stays_flat_as_samples_grow(tmp_path):
    peaks, data = [], []
    for scale in (1, 4):
        workdir = tmp_path / f"x{scale}"
        raw = build_raw_dataset(workdir, shards=2 * scale, per_shard=20, exact=0, near=0,
                                side=200, noise=True)
        config = shards_config(workdir, memory_budget_mb=0.1, samples_per_shard=10,
                               near_dup_bits=0)
        tracemalloc.start()
        shards.run(config)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        data.append(raw.image_bytes)
    # Four times the images (megabytes more) may add only the small per-sample index, not images.
    assert data[1] - data[0] > 2_500_000
    assert peaks[1] - peaks[0] < 0.1 * (data[1] - data[0]), (peaks, data)


def rewrite_tar(path: Path, edit) -> None:
    """Rewrite a raw tar through `edit(members) -> members` (list of (TarInfo, bytes))."""
    with tarfile.open(path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for info, data in edit(members):
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_inputs_are_skipped_and_counted_and_nothing_else_is_lost(tmp_path):
    raw = build_raw_dataset(tmp_path, shards=5, per_shard=12, exact=0, near=0)
    data = tmp_path / "data" / "raw"

    def add_hostile_members(members):
        for name in ("../../etc/passwd", "/tmp/absolute.txt"):
            members.append((tarfile.TarInfo(name), b"owned"))
        return members

    rewrite_tar(data / "00000.tar", add_hostile_members)
    rewrite_tar(data / "00001.tar", lambda ms: [m for m in ms if m[0].name != "0000100003.jpg"])
    rewrite_tar(data / "00002.tar", lambda ms: [
        (info, body.replace(b'"uid": "', b'"uid": "x')) if info.name == "0000200004.json"
        else (info, body) for info, body in ms])
    tar3 = (data / "00003.tar").read_bytes()
    (data / "00003.tar").write_bytes(tar3[: len(tar3) // 2])
    (tmp_path / "manifests" / "crawl" / "00004.parquet").unlink()
    shards.run(shards_config(tmp_path))

    summary = __import__("json").loads((tmp_path / "manifests" / "dataset.json").read_text())
    skipped = summary["skipped"]
    assert skipped["member_unsafe_path"] == 2
    assert skipped["missing_member"] == 1
    assert skipped["manifest_mismatch"] == 1
    assert skipped["truncated_tar"] == 1 and skipped["missing_from_tar"] >= 5
    assert skipped["tar_without_manifest"] == 1
    kept = {sample["uid"] for sample in all_samples(tmp_path)}
    lost_shard_3 = 12 - sum(uid in kept for uid in raw.ok_uids[36:48])
    assert lost_shard_3 == skipped["missing_from_tar"]
    assert set(raw.ok_uids[:24]) - kept == {raw.ok_uids[12 + 3]}  # only the sample without .jpg
    assert set(raw.ok_uids[24:36]) - kept == {raw.ok_uids[24 + 4]}  # only the disagreeing one
    assert not (tmp_path.parent / "etc").exists() and not Path("/tmp/absolute.txt").exists()


def test_raw_shards_are_read_from_an_fsspec_url(tmp_path):
    import fsspec

    raw = build_raw_dataset(tmp_path / "local", shards=2, per_shard=8, exact=0, near=0)
    memory = fsspec.filesystem("memory")
    for relative in ("data/raw/00000.tar", "data/raw/00001.tar", "manifests/crawl/00000.parquet",
                     "manifests/crawl/00001.parquet"):
        memory.pipe(f"/bucket/{relative}", (tmp_path / "local" / relative).read_bytes())
    shards.run(shards_config(tmp_path / "out", raw="memory://bucket/data/raw",
                             crawl_manifests="memory://bucket/manifests/crawl"))
    assert sorted(s["uid"] for s in all_samples(tmp_path / "out")) == sorted(raw.ok_uids)
    memory.rm("/bucket", recursive=True)


def test_missing_raw_shards_is_a_clear_error(tmp_path):
    with pytest.raises(WitError, match="no raw shards .* run `wit crawl` first"):
        shards.run(shards_config(tmp_path))


def test_wit_shards_command_writes_the_shards(tmp_path, capsys):
    build_raw_dataset(tmp_path, shards=1, per_shard=10, exact=0, near=0)
    assert main(["shards", "--workdir", str(tmp_path), "--samples-per-shard", "4",
                 "--no-report", "--workers", "1"]) == 0
    assert len(all_samples(tmp_path)) == 10
    assert main(["shards", "--workdir", str(tmp_path), "--val-fraction", "1.5"]) == 2
    assert "--val-fraction" in capsys.readouterr().err


def test_phash_keeps_resized_reencoded_copies_close_and_distinct_pictures_far():
    rng = random.Random(1)
    pictures = [render_picture(rng, 96, noise=False) for _ in range(30)]
    hashes = [phash(encode_jpeg(picture)) for picture in pictures]
    for picture, value in zip(pictures[:10], hashes):
        copy = encode_jpeg(picture.resize((61, 61), Image.Resampling.BILINEAR), quality=50)
        assert (phash(copy) ^ value).bit_count() <= 4
    distances = [(a ^ b).bit_count() for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(distances) > 8


def test_tar_cut_between_members_counts_as_truncated(tmp_path):
    """tarfile ends quietly at a cut that falls on a header; the missing end block gives it away.
    The sample being read when the tar broke off (the third) is dropped, as its members may be."""
    build_raw_dataset(tmp_path, shards=1, per_shard=6, exact=0, near=0)
    tar_path = tmp_path / "data" / "raw" / "00000.tar"
    with tarfile.open(tar_path) as tar:
        fourth_sample = [info.offset for info in tar.getmembers()][3 * 3]
    for cut, complete in ((fourth_sample, 2), (fourth_sample + 700, 2), (None, 6)):
        problems: Counter = Counter()
        with open(tar_path, "rb") as stream:
            data = io.BytesIO(stream.read()[:cut])
        samples = list(read_samples(data, problems, str(tar_path)))
        assert len(samples) == complete
        assert problems["truncated_tar"] == (cut is not None)


def test_bucket_shuffle_cuts_pieces_by_recorded_lengths_and_refuses_a_damaged_piece(tmp_path):
    pieces = shards.PieceFiles(str(tmp_path), raw_shard=7)
    blocks = [sample_block(f"k{i}", {"txt": b"x" * (100 * i + 1), "json": b"{}"})
              for i in range(5)]
    for position, block in enumerate(blocks):
        pieces.write("train", 0, block, (7 << 32) | position)
    pieces.close()
    piece = tmp_path / "buckets" / "train-00000" / "00007.tar"
    drop = tmp_path / "drop.orders"
    np.array([(7 << 32) | 1], np.int64).tofile(drop)
    job = shards.BucketJob("train", 0, (str(piece),), str(drop), str(tmp_path / "run"), seed=1)
    assert shards.shuffle_bucket(job)["samples"] == 4
    stream = io.BytesIO((tmp_path / "run.tar").read_bytes() + b"\0" * 1024)  # + end of archive
    problems = Counter()
    assert sorted(key for key, _ in read_samples(stream, problems)) == ["k0", "k2", "k3", "k4"]
    assert not problems
    offsets = np.load(tmp_path / "run.npy")
    assert sorted(np.diff(offsets).tolist()) == sorted(len(blocks[i]) for i in (0, 2, 3, 4))
    piece.write_bytes(piece.read_bytes()[:-600])
    with pytest.raises(RuntimeError, match="bucket piece .* is not the"):
        shards.shuffle_bucket(job)


def stage_outputs(workdir: Path) -> dict[str, bytes]:
    """Every file the stage writes (shards, their manifest, dedup list, dataset.json)."""
    files = sorted((workdir / "data" / "shards").glob("*.tar"))
    files += [workdir / "manifests" / name for name in
              ("shards.parquet", "dedup.parquet", "dataset.json")]
    return {path.name: path.read_bytes() for path in files}


def crash_scan_once(monkeypatch, raw_shard: int, position: int) -> Counter:
    """Make the scan of `raw_shard` fail once, at `position`, after it has written part of its
    pieces; count the scans of every raw shard."""
    scans: Counter = Counter()
    scatter, index_row = shards.scatter_raw_shard, shards.index_row

    def counted_scatter(shard, settings):
        scans[shard.number] += 1
        return scatter(shard, settings)

    def failing_index_row(key, members, meta, sha256, image_hash, shard, place, *rest):
        if shard == raw_shard and place == position and scans[shard] == 1:
            raise OSError("simulated crash in the middle of a scan")
        return index_row(key, members, meta, sha256, image_hash, shard, place, *rest)

    monkeypatch.setattr(shards, "scatter_raw_shard", counted_scatter)
    monkeypatch.setattr(shards, "index_row", failing_index_row)
    return scans


def test_rerun_after_a_crashed_scan_rescans_only_unfinished_shards_with_same_bytes(
        tmp_path, monkeypatch):
    build_raw_dataset(tmp_path, shards=4, per_shard=12)
    assert shards.run(shards_config(tmp_path)) == 0  # workers=1: scans run in this process
    uninterrupted = stage_outputs(tmp_path)
    scans = crash_scan_once(monkeypatch, raw_shard=2, position=6)
    with pytest.raises(OSError, match="simulated crash"):
        shards.run(shards_config(tmp_path))
    done = tmp_path / "data" / "shards" / ".work" / "done"
    assert sorted(path.name for path in done.iterdir()) == ["00000.json", "00001.json"]
    assert shards.run(shards_config(tmp_path)) == 0
    assert scans == {0: 1, 1: 1, 2: 2, 3: 1}
    assert stage_outputs(tmp_path) == uninterrupted
    assert not (tmp_path / "data" / "shards" / ".work").exists()


def test_rerun_rescans_a_raw_shard_that_changed_since_its_scan(tmp_path, monkeypatch):
    build_raw_dataset(tmp_path, shards=3, per_shard=8)
    scans = crash_scan_once(monkeypatch, raw_shard=2, position=3)
    with pytest.raises(OSError, match="simulated crash"):
        shards.run(shards_config(tmp_path))
    tar = tmp_path / "data" / "raw" / "00000.tar"
    stat = tar.stat()
    os.utime(tar, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert shards.run(shards_config(tmp_path)) == 0
    assert scans == {0: 2, 1: 1, 2: 2}


def test_rerun_keeps_scans_of_raw_shards_read_from_an_fsspec_url(tmp_path, monkeypatch):
    import fsspec

    build_raw_dataset(tmp_path / "local", shards=3, per_shard=8)
    memory = fsspec.filesystem("memory")
    for relative in [f"data/raw/{n:05d}.tar" for n in range(3)] + \
            [f"manifests/crawl/{n:05d}.parquet" for n in range(3)]:
        memory.pipe(f"/resume/{relative}", (tmp_path / "local" / relative).read_bytes())
    config = shards_config(tmp_path / "out", raw="memory://resume/data/raw",
                           crawl_manifests="memory://resume/manifests/crawl")
    try:
        assert shards.run(config) == 0
        uninterrupted = stage_outputs(tmp_path / "out")
        scans = crash_scan_once(monkeypatch, raw_shard=1, position=2)
        with pytest.raises(OSError, match="simulated crash"):
            shards.run(config)
        assert shards.run(config) == 0
        assert scans == {0: 1, 1: 2, 2: 1}
        assert stage_outputs(tmp_path / "out") == uninterrupted
    finally:
        memory.rm("/resume", recursive=True)
