"""Query builder speed: `wit queries` on a synthetic multistream dump against plain decompression
(`bzip2 -dc`, and `lbzip2 -dc -n 2`: the Debian package lbzip2 is required, the script stops
without it), in MB of XML per second of wall time and per CPU-second; the two bz2 decoders a
worker can use (Python's bz2 and indexed_bzip2 on one thread) over the same partitions; where
`wit queries`'s CPU goes (counting workers, bigram-reduce workers, main process); and peak memory
on the dump and on a dump 4x smaller (it should stay flat). Every row shows the load average before it ran: on a shared
machine wall-clock figures move with it, per-CPU-second figures much less.

    .venv/bin/python benchmarks/bench_queries.py --xml-mb 200 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from wit_builder.queries.counts import compiled_available  # noqa: E402
from wit_builder.synthweb import wiki  # noqa: E402
from wit_builder.queries.wikipedia import reader  # noqa: E402
from wit_builder.queries.wikipedia.reader import decompressed, plan_dump  # noqa: E402

# Of the benchmark dump at the demo's text sizes (redirects and other pages included).
XML_BYTES_PER_ARTICLE = 6_400


def make_dump(folder: Path, xml_mb: float) -> dict:
    """A multistream dump + index of about `xml_mb` MB of XML (generated once, then reused)."""
    marker = folder / "dump.json"
    if marker.exists():
        return json.loads(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    articles = max(100, int(xml_mb * 1e6 / XML_BYTES_PER_ARTICLE))
    made = wiki.write_benchmark_dump(folder, articles)
    marker.write_text(json.dumps(made))
    return made


def load() -> float:
    return round(os.getloadavg()[0], 1)


def timed_command(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds `command` takes, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_queries(dump: dict, workers: int, workdir: Path) -> tuple[float, dict]:
    """Wall seconds of `wit queries` with `workers` workers, and its stats.json."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "empty.toml"
    config.write_text("")
    command = [sys.executable, "-m", "wit_builder.cli", "--config", str(config), "queries",
               "--workdir", str(workdir), "--wiki", dump["dump"], "--index", dump["index"],
               "--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    return seconds, json.loads((workdir / "queries" / "stats.json").read_text())


def decoder_rows(dump: dict, mb: float) -> list[list]:
    """Python's bz2 and indexed_bzip2 (one thread each) decompressing every partition of the
    dump in this process, as a `wit queries` worker does."""
    partitions = plan_dump(dump["dump"], dump["index"]).partitions
    rows = []
    decoders = [("Python bz2, 1 thread", False)]
    if reader.indexed_bzip2 is not None:  # without it the "fast" path is Python's bz2 again
        decoders.append(("indexed_bzip2, 1 thread", True))
    for name, fast in decoders:
        before = load()
        started, cpu = time.perf_counter(), time.process_time()
        for part in partitions:
            for _ in decompressed(part.path, part.start, part.end, fast_bz2=fast):
                pass
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        rows.append([name, 1, round(mb / seconds, 1), round(seconds, 1), round(mb / cpu, 1), "-",
                     "-", before])
    return rows


def cpu_breakdown(workers: int, cpu: dict, mb: float) -> list:
    return [workers, *(round(1000 * cpu[key] / mb, 1)
                       for key in ("count_workers", "reduce_workers", "main", "total"))]


def peak_mb(stats: dict) -> float:
    memory = stats["peak_rss_mb"]
    return max(memory["main"], memory["worker_max"])


def require_lbzip2() -> None:
    """The target is a fraction of lbzip2's throughput: without it the table means nothing."""
    if shutil.which("lbzip2") is None:
        sys.exit("bench_queries: lbzip2 is not installed, and the benchmark's target is measured "
                 "against it: apt-get install lbzip2 (Debian), then run it again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xml-mb", type=float, default=200, help="MB of XML of the large dump")
    parser.add_argument("--workers", type=int, default=2, help="most workers measured")
    parser.add_argument("--dir", default="", help="where dumps are generated and kept "
                        "(default: a temporary directory, removed after)")
    args = parser.parse_args()
    require_lbzip2()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-queries-"))
    try:
        benchmark(root, args.xml_mb, args.workers)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


def benchmark(root: Path, xml_mb: float, workers: int) -> None:
    small = make_dump(root / "small", xml_mb / 4)
    large = make_dump(root / "large", xml_mb)
    mb = large["xml_bytes"] / 1e6
    rows = []
    before = load()
    seconds, cpu = timed_command(["bzip2", "-dc", large["dump"]])
    rows.append(["bzip2 -dc", 1, round(mb / seconds, 1), round(seconds, 1), round(mb / cpu, 1),
                 "-", "-", before])
    before = load()
    lbzip2, cpu = timed_command(["lbzip2", "-dc", "-n", str(workers), large["dump"]])
    rows.append([f"lbzip2 -dc -n {workers}", workers, round(mb / lbzip2, 1),
                 round(lbzip2, 1), round(mb / cpu, 1), "-", "-", before])
    rows.extend(decoder_rows(large, mb))
    if not compiled_available():
        print("the compiled hot loop is not built (pip install -e .): wit queries runs in Python")
    results = {}
    for count in sorted({1, workers}):
        before = load()
        seconds, stats = run_queries(large, count, root / f"run-{count}")
        results[count] = (seconds, stats)
        rows.append([f"wit queries --workers {count}", count, round(mb / seconds, 1),
                     round(seconds, 1), round(mb / stats["cpu_seconds"]["total"], 1),
                     round(peak_mb(stats), 1), round(mb / stats["count_seconds"], 1), before])
    print_table(f"Query builder on a multistream dump of {mb:,.0f} MB of XML "
                f"({large['pages']:,} pages, {os.cpu_count()} cores)",
                ["tool", "workers", "MB/s of XML", "seconds", "MB per CPU-second", "peak RSS MB",
                 "MB/s to end of counting", "load before"], rows)
    print_table("Where wit queries's CPU goes (ms of CPU per MB of XML)",
                ["workers", "counting workers", "bigram-reduce workers", "main process", "total"],
                [cpu_breakdown(count, stats["cpu_seconds"], mb)
                 for count, (_, stats) in results.items()])
    small_seconds, small_stats = run_queries(small, workers, root / "run-small")
    small_mb = small["xml_bytes"] / 1e6
    large_peak = peak_mb(results[workers][1])
    print_table(f"Peak memory as the dump grows ({workers} workers)",
                ["dump MB of XML", "seconds", "peak RSS MB (main)", "peak RSS MB (worker)"],
                [[round(small_mb), round(small_seconds, 1), small_stats["peak_rss_mb"]["main"],
                  small_stats["peak_rss_mb"]["worker_max"]],
                 [round(mb), round(results[workers][0], 1),
                  results[workers][1]["peak_rss_mb"]["main"],
                  results[workers][1]["peak_rss_mb"]["worker_max"]]])
    print(f"\npeak RSS ratio (large / small dump): {large_peak / peak_mb(small_stats):.2f}")
    if lbzip2:
        ratio = lbzip2 / results[workers][0]
        print(f"wit queries ({workers} workers) throughput / lbzip2 -n {workers}: {ratio:.0%} "
              f"(target: 80%); {workers} workers run {results[1][0] / results[workers][0]:.2f}x "
              f"as fast as 1")
    print("MB per CPU-second does not depend on what else the machine runs: times the cores "
          "given to it, it is the throughput a dedicated machine reaches.")


if __name__ == "__main__":
    main()
