"""`wit train` on a machine other processes keep busy: steps/s quiet and beside one CPU-bound
competitor (`yes > /dev/null`), with the thread count measured from the load (`--threads 0`, the
default) and fixed at every core (`--threads 2` on 2 cores: what 0 meant before).

Each run is the product's command (`python -m wit_builder.cli train`, the demo's `tiny-cnn`
preset by default, its default 2 data workers) on synthetic-web scenes; steps/s is the median of
its metrics.jsonl intervals after the first (warm-up). The four conditions are interleaved
round by round, so load from other processes on the machine falls on all of them; the table gives
the median of the rounds and the slowdown of each setting beside the competitor.

    .venv/bin/python benchmarks/bench_shared_machine.py [--rounds 3] [--steps 12] [--model tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from common import print_table  # noqa: E402
from support.trainer_data import write_shape_shards  # noqa: E402


def prepare(workdir: Path) -> Path:
    """Shards of synthetic-web scenes and a BPE trained once (each run then loads it)."""
    from trainer.data import expand_shards, read_captions
    from trainer.tokenizer import save_bpe, train_bpe

    write_shape_shards(workdir / "shards", shards=4, per_shard=256, size=96, scenes="synthweb")
    tokenizer = workdir / "tokenizer.json"
    urls = expand_shards("shards", workdir)
    save_bpe(train_bpe(read_captions(urls, 1000), 1000), tokenizer)
    return tokenizer


def steps_per_second(workdir: Path, tokenizer: Path, model: str, threads: int, steps: int,
                     competitor: bool, name: str) -> tuple[float, list[int]]:
    """Median steps/s of one `wit train` run after its first logged interval, and the thread
    counts it logged."""
    yes = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if competitor else None
    try:
        subprocess.run([sys.executable, "-m", "wit_builder.cli", "train", "--workdir",
                        str(workdir), "--model", model, "--train", "shards", "--name", name,
                        "--tokenizer", str(tokenizer), "--steps", str(steps), "--log-every", "2",
                        "--checkpoint-every", str(steps), "--threads", str(threads)],
                       check=True, capture_output=True, cwd=REPO)
    finally:
        if yes is not None:
            yes.kill()
            yes.wait()
    lines = (workdir / "runs" / name / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines][1:]
    batch = 64  # the tiny and tiny-cnn presets' batch size
    return (statistics.median(row["samples_per_s"] / batch for row in rows),
            sorted({row.get("threads", threads) for row in rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--model", default="tiny-cnn", help="preset (default: the demo's)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    conditions = [(threads, competitor) for threads in (0, cores) for competitor in (False, True)]
    results: dict[tuple[int, bool], list[float]] = {condition: [] for condition in conditions}
    used: dict[tuple[int, bool], set[int]] = {condition: set() for condition in conditions}
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        tokenizer = prepare(workdir)
        for round_ in range(args.rounds):
            for index, (threads, competitor) in enumerate(conditions):
                rate, counts = steps_per_second(workdir, tokenizer, args.model, threads,
                                                args.steps, competitor, f"r{round_}-{index}")
                results[(threads, competitor)].append(rate)
                used[(threads, competitor)].update(counts)
                print(f"round {round_}: --threads {threads}, competitor {competitor}: "
                      f"{rate:.3f} steps/s (threads {counts})", file=sys.stderr, flush=True)
    after = os.getloadavg()[0]
    rows = []
    for threads in (0, cores):
        quiet = statistics.median(results[(threads, False)])
        busy = statistics.median(results[(threads, True)])
        setting = "--threads 0 (measured)" if threads == 0 else f"--threads {threads} (fixed)"
        for competitor, rate in ((False, quiet), (True, busy)):
            rows.append([setting, "+1 `yes`" if competitor else "none", f"{rate:.3f}",
                         f"{1 / rate:.2f}", ",".join(map(str, sorted(used[(threads,
                                                                            competitor)]))),
                         f"{quiet / busy:.2f}x" if competitor else ""])
    print_table(f"wit train --model {args.model} on {cores} cores, {args.rounds} interleaved "
                f"rounds of {args.steps} steps (load average {before:.1f} before, {after:.1f} "
                f"after)",
                ["threads", "competitor", "steps/s", "s/step", "threads used", "slowdown"],
                rows)


if __name__ == "__main__":
    main()
