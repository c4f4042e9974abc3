"""Counts of a download: the summary both backends return, the progress line and the final
table of statuses."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from wit_builder.core import schemas, store
from wit_builder.crawl.download import writer


def progress_postfix(statuses: Counter, seconds: float) -> dict:
    attempted = sum(statuses.values())
    return {"img/s": f"{statuses['ok'] / max(seconds, 1e-9):.0f}",
            "ok": f"{statuses['ok'] / max(attempted, 1):.0%}"}


def summary(statuses: Counter, shards: int, skipped: int, seconds: float, downloader: str
            ) -> dict:
    ordered = {status: statuses.get(status, 0) for status in schemas.CRAWL_STATUSES}
    return {"downloader": downloader, "shards": shards, "shards_skipped": skipped,
            "attempted": sum(statuses.values()), "stored": statuses.get("ok", 0),
            "statuses": ordered, "seconds": round(seconds, 2)}


FACES = pa.schema([schemas.CRAWL_MANIFEST.field("faces")])


def blur_counts(workdir: store.Location, shards: int) -> dict:
    """--blur-faces: the face boxes blurred and the stored images with at least one, summed over
    the `faces` column of the download's `shards` manifests, those a rerun skipped included (a
    manifest written before the column counts none)."""
    counts = Counter(dict.fromkeys(schemas.BLUR_COUNTS, 0))
    for index in range(shards):
        path = writer.manifest_path(workdir, index)
        counts.update(schemas.blur_counts(store.read_parquet(path, schema=FACES)["faces"]))
    return dict(counts)


def status_table(stats: dict) -> str:
    """The final table of statuses, one line each, with shares of the attempted URLs, then the
    faces blurred (--blur-faces)."""
    attempted = max(stats["attempted"], 1)
    lines = [f"{'status':<16} {'count':>9} {'share':>7}"]
    for status, count in stats["statuses"].items():
        if count:
            lines.append(f"{status:<16} {count:>9,} {count / attempted:>7.1%}")
    lines.append(f"{'total':<16} {stats['attempted']:>9,}   in {stats['seconds']:.1f}s "
                 f"({stats['shards']} shards, {stats['shards_skipped']} already done)")
    if "faces_blurred" in stats:
        lines.append(f"{'faces_blurred':<16} {stats['faces_blurred']:>9,}   in "
                     f"{stats['images_blurred']:,} of {stats['stored']:,} stored images")
    return "\n".join(lines)
