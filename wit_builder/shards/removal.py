"""Removing samples from training shards already written (takedown lists, opt-outs re-checked),
by rewriting only the shards that hold them.

A removal reads every training shard's `.json` members once (`read_index`: uid, image URL,
page URL of each sample), rewrites each shard that holds a chosen sample without it (atomically;
the kept samples' tar blocks are the same bytes, `core/tarsamples.py` writes a sample one way),
and updates what describes the shards: `manifests/shards.parquet` (samples, bytes, sha256 of the
rewritten shards), `sizes.json`, `_info.json`, `manifests/dataset.json` and the dataset card.
What was removed goes to `manifests/takedown.parquet` (schema REMOVALS), which every later
removal, and every `wit shards` rebuild, applies again: a removed sample stays removed.
Shards that hold no chosen sample are not opened for writing: their bytes do not change.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from wit_builder.core import atomic, schemas, store
from wit_builder.core.config import StageConfig
from wit_builder.core.engine import map_partitions
from wit_builder.core.options import WitError
from wit_builder.core.tarsamples import END_OF_ARCHIVE, read_samples, sample_block
from wit_builder.shards import card

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
INDEX = pa.schema([("shard", pa.string()), ("key", pa.string()), ("uid", pa.string()),
                   ("url", pa.string()), ("page_url", pa.string())])
# What a removal decides: {uid: reason}, reasons from schemas.REMOVAL_REASONS.
Chooser = Callable[[pa.Table], dict[str, str]]


@dataclass(frozen=True)
class Rewrite:
    path: str
    drop: frozenset[str]  # keys of the samples removed


def training_shards(out: store.Location) -> list[str]:
    return [str(path) for split in SPLITS
            for path in sorted(store.glob(store.join(out, f"{split}-*.tar")))]


def index_row(path: str, key: str, members: dict[str, bytes], problems: Counter) -> dict | None:
    try:
        meta = json.loads(members["json"])
    except (KeyError, ValueError):
        problems["bad_json"] += 1
        return None
    return {"shard": store.name(path), "key": key, "uid": meta.get("uid"),
            "url": meta.get("url"), "page_url": meta.get("page_url")}


def check_intact(path: str, problems: Counter) -> None:
    if problems:
        raise WitError(f"training shard '{path}' is damaged ({dict(problems)}); rebuild the "
                       f"shards with `wit shards` before removing samples")


def cache_path(path: str) -> store.Location:
    """Where a shard's index is kept: `.index/NAME.parquet` beside the shards."""
    folder = path[:len(path) - len(store.name(path))].rstrip("/\\") or "."
    return store.join(folder, ".index", f"{store.name(path)}.parquet")


def write_cache(path: str, table: pa.Table) -> None:
    """Keep `table` as the index of the shard at `path` as the file is now."""
    signature = json.dumps(store.file_signature(path)).encode()
    store.write_parquet(cache_path(path), table.replace_schema_metadata({"signature": signature}))


def shard_index(path: str) -> pa.Table:
    """The samples of one training shard (rows of INDEX), from its kept index while the shard's
    size and modification time are those recorded with it, else read from the tar (and kept);
    a WitError when the shard is damaged (a rewrite would lose the samples past the damage)."""
    cache = cache_path(path)
    if store.exists(cache):
        try:
            table = store.read_parquet(cache)
            if (table.schema.metadata or {}).get(b"signature") == \
                    json.dumps(store.file_signature(path)).encode():
                return table.replace_schema_metadata(None)
        except (OSError, pa.ArrowException, ValueError):
            pass  # read again below
    problems: Counter = Counter()
    rows = []
    with store.open(path, "rb") as stream:
        for key, members in read_samples(stream, problems, path):
            if (row := index_row(path, key, members, problems)) is not None:
                rows.append(row)
    check_intact(path, problems)
    table = pa.Table.from_pylist(rows, schema=INDEX)
    write_cache(path, table)
    return table


