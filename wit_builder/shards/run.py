"""`wit shards`: raw download shards -> deduplicated, globally shuffled, split training shards.

Passes, each a map over partitions that `engine.py` runs anywhere:
  1. scan: every raw shard is checked against its manifest; each good sample gets a perceptual hash,
     an index row (in one index file per raw shard), and is scattered to an on-disk bucket chosen by
     a seeded hash of its uid (and to its split, chosen by a seed-free hash of its uid, so adding
     data never moves a sample);
  2. dedup (`dedup.py`): duplicates are found on the index files, partition by partition, and each
     bucket is told which of its samples to drop;
  3. shuffle: each bucket, small enough for memory, drops its duplicates, is shuffled and written as
     one run of tar blocks;
  4. assemble: the runs, concatenated in bucket order, are cut into shards of a fixed size by byte
     ranges. The same seed gives byte-identical shards whatever the number of workers.
Each finished scan leaves a done marker (its inputs' sizes and times, and its result) in the
scratch folder, which is kept after a failure: a rerun rescans only the raw shards without a
matching marker. The main process holds counts and one partition's rows at a time, never a row
per sample (but for the report, whose plots take the kept samples' sizes and caption lengths).
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import logging
import math
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from wit_builder.core import atomic, cpu, markers, schemas, store, spill
from wit_builder.core.buckets import BucketWriter, bucket_files, list_buckets
from wit_builder.shards import dedup
from wit_builder.shards import card, decontaminate
from wit_builder.shards import consent
from wit_builder.shards import summary as dataset_summary
from wit_builder.core.hashing import uid_keys
from wit_builder.shards.config import ShardsConfig
from wit_builder.shards.summary import Tally
from wit_builder.core.engine import map_partitions, stage_engine
from wit_builder.core.options import WitError
from wit_builder.shards.phash import image_hashes
from wit_builder.core.tarsamples import END_OF_ARCHIVE, read_samples, sample_block

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
MAX_BUCKETS = 4096
REQUIRED_MEMBERS = ("jpg", "txt", "json")
DEDUP_ROW_GROUP = 1 << 20  # pyarrow's default row group length
# The report's size and caption-length plots are drawn from a uniform sample of at most this many
# kept samples, so that writing it takes the same memory at any dataset size.
REPORT_ROWS = 200_000

INDEX = pa.schema([
    ("uid", pa.string()), ("sha256", pa.string()), ("phash", pa.uint64()),
    ("signature", pa.uint64()), ("raw_shard", pa.int32()), ("position", pa.int32()), ("key", pa.string()),
    ("split", pa.string()), ("bucket", pa.int32()), ("bytes", pa.int64()),
    ("width", pa.int32()), ("height", pa.int32()), ("original_width", pa.int32()),
    ("original_height", pa.int32()), ("text_chars", pa.int32()), ("queries", pa.int32()),
])


@dataclass(frozen=True)
class RawShard:
    number: int
    tar: str | None       # path or fsspec URL; None when only the manifest exists
    manifest: str | None  # None when only the tar exists (an unfinished shard)


@dataclass(frozen=True)
class ScatterSettings:
    work: str
    buckets: int
    seed: int
    val_fraction: float


@dataclass(frozen=True)
class BucketJob:
    split: str
    bucket: int
    pieces: tuple[str, ...]
    drop: str | None  # order keys (int64) of the bucket's duplicates, when it has any
    run: str          # output path without suffix
    seed: int


@dataclass(frozen=True)
class ShardJob:
    path: str
    split: str
    segments: tuple[tuple[str, int, int], ...]  # (run, first sample, stop sample)


def stable_fraction(text: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by `text` and `salt` alone (no process state)."""
    digest = hashlib.blake2b(f"{salt}\0{text}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(uid: str, val_fraction: float) -> str:
    return "val" if stable_fraction(uid, "wit-split") < val_fraction else "train"


def bucket_of(uid: str, seed: int, buckets: int) -> int:
    return int(stable_fraction(uid, f"wit-bucket-{seed}") * buckets)


# ---- inputs ---------------------------------------------------------------------------------

def list_numbered(location: str, suffix: str) -> dict[int, tuple[str, int]]:
    """{number: (path or URL, size)} of the files NNNNN`suffix` directly under `location`."""
    fs, root = store.filesystem(location)
    found = {}
    for path in fs.glob(f"{root.rstrip('/')}/*{suffix}"):
        stem = PurePosixPath(path).name[: -len(suffix)]
        if stem.isdigit():
            name = fs.unstrip_protocol(path) if store.is_url(location) else path
            found[int(stem)] = (name, fs.size(path))
    return found


def discover_raw_shards(config: ShardsConfig) -> tuple[list[RawShard], int]:
    """The raw shards paired with their manifests, and the total bytes of their tars."""
    raw_dir, manifest_dir = str(config.path(config.raw)), str(config.path(config.crawl_manifests))
    tars = list_numbered(raw_dir, ".tar")
    manifests = list_numbered(manifest_dir, ".parquet")
    if not tars and not manifests:
        raise WitError(f"no raw shards (NNNNN.tar) in '{raw_dir}' nor manifests in "
                       f"'{manifest_dir}'; run `wit crawl` first or check --workdir")
    shards = [RawShard(number, tars.get(number, (None,))[0], manifests.get(number, (None,))[0])
              for number in sorted(tars.keys() | manifests.keys())]
    return shards, sum(size for _, size in tars.values())


MANIFEST_READ = pa.schema([schemas.CRAWL_MANIFEST.field(name)
                           for name in ("uid", "status", "sha256", "key", "faces")])


def read_crawl_manifest(location: str) -> pa.Table:
    """The columns a scan reads (`faces` null in a manifest written before it)."""
    return store.read_parquet(location, schema=MANIFEST_READ)


# ---- pass 1: scan and scatter ---------------------------------------------------------------

class PieceFiles:
    """A raw shard's samples scattered to their (split, bucket)s: one file per bucket that it
    reaches (`buckets/SPLIT-BBBBB/NNNNN.tar`, core/buckets.py: opened on first use, published
    when the scan finishes). A piece is its samples' tar blocks, then the order key and byte
    length of each (int64 pairs) and their count (int64): the dedup drop goes by order key, the
    shuffle cuts the piece by the lengths."""

    def __init__(self, work: str, raw_shard: int) -> None:
        self.out = BucketWriter(store.join(work, "buckets"), f"{raw_shard:05d}", ".tar")
        self.blocks: dict[str, list[tuple[int, int]]] = {}

    def write(self, split: str, bucket: int, block: bytes, order: int) -> None:
        name = f"{split}-{bucket:05d}"
        self.out.append(name, block)
        self.blocks.setdefault(name, []).append((order, len(block)))

    def close(self, publish: bool = True) -> None:
        """End every piece and publish them, unless the scan failed (`publish` False)."""
        if not publish:
            self.out.abort()
            return
        for name, blocks in self.blocks.items():
            self.out.append(name, np.array(blocks, dtype=np.int64).tobytes()
                            + np.int64(len(blocks)).tobytes())
        self.out.finish()


def checked_meta(key: str, members: dict[str, bytes], expected: dict[str, tuple[str, str]],
                 seen: set[str], problems: Counter) -> dict | None:
    """The sample's metadata when complete and agreeing with the manifest, else None (counted)."""
    if key in seen:
        problems["duplicate_key"] += 1
        return None
    seen.add(key)
    if any(name not in members for name in REQUIRED_MEMBERS):
        problems["missing_member"] += 1
        return None
    try:
        meta = json.loads(members["json"])
        members["txt"].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        problems["bad_json_or_text"] += 1
        return None
    if key not in expected:
        problems["not_ok_in_manifest"] += 1
        return None
    if not isinstance(meta, dict) or meta.get("uid") != expected[key][0]:
        problems["manifest_mismatch"] += 1
        return None
    return meta


def index_row(key: str, members: dict[str, bytes], meta: dict, sha256: str,
              image_hash: tuple[int, int], shard: int, position: int, settings: ScatterSettings,
              size: int) -> dict:
    uid = meta["uid"]
    return {"uid": uid, "sha256": sha256, "phash": image_hash[0], "signature": image_hash[1],
            "raw_shard": shard, "position": position, "key": key, "split": split_of(uid, settings.val_fraction),
            "bucket": bucket_of(uid, settings.seed, settings.buckets), "bytes": size,
            "width": meta.get("width"), "height": meta.get("height"),
            "original_width": meta.get("original_width"),
            "original_height": meta.get("original_height"),
            "text_chars": len(members["txt"].decode("utf-8")),
            "queries": len(meta.get("query_ids") or [])}


def scan_raw_shard(shard: RawShard, settings: ScatterSettings) -> dict:
    """`scatter_raw_shard`, then its done marker (last, atomically), which lets a rerun after a
    crash keep this scan's pieces, index and result as long as the inputs are unchanged."""
    inputs = scan_inputs(shard, settings)  # before reading: a change during the scan redoes it
    result = scatter_raw_shard(shard, settings)
    markers.write(done_path(settings.work, shard.number), inputs, result={
        **result, "problems": list(result["problems"].items()),
        "statuses": list(result["statuses"].items())})  # pairs: their order is the tally's
    return result


def scatter_raw_shard(shard: RawShard, settings: ScatterSettings) -> dict:
    """Check one raw shard against its manifest, hash and scatter its good samples to buckets;
    its index rows go to one scratch parquet file, named in the result with their count."""
    problems: Counter = Counter()
    result = {"number": shard.number, "problems": problems, "statuses": Counter(),
              "blurred": {}, "index": None, "rows": 0}
    if shard.manifest is None:
        log.warning("shards: %s has no manifest (unfinished crawl shard): skipped", shard.tar)
        problems["tar_without_manifest"] += 1
        return result
    try:
        manifest = read_crawl_manifest(shard.manifest)
    except (OSError, pa.ArrowException) as error:
        log.warning("shards: manifest %s unreadable (%s): shard skipped", shard.manifest, error)
        problems["unreadable_manifest"] += 1
        return result
    result["statuses"].update(manifest["status"].to_pylist())
    result["blurred"] = schemas.blur_counts(manifest["faces"])   # --blur-faces: counted
    expected = {row["key"]: (row["uid"], row["sha256"]) for row in manifest.to_pylist()
                if row["status"] == "ok" and row["key"]}
    if shard.tar is None:
        log.warning("shards: manifest %s has no tar: its %d samples are missing",
                    shard.manifest, len(expected))
        problems["missing_from_tar"] += len(expected)
        return result
    rows, seen = scatter_samples(shard, expected, settings, problems)
    if missing := len(expected.keys() - seen):
        problems["missing_from_tar"] += missing
    if rows:
        result["index"] = store.join(settings.work, "index", f"{shard.number:05d}.parquet")
        result["rows"] = len(rows)
        store.write_parquet(result["index"], pa.Table.from_pylist(rows, schema=INDEX),
                            compression="snappy")
    return result


def scan_inputs(shard: RawShard, settings: ScatterSettings) -> dict:
    """What a scan's outputs depend on: its files as they are now, and where samples go."""
    return {"number": shard.number, "tar": shard.tar, "tar_file": store.file_signature(shard.tar),
            "manifest": shard.manifest, "manifest_file": store.file_signature(shard.manifest),
            "buckets": settings.buckets, "seed": settings.seed,
            "val_fraction": settings.val_fraction, "pieces": 2,  # 2: lengths after the blocks
            # index 2: with the look signature; 3: imagehash's pHash (core/phash.py); 4: with
            # its exact zeros (a flat picture hashes 8000000000000000)
            "index": 4}


def done_path(work: str, number: int) -> str:
    return store.join(work, "done", f"{number:05d}.json")


def finished_scans(shards: list[RawShard], settings: ScatterSettings) -> dict[int, dict]:
    """{raw shard: scan result} of the scans an interrupted run finished on the same inputs
    (a marker without inputs is not ours: rescanned)."""
    decisions = markers.Decisions(log, "shards: scan", "raw shard", str(settings.work))
    finished = {}
    for shard in shards:
        check = markers.check(done_path(settings.work, shard.number),
                              functools.partial(scan_inputs, shard, settings), older_done=False)
        if decisions.add(f"{shard.number:05d}", check).done:
            result = check.record["result"]
            finished[shard.number] = {**result, "problems": Counter(dict(result["problems"])),
                                      "statuses": Counter(dict(result["statuses"]))}
    decisions.report()
    return finished


def prepare_work(settings: ScatterSettings, finished: set[int]) -> None:
    """Empty the scratch folder but for the outputs of the `finished` scans: an unfinished
    scan's pieces would be rewritten anyway, a changed shard's might not be."""
    work = settings.work
    for entry in store.glob(store.join(work, "*")):
        if store.name(entry) not in ("buckets", "index", "done"):
            store.remove_tree(entry)
    for pattern in (("buckets", "*", "*"), ("index", "*"), ("done", "*")):
        for path in store.glob(store.join(work, *pattern)):
            stem = store.name(path).split(".")[0]
            if not (stem.isdigit() and int(stem) in finished):
                store.remove(path)
    store.makedirs(work)


def scatter_samples(shard: RawShard, expected: dict[str, tuple[str, str]],
                    settings: ScatterSettings, problems: Counter
                    ) -> tuple[list[dict], set[str]]:
    """Index rows of the shard's good samples (written to their buckets), and the keys seen."""
    rows: list[dict] = []
    seen: set[str] = set()
    pieces = PieceFiles(settings.work, shard.number)
    try:
        with store.open(shard.tar, "rb") as stream:
            for position, (key, members) in enumerate(read_samples(stream, problems, shard.tar)):
                meta = checked_meta(key, members, expected, seen, problems)
                if meta is None:
                    continue
                try:
                    image_hash = image_hashes(members["jpg"])
                except (OSError, ValueError, Image.DecompressionBombError) as error:
                    log.debug("shards: %s/%s undecodable image (%s)", shard.tar, key, error)
                    problems["undecodable_image"] += 1
                    continue
                block = sample_block(key, members)
                sha256 = meta.get("sha256") or expected[key][1] or \
                    hashlib.sha256(members["jpg"]).hexdigest()
                row = index_row(key, members, meta, sha256, image_hash, shard.number, position,
                                settings, len(block))
                pieces.write(row["split"], row["bucket"], block, (shard.number << 32) | position)
                rows.append(row)
    except BaseException:
        pieces.close(publish=False)
        raise
    pieces.close()
    return rows, seen


# ---- dedup (on the index files, see dedup.py) ----------------------------------------------

def drop_path(work: store.Location, split: str, bucket: int) -> store.Location:
    return store.join(work, "drop", f"{split}-{bucket:05d}.orders")


def record_removals(plan: dedup.DedupPlan, work: Path, settings: ScatterSettings, tally: Tally,
                    sources: dataset_summary.SourceCounter,
                    contaminated: pa.Table | None = None) -> None:
    """Stream the removals in order into `work/dedup.parquet` (schema DEDUP), append each one's
    order key to its bucket's drop file, and count them by kind and source. `contaminated`
    (copies of evaluation images, --exclude) come last, and a sample among them is not also
    removed as a duplicate."""
    tables = dedup.removals(plan)
    if contaminated is not None:
        tables = itertools.chain(
            (table.filter(pc.invert(pc.is_in(table["order"], value_set=contaminated["order"])))
             for table in tables), [contaminated])
    # Row groups of pyarrow's default size (when the budget holds one) make the same bytes as
    # writing the whole table at once.
    group_rows = min(DEDUP_ROW_GROUP, plan.partition_rows)
    pending: list[pa.Table] = []
    with pq.ParquetWriter(work / "dedup.parquet", schemas.DEDUP, compression="zstd") as writer:
        for removals in tables:
            if not removals.num_rows:
                continue
            tally.per_dedup_kind.update(removals["kind"].to_pylist())
            sources.add(removals["uid"], -1)
            append_drop_orders(work, removals, settings)
            pending.append(removals.select(schemas.DEDUP.names).cast(schemas.DEDUP))
            if sum(table.num_rows for table in pending) >= group_rows:
                pending = write_row_groups(writer, pa.concat_tables(pending), group_rows)
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=group_rows)


