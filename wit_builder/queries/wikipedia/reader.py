"""Reading a Wikipedia dump as XML fragments of whole pages, in parallel where the format allows.

Formats (found by content, not by name):
- multistream `.xml.bz2` + its index: the streams are cut into byte ranges, one partition each,
  every worker decompressing its own ranges;
- part files (a directory or a glob of `pages-articles{N}.xml-p{first}p{last}.bz2`): one partition
  per part;
- plain `.xml`: byte ranges, each worker reading the pages that start in its range;
- a single-stream `.xml.bz2` or an `http(s)://` URL: one decompressing reader in this process cuts
  the XML into chunks of whole pages that workers parse (`serial_chunks`). A URL is streamed by
  net.http's guarded client: public addresses only (queries has no --allow-private).
A partition is a small frozen dataclass, so it can be shipped to a process or a Ray worker.
A worker decodes its bz2 with indexed_bzip2 on one thread (Python's bz2 when it is missing);
`prefetched` runs that decoding in a thread beside the counting loop.
"""

from __future__ import annotations

import bz2
import glob
import io
import itertools
import logging
import os
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.queries.wikipedia.pages import is_mediawiki_header, namespace_names, split_complete_pages

if TYPE_CHECKING:  # net.http (aiohttp) is imported only when a dump is read from a URL
    from wit_builder.net.guard import AddressPolicy

try:
    import indexed_bzip2
except ImportError:  # a declared dependency; Python's bz2 (~15% slower per core) stands in
    indexed_bzip2 = None

log = logging.getLogger(__name__)

BZ2_MAGIC = b"BZh"
BZ2_BLOCK_MAGIC = bytes.fromhex("314159265359")
READ_SIZE = 1 << 22
# Partitions of about this many compressed bytes (~4.5 MB of XML): a worker's memory depends on
# it, never on the dump's size; 22,000 of them on enwiki balance any number of workers, and their
# overhead (a spill file, a words file, a result file) stays small.
PARTITION_BYTES = 1 << 20
CHUNK_BYTES = 8 << 20  # decompressed XML per chunk of the serial reader
HEADER_BYTES = 1 << 16
INDEX_OFFSET_FIELD = re.compile(rb"^([^:\n]*):", re.MULTILINE)


@dataclass(frozen=True)
class StreamRange:
    """Bytes [start, end) of a multistream dump: whole bz2 streams of 100 pages each."""
    path: str
    start: int
    end: int


@dataclass(frozen=True)
class PartFile:
    """One whole bz2 part file (a complete export with its own header)."""
    path: str


@dataclass(frozen=True)
class XmlRange:
    """The pages of a plain XML file whose `<page>` tag starts in bytes [start, end)."""
    path: str
    start: int
    end: int


@dataclass(frozen=True)
class XmlChunk:
    """Decompressed XML holding whole pages, cut by the serial reader."""
    source: str
    number: int
    data: bytes = field(repr=False)


Partition = StreamRange | PartFile | XmlRange | XmlChunk


@dataclass
class DumpPlan:
    """How a dump will be read: parallel partitions, or a serial reader's chunks."""
    kind: str  # multistream | parts | xml | single-stream | url
    source: str
    files: list[str]
    namespaces: tuple[str, ...]
    partitions: list[Partition] = field(default_factory=list)
    serial: bool = False
    workers: int = 1
    policy: AddressPolicy | None = None  # where a URL may be read from (None: public addresses)

    def chunks(self) -> Iterator[XmlChunk]:
        """The serial reader's chunks (single-stream bz2 or URL)."""
        return serial_chunks(self.source, self.kind, self.workers, self.policy)


def is_dump_url(source: str) -> bool:
    """An http(s) URL (net.http's test, imported only for a URL: it loads aiohttp)."""
    if not store.is_url(source):
        return False
    from wit_builder.net.http import is_http_url
    return is_http_url(source)


