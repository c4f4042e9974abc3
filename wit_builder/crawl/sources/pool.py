"""URL–caption pools (LAION, DataComp, CC12M, ...): parquet, csv, tsv or jsonl, optionally gzipped.

Files are streamed in record batches with only the two needed columns read, so a pool far larger
than memory never spikes RAM (a known pain of img2dataset on large parquet inputs). A parquet file
is split into partitions of row groups, so one large file still spreads over workers.

A pool at an http(s) URL is read through the store's guarded HTTP filesystem: the crawl's
`AddressPolicy` (`policy=`; default public addresses only) checks every hop.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.crawl.sources.paths import expand_input_paths
from wit_builder.net.guard import AddressPolicy

FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
           ".json": "jsonl", ".ndjson": "jsonl"}
ROW_GROUPS_PER_PARTITION = 4
BATCH_ROWS = 8192


@dataclass(frozen=True)
class PoolPartition:
    path: str
    format: str
    row_groups: tuple[int, ...] = ()  # parquet only; empty means the whole file


@dataclass(frozen=True)
class PoolColumns:
    url: str = "url"
    text: str = "caption"


def pool_format(path: str) -> str:
    """The pool format from the file name (`.gz` allowed), or a WitError naming the file."""
    name = path.lower().removesuffix(".gz")
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise WitError(f"pool: '{path}' has an unknown extension; expected one of "
                   f"{', '.join(sorted(FORMATS))} (optionally .gz)")


def expand_pool_paths(spec: str, policy: AddressPolicy | None = None) -> list[str]:
    """A file, a directory (its pool files) or a glob, as a sorted list of files (local paths or
    fsspec URLs: s3://bucket/pool/, https://host/pool.parquet)."""
    if store.is_url(spec):
        return store.expand(spec, is_pool_file, "pool", policy)
    return expand_input_paths(spec, is_pool_file, "pool")


def is_pool_file(name: str) -> bool:
    try:
        pool_format(name)
        return True
    except WitError:
        return False


def pool_partitions(spec: str, policy: AddressPolicy | None = None) -> list[PoolPartition]:
    """Units of work for the engine: row-group ranges of parquet files, whole other files."""
    partitions = []
    for path in expand_pool_paths(spec, policy):
        kind = pool_format(path)
        if kind == "parquet" and not path.endswith(".gz"):
            groups = open_parquet(path, policy).num_row_groups
            for start in range(0, max(groups, 1), ROW_GROUPS_PER_PARTITION):
                chunk = tuple(range(start, min(start + ROW_GROUPS_PER_PARTITION, groups)))
                partitions.append(PoolPartition(path, kind, chunk))
        else:
            partitions.append(PoolPartition(path, kind))
    return partitions


def open_parquet(path: str, policy: AddressPolicy | None = None) -> pq.ParquetFile:
    try:
        return store.parquet_file(path, policy)
    except (pa.ArrowInvalid, OSError) as error:
        raise WitError(f"pool: '{path}' is not a readable parquet file ({error})") from None


def require_columns(path: str, present: list[str], columns: PoolColumns) -> None:
    missing = [name for name in (columns.url, columns.text) if name not in present]
    if missing:
        raise WitError(f"pool: '{path}' has no column {', '.join(repr(m) for m in missing)}; "
                       f"its columns are {', '.join(present)} (set --url-col / --text-col)")


def read_parquet(partition: PoolPartition, columns: PoolColumns,
                 policy: AddressPolicy | None = None) -> Iterator[pa.RecordBatch]:
    if partition.path.endswith(".gz"):
        yield from read_gzipped_parquet(partition.path, columns, policy)
        return
    handle = open_parquet(partition.path, policy)
    require_columns(partition.path, handle.schema_arrow.names, columns)
    yield from handle.iter_batches(batch_size=BATCH_ROWS, row_groups=list(partition.row_groups),
                                   columns=[columns.url, columns.text])


def read_gzipped_parquet(path: str, columns: PoolColumns, policy: AddressPolicy | None = None
                         ) -> Iterator[pa.RecordBatch]:
    """A gzipped parquet file, read by batches: parquet needs random access, so the gzip layer is
    streamed to a local scratch file first (memory stays flat, whatever the file's size)."""
    with store.scratch_file(path) as local:
        try:
            with store.open(path, "rb", policy) as raw, gzip.GzipFile(fileobj=raw) as unzipped, \
                    open(local, "wb") as out:
                shutil.copyfileobj(unzipped, out, 1 << 20)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise WitError(f"pool: '{path}' is not a readable gzip file ({error})") from None
        handle = open_parquet(str(local))
        require_columns(path, handle.schema_arrow.names, columns)
        yield from handle.iter_batches(batch_size=BATCH_ROWS, columns=[columns.url, columns.text])


def read_delimited(partition: PoolPartition, columns: PoolColumns,
                   policy: AddressPolicy | None = None) -> Iterator[pa.RecordBatch]:
    delimiter = "\t" if partition.format == "tsv" else ","
    compression = "gzip" if partition.path.endswith(".gz") else None
    stream = pa.input_stream(store.open(partition.path, "rb", policy), compression=compression)
    try:
        reader = pacsv.open_csv(
            stream, parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={columns.url: pa.string(),
                                                               columns.text: pa.string()}))
    except pa.ArrowInvalid as error:
        raise WitError(f"pool: '{partition.path}' is not readable {partition.format} ({error})") \
            from None
    require_columns(partition.path, reader.schema.names, columns)
    for batch in reader:
        yield batch.select([columns.url, columns.text])


def read_jsonl(partition: PoolPartition, columns: PoolColumns,
               policy: AddressPolicy | None = None) -> Iterator[pa.RecordBatch]:
    rows: list[dict] = []
    checked = False
    with store.open(partition.path, "rb", policy) as raw, \
            io.TextIOWrapper(gzip.GzipFile(fileobj=raw) if partition.path.endswith(".gz")
                             else raw, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise WitError(f"pool: '{partition.path}' line {number} is not JSON") from None
            if not checked:
                require_columns(partition.path, list(record), columns)
                checked = True
            rows.append({"url": record.get(columns.url), "text": record.get(columns.text)})
            if len(rows) == BATCH_ROWS:
                yield pa.RecordBatch.from_pylist(rows)
                rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows)


READERS = {"parquet": read_parquet, "csv": read_delimited, "tsv": read_delimited,
           "jsonl": read_jsonl}


def read_pool(partition: PoolPartition, columns: PoolColumns = PoolColumns(),
              policy: AddressPolicy | None = None) -> Iterator[tuple[str, str]]:
    """(url, caption) pairs of one partition, empty strings where a value is missing (the crawl's
    filters drop and count those); `policy` guards a pool at an http(s) URL."""
    for batch in READERS[partition.format](partition, columns, policy):
        urls, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for url, text in zip(urls, texts):
            yield ("" if url is None else str(url)), ("" if text is None else str(text))