def write_row_groups(writer: pq.ParquetWriter, table: pa.Table, group_rows: int
                     ) -> list[pa.Table]:
    """Write the full row groups of `table`; the rest, to be continued."""
    full = table.num_rows - table.num_rows % group_rows
    if full:
        writer.write_table(table.slice(0, full), row_group_size=group_rows)
    return [table.slice(full)] if full < table.num_rows else []


def append_drop_orders(work: Path, removals: pa.Table, settings: ScatterSettings) -> None:
    places: dict[tuple[str, int], list[int]] = {}
    for uid, order in zip(removals["uid"].to_pylist(), removals["order"].to_pylist()):
        place = (split_of(uid, settings.val_fraction), bucket_of(uid, settings.seed,
                                                                 settings.buckets))
        places.setdefault(place, []).append(order)
    (work / "drop").mkdir(exist_ok=True)
    for (split, bucket), orders in places.items():
        with open(drop_path(work, split, bucket), "ab") as handle:
            np.array(orders, dtype=np.int64).tofile(handle)


def kept_index(pieces: list[tuple[str, int]], work: store.Location, seed: int) -> pa.Table:
    """The index rows of a uniform sample of the kept samples (at most REPORT_ROWS, chosen by a
    seeded hash of uid), for the report's size and caption-length plots."""
    drop = [read_orders(path) for path in store.glob(store.join(work, "drop", "*.orders"))]
    removed = np.concatenate([np.zeros(0, np.int64), *drop])
    share = min(1.0, REPORT_ROWS / max(1, sum(rows for _, rows in pieces)))
    threshold = np.uint64(min(int(share * 2**64), 2**64 - 1))
    tables = []
    for path, _ in pieces:
        table = store.read_parquet(path)
        orders = spill.order_keys(table["raw_shard"].to_numpy(), table["position"].to_numpy())
        sampled = uid_keys(table["uid"], seed) <= threshold
        tables.append(table.filter(pa.array(~np.isin(orders, removed) & sampled)))
    return pa.concat_tables([INDEX.empty_table(), *tables])


