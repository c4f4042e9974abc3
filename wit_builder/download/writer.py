"""Raw shards on disk: `data/raw/NNNNN.tar` (WebDataset) and `manifests/crawl/NNNNN.parquet`.

The tar is written under a temporary name and renamed when complete; the manifest is written
last, so its presence marks the shard done. Members are plain ustar entries with fixed metadata
(mtime 0, owner wit:wit, mode 0444), so the same samples give the same bytes.

`SampleTarWriter` writes the 512-byte ustar headers itself from one template (byte-identical to
tarfile's): webdataset's TarWriter goes through tarfile's general `addfile` (a PAX record per member
for its float mtime, per-field checks), about 0.27 ms a sample against 0.04 ms here, and importing
webdataset pulls in torch: about 2 CPU seconds in the fork server that starts the workers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from wit_builder import schemas, store

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default record: archives end padded to a whole one, as tarfile does


def ustar_template(mode: int = 0o444, owner: str = "wit") -> bytes:
    """The fields every member shares: regular file, mtime 0, uid/gid 0 named `owner`."""
    header = bytearray(BLOCK)
    header[100:108] = b"%07o\0" % mode
    header[108:116] = b"%07o\0" % 0                    # uid
    header[116:124] = b"%07o\0" % 0                    # gid
    header[136:148] = b"%011o\0" % 0                   # mtime
    header[148:156] = b" " * 8                         # checksum, summed as spaces
    header[156:157] = b"0"                             # regular file
    header[257:265] = b"ustar\x0000"
    header[265:265 + len(owner)] = owner.encode("ascii")   # uname
    header[297:297 + len(owner)] = owner.encode("ascii")   # gname
    return bytes(header)


TEMPLATE = ustar_template()
TEMPLATE_SUM = sum(TEMPLATE)


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file `name` of `size` bytes (as tarfile writes it)."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"tar member name '{name}' is longer than 100 bytes")
    if not 0 <= size < 8 ** 11:
        raise ValueError(f"tar member '{name}' of {size} bytes does not fit a ustar header")
    size_field = b"%011o\0" % size
    header = bytearray(TEMPLATE)
    header[:len(encoded)] = encoded
    header[124:136] = size_field
    # The template is zero where name and size go, so the checksum only adds their bytes.
    header[148:155] = b"%06o\0" % (TEMPLATE_SUM + sum(encoded) + sum(size_field))
    return bytes(header)


def tar_members(sample: dict) -> bytes:
    """A WebDataset sample ({'__key__': KEY, EXT: bytes, ...}) as tar members KEY.EXT, one per
    extension in sorted order (as webdataset's TarWriter writes them), each padded to a block."""
    key = sample["__key__"]
    parts = []
    for extension in sorted(name for name in sample if not name.startswith("_")):
        data = sample[extension]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"sample {key}: '{extension}' is {type(data).__name__}, not bytes")
        size = len(data)
        parts += [ustar_header(f"{key}.{extension}", size), data, bytes(-size % BLOCK)]
    return b"".join(parts)


class SampleTarWriter:
    """Writes samples to a binary stream as a tar archive; `write_members` takes samples already
    turned into bytes by `tar_members` (a worker thread can do that part)."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.written = 0

    def write(self, sample: dict) -> None:
        self.write_members(tar_members(sample))

    def write_members(self, members: bytes) -> None:
        self.stream.write(members)
        self.written += len(members)

    def close(self) -> None:
        """End the archive: two zero blocks, then zeros up to a whole record."""
        end = 2 * BLOCK
        end += -(self.written + end) % RECORD
        self.stream.write(bytes(end))
        self.written += end


def shard_key(shard: int, index: int) -> str:
    return f"{shard:05d}{index:05d}"


def tar_path(workdir: store.Location, shard: int) -> store.Location:
    return store.join(workdir, "data", "raw", f"{shard:05d}.tar")


def manifest_path(workdir: store.Location, shard: int) -> store.Location:
    return store.join(workdir, "manifests", "crawl", f"{shard:05d}.parquet")


def remove_stale_temporaries(path: store.Location) -> None:
    """Temporary files a killed run left for this shard (atomic_path names them .NAME.*.tmp);
    an object store never holds any: its uploads appear whole or not at all."""
    if store.is_url(path):
        return
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def sample_members(key: str, jpeg: bytes, text: str, meta: dict) -> dict:
    """One WebDataset sample: the image, its text and its metadata (DESIGN.md)."""
    return {"__key__": key, "jpg": jpeg, "txt": text.encode("utf-8"),
            "json": json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")}


@contextlib.contextmanager
def shard_tar(path: store.Location) -> Iterator[SampleTarWriter]:
    """A sample writer whose tar appears under `path` only once it is complete."""
    remove_stale_temporaries(path)
    with store.atomic_path(path) as temporary, open(temporary, "wb", buffering=1 << 20) as stream:
        writer = SampleTarWriter(stream)
        yield writer
        writer.close()


def write_manifest(path: store.Location, rows: list[dict]) -> None:
    """One row per attempted URL, schema CRAWL_MANIFEST; written last: it marks the shard done."""
    store.write_parquet(path, pa.Table.from_pylist(rows, schema=schemas.CRAWL_MANIFEST))


def read_manifest(path: store.Location) -> pa.Table:
    return store.read_parquet(path, schema=schemas.CRAWL_MANIFEST)
