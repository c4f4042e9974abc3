"""Raw shards on disk: `data/raw/NNNNN.tar` (WebDataset) and `manifests/crawl/NNNNN.parquet`,
and the one writer of their samples (`raw_sample`), which both downloaders call.

A selected row and what became of it (an `Outcome`) make one `RawSample`: its manifest row and,
when its image is stored, its tar members (`KEY.jpg`, `KEY.json`, `KEY.txt`; DESIGN.md). The tar
is written under a temporary name and renamed when complete; the manifest is written last, so its
presence marks the shard done, for the inputs its parquet metadata records (the shard's rows of
the selection and the image settings: see `plan.shard_inputs`). Members are
plain ustar entries with fixed metadata (mtime 0, owner wit:wit, mode 0444), so the same samples
give the same bytes.

`SampleTarWriter` writes members made by `tarsamples.sample_block` (ustar headers from one
template, byte-identical to tarfile's): webdataset's TarWriter goes through tarfile's general
`addfile` (a PAX record per member for its float mtime, per-field checks), about 0.27 ms a sample
against 0.04 ms here, and importing webdataset pulls in torch: about 2 CPU seconds in the fork
server that starts the workers.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa

from wit_builder.core import schemas, store
from wit_builder.core.tarsamples import BLOCK, sample_block

if TYPE_CHECKING:
    from wit_builder.crawl.download.images import StoredImage

RECORD = 20 * BLOCK  # tar's default record: archives end padded to a whole one, as tarfile does


class SampleTarWriter:
    """Writes samples to a binary stream as a tar archive; `write_members` takes samples already
    turned into bytes by `tarsamples.sample_block` (a worker thread can do that part)."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.written = 0

    def write(self, sample: dict) -> None:
        self.write_members(sample_block(sample["__key__"], sample))

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


@dataclass(frozen=True)
class Outcome:
    """What became of one selected row, as a downloader tells it: its manifest status (DESIGN.md),
    what is known of the response (None where the downloader does not say) and, when the status
    is ok, the stored image."""

    status: str
    http_status: int | None = None
    error: str | None = None
    size: int | None = None       # bytes of the response body
    sha256: str | None = None     # of the bytes downloaded
    seconds: float | None = None
    image: StoredImage | None = None
    nsfw_score: float | None = None   # --nsfw-threshold: of a stored or an nsfw-dropped image


@dataclass(frozen=True)
class RawSample:
    """One selected row as its raw shard holds it: the manifest row and, when the image is
    stored, the sample's tar members, encoded (`tarsamples.sample_block`)."""

    manifest_row: dict
    members: bytes | None


def raw_sample(row: dict, shard: int, index: int, outcome: Outcome,
               additional: list[str] | tuple[str, ...] = ()) -> RawSample:
    """Row `index` of download shard `shard` (its selection columns: uid, url, text, page_url,
    query_ids, and the pool's `additional` columns) with what became of it: its key, `.json`,
    `.txt` and manifest row (both with the additional columns, as img2dataset keeps them)."""
    key = shard_key(shard, index) if outcome.status == "ok" else None
    manifest_row = {"uid": row["uid"], "url": row["url"], "status": outcome.status,
                    "http_status": outcome.http_status, "error": outcome.error,
                    "bytes": outcome.size, "sha256": outcome.sha256, "shard": shard, "key": key,
                    "seconds": outcome.seconds, **{name: row[name] for name in additional}}
    if outcome.nsfw_score is not None:
        manifest_row["nsfw_score"] = outcome.nsfw_score
    if key is None:
        return RawSample(manifest_row, None)
    image = outcome.image
    if image is None:
        raise ValueError(f"an ok outcome without its image: {row['url']}")
    meta = {"uid": row["uid"], "url": row["url"], "page_url": row["page_url"],
            "query_ids": row["query_ids"], "width": image.width, "height": image.height,
            "original_width": image.original_width, "original_height": image.original_height,
            "sha256": outcome.sha256, **{name: json_value(row[name]) for name in additional}}
    if image.face_boxes is not None:   # --blur-faces: the regions blurred, [0, 1] x0 y0 x1 y1
        meta["face_boxes"] = image.face_boxes
        manifest_row["faces"] = len(image.face_boxes)
    if image.nsfw_score is not None:
        meta["nsfw_score"] = image.nsfw_score
    return RawSample(manifest_row, sample_block(key, sample_members(key, image.jpeg, row["text"],
                                                                    meta)))


def json_value(value):
    """A pool value as JSON keeps it: numbers as numbers, null as null (NaN too: JSON has none),
    times as ISO 8601 text, bytes as text (base64 when not UTF-8), lists and maps inside out."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):  # an Arrow map comes as (key, value) pairs
        return [json_value(item) for item in value]
    return value


@contextlib.contextmanager
def shard_tar(path: store.Location) -> Iterator[SampleTarWriter]:
    """A sample writer whose tar appears under `path` only once it is complete."""
    remove_stale_temporaries(path)
    with store.atomic_path(path) as temporary, open(temporary, "wb", buffering=1 << 20) as stream:
        writer = SampleTarWriter(stream)
        yield writer
        writer.close()


INPUTS_KEY = b"witbuilder.inputs"  # parquet schema metadata: what the shard was made from


def write_manifest(path: store.Location, rows: list[dict], inputs: dict | None = None,
                   additional: pa.Schema | None = None) -> None:
    """One row per attempted URL, schema CRAWL_MANIFEST (and the pool's `additional` columns),
    and the shard's `inputs` in the schema metadata; written last: it marks the shard done."""
    table = pa.Table.from_pylist(rows, schema=schemas.with_additional(schemas.CRAWL_MANIFEST,
                                                                      additional))
    if inputs is not None:
        table = table.replace_schema_metadata({INPUTS_KEY: json.dumps(inputs, sort_keys=True)})
    store.write_parquet(path, table)


def read_manifest(path: store.Location) -> pa.Table:
    return store.read_parquet(path, schema=schemas.CRAWL_MANIFEST)


def manifest_inputs(path: store.Location) -> dict | None:
    """The inputs a manifest records (from its footer alone); None for one written without."""
    metadata = store.parquet_file(path).schema_arrow.metadata or {}
    return json.loads(metadata[INPUTS_KEY]) if INPUTS_KEY in metadata else None


def remove_shards_from(workdir: store.Location, first: int) -> list[int]:
    """Remove the raw shards (tar and manifest) numbered `first` or more: left by a crawl whose
    selection was larger, they would otherwise reach `wit shards`. Returns their numbers."""
    removed = set()
    for pattern in (store.join(workdir, "manifests", "crawl", "*.parquet"),
                    store.join(workdir, "data", "raw", "*.tar")):
        for path in store.glob(pattern):
            stem = store.name(path).split(".")[0]
            if stem.isdigit() and int(stem) >= first:
                store.remove(path)
                removed.add(int(stem))
    return sorted(removed)