# ---- pass 2: shuffle each bucket ------------------------------------------------------------

def read_orders(location: store.Location) -> np.ndarray:
    """The int64 order keys of a `.orders` file."""
    return np.frombuffer(store.read_bytes(location), np.int64)


def piece_blocks(piece: str) -> tuple[list[memoryview], np.ndarray]:
    """The sample blocks of a bucket piece (see PieceFiles), cut by the lengths recorded after
    them (no tar parsing: the scan wrote both), and their order keys."""
    data = memoryview(store.read_bytes(piece))
    count = int(np.frombuffer(data[-8:], np.int64)[0]) if len(data) >= 8 else -1
    table = 16 * count + 8
    if count < 0 or table > len(data):
        raise RuntimeError(f"shards: bucket piece {piece} is not the samples its end lists")
    pairs = np.frombuffer(data[len(data) - table:-8], np.int64).reshape(-1, 2)
    ends = np.cumsum(pairs[:, 1])
    if (int(ends[-1]) if len(ends) else 0) + table != len(data):
        raise RuntimeError(f"shards: bucket piece {piece} is not the {len(ends)} samples its "
                           f"end lists")
    starts = (ends - pairs[:, 1]).tolist()
    return [data[start:end] for start, end in zip(starts, ends.tolist())], pairs[:, 0]


