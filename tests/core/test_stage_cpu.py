"""Every data stage's stats file records the CPU seconds of its whole process tree (core/cpu.py):
run with two worker processes, the figure covers their work, which this process's own rusage
never sees."""

from __future__ import annotations

import json
import resource

from support.shards_data import build_raw_dataset
from wit_builder.cli import load_config
from wit_builder.shards import run as shards


def own_and_children() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(item.ru_utime + item.ru_stime for item in usage)


def test_shards_stats_record_the_cpu_of_its_workers(tmp_path):
    build_raw_dataset(tmp_path, shards=4, per_shard=40)
    before = own_and_children()
    config = load_config("shards", None, {"workdir": str(tmp_path), "workers": 2,
                                          "samples_per_shard": 16, "report": False})
    assert shards.run(config) == 0
    seen_here = own_and_children() - before
    stats = json.loads((tmp_path / "manifests" / "shards_stats.json").read_text())
    assert stats["cpu_seconds"] > 0 and stats["seconds"] > 0
    # The tree's figure includes this process's share and the workers' on top.
    assert stats["cpu_seconds"] >= seen_here * 0.9
    dataset = (tmp_path / "manifests" / "dataset.json").read_text()
    assert "cpu" not in dataset and "seconds" not in dataset   # no timing there