def read_index(out: store.Location, desc: str) -> pa.Table:
    """Every sample of the training shards under `out` (INDEX rows)."""
    shards = training_shards(out)
    if not shards:
        raise WitError(f"no training shards (train-*.tar, val-*.tar) in '{out}'; run "
                       f"`wit shards` first or check --workdir")
    present = {store.name(path) for path in shards}
    for cache in store.glob(store.join(out, ".index", "*.parquet")):
        if store.name(cache).removesuffix(".parquet") not in present:
            store.remove(cache)  # a shard an earlier, larger build wrote
    return pa.concat_tables([INDEX.empty_table(),
                             *map_partitions(shard_index, shards, desc=desc)])


def rewrite_shard(job: Rewrite) -> dict:
    """The shard without the samples `job.drop`, written in place atomically (and its index
    kept); its manifest row."""
    problems: Counter = Counter()
    rows = []
    with store.atomic_path(job.path) as temporary:
        with store.open(job.path, "rb") as source, open(temporary, "wb") as out:
            for key, members in read_samples(source, problems, job.path):
                if key not in job.drop:
                    out.write(sample_block(key, members))
                    rows.append(index_row(job.path, key, members, problems))
            out.write(END_OF_ARCHIVE)
        check_intact(job.path, problems)  # read_index found it intact: it changed since
        size, digest = temporary.stat().st_size, atomic.sha256_file(temporary)
    write_cache(job.path, pa.Table.from_pylist(rows, schema=INDEX))
    name = store.name(job.path)
    return {"shard": name, "split": name.split("-")[0], "samples": len(rows), "bytes": size,
            "sha256": digest}


def recorded_removals(manifests: store.Location) -> pa.Table:
    """manifests/takedown.parquet (REMOVALS rows), empty when there is none."""
    path = store.join(manifests, "takedown.parquet")
    if not store.exists(path):
        return schemas.REMOVALS.empty_table()
    return store.read_parquet(path).select(schemas.REMOVALS.names).cast(schemas.REMOVALS)


def recorded_chooser(manifests: store.Location) -> Chooser:
    """The samples removed before (manifests/takedown.parquet), with their recorded reasons."""
    recorded = recorded_removals(manifests)
    reasons = dict(zip(recorded["uid"].to_pylist(), recorded["reason"].to_pylist()))
    return lambda index: {uid: reasons[uid] for uid in index["uid"].to_pylist() if uid in reasons}


def remove_samples(config: StageConfig, choosers: list[Chooser], what: str) -> Counter:
    """Apply the recorded removals, then each chooser in turn (a sample removed by one is not
    shown to the next), to the training shards of `config.workdir`; removals by reason."""
    out, manifests = config.path("data/shards"), config.path("manifests")
    index = read_index(out, f"{what}: read shards")
    chosen: dict[str, str] = {}
    for choose in [recorded_chooser(manifests), *choosers]:
        remaining = index.filter(pa.array([uid not in chosen for uid in index["uid"].to_pylist()],
                                          pa.bool_()))
        chosen.update(choose(remaining))
    removed = [row for row in index.to_pylist() if row["uid"] in chosen]
    reasons = Counter(chosen[row["uid"]] for row in removed)
    drops: dict[str, set[str]] = {}
    for row in removed:
        drops.setdefault(row["shard"], set()).add(row["key"])
        log.debug("%s: removing %s (%s) from %s: %s", what, row["uid"], row["url"], row["shard"],
                  chosen[row["uid"]])
    rewritten = []
    if removed:
        # Recorded first: should the rewrites be cut short, the rerun finds them there.
        record_removals(manifests, removed, chosen)
        jobs = [Rewrite(str(store.join(out, shard)), frozenset(keys))
                for shard, keys in sorted(drops.items())]
        rewritten = map_partitions(rewrite_shard, jobs, desc=f"{what}: rewrite shards")
        log.info("%s: removed %d samples (%s) by rewriting %d of %d training shards; recorded "
                 "in %s", what, len(removed), ", ".join(f"{reason}: {count}" for reason, count
                                                       in sorted(reasons.items())),
                 len(rewritten), len(set(index["shard"].to_pylist())),
                 store.join(manifests, "takedown.parquet"))
    else:
        log.info("%s: no sample of the %d in the training shards is to be removed", what,
                 index.num_rows)
    stale = stale_rows(out, manifests, index, set(drops))
    if rewritten or stale:
        update_manifests(config, rewritten + stale)
    return reasons