def shuffle_bucket(job: BucketJob) -> dict:
    """Drop the bucket's duplicates, shuffle it in memory, write it as one run (+ its offsets)."""
    drop = read_orders(job.drop) if job.drop else np.zeros(0, np.int64)
    blocks = []
    for piece in job.pieces:
        piece_samples, orders = piece_blocks(piece)
        keep = ~np.isin(orders, drop)
        blocks += [block for block, kept in zip(piece_samples, keep.tolist()) if kept]
    random.Random(f"{job.seed}:{job.split}:{job.bucket}").shuffle(blocks)
    offsets = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum([len(block) for block in blocks], out=offsets[1:])
    with store.atomic_path(f"{job.run}.tar") as temporary, open(temporary, "wb") as run:
        for block in blocks:
            run.write(block)
    with store.atomic_path(f"{job.run}.npy") as temporary, open(temporary, "wb") as handle:
        np.save(handle, offsets)
    return {"split": job.split, "bucket": job.bucket, "run": job.run, "samples": len(blocks)}


def bucket_jobs(work: str, seed: int) -> list[BucketJob]:
    """One job per (split, bucket) that received samples, each told which of its samples to drop."""
    folder = store.join(work, "buckets")
    drops = {store.name(path) for path in store.glob(store.join(work, "drop", "*.orders"))}
    jobs = []
    for name in list_buckets(folder):
        split, bucket = name.split("-")
        pieces = tuple(str(piece) for piece in bucket_files(folder, name, ".tar"))
        drop = drop_path(work, split, int(bucket))
        jobs.append(BucketJob(split, int(bucket), pieces,
                              str(drop) if store.name(drop) in drops else None,
                              str(store.join(work, "runs", name)), seed))
    store.makedirs(store.join(work, "runs"))
    return jobs


