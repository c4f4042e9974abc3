"""Tables spilled to disk in partitions, so that a step holds one partition at a time: the
sizing rule (rows a memory budget holds), one Arrow file per writer with every partition's rows
back to back, and the sorted-run helpers the steps share (shards' dedup, the crawl's URL dedupe,
the dataset summary)."""

from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa

from wit_builder.core import store

BYTES_PER_ROW = 640     # what one row costs while its partition is sorted and grouped (measured)
MAX_PARTITIONS = 4096   # files per folder stay manageable; past it partitions exceed the budget


def order_keys(raw_shard: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Where a row stands in the input order: its raw shard in the high 32 bits, its position
    in that shard in the low ones."""
    return (raw_shard.astype(np.int64) << 32) | position.astype(np.int64)


def rows_within(memory_budget_mb: float) -> int:
    """Rows of a partition that a step can hold within the budget."""
    return max(1, int(memory_budget_mb * 2**20 / BYTES_PER_ROW))


def clamp_partitions(rows: float, partition_rows: int) -> int:
    return max(1, min(MAX_PARTITIONS, math.ceil(rows / partition_rows)))


# ---- files of rows --------------------------------------------------------------------------

def write_partitioned(table: pa.Table, keys: np.ndarray, folder: str, partitions: int,
                      name: str) -> None:
    """Write `table` as `folder/name.arrow`: one Arrow IPC stream per partition (the rows whose
    key is that partition) back to back, then their byte offsets (int64, partitions + 1). A
    writer makes one file, not one per partition, and a reader seeks to its own part. Scratch
    files, for a folder removed after the stage."""
    if not table.num_rows:
        return
    ordering = np.argsort(keys, kind="stable")
    batch = table.take(pa.array(ordering)).combine_chunks().to_batches()[0]
    bounds = np.searchsorted(keys[ordering], np.arange(partitions + 1))
    offsets = [0]
    with store.atomic_path(store.join(folder, f"{name}.arrow")) as temporary, \
            open(temporary, "wb") as out:
        for start, stop in zip(bounds[:-1], bounds[1:]):
            if stop > start:
                buffer = pa.BufferOutputStream()
                with pa.ipc.new_stream(buffer, table.schema) as writer:
                    writer.write_batch(batch.slice(start, stop - start))
                out.write(buffer.getvalue())
            offsets.append(out.tell())
        out.write(np.array(offsets, dtype=np.int64).tobytes())


def read_partitioned(folder: str, number: int, partitions: int, schema: pa.Schema) -> pa.Table:
    """The rows of partition `number` from every file of `folder` written so far, in name order."""
    # Plain names, not pathlib: pathlib interns every path part, a table that grows with files.
    names = store.list_files(folder)
    from_end = 8 * (number - partitions - 1)  # where its offsets are
    tables = [schema.empty_table()]
    for name in names:
        with store.open(store.join(folder, name), "rb") as stream:
            stream.seek(from_end, os.SEEK_END)
            start, stop = np.frombuffer(stream.read(16), np.int64)
            if stop > start:
                stream.seek(int(start))
                tables.append(pa.ipc.open_stream(stream.read(int(stop - start))).read_all())
    return pa.concat_tables(tables)


def column(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy()


def spill_groups(pieces: list[tuple[str, int]], partition_rows: int) -> list[tuple[str, ...]]:
    """Consecutive index pieces in groups of about a partition's rows: one spill file each."""
    groups, group, filled = [], [], 0
    for path, rows in pieces:
        if group and filled + rows > partition_rows:
            groups.append(tuple(group))
            group, filled = [], 0
        group.append(path)
        filled += rows
    return groups + [tuple(group)] if group else groups


def first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """True where a row starts a run of equal keys (rows sorted by those keys)."""
    first = np.zeros(len(keys[0]), dtype=bool)
    first[:1] = True
    for key in keys:
        first[1:] |= key[1:] != key[:-1]
    return first


def run_leaders(first: np.ndarray) -> np.ndarray:
    """For every row, the index of the first row of its run."""
    return np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
