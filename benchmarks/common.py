"""Small helpers shared by the benchmark scripts: tables, memory readings, a queries file from a
word list."""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table (so it pastes into BENCHMARKS.md as it is)."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [max(len(str(c)), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its waited-for children), in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def write_queries(words_file: Path, path: Path) -> int:
    """Every lower-case word of the word list (possessive forms aside) as one query."""
    words = sorted({line.strip().lower() for line in words_file.read_text("utf-8").splitlines()
                    if line.strip().isalpha()})
    table = pa.table({"query_id": pa.array(range(len(words)), pa.int32()), "query": words,
                      "source": ["wordlist"] * len(words), "count": pa.array([0] * len(words),
                                                                              pa.int64()),
                      "pmi": pa.array([0.0] * len(words))})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return len(words)
