"""Counts of a download: the summary both backends return, the progress line and the final
table of statuses."""

from __future__ import annotations

from collections import Counter

from wit_builder.core import schemas


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


def status_table(stats: dict) -> str:
    """The final table of statuses, one line each, with shares of the attempted URLs."""
    attempted = max(stats["attempted"], 1)
    lines = [f"{'status':<16} {'count':>9} {'share':>7}"]
    for status, count in stats["statuses"].items():
        if count:
            lines.append(f"{status:<16} {count:>9,} {count / attempted:>7.1%}")
    lines.append(f"{'total':<16} {stats['attempted']:>9,}   in {stats['seconds']:.1f}s "
                 f"({stats['shards']} shards, {stats['shards_skipped']} already done)")
    return "\n".join(lines)