# ---- pass 3: cut the runs into shards -------------------------------------------------------

def plan_shards(runs: list[tuple[str, int]], split: str, per_shard: int, out: store.Location
                ) -> list[ShardJob]:
    """Shards of `per_shard` samples (the last may be short) over runs taken in bucket order."""
    jobs: list[ShardJob] = []
    segments: list[tuple[str, int, int]] = []
    filled = 0

    def close_shard() -> None:
        nonlocal segments, filled
        jobs.append(ShardJob(str(store.join(out, f"{split}-{len(jobs):06d}.tar")), split,
                             tuple(segments)))
        segments, filled = [], 0

    for run, count in runs:
        start = 0
        while start < count:
            take = min(count - start, per_shard - filled)
            segments.append((run, start, start + take))
            filled, start = filled + take, start + take
            if filled == per_shard:
                close_shard()
    if segments:
        close_shard()
    return jobs


def assemble_shard(job: ShardJob) -> dict:
    """Copy the job's byte ranges of the runs into one tar, atomically; its manifest row."""
    samples = 0
    with store.atomic_path(job.path) as temporary:
        with open(temporary, "wb") as out:
            for run, first, stop in job.segments:
                offsets = np.load(io.BytesIO(store.read_bytes(f"{run}.npy")))
                with store.open(f"{run}.tar", "rb") as source:
                    source.seek(int(offsets[first]))
                    remaining = int(offsets[stop] - offsets[first])
                    while remaining:
                        chunk = source.read(min(remaining, 1 << 20))
                        out.write(chunk)
                        remaining -= len(chunk)
                samples += stop - first
            out.write(END_OF_ARCHIVE)
        size, digest = temporary.stat().st_size, atomic.sha256_file(temporary)
    return {"shard": store.name(job.path), "split": job.split, "samples": samples,
            "bytes": size, "sha256": digest}


