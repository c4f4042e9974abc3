"""`wit crawl`'s URL dedupe with flat memory: the same outputs and counts as the per-row loop
it replaced, whether the crawl fits the budget or goes through hash buckets on disk."""

from __future__ import annotations

import logging
import random
import re
from collections import Counter

import pyarrow as pa
import pytest

from wit_builder.crawl import run as crawl, url_dedupe
from wit_builder.core import schemas, store, spill

PARTITION_ROWS = (0, 700, 450, 1, 900, 0, 640, 820, 300, 1200, 510, 480)  # 6001 rows


def staged_partitions(folder: store.Location, seed: int = 7) -> list[store.Location]:
    """Matched staging files with many URLs repeated within and across partitions, with the
    same text (duplicate pairs) or another one (duplicate URLs)."""
    rng = random.Random(seed)
    urls = [f"https://img{n % 40}.example/{n}.jpg" for n in range(2500)]
    paths = []
    for number, count in enumerate(PARTITION_ROWS):
        rows = []
        for _ in range(count):
            url = rng.choice(urls)
            text = f"a photo of thing {rng.randrange(3)} at {url[-9:]}"
            rows.append({"uid": crawl.pair_uid(url, text), "url": url, "text": text,
                         "page_url": f"https://page.example/{rng.randrange(99)}",
                         "source": "pool", "lang": "en", "lang_prob": 0.99,
                         "query_ids": [rng.randrange(50)]})
        path = store.join(folder, f"part-{number:05d}.parquet")
        store.write_parquet(path, pa.Table.from_pylist(rows, schema=schemas.MATCHES))
        paths.append(path)
    return paths


def reference_dedupe(staged: list[store.Location], out_dir: store.Location, dropped: Counter
                     ) -> list[store.Location]:
    """The per-row loop `dedupe_matched` was before (a URL key set and a uid set in memory)."""
    seen_urls: set[int] = set()
    seen_pairs: set[str] = set()
    outputs = []
    for path in staged:
        table = store.read_parquet(path)
        keep = []
        for uid, url in zip(table.column("uid").to_pylist(), table.column("url").to_pylist()):
            key = url_dedupe.url_key(url)
            if uid in seen_pairs:
                dropped["duplicate_pair"] += 1
            elif key in seen_urls:
                dropped["duplicate_url"] += 1
            else:
                keep.append(True)
                seen_urls.add(key)
                seen_pairs.add(uid)
                continue
            keep.append(False)
        target = store.join(out_dir, store.name(path))
        store.write_parquet(target, table.filter(pa.array(keep, pa.bool_())))
        outputs.append(target)
    return outputs


def budget_for_rows(rows: int) -> float:
    """A memory budget (MB) whose partitions hold `rows` rows."""
    budget = (rows + 0.5) * spill.BYTES_PER_ROW / 2**20
    assert spill.rows_within(budget) == rows
    return budget


def assert_same_as_reference(staged, out_dir, reference_dir, **options) -> Counter:
    """Run both; the outputs are the same files, byte for byte, and the counts are equal."""
    expected_counts: Counter = Counter()
    expected = reference_dedupe(staged, reference_dir, expected_counts)
    counts: Counter = Counter({"no_query": 3})
    outputs = url_dedupe.dedupe_matched(staged, out_dir, counts, **options)
    assert [store.name(path) for path in outputs] == [store.name(path) for path in expected]
    assert outputs == [store.join(out_dir, store.name(path)) for path in staged]
    for ours, theirs in zip(outputs, expected):
        assert store.read_bytes(ours) == store.read_bytes(theirs), store.name(ours)
    assert counts == expected_counts + Counter({"no_query": 3})
    assert not store.exists(store.join(out_dir, ".dedupe"))
    return expected_counts


def test_small_crawl_is_deduped_in_memory_like_the_per_row_loop(tmp_path, monkeypatch):
    staged = staged_partitions(tmp_path / "staging")

    def no_scratch(*args, **kwargs):
        raise AssertionError("a crawl within the budget wrote scratch files")

    monkeypatch.setattr(spill, "write_partitioned", no_scratch)
    counts = assert_same_as_reference(staged, tmp_path / "out", tmp_path / "reference")
    # The data exercise both reasons, in and across partitions.
    assert counts["duplicate_pair"] > 500 and counts["duplicate_url"] > 500


