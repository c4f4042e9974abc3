"""The bucket files of core/buckets.py: writers scatter byte records to buckets, a reader reads
every writer's file of one bucket back in writer order, on local folders and on a store URL."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from wit_builder.core import buckets, store


@pytest.fixture(params=["local", "memory"])
def folder(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "buckets")
        return
    root = f"memory://wit-test-{uuid.uuid4().hex}"
    yield f"{root}/buckets"
    memory = fsspec.filesystem("memory")
    if memory.exists(root.removeprefix("memory://")):
        memory.rm(root.removeprefix("memory://"), recursive=True)


def write(folder: str, writer: str, records: dict[str, list[bytes]]) -> None:
    with buckets.BucketWriter(folder, writer) as out:
        for bucket, pieces in records.items():
            for piece in pieces:
                out.append(bucket, piece)


def test_records_read_back_per_bucket_in_writer_order(folder):
    write(folder, "00010", {"a": [b"x1", b"x2"], "b": [b"y"]})
    write(folder, "00002", {"a": [b"z"]})
    write(folder, "100000", {"a": [b"w"]})  # a wider number still comes after
    assert buckets.list_buckets(folder) == ["a", "b"]
    assert list(buckets.read_bucket(folder, "a")) == [("00002", b"z"), ("00010", b"x1x2"),
                                                     ("100000", b"w")]
    assert list(buckets.read_bucket(folder, "b")) == [("00010", b"y")]
    assert list(buckets.read_bucket(folder, "missing")) == []


def test_nothing_appears_until_the_writer_finishes_and_nothing_after_an_error(folder):
    writer = buckets.BucketWriter(folder, "00001")
    writer.append("a", b"half")
    assert buckets.list_buckets(folder) == []
    writer.abort()
    assert buckets.list_buckets(folder) == []
    with pytest.raises(RuntimeError):
        with buckets.BucketWriter(folder, "00001") as out:
            out.append("a", b"half")
            raise RuntimeError("crash")
    assert buckets.list_buckets(folder) == []
    assert not store.glob(store.join(folder, "*", "*"))


def test_a_rerun_writer_replaces_its_files_and_reading_can_remove_them(folder):
    write(folder, "00001", {"a": [b"first run, longer"]})
    write(folder, "00001", {"a": [b"rerun"]})
    assert list(buckets.read_bucket(folder, "a")) == [("00001", b"rerun")]
    assert list(buckets.read_bucket(folder, "a", remove=True)) == [("00001", b"rerun")]
    assert list(buckets.read_bucket(folder, "a")) == []


def test_suffix_names_the_files(folder):
    with buckets.BucketWriter(folder, "00003", suffix=".tar") as out:
        out.append("train-00000", b"t")
        assert out.buckets == ["train-00000"]
    assert buckets.bucket_files(folder, "train-00000", ".tar") == [
        store.join(folder, "train-00000", "00003.tar")]
    assert list(buckets.read_bucket(folder, "train-00000", ".tar")) == [("00003", b"t")]