def plan_dump(source: str, index: str = "", workers: int = 1,
              policy: AddressPolicy | None = None) -> DumpPlan:
    """Find the dump's format and cut it into partitions; a bad input is a one-line WitError.
    A URL is read under `policy` (None: public addresses only)."""
    if is_dump_url(source):
        head = read_url_head(source, policy)
        return DumpPlan("url", source, [source], namespace_names(head), serial=True,
                        workers=workers, policy=policy)
    files = part_files(source)
    if files is not None:
        heads = [read_head(path) for path in files]
        return DumpPlan("parts", source, files, namespace_names(heads[0]),
                        partitions=[PartFile(path) for path in files])
    path = Path(source)
    if not path.is_file():
        raise WitError(f"dump '{source}' does not exist")
    if path.stat().st_size == 0:
        raise WitError(f"dump '{source}' is empty")
    magic = first_bytes(path, 3)
    if magic != BZ2_MAGIC:
        head = read_head(str(path))
        return DumpPlan("xml", source, [source], namespace_names(head),
                        partitions=xml_ranges(str(path)))
    head = read_head(str(path))
    index_path = Path(index) if index else default_index_path(path)
    offsets = stream_offsets(path, index_path, workers) if index_path else None
    if offsets is None:
        return DumpPlan("single-stream", source, [source], namespace_names(head), serial=True,
                        workers=workers)
    files = [source, str(index_path)]
    return DumpPlan("multistream", source, files, namespace_names(head),
                    partitions=stream_ranges(str(path), offsets))