# ---- the stage ------------------------------------------------------------------------------

def check_config(config: ShardsConfig) -> None:
    """What the settings' ranges (checked when they are read) cannot say: the inputs exist."""
    for directory in config.exclude:
        if not Path(config.path(directory)).is_dir():
            raise WitError(f"--exclude: '{directory}' is not a folder of evaluation images")


def bucket_count(raw_bytes: int, memory_budget_mb: float) -> int:
    return max(1, min(MAX_BUCKETS, math.ceil(raw_bytes / (memory_budget_mb * 2**20))))


def scan_all(config: ShardsConfig, shards: list[RawShard], settings: ScatterSettings,
             finished: dict[int, dict], tally: Tally, sources: dataset_summary.SourceCounter
             ) -> list[tuple[str, int]]:
    """Scan every raw shard but those an interrupted run `finished` (their results given); the
    index files (path, rows) in raw shard order."""
    if finished:
        log.info("shards: %d of %d raw shards were scanned by an interrupted run: kept",
                 len(finished), len(shards))
    scan = functools.partial(scan_raw_shard, settings=settings)
    todo = [shard for shard in shards if shard.number not in finished]
    scanned = map_partitions(scan, todo, desc="shards: scan + scatter")
    results = {**finished, **{result["number"]: result for result in scanned}}
    pieces = []
    for result in (results[shard.number] for shard in shards):
        tally.problems.update(result["problems"])
        tally.statuses.update(result["statuses"])
        tally.blurred.update(result["blurred"])   # (an older scan's marker: index < 4, rescanned)
        if result["index"]:
            pieces.append((result["index"], result["rows"]))
            tally.samples_read += result["rows"]
            sources.add(store.read_parquet(result["index"], columns=["uid"])["uid"], 1)
    return pieces


