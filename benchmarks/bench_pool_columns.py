"""What `--save-additional-columns` costs the crawl's filter + match step on a pool: the step the
product runs per partition (`crawl.run.process_partition`: read the pool, clean, match, detect
the language, write candidates and matches) on a LAION-like parquet pool, without additional
columns and with five (LICENSE, similarity, NSFW, punsafe, WIDTH).

    .venv/bin/python benchmarks/bench_pool_columns.py [--rows 50000] [--rounds 5]
        [--before TREE] [--tree TREE]

`--before TREE` times the same step, without additional columns, with the witbuilder of another
checkout (e.g. `git worktree add /tmp/before COMMIT`, its C extensions built): the cost of the
change itself on the path that carries no columns. Compare it with a checkout made the same way
(`--tree`, default this repository, whose working tree may hold uncommitted work), e.g.
`git archive HEAD` and `git archive HEAD~1` each unpacked, with the built extensions copied in.

Each timing is a fresh process (`--time-one`) that warms the matcher and the language detector on
a small partition, then times one partition of `--rows` rows (CPU seconds of the process, and
wall seconds); contenders alternate, round after round, so the load of a shared machine falls on
all of them alike, and the table gives each one's median and its ratio to the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
COLUMNS = {"LICENSE": pa.string(), "similarity": pa.float64(), "NSFW": pa.string(),
           "punsafe": pa.float32(), "WIDTH": pa.int64()}
WARM_ROWS = 2000


def write_pool(path: Path, rows: int, seed: int) -> None:
    """A LAION-like pool: synthetic-web captions (English, each names a colour and a shape) and
    LAION's metadata columns (most licences missing)."""
    from wit_builder.synthweb.render import caption, sample_scene

    rng = random.Random(seed)
    captions = [caption(sample_scene(rng), rng) for _ in range(rows)]
    table = pa.table({
        "url": [f"http://img{i % 97}.example/{seed}/{i}.jpg" for i in range(rows)],
        "caption": captions,
        "LICENSE": pa.array([None if i % 7 else "https://creativecommons.org/licenses/by/4.0/"
                             for i in range(rows)], pa.string()),
        "similarity": [round(rng.uniform(0.28, 0.45), 6) for _ in range(rows)],
        "NSFW": [rng.choice(["UNLIKELY", "UNLIKELY", "UNSURE", "NSFW"]) for _ in range(rows)],
        "punsafe": pa.array([rng.random() for _ in range(rows)], pa.float32()),
        "WIDTH": [rng.randint(64, 4000) for _ in range(rows)]})
    pq.write_table(table, path, row_group_size=10_000)


def write_queries(path: Path, pool: Path) -> None:
    """Every word of the pool's captions is a query (each caption matches several)."""
    words = sorted({word for text in pq.read_table(pool, columns=["caption"])["caption"]
                    .to_pylist() for word in text.lower().replace(",", " ").split()
                    if word.isalpha()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(words)), pa.int32()),
                             "query": words}), path)


def time_one(data: Path, kind: str) -> dict:
    """In this process: warm up on the small pool, then time the large one (`kind`: none |
    columns)."""
    from wit_builder.cli import load_config
    from wit_builder.core import atomic
    from wit_builder.crawl import run

    work = Path(tempfile.mkdtemp(prefix="wit-bench-columns-"))  # removed by the parent
    config = load_config("crawl", None, {"workdir": str(work)})
    queries = data / "queries" / "queries.parquet"
    settings = run.partition_settings(config, queries, atomic.sha256_file(queries))
    if kind == "columns":
        settings = dataclasses.replace(settings, columns=dataclasses.replace(
            settings.columns, additional=pa.schema(list(COLUMNS.items()))))
    run.process_partition(run.Partition(1, "pool", str(data / "warm.parquet"), "pool"), settings)
    cpu, wall = time.process_time(), time.perf_counter()
    result = run.process_partition(run.Partition(0, "pool", str(data / "pool.parquet"), "pool"),
                                   settings)
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
            "candidates": result["candidates"], "matched": result["matched"]}


def measure(data: Path, tree: Path, kind: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TMPDIR": str(data)}
    done = subprocess.run([sys.executable, __file__, "--time-one", kind, "--data", str(data)],
                          env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another checkout, timed without columns")
    parser.add_argument("--tree", type=Path, default=REPO, help="the checkout timed")
    parser.add_argument("--time-one", choices=["none", "columns"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_one:
        print(json.dumps(time_one(args.data, args.time_one)))
        return
    with tempfile.TemporaryDirectory(prefix="wit-bench-columns-") as folder:
        compare(Path(folder), args)


def compare(data: Path, args: argparse.Namespace) -> None:
    """Build the pools and the queries in `data`, time the contenders, print the table."""
    write_pool(data / "pool.parquet", args.rows, seed=1)
    write_pool(data / "warm.parquet", WARM_ROWS, seed=2)
    write_queries(data / "queries" / "queries.parquet", data / "pool.parquet")
    contenders = [("no additional columns", args.tree, "none"),
                  ("5 additional columns", args.tree, "columns")]
    if args.before:
        contenders.insert(1, (f"no additional columns, {args.before}", args.before, "none"))
    times: dict[str, list[dict]] = {name: [] for name, _, _ in contenders}
    for _ in range(args.rounds):
        for name, tree, kind in contenders:
            times[name].append(measure(data, tree, kind))
    first = times[contenders[0][0]]
    rows = []
    for name, _, _ in contenders:
        cpu = statistics.median(t["cpu"] for t in times[name])
        wall = statistics.median(t["wall"] for t in times[name])
        # each round's CPU against the first contender's in the same round: the load of the
        # moment cancels
        ratios = sorted(t["cpu"] / f["cpu"] for t, f in zip(times[name], first))
        rows.append([name, times[name][0]["matched"], round(cpu, 2), round(wall, 2),
                     f"{args.rows / cpu:,.0f}", f"{statistics.median(ratios):.3f}",
                     f"{ratios[0]:.2f}-{ratios[-1]:.2f}"])
    print_table(f"crawl filter + match of a {args.rows:,}-row parquet pool (medians of "
                f"{args.rounds} rounds, interleaved)",
                ["run", "matched", "CPU s", "wall s", "rows / CPU s",
                 "CPU / first's, same round", "range"], rows)


if __name__ == "__main__":
    main()