def first_bytes(path: Path, count: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(count)


def part_files(source: str) -> list[str] | None:
    """The part files of a directory or glob, sorted by their first page id; None otherwise."""
    if os.path.isdir(source):
        candidates = [str(p) for p in Path(source).iterdir() if p.is_file() and ".xml" in p.name]
    elif any(char in source for char in "*?["):
        candidates = [p for p in glob.glob(source) if os.path.isfile(p)]
    else:
        return None
    if not candidates:
        raise WitError(f"dump '{source}' matches no part files")
    return sorted(candidates, key=part_sort_key)


def part_sort_key(path: str) -> tuple:
    match = re.search(r"-p(\d+)p(\d+)", os.path.basename(path))
    return (int(match.group(1)) if match else -1, path)


def default_index_path(dump: Path) -> Path | None:
    """`...-multistream-index.txt.bz2` beside a `...-multistream.xml.bz2`; None for other names."""
    if "-multistream" not in dump.name:
        return None
    return dump.with_name(dump.name.replace("-multistream.xml", "-multistream-index.txt")
                          .replace(".xml.bz2", ".txt.bz2"))


def stream_offsets(dump: Path, index: Path, workers: int = 1) -> list[int] | None:
    """Start offsets of the dump's page streams from its index; None (serial fallback) when the
    index is missing or does not match the dump, with a warning saying which."""
    if not index.is_file():
        log.warning("queries: multistream index '%s' not found; reading '%s' serially", index, dump)
        return None
    try:
        offsets = read_index_offsets(index, workers)
    except (OSError, EOFError, ValueError) as error:
        log.warning("queries: multistream index '%s' is unreadable (%s); reading '%s' serially",
                    index, error, dump)
        return None
    problem = index_mismatch(dump, offsets)
    if problem:
        log.warning("queries: multistream index '%s' does not match '%s' (%s); reading serially",
                    index, dump, problem)
        return None
    return offsets


def read_index_offsets(index: Path, workers: int = 1) -> list[int]:
    """Distinct stream offsets of a bz2 index of `offset:page_id:title` lines, in file order.

    enwiki's index is ~22 M lines (~1 GB) read before any worker starts: it is decompressed by
    `workers` threads (indexed_bzip2), and read by blocks, the offset fields found by one regex
    per block and each run of equal fields (a stream's ~100 pages) parsed once."""
    if indexed_bzip2 is not None:
        try:
            with indexed_bzip2.open(str(index), parallelization=max(1, workers)) as handle:
                return index_offsets(handle)
        except RuntimeError:
            pass  # its errors say little ("std::exception"): Python's bz2 says what is wrong
    with bz2.open(index, "rb") as handle:
        return index_offsets(handle)


def index_offsets(handle: BinaryIO) -> list[int]:
    """`read_index_offsets` of an open, decompressing handle."""
    offsets: list[int] = []
    pending = b""
    while block := handle.read(READ_SIZE):
        lines, pending = split_last_line(pending + block)
        add_offsets(offsets, lines)
    add_offsets(offsets, pending + b"\n" if pending else b"")
    return offsets


def add_offsets(offsets: list[int], lines: bytes) -> None:
    """Append the offsets of `lines` that differ from the one before."""
    for digits in index_offset_fields(lines):
        offset = int(digits)
        if not offsets or offset != offsets[-1]:
            offsets.append(offset)


def split_last_line(data: bytes) -> tuple[bytes, bytes]:
    """(the complete lines of `data`, what follows its last newline)."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def index_offset_fields(lines: bytes) -> Iterator[bytes]:
    """The first field of every line, consecutive repeats once; ValueError for a line that has
    none (the caller then falls back to the serial reader)."""
    found = INDEX_OFFSET_FIELD.findall(lines)
    if len(found) != lines.count(b"\n"):
        raise ValueError("a line without an offset field")
    return (first for first, _ in itertools.groupby(found))


def index_mismatch(dump: Path, offsets: list[int]) -> str:
    """'' when every offset starts a bz2 stream inside the dump, else what is wrong."""
    if not offsets:
        return "the index is empty"
    size = dump.stat().st_size
    if any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[0] <= 0 or offsets[-1] >= size:
        return "offsets are not increasing inside the file"
    with open(dump, "rb") as handle:
        if not header_stream_ends_at(handle, offsets[0]):
            return "the first indexed stream does not start where the header stream ends"
        for offset in offsets:
            handle.seek(offset)
            head = handle.read(10)
            if head[:3] != BZ2_MAGIC or head[4:10] != BZ2_BLOCK_MAGIC:
                return f"no bz2 stream starts at offset {offset}"
    return ""


def header_stream_ends_at(handle: BinaryIO, offset: int) -> bool:
    """True when the file's first bz2 stream (the siteinfo header) ends exactly at `offset`, so no
    page stream lies before the first one the index names."""
    handle.seek(0)
    decompressor = bz2.BZ2Decompressor()
    try:
        decompressor.decompress(handle.read(min(offset, 1 << 24)))
    except OSError:
        return False
    return decompressor.eof and not decompressor.unused_data


def stream_ranges(path: str, offsets: list[int], target: int = PARTITION_BYTES) -> list[StreamRange]:
    """Consecutive page streams grouped into ranges of about `target` compressed bytes.

    The header stream (before the first offset) is left out: it holds no pages. Dumps under 8
    partitions are cut into 8 ranges (when they have that many streams) so that they still run in
    parallel; the cut never depends on the worker count, so outputs cannot either.
    """
    end_of_file = os.path.getsize(path)
    target = max(1, min(target, (end_of_file - offsets[0]) // 8))
    ranges: list[StreamRange] = []
    start = offsets[0]
    for offset in offsets[1:]:
        if offset - start >= target:
            ranges.append(StreamRange(path, start, offset))
            start = offset
    ranges.append(StreamRange(path, start, end_of_file))
    return ranges


def xml_ranges(path: str, target: int = 4 * PARTITION_BYTES) -> list[XmlRange]:
    """A plain XML file cut into byte ranges (pages are assigned by where their tag starts)."""
    size = os.path.getsize(path)
    step = max(1 << 16, min(target, size // 8 + 1))
    return [XmlRange(path, start, min(size, start + step)) for start in range(0, size, step)]


def read_head(path: str) -> bytes:
    """The first decompressed bytes of a file, checked to open a MediaWiki export."""
    try:
        with open_maybe_bz2(path) as handle:
            head = handle.read(HEADER_BYTES)
    except OSError as error:
        raise WitError(f"dump '{path}' cannot be read: {error}") from None
    except EOFError:
        raise WitError(f"dump '{path}' is truncated (the bz2 stream ends early)") from None
    check_header(path, head)
    return head


def check_header(source: str, head: bytes) -> None:
    if not head.strip():
        raise WitError(f"dump '{source}' is empty")
    if not head.lstrip().startswith(b"<"):
        raise WitError(f"dump '{source}' is neither bz2 nor XML")
    if not is_mediawiki_header(head):
        raise WitError(f"dump '{source}' is not a MediaWiki export (no <mediawiki> root)")


def open_maybe_bz2(path: str) -> BinaryIO:
    if first_bytes(Path(path), 3) == BZ2_MAGIC:
        return bz2.open(path, "rb")
    return open(path, "rb")


def read_partition(partition: Partition, fast_bz2: bool = True) -> Iterator[bytes]:
    """XML fragments of whole pages, from any kind of partition (bz2 read with indexed_bzip2's
    single-threaded decoder unless `fast_bz2` is False or it is not installed)."""
    if isinstance(partition, XmlChunk):
        yield partition.data
    elif isinstance(partition, StreamRange):
        yield from whole_pages(partition.path, decompressed(partition.path, partition.start,
                                                            partition.end, fast_bz2))
    elif isinstance(partition, PartFile):
        yield from whole_pages(partition.path, decompressed(partition.path, 0, None, fast_bz2))
    elif isinstance(partition, XmlRange):
        yield from xml_range_pages(partition)
    else:
        raise TypeError(f"unknown partition {partition!r}")


def decompressed(path: str, start: int, end: int | None, fast_bz2: bool = True) -> Iterator[bytes]:
    """Decompressed bytes of the concatenated bz2 streams in bytes [start, end) of `path`."""
    if fast_bz2 and indexed_bzip2 is not None:
        yield from fast_decompressed(path, start, end)
        return
    with open(path, "rb") as handle:
        handle.seek(start)
        yield from decompress_streams(file_blocks(handle, None if end is None else end - start),
                                      path)


def fast_decompressed(path: str, start: int, end: int | None) -> Iterator[bytes]:
    """`decompressed` by indexed_bzip2 on one thread: ~15% more MB per CPU-second than Python's
    bz2 (BENCHMARKS.md). On bad data the Python decoder runs over the range to say what is wrong
    (truncated or corrupt) in the same words as the rest of the reader."""
    with open(path, "rb") as handle:
        handle.seek(start)
        source = io.BytesIO(handle.read(end - start)) if end is not None else path
    try:
        with indexed_bzip2.open(source, parallelization=1) as reader:
            while piece := reader.read(READ_SIZE):
                yield piece
    except (RuntimeError, ValueError, OSError, EOFError):
        for _ in decompressed(path, start, end, fast_bz2=False):
            pass
        raise WitError(f"dump '{path}' is not valid bz2 (corrupt data)") from None


def prefetched(items: Iterator, depth: int) -> Iterator:
    """`items`, produced by a background thread up to `depth` ahead (decompression releases the
    GIL, and so does the compiled counting loop, so the two overlap); the thread's exceptions
    are re-raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    finished = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(finished)
        except BaseException as error:  # handed to the consumer, which raises it
            buffer.put(error)

    thread = threading.Thread(target=produce, name="dump-reader", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def file_blocks(handle: BinaryIO, length: int | None) -> Iterator[bytes]:
    """Blocks of READ_SIZE from the handle's position, `length` bytes in all (None: to the end)."""
    while length is None or length > 0:
        block = handle.read(READ_SIZE if length is None else min(READ_SIZE, length))
        if not block:
            return
        if length is not None:
            length -= len(block)
        yield block


def decompress_streams(raw: Iterator[bytes], source: str) -> Iterator[bytes]:
    """Decompress concatenated bz2 streams from raw blocks; truncation or garbage is a WitError."""
    decompressor = bz2.BZ2Decompressor()
    started = False
    for block in raw:
        while block:
            started = True
            try:
                out = decompressor.decompress(block)
            except OSError:
                raise WitError(f"dump '{source}' is not valid bz2 (corrupt data)") from None
            if out:
                yield out
            if decompressor.eof:
                block = decompressor.unused_data
                decompressor = bz2.BZ2Decompressor()
                started = False
            else:
                block = b""
    if started:
        raise WitError(f"dump '{source}' is truncated (the bz2 stream ends early)")


def whole_pages(source: str, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Regroup decompressed pieces into fragments that end at a `</page>`."""
    pending = b""
    for piece in pieces:
        pending += piece
        if len(pending) >= READ_SIZE:
            complete, pending = split_complete_pages(pending)
            if complete:
                yield complete
    complete, pending = split_complete_pages(pending)
    if complete:
        yield complete
    if b"<page>" in pending:
        raise WitError(f"dump '{source}' is truncated (a <page> is never closed)")


def xml_range_pages(part: XmlRange) -> Iterator[bytes]:
    """Pages of a plain XML file whose `<page>` tag starts inside the range (read on past its end
    until the last of them is closed)."""
    length = part.end - part.start
    with open(part.path, "rb") as handle:
        handle.seek(part.start)
        data = handle.read(length + len(b"<page>") - 1)
        first = data.find(b"<page>")
        if first < 0 or first >= length:
            return
        last = data.rfind(b"<page>", 0, length + len(b"<page>") - 1)
        while data.find(b"</page>", last) < 0:
            more = handle.read(READ_SIZE)
            if not more:
                raise WitError(f"dump '{part.path}' is truncated (a <page> is never closed)")
            data += more
    yield data[first:data.find(b"</page>", last) + len(b"</page>")]


def serial_chunks(source: str, kind: str, workers: int, policy: AddressPolicy | None = None
                  ) -> Iterator[XmlChunk]:
    """Chunks of whole pages from one decompressing reader (single-stream bz2 or a URL)."""
    number = 0
    for data in whole_pages(source, serial_pieces(source, kind, workers, policy)):
        yield XmlChunk(source, number, data)
        number += 1


def serial_pieces(source: str, kind: str, workers: int, policy: AddressPolicy | None = None
                  ) -> Iterator[bytes]:
    if kind == "url":
        yield from url_pieces(source, policy)
        return
    yield from local_bz2_pieces(source, workers)


def local_bz2_pieces(source: str, workers: int) -> Iterator[bytes]:
    """Decompressed pieces of a local bz2 file: indexed_bzip2's parallel decoder when installed."""
    try:
        import indexed_bzip2
    except ImportError:
        with open(source, "rb") as handle:
            yield from decompress_streams(iter(lambda: handle.read(READ_SIZE), b""), source)
        return
    try:
        with indexed_bzip2.open(source, parallelization=max(1, workers)) as handle:
            while piece := handle.read(CHUNK_BYTES):
                yield piece
    except (RuntimeError, ValueError, OSError, EOFError) as error:
        raise WitError(f"dump '{source}' is not valid bz2 ({error})") from None


def url_pieces(url: str, policy: AddressPolicy | None = None) -> Iterator[bytes]:
    """The decompressed body of a URL, streamed (bz2 recognised by its magic bytes) through the
    guarded client, every hop allowed by `policy` (None: public addresses only)."""
    from wit_builder.net.guard import AddressPolicy
    from wit_builder.net.http import FetchFailed, open_stream

    with ExitStack() as stack:
        try:
            response = stack.enter_context(open_stream(url, policy or AddressPolicy(),
                                                       timeout=60))
        except FetchFailed as failure:
            message = f"dump '{url}' cannot be fetched: {failure}"
            if failure.status == "blocked_address":
                message += ("; wit queries reads dumps from public addresses only: download the "
                            "dump first and give --wiki its path")
            raise WitError(message) from None
        first = response.read(READ_SIZE)
        raw = iter_with_first(first, iter(lambda: response.read(READ_SIZE), b""))
        if first[:3] == BZ2_MAGIC:
            yield from decompress_streams(raw, url)
        else:
            yield from raw


def iter_with_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def read_url_head(url: str, policy: AddressPolicy | None = None) -> bytes:
    """The first decompressed bytes of a URL, checked to open a MediaWiki export."""
    head = b""
    pieces = url_pieces(url, policy)
    try:
        for piece in pieces:
            head += piece
            if len(head) >= HEADER_BYTES:
                break
    finally:
        pieces.close()
    check_header(url, head)
    return head
