"""`wit shards` speed and memory at 1x and 4x input: samples/s and peak RSS, against the naive
way (read every sample into memory, shuffle, write with webdataset's ShardWriter), on the same raw
shards (rendered JPEGs in the crawl's format). Each run is a fresh process, so peaks are its own.
`--index-samples N` adds the dedup search alone (dedup.py) on generated index files of N and 4N
entries, within the budget and held in one partition (as the in-memory search did).

    .venv/bin/python benchmarks/bench_shards.py --samples 1000 --memory-budget-mb 16
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from common import peak_rss_mb, print_table  # noqa: E402


def run_witbuilder(workdir: str, workers: int, budget: float) -> dict:
    from wit_builder.shards import run as shards
    from wit_builder.cli import load_config

    config = load_config("shards", None, {"workdir": workdir, "workers": workers,
                                          "memory_budget_mb": budget, "samples_per_shard": 1000,
                                          "report": False})
    shards.run(config)
    return json.loads((Path(workdir) / "manifests" / "dataset.json").read_text())["totals"]


def run_naive(workdir: str) -> dict:
    """Everything in memory: what a short script with webdataset does (no dedup)."""
    import webdataset as wds

    samples = []
    for path in sorted((Path(workdir) / "data" / "raw").glob("*.tar")):
        samples += [dict(sample) for sample in wds.WebDataset(str(path), shardshuffle=False)]
    random.Random(0).shuffle(samples)
    out = Path(workdir) / "naive"
    out.mkdir(exist_ok=True)
    with wds.ShardWriter(str(out / "train-%06d.tar"), maxcount=1000, verbose=0) as sink:
        for sample in samples:
            sink.write({key: value for key, value in sample.items() if key != "__url__"})
    return {"samples": len(samples)}


def measure(args: argparse.Namespace) -> None:
    """Child process: one run, then its time and peak memory as JSON on stdout."""
    started = time.monotonic()
    totals = run_naive(args.measure) if args.tool == "naive" else \
        run_witbuilder(args.measure, int(args.workers), float(args.memory_budget_mb))
    print(json.dumps({"seconds": time.monotonic() - started, "samples": totals["samples"],
                      "rss": peak_rss_mb()}))


def measure_dedup(args: argparse.Namespace) -> None:
    """Child process: the dedup search alone over index files; time, peak memory, partitions."""
    from wit_builder.shards import dedup

    pieces = json.loads((Path(args.dedup) / "pieces.json").read_text())
    plan = dedup.plan_dedup(Path(args.dedup) / "work", {int(Path(path).stem): rows
                                                         for path, rows in pieces},
                            4, float(args.memory_budget_mb))
    started = time.monotonic()
    stats = dedup.deduplicate(plan, [tuple(piece) for piece in pieces], progress=False)
    removed = sum(table.num_rows for table in dedup.removals(plan))
    print(json.dumps({"seconds": time.monotonic() - started, "rss": peak_rss_mb(),
                      "removed": removed, "partitions": stats.exact_partitions,
                      "rows": stats.largest_partition_rows}))


def generate_index(args: argparse.Namespace) -> None:
    """Child process: fake index files (exact, near and identical-hash copies) of one size."""
    from test_dedup import write_fake_index

    pieces = write_fake_index(Path(args.generate_index), args.samples, 4, per_shard=2000)
    (Path(args.generate_index) / "pieces.json").write_text(json.dumps(pieces))
    print(json.dumps({"samples": args.samples}))


def dedup_rows(index_samples: int, budget: float) -> list[list]:
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for scale in (1, 4):
            folder = str(Path(temporary) / f"x{scale}")
            child("--generate-index", folder, "--samples", str(index_samples * scale))
            for label, memory in (("within the budget", budget), ("one partition", 65536.0)):
                result = child("--dedup", folder, "--memory-budget-mb", str(memory))
                rows.append([f"{scale}x", f"{index_samples * scale:,}", label,
                             result["partitions"], f"{result['rows']:,}", result["removed"],
                             index_samples * scale / result["seconds"], result["rss"]])
    return rows


def generate(args: argparse.Namespace) -> None:
    """Child process: the raw shards of one input size; their counts as JSON on stdout."""
    from support.shards_data import build_raw_dataset

    raw = build_raw_dataset(Path(args.generate), shards=4 * args.scale,
                            per_shard=args.samples // 4, exact=args.samples // 50 * args.scale,
                            near=args.samples // 50 * args.scale, side=args.side, noise=True)
    print(json.dumps({"samples": len(raw.ok_uids), "image_mb": raw.image_bytes / 2**20}))


def child(*options: str) -> dict:
    """Run this script with `options` in a fresh process (Linux carries a parent's peak RSS across
    exec, so the parent stays small) and return the JSON it prints last."""
    output = subprocess.run([sys.executable, __file__, *options], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1000,
                        help="samples of the 1x input (0: only the dedup search)")
    parser.add_argument("--side", type=int, default=192, help="side of the rendered images")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-budget-mb", type=float, default=16.0)
    parser.add_argument("--index-samples", type=int, default=0,
                        help="also time the dedup search alone on N and 4N index entries")
    for hidden in ("--measure", "--generate", "--tool", "--dedup", "--generate-index"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args)
    if args.generate:
        return generate(args)
    if args.dedup:
        return measure_dedup(args)
    if args.generate_index:
        return generate_index(args)
    if args.index_samples:
        print_table(f"dedup search alone ({args.memory_budget_mb:g} MB budget, 1 process)",
                    ["input", "index entries", "memory", "exact partitions",
                     "most rows held", "removed", "entries/s", "peak RSS MB"],
                    dedup_rows(args.index_samples, args.memory_budget_mb))
    if args.samples <= 0:
        return
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for scale in (1, 4):
            workdir = str(Path(temporary) / f"x{scale}")
            raw = child("--generate", workdir, "--scale", str(scale), "--samples",
                        str(args.samples), "--side", str(args.side))
            for tool, workers in (("witbuilder", 1), ("witbuilder", args.workers), ("naive", 1)):
                result = child("--measure", workdir, "--tool", tool, "--workers", str(workers),
                               "--memory-budget-mb", str(args.memory_budget_mb))
                rows.append([f"{scale}x", f"{raw['samples']:,}", f"{raw['image_mb']:.0f}",
                             f"{tool} ({workers} worker{'s' if workers > 1 else ''})",
                             raw["samples"] / result["seconds"], result["rss"]])
    print_table(f"wit shards (memory budget {args.memory_budget_mb:g} MB per worker, "
                f"{args.side}px JPEGs)",
                ["input", "samples", "image MB", "tool", "samples/s", "peak RSS MB (main process)"],
                rows)


if __name__ == "__main__":
    main()
