"""Bucket files: byte records that writers scatter to buckets on disk, for a later step to read
back bucket by bucket (the queries' bigram reduce, the shards' shuffle).

A bucket is a folder of `folder`, named by the caller; each writer appends to one file of it,
`folder/BUCKET/WRITER{suffix}`, opened on the writer's first record for that bucket (so a bucket a
writer never reached has no file of it). Records go straight to the open files: a writer holds
none in memory. The files appear only when the writer finishes without error, each atomically
through `core.store` (a rename beside it, or one upload to an object store); a rerun's writer
of the same name replaces them. The record format is the caller's: this module moves bytes.

Why not `spill.write_partitioned`'s one file per writer: its partitions lie back to back, so a
writer streaming records would have to hold them, or copy every byte once more from per-bucket
temporary files, and a reader of one bucket would still open every writer's file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO

from wit_builder.core import store


class BucketWriter:
    """One writer's files, one per bucket it appends to. Use as a context manager (the files are
    published when the block ends without error, discarded when it raises) or call `finish` /
    `abort`."""

    def __init__(self, folder: store.Location, writer: str, suffix: str = ".bin") -> None:
        self.folder, self.writer, self.suffix = folder, writer, suffix
        self.handles: dict[str, IO[bytes]] = {}
        self.stack = contextlib.ExitStack()

    def path(self, bucket: str) -> store.Location:
        return bucket_file(self.folder, bucket, self.writer, self.suffix)

    def append(self, bucket: str, data: bytes | memoryview) -> None:
        """Append `data` to this writer's file of `bucket` (created on first use)."""
        handle = self.handles.get(bucket)
        if handle is None:
            temporary = self.stack.enter_context(store.atomic_path(self.path(bucket)))
            handle = self.handles[bucket] = self.stack.enter_context(open(temporary, "wb"))
        handle.write(data)

    @property
    def buckets(self) -> list[str]:
        """The buckets written to so far, in the order of their first record."""
        return list(self.handles)

    def finish(self) -> None:
        """Publish every file written (each one atomically)."""
        self.handles = {}
        self.stack.close()

    def abort(self) -> None:
        """Discard every file written: nothing appears."""
        self.handles = {}
        with contextlib.suppress(_Aborted):
            self.stack.__exit__(_Aborted, _Aborted(), None)

    def __enter__(self) -> BucketWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.finish()
        else:
            self.abort()


class _Aborted(Exception):
    """Thrown into the open files' atomic writes so that they publish nothing."""


def bucket_file(folder: store.Location, bucket: str, writer: str,
                suffix: str = ".bin") -> store.Location:
    return store.join(folder, bucket, f"{writer}{suffix}")


def writer_order(name: str) -> tuple[int, str]:
    """Writer names in a stable order: numbers of any width (zero-padded or not) numerically."""
    return len(name), name


def list_buckets(folder: store.Location) -> list[str]:
    """The buckets that any writer has published a file of, sorted by name."""
    return sorted({PurePosixPath(str(path)).parent.name
                   for path in store.glob(store.join(folder, "*", "*"))})


def bucket_files(folder: store.Location, bucket: str, suffix: str = ".bin"
                 ) -> list[store.Location]:
    """Every writer's published file of `bucket`, in writer order (see `writer_order`)."""
    names = [name for name in store.list_files(store.join(folder, bucket))
             if name.endswith(suffix)]
    return [store.join(folder, bucket, name)
            for name in sorted(names, key=lambda name: writer_order(name[:len(name) - len(suffix)]))]


def read_bucket(folder: store.Location, bucket: str, suffix: str = ".bin",
                remove: bool = False) -> Iterator[tuple[str, bytes]]:
    """(writer, its bytes) of every writer's file of `bucket`, in writer order; each file removed
    once read when `remove`."""
    for path in bucket_files(folder, bucket, suffix):
        data = store.read_bytes(path)
        if remove:
            store.remove(path)
        yield store.name(path)[:-len(suffix)] if suffix else store.name(path), data
