"""Compare two workdirs (e.g. `wit demo --size test` before and after a refactor): a digest of
every file under queries/, data/ and manifests/, timing fields aside. JSON keys named like
seconds/elapsed/peak/rss/started/mtime/cpu, nanosecond mtimes and the workdir's own path are
blanked; parquet columns named like them are dropped (rows and schema metadata compared); stats
files, the demo summary, plots and the matcher cache are listed but not compared.

    .venv/bin/python tools/compare_workdirs.py BEFORE_WORKDIR AFTER_WORKDIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import pyarrow.parquet as pq

TIMING = re.compile(r"second|elapsed|peak|rss|started|finished|mtime|cpu|per_sec|timing", re.I)
NOT_COMPARED = {"demo.json", "stats.json", "queries.automaton"}  # timings; a keyed cache
MTIME_NS = 10**18  # larger integers are file times in nanoseconds


def clean(value, root: str):
    """`value` with timing fields, file times and the workdir's path blanked."""
    if isinstance(value, dict):
        return {k: None if TIMING.search(k) else clean(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<workdir>")
    if isinstance(value, int) and value > MTIME_NS:
        return None
    return value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(path: Path, root: str) -> str:
    if path.name in NOT_COMPARED or path.suffix == ".png":
        return "(not compared)"
    if path.suffix == ".json":
        try:
            value = clean(json.loads(path.read_text()), root)
            return sha256(json.dumps(value, sort_keys=True).encode())
        except ValueError:
            pass
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        table = table.drop_columns([c for c in table.column_names if TIMING.search(c)])
        metadata = {k.decode(): v.decode(errors="replace")
                    for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
        return sha256(repr((table.to_pydict(), clean(metadata, root))).encode())
    if path.name == "report.html":  # it states the stage's seconds
        return sha256(re.sub(rb"[0-9.]+ ?s\b", b"", path.read_bytes()).replace(root.encode(), b""))
    return sha256(path.read_bytes())


def tree(root: Path) -> dict[str, str]:
    """Digest of every file under queries/, data/ (the generated synthetic web aside) and
    manifests/."""
    digests = {}
    for top in ("queries", "data", "manifests"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and "synthweb" not in path.parts:
                digests[str(path.relative_to(root))] = digest(path, str(root))
    return digests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = tree(args.before), tree(args.after)
    different = [k for k in sorted(before.keys() | after.keys()) if before.get(k) != after.get(k)]
    identical = sum(after.get(name) == value for name, value in before.items())
    print(f"{len(before)} vs {len(after)} files; identical: {identical}; "
          f"different: {len(different)}")
    for name in different:
        print("  DIFF", name, before.get(name, "-")[:16], after.get(name, "-")[:16])
    return 1 if different else 0


if __name__ == "__main__":
    raise SystemExit(main())
