"""Takedown lists (issue 20, item 4): `wit takedown FILE` and `wit shards --takedown FILE` remove the
listed URLs' samples from the training shards by rewriting only the shards that hold them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from support.removal_data import SHARD_OPTIONS, digests, samples
from support.removal_data import build_training_shards as build_shards
from wit_builder.cli import main


def removals(workdir: Path) -> list[dict]:
    return pq.read_table(workdir / "manifests" / "takedown.parquet").to_pylist()


def test_takedown_rewrites_only_the_shards_holding_listed_urls(tmp_path):
    folder = build_shards(tmp_path)
    before, shas = samples(folder), digests(folder)
    by_shard: dict[str, list[dict]] = {}
    for sample in before.values():
        by_shard.setdefault(sample["shard"], []).append(sample)
    first, second = sorted(by_shard)[0], sorted(by_shard)[-1]
    gone = [by_shard[first][0], by_shard[first][1], by_shard[second][0]]
    # Other spellings of the same URLs: upper-case scheme and host, the default port, a fragment.
    lines = ["# takedown requests of 2026-12-06", ""]
    lines += [sample["url"].replace("http://images.test", "HTTP://Images.TEST:80") + "#x"
              for sample in gone]
    listing = tmp_path / "takedown.txt.gz"
    listing.write_bytes(gzip.compress("\n".join(lines).encode()))

    assert main(["takedown", "--workdir", str(tmp_path), str(listing)]) == 0

    after = samples(folder)
    assert set(after) == set(before) - {sample["uid"] for sample in gone}
    for uid, sample in after.items():  # the kept samples, member for member
        assert (sample["jpg"], sample["txt"], sample["shard"]) == \
            (before[uid]["jpg"], before[uid]["txt"], before[uid]["shard"])
    now = digests(folder)
    assert {name for name in shas if now[name] != shas[name]} == {first, second}
    manifest = {row["shard"]: row for row in
                pq.read_table(tmp_path / "manifests" / "shards.parquet").to_pylist()}
    for tar in folder.glob("*.tar"):
        row = manifest[tar.name]
        assert (row["sha256"], row["bytes"]) == (now[tar.name], tar.stat().st_size)
        assert row["samples"] == sum(1 for s in after.values() if s["shard"] == tar.name)
    sizes = json.loads((folder / "sizes.json").read_text())
    assert sizes[first] == len(by_shard[first]) - 2 and sizes[second] == len(by_shard[second]) - 1
    info = json.loads((folder / "_info.json").read_text())
    dataset = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert info["total_samples"] == len(after) == dataset["totals"]["samples"]
    assert dataset["per_removal_reason"] == {"takedown": 3}
    assert sorted((row["uid"], row["url"], row["shard"], row["reason"])
                  for row in removals(tmp_path)) == \
        sorted((s["uid"], s["url"], s["shard"], "takedown") for s in gone)
    assert "| takedown | 3 |" in (folder / "README.md").read_text()

    # The same list again removes nothing more and rewrites nothing.
    assert main(["takedown", "--workdir", str(tmp_path), str(listing)]) == 0
    assert digests(folder) == now and len(removals(tmp_path)) == 3


def test_a_listed_page_takes_down_every_image_found_on_it(tmp_path):
    folder = build_shards(tmp_path)
    before = samples(folder)
    page = "http://pages.test/1.html"
    (tmp_path / "pages.txt").write_text(page + "\n")

    assert main(["takedown", "--workdir", str(tmp_path), str(tmp_path / "pages.txt")]) == 0

    on_page = {uid for uid, sample in before.items() if sample["page_url"] == page}
    assert on_page and set(samples(folder)) == set(before) - on_page
    assert {row["reason"] for row in removals(tmp_path)} == {"takedown_page"}


def test_a_rebuild_keeps_taken_down_samples_out(tmp_path):
    folder = build_shards(tmp_path)
    victim = next(iter(samples(folder).values()))
    (tmp_path / "list.txt").write_text(victim["url"] + "\n")
    assert main(["takedown", "--workdir", str(tmp_path), str(tmp_path / "list.txt")]) == 0

    # Rebuilt without the list: the recorded removal is applied again.
    assert main(["shards", "--workdir", str(tmp_path), *SHARD_OPTIONS]) == 0
    assert victim["uid"] not in samples(folder)
    assert [row["uid"] for row in removals(tmp_path)] == [victim["uid"]]

    # A fresh build given the list never shows the sample either.
    fresh = build_shards(tmp_path / "fresh", "--takedown", str(tmp_path / "list.txt"))
    assert victim["uid"] not in samples(fresh)
    assert json.loads((tmp_path / "fresh" / "manifests" / "dataset.json").read_text())[
        "per_removal_reason"] == {"takedown": 1}


@pytest.mark.parametrize("line", ["images.test/0/1.jpg", "ftp://images.test/0/1.jpg",
                                  "http:///nohost"])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, capsys, line):
    folder = build_shards(tmp_path)
    shas = digests(folder)
    capsys.readouterr()  # the build's progress bars
    listing = tmp_path / "bad.txt"
    listing.write_text(f"# ok\nhttp://images.test/0/1.jpg\n{line}\n")

    assert main(["takedown", "--workdir", str(tmp_path), str(listing)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("wit takedown: ") and "\n" not in error
    assert f"'{listing}' line 3" in error
    assert digests(folder) == shas and not (tmp_path / "manifests" / "takedown.parquet").exists()

    # wit shards refuses the list before any work.
    assert main(["shards", "--workdir", str(tmp_path / "none"), "--takedown", str(listing)]) == 2
    assert "line 3" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_takedown_without_shards_or_list_says_what_to_do(tmp_path, capsys):
    (tmp_path / "list.txt").write_text("http://images.test/0/1.jpg\n")
    assert main(["takedown", "--workdir", str(tmp_path), str(tmp_path / "list.txt")]) == 2
    assert "run `wit shards` first" in capsys.readouterr().err
    assert main(["takedown", "--workdir", str(tmp_path)]) == 2
    assert "wit takedown FILE" in capsys.readouterr().err
    assert main(["takedown", "--workdir", str(tmp_path), str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt' cannot be read" in capsys.readouterr().err


def test_a_removal_cut_short_is_finished_by_the_rerun(tmp_path, monkeypatch):
    from wit_builder.shards import removal

    folder = build_shards(tmp_path)
    victim = next(iter(samples(folder).values()))
    (tmp_path / "list.txt").write_text(victim["url"] + "\n")

    def killed(*args):
        raise KeyboardInterrupt  # after the rewrites, before the manifests

    monkeypatch.setattr(removal, "update_manifests", killed)
    assert main(["takedown", "--workdir", str(tmp_path), str(tmp_path / "list.txt")]) == 130
    assert victim["uid"] not in samples(folder)
    monkeypatch.undo()

    assert main(["takedown", "--workdir", str(tmp_path), str(tmp_path / "list.txt")]) == 0
    manifest = pq.read_table(tmp_path / "manifests" / "shards.parquet").to_pylist()
    now = digests(folder)
    assert all(row["sha256"] == now[row["shard"]] for row in manifest)
    assert json.loads((folder / "sizes.json").read_text())[victim["shard"]] == \
        sum(1 for s in samples(folder).values() if s["shard"] == victim["shard"])
    dataset = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert dataset["per_removal_reason"] == {"takedown": 1}
    assert dataset["totals"]["samples"] == len(samples(folder))


def test_the_shards_index_is_kept_and_read_again_only_where_a_shard_changed(tmp_path,
                                                                           monkeypatch):
    from wit_builder.shards import removal

    folder = build_shards(tmp_path)
    by_shard = {}
    for sample in samples(folder).values():
        by_shard.setdefault(sample["shard"], sample)
    first, second, third = sorted(by_shard)[:3]
    (tmp_path / "one.txt").write_text(by_shard[first]["url"] + "\n")
    assert main(["takedown", "--workdir", str(tmp_path), "--workers", "1",
                 str(tmp_path / "one.txt")]) == 0
    assert sorted(path.name for path in (folder / ".index").iterdir()) == \
        sorted(f"{tar.name}.parquet" for tar in folder.glob("*.tar"))

    read = []
    original = removal.read_samples
    monkeypatch.setattr(removal, "read_samples", lambda stream, problems, source: (
        read.append(Path(source).name), original(stream, problems, source))[1])
    (tmp_path / "two.txt").write_text(by_shard[second]["url"] + "\n")
    assert main(["takedown", "--workdir", str(tmp_path), "--workers", "1",
                 str(tmp_path / "two.txt")]) == 0
    assert read == [second]   # the rewrite alone read a tar; the index came from .index/

    # A shard replaced behind our back is read again, and what it holds now is what counts.
    read.clear()
    victim = next(s for s in samples(folder).values() if s["shard"] == first)
    (folder / third).write_bytes((folder / first).read_bytes())
    (tmp_path / "three.txt").write_text(victim["url"] + "\n")
    assert main(["takedown", "--workdir", str(tmp_path), "--workers", "1",
                 str(tmp_path / "three.txt")]) == 0
    assert sorted(read) == sorted([third, first, third])   # index of third, then both rewrites
    assert victim["uid"] not in samples(folder)
