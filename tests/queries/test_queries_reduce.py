"""The parallel parts of `wit queries`'s reduce: word and link counts merged as Arrow tables, and
the bigram reduce run as engine partitions, give the same results however they are cut."""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from support import wiki_data as fx
from wit_builder.queries import bigrams, counts
from wit_builder.queries.counts import CountTable, CountTask, PartialCounts, count_partition
from wit_builder.queries.wikipedia.reader import plan_dump


def random_counts(rng: random.Random, words: list[str]) -> dict[str, int]:
    return {word: rng.randint(1, 9) for word in rng.sample(words, rng.randint(0, len(words)))}


def test_count_tables_merged_in_small_compactions_equal_a_counter(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(counts, "COMPACT_ROWS", 7)
    rng = random.Random(4)
    # a lone surrogate (possible in a link target) and non-ASCII keys survive the round trip
    words = [f"w{n}" for n in range(40)] + ["\u00e9t\u00e9", "\ud800x", ""]
    parts = [random_counts(rng, words) for _ in range(30)]
    merged = CountTable()
    for part in parts:
        merged.add(CountTable.from_mapping(part))
    expected = sum((Counter(part) for part in parts), Counter())
    assert merged.to_dict() == expected
    assert len(merged.tables) == 1  # to_dict compacted what the adds left


def test_compiled_loop_hands_over_the_same_counts_as_buffers():
    counter = counts._hotloop.FragmentCounter(
        counts.segment_tokens, counts.decoded_segment_tokens, counts.xml_unescape,
        counts.strip_with_links, count_links=True, stand_ins=counts.ascii_stand_ins())
    articles = fx.make_articles(20, seed=6)
    counter.count(("<mediawiki>" + "".join(fx.pages_xml(articles)) + "</mediawiki>").encode())
    assert CountTable.from_buffers(*counter.word_buffers()).to_dict() == counter.unigrams()
    assert CountTable.from_buffers(*counter.link_buffers()).to_dict() == counter.links()
    assert CountTable.from_buffers(*counter.word_buffers()).total() == \
        sum(fx.expected_unigrams(articles).values())


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> tuple[PartialCounts, Path]:
    folder = tmp_path_factory.mktemp("reduce")
    dump = fx.write_multistream(folder, fx.make_articles(150, seed=8))
    total = PartialCounts()
    for number, partition in enumerate(plan_dump(str(dump)).partitions):
        total.merge(count_partition(CountTask(partition, str(folder / f"{number}.arrow"))))
    return total, folder


def reference_bigrams(total: PartialCounts, vocabulary: list[str], min_count: int,
                      limit: int) -> list[tuple[str, int, float]]:
    """The reduce's answer computed plainly from every spilled pair."""
    pairs: Counter = Counter()
    for path in total.spills:
        words, batches = counts.read_spill(path)
        words = words.to_pylist()
        for batch in batches:
            for row in batch.to_pylist():
                pairs[words[row["w1"]], words[row["w2"]]] += row["count"]
    kept = set(vocabulary)
    unigrams = total.unigrams
    scored = [(f"{a} {b}", n, math.log2(n * total.tokens / (unigrams[a] * unigrams[b])))
              for (a, b), n in pairs.items() if a in kept and b in kept and n >= min_count]
    scored.sort(key=lambda item: (-item[2], item[0]))
    return scored[:limit]


@pytest.mark.parametrize("bucket_rows, workers", [(250_000, 1), (40, 1), (40, 2)])
def test_bigram_reduce_gives_the_same_answer_for_any_buckets_and_workers(
        counted: tuple[PartialCounts, Path], bucket_rows: int, workers: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    total, _ = counted
    monkeypatch.setattr(bigrams, "BUCKET_ROWS", bucket_rows)
    monkeypatch.setattr(bigrams, "PARALLEL_ROWS", 0)  # the 2-worker case runs a real pool
    vocabulary = [word for word, n in total.unigrams.items() if n >= 3]
    cpu: dict[int, float] = {}
    found = bigrams.select_bigrams(total.spills, total.spill_rows, total.unigrams, vocabulary,
                                   total.tokens, 2, 60, tmp_path, workers=workers,
                                   worker_cpu=cpu)
    expected = reference_bigrams(total, vocabulary, 2, 60)
    assert [(b.query, b.count) for b in found] == [(q, n) for q, n, _ in expected]
    assert [b.pmi for b in found] == pytest.approx([pmi for _, _, pmi in expected])
    assert len(found) == 60 and cpu and all(seconds >= 0 for seconds in cpu.values())
    assert (os.getpid() in cpu) == (workers == 1)  # 2 workers: the tasks ran in worker processes
    assert not list(tmp_path.iterdir())  # every bucket file removed once summed


def test_a_spill_appears_whole_or_not_at_all(tmp_path):
    ids = np.array([0, 1], np.int32), np.array([1, 0], np.int32), np.array([3, 4], np.int64)
    with pytest.raises(RuntimeError, match="partition failed"):
        with counts.SpillWriter(str(tmp_path / "failed.arrow")) as spill:
            spill.write(*ids)
            raise RuntimeError("partition failed")
    assert list(tmp_path.iterdir()) == []  # neither the spill nor its words, no temporary left
    with counts.SpillWriter(str(tmp_path / "done.arrow")) as spill:
        spill.words = ["cat", "dog"]
        spill.write(*ids)
    words, batches = counts.read_spill(str(tmp_path / "done.arrow"))
    assert words.to_pylist() == ["cat", "dog"]
    assert [batch.column("count").to_pylist() for batch in batches] == [[3, 4]]


@pytest.mark.parametrize("crafted", ["id_too_large", "negative_id", "zero_count", "words_schema",
                                     "not_arrow"])
def test_a_crafted_spill_is_a_clear_error_not_wrong_counts(tmp_path, crafted: str):
    """A spill kept by an interrupted run is data from the workdir: ids outside its words (numpy
    would wrap a negative one), counts below 1 or other columns are refused by name."""
    from wit_builder.core.options import WitError

    first, second, pair_counts = [0, 1], [1, 0], [3, 4]
    if crafted == "id_too_large":
        second = [1, 2]
    elif crafted == "negative_id":
        first = [0, -1]
    elif crafted == "zero_count":
        pair_counts = [3, 0]
    path = tmp_path / "crafted.arrow"
    with counts.SpillWriter(str(path)) as spill:
        spill.words = ["cat", "dog"]
        spill.write(np.array(first, np.int32), np.array(second, np.int32),
                    np.array(pair_counts, np.int64))
    if crafted == "words_schema":
        import pyarrow as pa
        with pa.OSFile(str(path) + ".words", "wb") as sink:
            table = pa.table({"word": pa.array([1, 2], pa.int64())})
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
    elif crafted == "not_arrow":
        path.write_bytes(b"\x80\x04 a pickle, say")
    with pytest.raises(WitError, match="crafted.arrow.* is not one wit queries wrote"):
        words, batches = counts.read_spill(str(path))
        list(batches)
    with pytest.raises(WitError, match="is not one wit queries wrote"):
        bigrams.select_bigrams([str(path)], 2, {"cat": 5, "dog": 5}, ["cat", "dog"], 10, 1, 5,
                               tmp_path, workers=1)