def record_removals(manifests: store.Location, removed: list[dict],
                    chosen: dict[str, str]) -> None:
    """takedown.parquet: the earlier removals and these (a uid once, its latest removal)."""
    removals = pa.Table.from_pylist(
        [{"uid": row["uid"], "url": row["url"], "shard": row["shard"],
          "reason": chosen[row["uid"]]} for row in removed], schema=schemas.REMOVALS)
    earlier = recorded_removals(manifests)
    again = set(removals["uid"].to_pylist())
    earlier = earlier.filter(pa.array([uid not in again for uid in earlier["uid"].to_pylist()],
                                      pa.bool_()))
    store.write_parquet(store.join(manifests, "takedown.parquet"),
                        pa.concat_tables([earlier, removals]))


def stale_rows(out: store.Location, manifests: store.Location, index: pa.Table,
               rewriting: set[str]) -> list[dict]:
    """New manifest rows of the shards (other than those `rewriting`) whose row in
    shards.parquet does not count the samples they hold: a removal cut short after its
    rewrites, finished by the rerun."""
    counts = Counter(index["shard"].to_pylist())
    rows = []
    for row in store.read_parquet(store.join(manifests, "shards.parquet")).to_pylist():
        if row["shard"] not in rewriting and row["samples"] != counts.get(row["shard"], 0):
            path = store.join(out, row["shard"])
            log.info("removal: %s holds %d samples, not the %d shards.parquet says: its row is "
                     "brought up to date", row["shard"], counts.get(row["shard"], 0),
                     row["samples"])
            rows.append({**row, "samples": counts.get(row["shard"], 0),
                         "bytes": store.file_signature(path)[0], "sha256": store.sha256(path)})
    return rows


def update_manifests(config: StageConfig, changed: list[dict]) -> None:
    """shards.parquet, sizes.json, _info.json, dataset.json and the card, after the shards of
    the rows `changed` were rewritten."""
    out, manifests = config.path("data/shards"), config.path("manifests")
    new_rows = {row["shard"]: row for row in changed}
    shards_path = store.join(manifests, "shards.parquet")
    rows = [new_rows.get(row["shard"], row) for row in store.read_parquet(shards_path).to_pylist()]
    store.write_parquet(shards_path, pa.Table.from_pylist(rows, schema=schemas.SHARDS))
    crawl_stats = card_crawl_stats(manifests)
    card.write_sizes(out, rows, crawl_stats.get("additional_columns", []))
    path = store.join(manifests, "dataset.json")
    if not store.exists(path):
        log.warning("removal: %s is missing: dataset.json and the card not updated", path)
        return
    summary = store.read_json(path)
    totals = summary.setdefault("totals", {})
    for split in SPLITS:
        totals[split] = sum(row["samples"] for row in rows if row["split"] == split)
    totals["samples"] = totals["train"] + totals["val"]
    totals["bytes"] = sum(row["bytes"] for row in rows)
    per_reason = Counter(recorded_removals(manifests)["reason"].to_pylist())
    summary["per_removal_reason"] = dict(sorted(per_reason.items()))
    totals["removed"] = sum(per_reason.values())
    store.write_json(path, summary)
    card.write_card(out, summary, crawl_stats)


def card_crawl_stats(manifests: store.Location) -> dict:
    path = store.join(manifests, "crawl_stats.json")
    return store.read_json(path) if store.exists(path) else {}
