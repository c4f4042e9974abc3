"""The queries `wit queries` makes of real English Wikipedia: the enwiki excerpt gensim 4.4.0 ships
for its tests (106 articles, fetched from PyPI once into the real-material cache, see
tests/support/realdata.py), with thresholds scaled down to its size. Prints the top 50 of each
source (unigrams by count, bigrams by PMI, titles: those not already a unigram or bigram)
side by side, and the checks
of the tokenisation rules (README "Tokenisation") on the top 500 unigrams.

    .venv/bin/python benchmarks/wiki_excerpt_queries.py [--top 50]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent / "tests")]
from common import print_table  # noqa: E402
from support.realdata import fetch_sdist  # noqa: E402

from wit_builder.cli import main  # noqa: E402

GENSIM = ("gensim", "4.4.0")
EXCERPT = ("gensim/test/test_data/"
           "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
OPTIONS = ["--min-count", "5", "--bigram-min-count", "5", "--title-min-links", "1",
           "--workers", "1"]
NUMBER = re.compile(r"[0-9][0-9.,]*")


def build_queries(folder: Path) -> tuple[list[dict], dict]:
    """queries.parquet's rows and stats.json of `wit queries` on the excerpt."""
    import pyarrow.parquet as pq

    dump = folder / "enwiki-excerpt-pages-articles.xml.bz2"
    shutil.copyfile(fetch_sdist(*GENSIM) / EXCERPT, dump)
    if main(["queries", "--workdir", str(folder), "--out", "queries", "--wiki", str(dump),
             *OPTIONS]) != 0:
        raise SystemExit("wit queries failed")
    rows = pq.read_table(folder / "queries" / "queries.parquet").to_pylist()
    return rows, json.loads((folder / "queries" / "stats.json").read_text())


def ranked(rows: list[dict], source: str) -> list[dict]:
    """A source's queries, best first: PMI for bigrams, else the count."""
    chosen = [row for row in rows if row["source"] == source]
    return sorted(chosen, key=lambda row: (-(row["pmi"] if source == "bigram" else
                                             row["count"] or 0), row["query"]))


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows, stats = build_queries(Path(folder))
    unigrams, bigrams, titles = (ranked(rows, source) for source in ("unigram", "bigram", "title"))
    print(f"enwiki excerpt of {GENSIM[0]} {GENSIM[1]}: {stats['articles_read']} articles, "
          f"{stats['tokens_read']:,} tokens, rules {stats.get('tokenization', 'unversioned')}, "
          f"queries per source {stats['queries_per_source']}")

    def cell(items: list[dict], rank: int, pmi: bool = False) -> str:
        if rank >= len(items):
            return ""
        row = items[rank]
        if row["count"] is None:  # a title that is no unigram or bigram of the dump
            return row["query"]
        return f"{row['query']} ({row['count']:,}" + (f", {row['pmi']:.1f})" if pmi else ")")

    print_table(f"Top {args.top} queries of each source (count; PMI for bigrams)",
                ["rank", "unigram", "bigram", "title"],
                [[rank + 1, cell(unigrams, rank), cell(bigrams, rank, pmi=True),
                  cell(titles, rank)] for rank in range(args.top)])
    top = [row["query"] for row in unigrams[:500]]
    print_table("Rules on the top 500 unigrams and all bigrams", ["check", "found"], [
        ["single letters", " ".join(word for word in top if len(word) == 1)],
        ["numbers", " ".join(word for word in top if NUMBER.fullmatch(word))],
        ["bigrams of two numbers", sum(all(NUMBER.fullmatch(word) for word in row["query"].split())
                                       for row in bigrams)],
        ["possessives ('s)", " ".join(word for word in top if word.endswith("'s")) or "none"],
    ])


if __name__ == "__main__":
    main_benchmark()
