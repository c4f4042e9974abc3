"""What the tokenisation rules cost where the product runs them: the counting of `wit queries`
(`count_partition_compiled` and `count_partition_python` over every partition of a synthetic
benchmark dump) and the caption matcher (`QueryMatcher.match`, compiled and pyahocorasick, over
generated captions), in CPU seconds. With `--before TREE` (a copy of an older witbuilder tree,
its extensions built in place: `git archive REV wit_builder setup.py pyproject.toml | tar -x -C
TREE && cd TREE && python setup.py build_ext --inplace`), each measurement runs in its own
process for both trees, alternating A,B,A,B, and the table shows the median of `--rounds`.

    .venv/bin/python benchmarks/bench_tokenization.py --before /tmp/old17 --rounds 3
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from common import print_table  # noqa: E402

# Run in a child process under the tree being measured (PYTHONPATH): prints {"cpu": seconds}.
COUNT = """
import json, sys, tempfile, time
from wit_builder.queries.counts import CountTask, count_partition_compiled, count_partition_python
from wit_builder.queries.wikipedia.reader import plan_dump
count = count_partition_compiled if sys.argv[2] == "compiled" else count_partition_python
with tempfile.TemporaryDirectory() as folder:
    started = time.process_time()
    for number, part in enumerate(plan_dump(sys.argv[1]).partitions):
        count(CountTask(part, f"{folder}/{number}.arrow", True))
    print(json.dumps({"cpu": time.process_time() - started}))
"""
MATCH = """
import json, random, sys, time
from wit_builder.crawl.match import QueryMatcher
rng = random.Random(1)
words = open(sys.argv[1]).read().split()
extra = ["the", "of", "U.S.", "1,000", "Lincoln's", "red,", "(blue)", "state-of-the-art", "3.5"]
texts = [" ".join(rng.choice(words + extra) for _ in range(rng.randint(3, 15))).capitalize()
         for _ in range(200_000)]
matcher = QueryMatcher.from_queries(enumerate(words[:600]), kind=sys.argv[2])
started = time.process_time()
for text in texts:
    matcher.match(text)
print(json.dumps({"cpu": time.process_time() - started}))
"""


def cpu_seconds(tree: Path, script: str, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(done.stdout.strip().splitlines()[-1])["cpu"]


def make_dump(folder: Path, articles: int) -> tuple[str, str]:
    """A benchmark dump and a word list of its vocabulary (made once)."""
    from wit_builder.synthweb import wiki

    marker = folder / "dump.json"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        made = wiki.write_benchmark_dump(folder, articles)
        marker.write_text(json.dumps(made))
    made = json.loads(marker.read_text())
    words = folder / "words.txt"  # queries for the matcher: words of the dump's text
    if not words.exists():
        text = bz2.open(made["dump"], "rt").read(2_000_000)
        words.write_text("\n".join(sorted(set(re.findall(r"[a-z]{3,}", text)))[:5_000]))
    return made["dump"], str(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older tree to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bench-tok")
    args = parser.parse_args()
    dump, words = make_dump(args.dir, args.articles)
    trees = {"after": ROOT.parent, **({"before": args.before} if args.before else {})}
    cases = [("counting, compiled hot loop", COUNT, dump, "compiled"),
             ("counting, Python path", COUNT, dump, "python"),
             ("matching, compiled", MATCH, words, "compiled"),
             ("matching, pyahocorasick fallback", MATCH, words, "automaton")]
    results = {(case[0], tree): [] for case in cases for tree in trees}
    for _ in range(args.rounds):
        for name, script, path, kind in cases:
            for tree, location in sorted(trees.items(), reverse=True):  # before, then after
                results[name, tree].append(cpu_seconds(location, script, path, kind))
    rows = []
    for name, *_ in cases:
        after = statistics.median(results[name, "after"])
        if args.before:
            before = statistics.median(results[name, "before"])
            rows.append([name, round(before, 3), round(after, 3), round(after / before, 2)])
        else:
            rows.append([name, round(after, 3)])
    print_table(f"CPU seconds, median of {args.rounds} (load average {os.getloadavg()[0]:.1f})",
                ["code path", "before", "after", "ratio"] if args.before else
                ["code path", "CPU seconds"], rows)


if __name__ == "__main__":
    main()