def find_duplicates(config: ShardsConfig, work: str, local_work: Path,
                    pieces: list[tuple[str, int]], settings: ScatterSettings, tally: Tally,
                    sources: dataset_summary.SourceCounter) -> None:
    """Run dedup.py on the index files (in `work`, which tasks share); its removals become drop
    files and dedup.parquet, written by this process to `local_work` (drop files then shared)."""
    rows_per_shard = {int(store.name(path)[:-len(".parquet")]): rows for path, rows in pieces}
    plan = dedup.plan_dedup(store.join(work, "dedup"), rows_per_shard, config.near_dup_bits,
                            config.memory_budget_mb, config.near_dup_check)
    dedup.deduplicate(plan, pieces)
    contaminated = None
    if config.exclude:
        evals = decontaminate.hash_sets([str(config.path(path)) for path in config.exclude])
        contaminated = decontaminate.contaminated(pieces, evals, config.exclude_bits,
                                                  config.near_dup_check)
        tally.per_exclude_set.update(decontaminate.per_set(contaminated))
        log.info("shards: --exclude: %d training samples copy an evaluation image: removed",
                 contaminated.num_rows)
    record_removals(plan, local_work, settings, tally, sources, contaminated)
    store.remove_tree(plan.work)
    if str(local_work) != work:
        for path in sorted((local_work / "drop").glob("*.orders")):
            store.put_file(path, store.join(work, "drop", path.name))


def write_training_shards(config: ShardsConfig, work: str, out: store.Location, tally: Tally
                          ) -> list[dict]:
    jobs = bucket_jobs(work, config.seed)
    runs = map_partitions(shuffle_bucket, jobs, desc="shards: shuffle buckets")
    plans = []
    for split in SPLITS:
        ordered = sorted((run for run in runs if run["split"] == split), key=lambda r: r["bucket"])
        tally.per_split[split] += sum(run["samples"] for run in ordered)
        plans += plan_shards([(run["run"], run["samples"]) for run in ordered], split,
                             config.samples_per_shard, out)
    return map_partitions(assemble_shard, plans, desc="shards: write")


