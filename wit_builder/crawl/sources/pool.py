"""URL–caption pools (LAION, DataComp, CC12M, ...): parquet, csv, tsv or jsonl, optionally gzipped.

Files are streamed in record batches with only the two needed columns read, so a pool far larger
than memory never spikes RAM (a known pain of img2dataset on large parquet inputs). A parquet file
is split into partitions of row groups, and a row group larger than `PARTITION_ROWS` into row
ranges, so one large file still spreads over workers whatever its writer chose; a large CSV, TSV
or JSON-lines file is read by several partitions, each keeping every n-th batch (a share); small
files share a partition up to `PARTITION_ROWS` rows, so a thousand of them are not a thousand
partitions.

One row that cannot be read (a CSV line with the wrong number of fields, a JSON line that is not
an object) is counted (`row_error`) and logged, and the rest of the file is read.

A pool at an http(s) URL is read through the store's guarded HTTP filesystem: the crawl's
`AddressPolicy` (`policy=`; default public addresses only) checks every hop.

A pool's additional columns (`--save-additional-columns`: licence, similarity, NSFW tags) are
read beside the pairs, batch by batch (`read_pool`'s `additional`), in the Arrow types of the
pool's first file (`additional_schema`, which checks every file has them before any work): a
parquet column's own type, a CSV column's as pyarrow infers it from the first block (as
img2dataset reads it), a JSON-lines key's from the values of the first lines. A value another
file holds that cannot take that type is null, and logged.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import os
import shutil
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.crawl.sources.paths import expand_input_paths
from wit_builder.net.guard import AddressPolicy, BlockedAddressError

FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
           ".json": "jsonl", ".ndjson": "jsonl"}
ROW_GROUPS_PER_PARTITION = 4
PARTITION_ROWS = 100_000  # at most this many rows a partition (but a small row group is whole)
BATCH_ROWS = 8192
CSV_BLOCK_BYTES = 1 << 20  # fixed: the shares of a file agree on its batches
ROW_BYTES = 200  # a text pool's bytes per row, to size its partitions (LAION's CSV: ~150-250)
GZIP_RATIO = 4  # bytes of text per byte of a gzipped one

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolPartition:
    path: str
    format: str
    row_groups: tuple[int, ...] = ()  # parquet only; empty means the whole file
    rows: tuple[int, int] | None = None  # parquet: rows [start, stop) of those row groups only
    share: tuple[int, int] | None = None  # text: (k, n): batches k, k + n, k + 2n... of the file
    more: tuple[str, ...] = ()  # small files of the same format read whole after this one


@dataclass(frozen=True)
class PoolColumns:
    url: str = "url"
    text: str = "caption"
    additional: pa.Schema | None = None  # the pool columns kept beside the pairs, typed

    def names(self) -> list[str]:
        """The columns read, each once."""
        extra = self.additional.names if self.additional else []
        return list(dict.fromkeys([self.url, self.text, *extra]))


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


def pool_partitions(spec: str, policy: AddressPolicy | None = None,
                    rows: int | None = None) -> list[PoolPartition]:
    """Units of work for the engine of about `rows` rows each (default PARTITION_ROWS): parquet
    files as runs of up to ROW_GROUPS_PER_PARTITION row groups, a larger row group as row
    ranges; a large text file as shares of its batches; consecutive small files of one format
    together. A file whose size is not known cheaply (text on a store, gzipped parquet) is one
    partition."""
    rows = rows or PARTITION_ROWS
    partitions: list[PoolPartition] = []
    small: list[PoolPartition] = []  # whole small files of one format, waiting to be grouped
    small_rows = 0

    def group() -> None:
        if small:
            partitions.append(replace(small[0], more=tuple(part.path for part in small[1:])))
            small.clear()

    for path in expand_pool_paths(spec, policy):
        for part, estimate in file_partitions(path, policy, rows):
            if estimate is None or small and (small[0].format != part.format
                                              or small_rows + estimate > rows):
                group()
                small_rows = 0
            if estimate is None:
                partitions.append(part)
            else:
                small.append(part)
                small_rows += estimate
    group()
    return partitions


def file_partitions(path: str, policy: AddressPolicy | None, rows: int
                    ) -> list[tuple[PoolPartition, int | None]]:
    """One file's partitions, each with its rows when it is the whole file and small enough to
    share a partition with the next files (else None)."""
    kind = pool_format(path)
    if kind == "parquet" and not path.endswith(".gz"):
        metadata = open_parquet(path, policy).metadata
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        parts = row_group_partitions(sizes, rows)
        if len(parts) == 1:
            return [(PoolPartition(path, kind, parts[0][0]), sum(sizes))]
        return [(PoolPartition(path, kind, groups, span), None) for groups, span in parts]
    if kind == "parquet" or store.is_url(path):
        return [(PoolPartition(path, kind), None)]
    estimate = os.path.getsize(path) * (GZIP_RATIO if path.endswith(".gz") else 1) // ROW_BYTES
    shares = math.ceil(estimate / rows)
    if shares <= 1:
        return [(PoolPartition(path, kind), estimate)]
    return [(PoolPartition(path, kind, share=(k, shares)), None) for k in range(shares)]


def row_group_partitions(sizes: list[int], rows: int
                         ) -> list[tuple[tuple[int, ...], tuple[int, int] | None]]:
    """(row groups, row range or None) of each partition of a parquet file whose row groups hold
    `sizes` rows: consecutive small groups together, a group of more than `rows` rows cut into
    ranges. A file without row groups is one (empty) partition."""
    parts: list[tuple[tuple[int, ...], tuple[int, int] | None]] = []
    run: list[int] = []
    run_rows = 0
    for group, size in enumerate(sizes):
        if run and (len(run) == ROW_GROUPS_PER_PARTITION or run_rows + size > rows):
            parts.append((tuple(run), None))
            run, run_rows = [], 0
        if size > rows:
            parts += [((group,), (start, min(start + rows, size)))
                      for start in range(0, size, rows)]
            continue
        run.append(group)
        run_rows += size
    if run or not parts:
        parts.append((tuple(run), None))
    return parts


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
    extra = [name for name in (columns.additional or pa.schema([])).names if name not in present]
    if extra:
        raise WitError(f"pool: '{path}' has no column {extra[0]!r} (--save-additional-columns); "
                       f"its columns are {', '.join(present)}")


def read_parquet(partition: PoolPartition, columns: PoolColumns,
                 policy: AddressPolicy | None = None, dropped: Counter | None = None
                 ) -> Iterator[pa.RecordBatch]:
    if partition.path.endswith(".gz"):
        yield from readable(read_gzipped_parquet(partition.path, columns, policy),
                            f"'{partition.path}'", dropped)
        return
    handle = open_parquet(partition.path, policy)
    require_columns(partition.path, handle.schema_arrow.names, columns)
    # a file read whole (one grouped with others) names no row group
    groups = partition.row_groups or range(handle.num_row_groups)
    for group in groups:  # one by one: a damaged row group costs only its own rows
        batches = handle.iter_batches(batch_size=BATCH_ROWS, row_groups=[group],
                                      columns=columns.names())
        if partition.rows is not None:
            batches = row_range(batches, *partition.rows)
        yield from readable(batches, f"'{partition.path}' row group {group}", dropped)


def row_range(batches: Iterator[pa.RecordBatch], start: int, stop: int
              ) -> Iterator[pa.RecordBatch]:
    """Rows [start, stop) of `batches` (the rows before `start` are decoded, not used)."""
    position = 0
    for batch in batches:
        end = position + batch.num_rows
        if end > start:
            first = max(start, position)
            yield batch.slice(first - position, min(stop, end) - first)
        position = end
        if position >= stop:
            return


# What reading a pool file raises where its bytes are damaged (a corrupt page, a gzip stream cut
# short, a CSV block that cannot be split): counted, the rest of that file (or row group) skipped.
READ_ERRORS = (pa.ArrowException, OSError, EOFError, zlib.error)


def readable(batches: Iterator[pa.RecordBatch], where: str, dropped: Counter | None
             ) -> Iterator[pa.RecordBatch]:
    """`batches` up to the first damaged one: that one counted in `dropped` (`pool_read_error`)
    and logged with `where` and how many rows came before it (neither when `dropped` is None)."""
    rows = 0
    try:
        for batch in batches:
            rows += batch.num_rows
            yield batch
    except BlockedAddressError:
        raise  # the address guard's refusal is never damage
    except READ_ERRORS as error:
        if dropped is None:
            return
        dropped["pool_read_error"] += 1
        log.warning("pool: pool_read_error: %s cannot be read after %d rows (%s: %s); the rest "
                    "of it skipped", where, rows, type(error).__name__,
                    " ".join(str(error).split())[:200])


def read_gzipped_parquet(path: str, columns: PoolColumns, policy: AddressPolicy | None = None
                         ) -> Iterator[pa.RecordBatch]:
    """A gzipped parquet file, read by batches (see `gunzipped_parquet`)."""
    with gunzipped_parquet(path, policy) as handle:
        require_columns(path, handle.schema_arrow.names, columns)
        yield from handle.iter_batches(batch_size=BATCH_ROWS, columns=columns.names())


@contextmanager
def gunzipped_parquet(path: str, policy: AddressPolicy | None) -> Iterator[pq.ParquetFile]:
    """A gzipped parquet file opened: parquet needs random access, so the gzip layer is
    streamed to a local scratch file first (memory stays flat, whatever the file's size)."""
    with store.scratch_file(path) as local:
        try:
            with store.open(path, "rb", policy) as raw, gzip.GzipFile(fileobj=raw) as unzipped, \
                    open(local, "wb") as out:
                shutil.copyfileobj(unzipped, out, 1 << 20)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise WitError(f"pool: '{path}' is not a readable gzip file ({error})") from None
        yield open_parquet(str(local))


def open_text(path: str, policy: AddressPolicy | None) -> BinaryIO:
    """The bytes of a text pool file; gunzipped when its name ends in .gz, up to the last whole
    line before any damage (GunzippedLines)."""
    raw = store.open(path, "rb", policy)
    return GunzippedLines(raw) if path.endswith(".gz") else raw


def raise_damage(text: BinaryIO) -> None:
    """What stopped a gzipped text file early, once its whole lines are read."""
    if isinstance(text, GunzippedLines) and text.damage is not None:
        raise text.damage


class GunzippedLines(io.RawIOBase):
    """A gzip stream (members one after another) decoded as it is read, up to the last whole line
    before the first damage (the file cut short, corrupt bytes), then a clean end: every reader of
    the file (each share too) gets the same rows, and `damage` says what stopped it."""

    CHUNK = 1 << 16  # compressed bytes a read: at most this much before a damage is lost

    def __init__(self, stream: BinaryIO):
        self.stream, self.damage, self.ended = stream, None, False
        self.decoder, self.in_member = zlib.decompressobj(wbits=31), False
        self.ready, self.position, self.held = b"", 0, b""  # whole lines; a line's start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        while self.position == len(self.ready) and not self.ended:
            self.fill()
        data = self.ready[self.position:self.position + size]
        self.position += len(data)
        return data

    def fill(self) -> None:
        try:
            chunk = self.stream.read(self.CHUNK)
            data = self.gunzip(chunk)
            if not chunk and self.in_member:
                raise EOFError("the file ends inside a gzip member (cut short)")
        except READ_ERRORS as error:
            self.damage, self.ended = error, True  # the line it cut is dropped with it
            return
        if not chunk:  # the end: the last line even without its newline
            self.ready, self.position, self.held, self.ended = self.held, 0, b"", True
            return
        data = self.held + data
        cut = data.rfind(b"\n") + 1
        self.ready, self.position, self.held = data[:cut], 0, data[cut:]

    def gunzip(self, chunk: bytes) -> bytes:
        pieces = []
        while chunk:
            if not self.in_member and not chunk.strip(b"\0"):
                break  # zeros after a member: padding, as gzip allows
            pieces.append(self.decoder.decompress(chunk))
            self.in_member = not self.decoder.eof
            chunk = self.decoder.unused_data if self.decoder.eof else b""
            if self.decoder.eof:
                self.decoder = zlib.decompressobj(wbits=31)
        return b"".join(pieces)

    def close(self) -> None:
        self.stream.close()
        super().close()


LOGGED_ROW_ERRORS = 5  # per file; the others are only counted


class RowErrors:
    """The rows of one pool file that could not be read: counted as `row_error`, the first few
    logged with the file and why."""

    def __init__(self, path: str, dropped: Counter):
        self.path, self.dropped, self.count = path, dropped, 0
        self.counting = True  # False in a share whose rows another share counts

    def add(self, why: str) -> None:
        if not self.counting:
            return
        self.dropped["row_error"] += 1
        self.count += 1
        if self.count <= LOGGED_ROW_ERRORS:
            log.warning("pool: row_error in '%s': %s; row skipped%s", self.path, why[:200],
                        " (further ones only counted)" if self.count == LOGGED_ROW_ERRORS else "")

    def csv_row(self, row) -> str:
        """pyarrow's invalid_row_handler: the row is counted, then skipped."""
        self.add(f"{row.actual_columns} fields where the header has {row.expected_columns}: "
                 f"{row.text!r}")
        return "skip"


def read_delimited(partition: PoolPartition, columns: PoolColumns,
                   policy: AddressPolicy | None = None, dropped: Counter | None = None
                   ) -> Iterator[pa.RecordBatch]:
    delimiter = "\t" if partition.format == "tsv" else ","
    errors = RowErrors(partition.path, Counter() if dropped is None else dropped)
    errors.counting = not partition.share or not partition.share[0]  # every share parses every
    # row: the first one counts the bad ones
    with open_text(partition.path, policy) as text:
        yield from read_csv_batches(text, partition, columns, errors.csv_row, delimiter)
        raise_damage(text)


def read_csv_batches(text: BinaryIO, partition: PoolPartition, columns: PoolColumns,
                     invalid_row, delimiter: str) -> Iterator[pa.RecordBatch]:
    """The batches of a CSV stream that this partition's share keeps (all, without a share)."""
    share, shares = partition.share or (0, 1)
    # bytes: one caption in Latin-1 must not make the file unreadable (read_pool decodes them);
    # the additional columns as text, typed as the pool's first file types them (`conform`)
    types = {name: pa.string() for name in columns.names()} | {columns.url: pa.binary(),
                                                               columns.text: pa.binary()}
    reader = open_csv(text, partition.path, partition.format, delimiter, invalid_row, types)
    require_columns(partition.path, reader.schema.names, columns)
    index = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        if index % shares == share:
            yield batch.select(columns.names())
        index += 1


def open_csv(text: BinaryIO, path: str, kind: str, delimiter: str, invalid_row=None,
             types: dict[str, pa.DataType] | None = None) -> pacsv.CSVStreamingReader:
    try:
        # fixed blocks: every share sees the same batches; one thread: a share is one worker
        return pacsv.open_csv(
            pa.PythonFile(text, mode="r"),
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(column_types=types or {}))
    except pa.ArrowInvalid as error:
        raise WitError(f"pool: '{path}' is not readable {kind} ({error})") from None


def read_jsonl(partition: PoolPartition, columns: PoolColumns,
               policy: AddressPolicy | None = None, dropped: Counter | None = None
               ) -> Iterator[pa.RecordBatch]:
    rows: list[dict] = []
    extra = columns.additional.names if columns.additional else []
    checked = False
    errors = RowErrors(partition.path, Counter() if dropped is None else dropped)
    share, shares = partition.share or (0, 1)
    text = open_text(partition.path, policy)
    with (io.BufferedReader(text, 1 << 20) if isinstance(text, GunzippedLines)
          else text) as handle:
        for number, line in enumerate(handle, 1):
            if (number - 1) // BATCH_ROWS % shares != share or not line.strip():
                continue
            try:
                record = json.loads(decode_text(line))  # a line in Latin-1 read as pages are
            except (json.JSONDecodeError, RecursionError):
                errors.add(f"line {number} is not JSON")
                continue
            if not isinstance(record, dict):
                errors.add(f"line {number} is a JSON {type(record).__name__}, not an object")
                continue
            if not checked:  # (an additional key may be missing from a line: null there)
                require_columns(partition.path, list(record), replace(columns, additional=None))
                checked = True
            rows.append({"url": as_text(record.get(columns.url)),
                         "text": as_text(record.get(columns.text)),
                         **{name: record.get(name) for name in extra}})
            if len(rows) == BATCH_ROWS:
                yield jsonl_batch(rows, columns.additional, partition.path)
                rows = []
    if rows:
        yield jsonl_batch(rows, columns.additional, partition.path)
    raise_damage(text)
    if not checked and errors.count and share == 0:
        raise WitError(f"pool: '{partition.path}' holds no JSON object on any of its lines; "
                       "is it JSON lines?")


JSONL_BATCH = pa.schema([("url", pa.string()), ("text", pa.string())])


def jsonl_batch(rows: list[dict], additional: pa.Schema | None, path: str) -> pa.RecordBatch:
    """JSON lines' pairs (url, text), then their additional columns, typed."""
    batch = pa.RecordBatch.from_pylist(rows, schema=JSONL_BATCH)
    if not additional:
        return batch
    extra = [json_column([row[field.name] for row in rows], field.type, path, field.name)
             for field in additional]
    return pa.RecordBatch.from_arrays([*batch.columns, *extra],
                                      names=[*JSONL_BATCH.names, *additional.names])


def json_column(values: list, kind: pa.DataType, path: str, name: str) -> pa.Array:
    """JSON values as an Arrow column of `kind`: any value as its JSON text in a text column;
    in another, a value that cannot be `kind` is null (logged)."""
    if pa.types.is_string(kind):
        values = [as_text(value) for value in values]
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return cast_each(values, None, kind, path, name)


def as_text(value) -> str | None:
    """A JSON value as the text of a pair: strings as they are, numbers and the like as JSON
    writes them (a list or an object is no URL nor caption, but must not stop the file)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


READERS = {"csv": read_delimited, "tsv": read_delimited, "jsonl": read_jsonl}


def read_pool(partition: PoolPartition, columns: PoolColumns = PoolColumns(),
              policy: AddressPolicy | None = None, dropped: Counter | None = None,
              additional: list[pa.RecordBatch] | None = None) -> Iterator[tuple[str, str]]:
    """(url, caption) pairs of one partition, empty strings where a value is missing (the crawl's
    filters drop and count those); rows that cannot be read are counted in `dropped`
    (`row_error`); `policy` guards a pool at an http(s) URL. With `columns.additional`, the
    values of those columns are appended to `additional`, a batch (schema
    `columns.additional`) before its pairs: row i of their concatenation is pair i's."""
    whole = [PoolPartition(path, pool_format(path)) for path in partition.more]
    for part in (replace(partition, more=()), *whole):
        if part.format == "parquet":
            batches = read_parquet(part, columns, policy, dropped)
        else:
            # every share of a file reads it to its end: the first one counts its damage
            batches = readable(READERS[part.format](part, columns, policy, dropped),
                               f"'{part.path}'", dropped if not part.share or not part.share[0]
                               else None)
        for batch in batches:
            if additional is not None:
                additional.append(additional_batch(batch, columns.additional, part.path))
            for url, text in zip(column_texts(batch.column(0)), column_texts(batch.column(1))):
                yield url, text


def additional_batch(batch: pa.RecordBatch, schema: pa.Schema, path: str) -> pa.RecordBatch:
    """A pool batch's additional columns, in the types the crawl keeps them in."""
    return pa.RecordBatch.from_arrays(
        [conform(batch.column(field.name), field.type, path, field.name) for field in schema],
        schema=schema)


CSV_NULLS = pa.array(pacsv.ConvertOptions().null_values)  # what pyarrow reads as a missing number


def conform(column: pa.Array, kind: pa.DataType, path: str, name: str) -> pa.Array:
    """A pool column as `kind` (the type of the column in the pool's first file): a CSV cell read
    as text is parsed as pyarrow's CSV reader would ('' and 'NA' are null numbers); a value that
    cannot be `kind` is null (logged)."""
    if column.type == kind:
        return column
    if pa.types.is_string(column.type) and not pa.types.is_string(kind):
        column = pc.if_else(pc.is_in(column, value_set=CSV_NULLS),
                            pa.scalar(None, column.type), column)
    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return cast_each(column.to_pylist(), column.type, kind, path, name)


def cast_each(values: list, source: pa.DataType | None, kind: pa.DataType, path: str,
              name: str) -> pa.Array:
    """`values` as `kind` one by one, null where one cannot be (the count logged)."""
    pieces, failed = [], 0
    for value in values:
        try:
            pieces.append(pa.array([value], source).cast(kind))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pieces.append(pa.nulls(1, kind))
            failed += 1
    if failed:
        log.warning("pool: %d value(s) of column %r in '%s' are not %s (the type of the column "
                    "in the pool's first file): kept as null", failed, name, path, kind)
    return pa.concat_arrays(pieces) if pieces else pa.array([], kind)


def additional_schema(spec: str, columns: PoolColumns, names: list[str],
                      policy: AddressPolicy | None = None) -> pa.Schema:
    """The Arrow types the additional columns `names` keep: those of the pool's first file; a
    WitError naming the file and the column where a file lacks one of them, or the URL or text
    column (a gzipped parquet file past the first is checked when it is read)."""
    wanted = replace(columns, additional=pa.schema([(name, pa.null()) for name in names]))
    schema = None
    for path in expand_pool_paths(spec, policy):
        if schema is not None and pool_format(path) == "parquet" and path.endswith(".gz"):
            continue
        found = column_types(path, policy)
        require_columns(path, list(found), wanted)
        if schema is None:
            schema = pa.schema([(name, found[name]) for name in names])
    return schema if schema is not None else pa.schema([(name, pa.string()) for name in names])


def column_types(path: str, policy: AddressPolicy | None) -> dict[str, pa.DataType]:
    """A pool file's columns and their Arrow types (text where nothing says: a CSV column empty
    in the first block, a JSON key null in the first lines)."""
    kind = pool_format(path)
    if kind == "parquet":
        if path.endswith(".gz"):
            with gunzipped_parquet(path, policy) as handle:
                schema = handle.schema_arrow
        else:
            schema = open_parquet(path, policy).schema_arrow
        found = {field.name: field.type for field in schema}
    elif kind in ("csv", "tsv"):
        with open_text(path, policy) as text:
            schema = open_csv(text, path, kind, "\t" if kind == "tsv" else ",",
                              lambda row: "skip").schema
        found = {field.name: field.type for field in schema}
    else:
        found = json_types(path, policy)
    return {name: pa.string() if pa.types.is_null(kind) else kind
            for name, kind in found.items()}


def json_types(path: str, policy: AddressPolicy | None) -> dict[str, pa.DataType]:
    """The keys of a JSON-lines file's first BATCH_ROWS objects and the types of their values."""
    values: dict[str, list] = {}
    text = open_text(path, policy)
    with (io.BufferedReader(text, 1 << 20) if isinstance(text, GunzippedLines)
          else text) as handle:
        read = 0
        for line in handle:
            try:
                record = json.loads(decode_text(line))
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(record, dict):
                for key, value in record.items():
                    values.setdefault(key, []).append(value)
                read += 1
            if read == BATCH_ROWS:
                break
    types = {}
    for key, column in values.items():
        try:
            types[key] = pa.array(column).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            types[key] = pa.string()  # values of several kinds: kept as their JSON text
    return types


def column_texts(column: pa.Array) -> list[str]:
    """A column's values as text, "" for a missing one: strings as they are, bytes as UTF-8 (a
    value that is not UTF-8 as Windows-1252, as pages are), other types as str() writes them."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:
            column = column.cast(pa.string())  # validated in C: the common, all UTF-8 case
        except pa.ArrowInvalid:
            return [decode_text(value) for value in column.to_pylist()]
    return ["" if value is None else value if isinstance(value, str) else decode_text(value)
            for value in column.to_pylist()]


def decode_text(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace")
