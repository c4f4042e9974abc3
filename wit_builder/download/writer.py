"""Raw shards on disk: `data/raw/NNNNN.tar` (WebDataset) and `manifests/crawl/NNNNN.parquet`.

The tar is written under a temporary name and renamed when complete; the manifest is written
last, so its presence marks the shard done. Fixed tar metadata (mtime, owner, mode) makes the same
samples give the same bytes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from wit_builder import atomic, schemas


def shard_key(shard: int, index: int) -> str:
    return f"{shard:05d}{index:05d}"


def tar_path(workdir: str | Path, shard: int) -> Path:
    return Path(workdir) / "data" / "raw" / f"{shard:05d}.tar"


def manifest_path(workdir: str | Path, shard: int) -> Path:
    return Path(workdir) / "manifests" / "crawl" / f"{shard:05d}.parquet"


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files a killed run left for this shard (atomic_path names them .NAME.*.tmp)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def sample_members(key: str, jpeg: bytes, text: str, meta: dict) -> dict:
    """One WebDataset sample: the image, its text and its metadata (DESIGN.md)."""
    return {"__key__": key, "jpg": jpeg, "txt": text.encode("utf-8"),
            "json": json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")}


@contextlib.contextmanager
def shard_tar(path: Path) -> Iterator[wds.TarWriter]:
    """A TarWriter whose file appears under `path` only once it is complete."""
    remove_stale_temporaries(path)
    with atomic.atomic_path(path) as temporary, open(temporary, "wb") as stream:
        writer = wds.TarWriter(stream, encoder=False, mtime=0.0, user="wit", group="wit",
                               mode=0o444)
        try:
            yield writer
        finally:
            writer.close()


def write_manifest(path: Path, rows: list[dict]) -> None:
    """One row per attempted URL, schema CRAWL_MANIFEST; written last: it marks the shard done."""
    atomic.write_parquet(path, pa.Table.from_pylist(rows, schema=schemas.CRAWL_MANIFEST))


def read_manifest(path: Path) -> pa.Table:
    return pq.read_table(path, schema=schemas.CRAWL_MANIFEST)
