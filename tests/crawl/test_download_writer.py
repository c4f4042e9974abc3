"""The raw shard writer writes tar headers itself: its archives must read back with webdataset and
tarfile exactly like webdataset's TarWriter output (same members, order, metadata), and a shard
must never be visible under its final name before it is complete."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter

import pytest
import webdataset as wds

from wit_builder.core import tarsamples
from wit_builder.crawl.download import writer
from wit_builder.crawl.download.images import StoredImage


def samples(count: int) -> list[dict]:
    return [writer.sample_members(writer.shard_key(3, i), bytes([i]) * (700 + 300 * i),
                                  f"caption {i} é", {"uid": f"u{i}", "width": i})
            for i in range(count)]


def test_shard_reads_back_with_webdataset_and_tarfile_in_member_order(tmp_path):
    path = writer.tar_path(tmp_path, 3)
    with writer.shard_tar(path) as tar:
        for sample in samples(4):
            tar.write(sample)
    read = list(wds.WebDataset(str(path), shardshuffle=False))
    assert [s["__key__"] for s in read] == [writer.shard_key(3, i) for i in range(4)]
    for got, sample in zip(read, samples(4)):
        assert (got["jpg"], got["txt"], got["json"]) == (sample["jpg"], sample["txt"],
                                                          sample["json"])
        assert json.loads(got["json"])["uid"] == json.loads(sample["json"])["uid"]
    with tarfile.open(path) as archive:
        members = archive.getmembers()
    assert [m.name for m in members[:3]] == ["0000300000.jpg", "0000300000.json",
                                             "0000300000.txt"]
    assert {(m.uname, m.gname, m.mode, m.mtime, m.type) for m in members} == {
        ("wit", "wit", 0o444, 0, tarfile.REGTYPE)}
    assert path.stat().st_size % writer.RECORD == 0


def test_headers_are_byte_identical_to_tarfiles_ustar_headers():
    for name, size in [("0000000001.jpg", 12345), ("é.txt", 0), ("k" * 100, 8 ** 11 - 1)]:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "wit", "wit"
        assert tarsamples.ustar_header(name, size) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8",
                                                             "strict")


def test_members_match_what_webdatasets_tarwriter_writes():
    ours, theirs = io.BytesIO(), io.BytesIO()
    tar = writer.SampleTarWriter(ours)
    with wds.TarWriter(theirs, encoder=False, mtime=0, user="wit", group="wit",
                       mode=0o444) as reference:
        for sample in samples(3):
            tar.write(sample)
            reference.write(sample)
    tar.close()
    ours.seek(0)
    theirs.seek(0)
    with tarfile.open(fileobj=ours) as a, tarfile.open(fileobj=theirs) as b:
        assert [(m.name, m.size, m.mode, m.uname) for m in a.getmembers()] == \
            [(m.name, m.size, m.mode, m.uname) for m in b.getmembers()]
        assert [a.extractfile(m).read() for m in a.getmembers()] == \
            [b.extractfile(m).read() for m in b.getmembers()]


def test_shard_appears_only_when_complete_and_a_failure_leaves_nothing(tmp_path):
    path = writer.tar_path(tmp_path, 0)
    path.parent.mkdir(parents=True)
    stale = path.parent / f".{path.name}.killed.tmp"
    stale.write_bytes(b"half a tar from a killed run")
    with writer.shard_tar(path) as tar:
        tar.write(samples(1)[0])
        assert not path.exists() and not stale.exists()
        assert len(list(path.parent.glob(f".{path.name}.*.tmp"))) == 1
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    failed = writer.tar_path(tmp_path, 1)
    with pytest.raises(RuntimeError), writer.shard_tar(failed) as tar:
        tar.write(samples(1)[0])
        raise RuntimeError("worker died")
    assert not failed.exists() and not list(path.parent.glob("*.tmp"))


def test_long_names_fall_back_to_gnu_records_and_non_bytes_values_are_refused():
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        tarsamples.ustar_header("k" * 101, 1)
    stream = io.BytesIO()
    tar = writer.SampleTarWriter(stream)
    tar.write({"__key__": "k" * 120, "txt": b"long"})
    tar.write({"__key__": "short", "txt": b"ustar"})
    tar.close()
    stream.seek(0)
    problems = Counter()
    assert list(tarsamples.read_samples(stream, problems)) == [
        ("k" * 120, {"txt": b"long"}), ("short", {"txt": b"ustar"})]
    assert not problems
    with pytest.raises(TypeError, match="'txt' is str"):
        tarsamples.sample_block("k", {"__key__": "k", "txt": "not bytes"})


ROW = {"uid": "u7", "url": "http://example.com/7.jpg", "text": "a caption é",
       "page_url": "http://example.com/", "query_ids": [3, 11]}


def test_raw_sample_of_a_stored_image_is_its_members_and_manifest_row():
    image = StoredImage(b"\xff\xd8jpeg", 64, 48, 640, 480)
    sample = writer.raw_sample(ROW, 2, 7, writer.Outcome("ok", 200, None, 1234, "ab" * 32, 0.5,
                                                         image))
    assert sample.manifest_row == {
        "uid": "u7", "url": ROW["url"], "status": "ok", "http_status": 200, "error": None,
        "bytes": 1234, "sha256": "ab" * 32, "shard": 2, "key": "0000200007", "seconds": 0.5}
    stream = io.BytesIO()
    tar = writer.SampleTarWriter(stream)
    tar.write_members(sample.members)
    tar.close()
    stream.seek(0)
    (key, members), = tarsamples.read_samples(stream, Counter())
    assert key == "0000200007"
    assert members["jpg"] == image.jpeg and members["txt"] == ROW["text"].encode()
    assert json.loads(members["json"]) == {
        "uid": "u7", "url": ROW["url"], "page_url": ROW["page_url"], "query_ids": [3, 11],
        "width": 64, "height": 48, "original_width": 640, "original_height": 480,
        "sha256": "ab" * 32}


def test_raw_sample_of_a_failure_is_a_manifest_row_only():
    sample = writer.raw_sample(ROW, 0, 3, writer.Outcome("http_error", 404, "HTTP 404", 12))
    assert sample.members is None
    assert sample.manifest_row == {
        "uid": "u7", "url": ROW["url"], "status": "http_error", "http_status": 404,
        "error": "HTTP 404", "bytes": 12, "sha256": None, "shard": 0, "key": None,
        "seconds": None}
    with pytest.raises(ValueError, match="without its image"):
        writer.raw_sample(ROW, 0, 3, writer.Outcome("ok", 200))