def remove_stale_shards(out: store.Location, written: list[dict]) -> None:
    """Shards of an earlier, larger run that this run did not rewrite."""
    names = {row["shard"] for row in written}
    for split in SPLITS:
        for path in store.glob(store.join(out, f"{split}-*.tar")):
            if store.name(path) not in names:
                log.info("shards: removing stale %s from an earlier run", path)
                store.remove(path)


@stage_engine
def run(config: ShardsConfig) -> int:
    """Dedupe, shuffle, split and write the training shards, their manifests and the report."""
    started = time.monotonic()
    check_config(config)
    remove_taken_down = consent.prepare(config)  # reads --takedown lists: bad lines stop us now
    store.check_reachable(config.workdir)
    raw_shards, raw_bytes = discover_raw_shards(config)
    out = config.path("data/shards")
    # Files that tasks hand to one another live in `work`, beside the shards (on the store when
    # the workdir is one); files only this process reads and writes live in `local_work`.
    # Kept after a failure, so that a rerun redoes only the unfinished scans (see scan_all).
    work = str(store.join(out, ".work"))
    local_work = Path(tempfile.mkdtemp(prefix="wit-shards-")) if store.is_url(work) \
        else Path(work)
    buckets = bucket_count(raw_bytes, config.memory_budget_mb)
    settings = ScatterSettings(work, buckets, config.seed, config.val_fraction)
    manifests = config.path("manifests")
    tally = Tally()
    finished = finished_scans(raw_shards, settings)
    prepare_work(settings, set(finished))
    try:
        sources = dataset_summary.SourceCounter(
            dataset_summary.selection_file(store.join(manifests, "selection.parquet")),
            local_work / "sources", spill.rows_within(config.memory_budget_mb))
        pieces = scan_all(config, raw_shards, settings, finished, tally, sources)
        find_duplicates(config, work, local_work, pieces, settings, tally, sources)
        tally.per_source = sources.counts()
        written = write_training_shards(config, work, out, tally)
        if sum(tally.per_split.values()) != tally.samples_read - sum(tally.per_dedup_kind.values()):
            raise RuntimeError(f"shards: {sum(tally.per_split.values())} samples written, but "
                               f"{tally.samples_read} read less {tally.per_dedup_kind} removed")
        remove_stale_shards(out, written)
        store.write_parquet(store.join(manifests, "shards.parquet"),
                            pa.Table.from_pylist(written, schema=schemas.SHARDS))
        store.put_file(local_work / "dedup.parquet", store.join(manifests, "dedup.parquet"))
        summary = dataset_summary.summarize(config, tally, written, raw_shards, raw_bytes,
                                            buckets)
        store.write_json(store.join(manifests, "dataset.json"), summary)
        crawl_stats = dataset_summary.read_json_if_present(
            store.join(manifests, "crawl_stats.json"))
        card.write_sizes(out, written, crawl_stats.get("additional_columns", []))
        card.write_card(out, summary, crawl_stats)
        summary = remove_taken_down()  # recorded removals, --takedown, --recheck-optout
        if config.report:
            from wit_builder.shards import report

            report.write_report(config, summary, kept_index(pieces, local_work, config.seed),
                                written)
        store.remove_tree(work)
    finally:
        if local_work != Path(work):
            shutil.rmtree(local_work, ignore_errors=True)
    # dataset.json holds no timing (the same inputs give the same file): the stage's own go here.
    timing = {"seconds": round(time.monotonic() - started, 2), "cpu_seconds": cpu.stage_seconds()}
    store.write_json(store.join(manifests, "shards_stats.json"), timing)
    log.info("shards: %d train + %d val samples in %d shards; %d duplicates, %d skipped (%.1f s, "
             "%.1f CPU s)", summary["totals"]["train"], summary["totals"]["val"], len(written),
             summary["totals"]["duplicates"], summary["totals"]["skipped"], timing["seconds"],
             timing["cpu_seconds"] or 0.0)
    return 0
