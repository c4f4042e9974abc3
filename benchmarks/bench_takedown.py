"""A takedown of one URL on written training shards: `wit takedown` (the product path: the
shards' index read from the tars the first time, kept in data/shards/.index/ after; one shard
rewritten) against what a user does without it, a `wit shards --takedown` rebuild of every
shard. Rounds interleave the three (cold index, kept index, rebuild), each taking down a new URL;
medians printed.

    .venv/bin/python benchmarks/bench_takedown.py --raw-shards 4 --per-shard 250 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from common import print_table  # noqa: E402


def timed(function) -> float:
    started = time.monotonic()
    function()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-shards", type=int, default=4)
    parser.add_argument("--per-shard", type=int, default=250)
    parser.add_argument("--samples-per-shard", type=int, default=100)
    parser.add_argument("--side", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.INFO)

    from support.removal_data import samples
    from support.shards_data import build_raw_dataset
    from wit_builder.cli import main as wit

    workdir = Path(tempfile.mkdtemp(prefix="bench-takedown-"))
    try:
        build_raw_dataset(workdir, shards=args.raw_shards, per_shard=args.per_shard,
                          side=args.side, noise=True)
        options = ["--workdir", str(workdir), "--workers", "1"]
        shard_options = ["--samples-per-shard", str(args.samples_per_shard), "--no-report"]
        assert wit(["shards", *options, *shard_options]) == 0
        folder = workdir / "data" / "shards"
        urls = iter(sorted({sample["url"] for sample in samples(folder).values()}))
        shards = len(list(folder.glob("*.tar")))
        image_mb = sum(tar.stat().st_size for tar in folder.glob("*.tar")) / 2**20
        times: dict[str, list[float]] = {"cold": [], "kept": [], "rebuild": []}
        for round_number in range(args.rounds):
            for kind in times:
                listing = workdir / f"list-{round_number}-{kind}.txt"
                url = next(urls)
                listing.write_text(url + "\n")
                if kind == "cold":
                    shutil.rmtree(folder / ".index", ignore_errors=True)
                command = ["shards", *options, *shard_options, "--takedown", str(listing)] \
                    if kind == "rebuild" else ["takedown", *options, str(listing)]
                codes: list[int] = []
                times[kind].append(timed(lambda: codes.append(wit(command))))
                # a failed run or one that took nothing down is no takedown to time
                assert codes == [0], f"wit {command[0]} exited {codes}"
                assert url not in {sample["url"] for sample in samples(folder).values()}, url
        kept = len(samples(folder))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    names = {"cold": "wit takedown, index read from the tars",
             "kept": "wit takedown, index kept in .index/",
             "rebuild": "wit shards --takedown (every shard rebuilt)"}
    cold = statistics.median(times["cold"])
    rows = [[names[kind], f"{statistics.median(values):.2f}",
             " / ".join(f"{value:.2f}" for value in values),
             f"{statistics.median(times['rebuild']) / statistics.median(values):.1f}x"]
            for kind, values in times.items()]
    print_table(f"Takedown of one URL: {shards} training shards, {kept:,} samples, "
                f"{image_mb:.0f} MB (cold index median {cold:.2f} s)",
                ["path", "median s", "runs (s)", "rebuild / this"], rows)


if __name__ == "__main__":
    main()