def test_bucketed_dedupe_writes_the_same_files_and_counts(tmp_path, caplog):
    staged = staged_partitions(tmp_path / "staging", seed=11)
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.url_dedupe"):
        assert_same_as_reference(staged, tmp_path / "out", tmp_path / "reference",
                                 memory_budget_mb=budget_for_rows(1000))
    buckets = re.search(r"(\d+) groups, (\d+) URL buckets", caplog.text)
    assert buckets and int(buckets[1]) > 3 and int(buckets[2]) > 3


def test_bucketed_dedupe_in_worker_processes_writes_the_same_files(tmp_path):
    staged = staged_partitions(tmp_path / "staging", seed=3)
    assert_same_as_reference(staged, tmp_path / "out", tmp_path / "reference",
                             memory_budget_mb=budget_for_rows(1500), workers=2)


def test_bucketed_dedupe_never_holds_more_rows_than_the_budget(tmp_path, monkeypatch, caplog):
    staged = staged_partitions(tmp_path / "staging")
    held: list[tuple[str, int]] = []
    read_partitioned = spill.read_partitioned

    def counting_reader(folder, number, partitions, schema):
        table = read_partitioned(folder, number, partitions, schema)
        held.append((store.name(folder), table.num_rows))
        return table

    monkeypatch.setattr(spill, "read_partitioned", counting_reader)
    rows = 1300  # more than any one staged partition: a group never exceeds it either
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.url_dedupe"):
        url_dedupe.dedupe_matched(staged, tmp_path / "out", Counter(),
                             memory_budget_mb=budget_for_rows(rows))
    bucket_rows = [count for kind, count in held if kind == "urls"]
    assert len(bucket_rows) > 3 and sum(bucket_rows) == sum(PARTITION_ROWS)
    assert max(count for _, count in held) <= rows
    most = re.search(r"at most (\d+) rows held at once", caplog.text)
    assert most and int(most[1]) <= rows


@pytest.mark.parametrize("memory_budget_mb", [url_dedupe.DEDUPE_MEMORY_BUDGET_MB, 0.5])
def test_url_key_collisions_count_as_duplicate_urls_like_the_per_row_loop(
        tmp_path, monkeypatch, memory_budget_mb):
    # A coarse key makes different URLs collide (as two 64-bit hashes rarely would): the first
    # row of a key is kept, and a later one is a duplicate pair only with the kept row's uid.
    monkeypatch.setattr(url_dedupe, "url_key", lambda url: hash(len(url)) * 0x9E3779B97F4A7C15 % 2**64)
    staged = staged_partitions(tmp_path / "staging", seed=5)
    counts = assert_same_as_reference(staged, tmp_path / "out", tmp_path / "reference",
                                      memory_budget_mb=memory_budget_mb)
    kept = sum(store.read_parquet(path).num_rows for path in store.glob(tmp_path / "out" / "*"))
    assert kept == len({len(url) for path in staged for url in
                        store.read_parquet(path, columns=["url"])["url"].to_pylist()})
    assert counts["duplicate_url"] > counts["duplicate_pair"]


def test_bucketed_dedupe_works_on_an_fsspec_url_workdir(tmp_path):
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.mkdir("/crawl")
    try:
        staged = staged_partitions("memory://crawl/data/matched/.staging", seed=13)
        assert_same_as_reference(staged, "memory://crawl/data/matched", tmp_path / "reference",
                                 memory_budget_mb=budget_for_rows(2000))
        assert not memory.exists("/crawl/data/matched/.dedupe")
    finally:
        memory.rm("/crawl", recursive=True)


def test_empty_crawl_writes_empty_outputs(tmp_path):
    path = tmp_path / "part-00000.parquet"
    store.write_parquet(path, schemas.MATCHES.empty_table())
    counts: Counter = Counter()
    outputs = url_dedupe.dedupe_matched([path], tmp_path / "out", counts)
    assert store.read_parquet(outputs[0]).num_rows == 0 and not counts
    assert url_dedupe.dedupe_matched([], tmp_path / "out", counts) == []
