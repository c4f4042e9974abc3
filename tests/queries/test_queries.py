"""`wit queries` end to end: counts equal to the synthetic dump's truth, identical output whatever
the dump format or worker count, the paper's union order, and one-line errors on bad input."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.server
import json
import math
import threading
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from support import wiki_data as fx
from tests.conftest import TEST_SYNTHWEB
from wit_builder.cli import main
from wit_builder.queries import build
from wit_builder.synthweb.config import SynthwebConfig
from wit_builder.core.options import WitError
from wit_builder.queries.counts import CountTask, PartialCounts, count_partition, read_spill
from wit_builder.queries.titles import (credit_articles, pageviews_files, read_pageviews,
                                        titles_from_links)
from wit_builder.queries.wordnet import read_wordnet
from wit_builder.synthweb import wiki, wordnet
from wit_builder.core.text import TOKENIZATION, is_query_word, normalize_query
from wit_builder.queries.wikipedia.reader import plan_dump

SIZES = {key: TEST_SYNTHWEB[key] for key in ("articles", "vocab_size", "words_per_article")}
MULTISTREAM = "enwiki-20260101-pages-articles-multistream.xml.bz2"
SINGLE_STREAM = "enwiki-20260101-pages-articles.xml.bz2"
FILE_ORDER = ["data.noun", "data.verb", "data.adj", "data.adv"]
SMALL_LIMITS = ["--min-count", "20", "--bigram-min-count", "5", "--bigrams", "200",
                "--title-min-views", "50"]


@pytest.fixture(autouse=True)
def away_from_the_default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where no witbuilder.toml is, so only the options given here apply."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test-size synthetic dump, pageviews and WordNet (generated here, independent of the
    rest of the synthetic web)."""
    out = tmp_path_factory.mktemp("synthwiki")
    config = SynthwebConfig(**SIZES)
    wiki.write_wikipedia(out, config)
    wordnet.write_wordnet(out, config)
    return out


@pytest.fixture(scope="module")
def truth(synth: Path) -> dict:
    return json.loads((synth / "wiki_truth.json").read_text())


@pytest.fixture(scope="module")
def dump_counts(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> PartialCounts:
    spill_dir = tmp_path_factory.mktemp("spill")
    plan = plan_dump(str(synth / MULTISTREAM))
    total = PartialCounts()
    for number, partition in enumerate(plan.partitions):
        total.merge(count_partition(CountTask(partition, str(spill_dir / f"{number}.parquet"),
                                              count_links=True)))
    return total


def spilled_bigrams(spills: list[str]) -> Counter:
    pairs: Counter = Counter()
    for path in spills:
        words, batches = read_spill(path)
        words = words.to_pylist()
        for batch in batches:
            for row in batch.to_pylist():
                pairs[f"{words[row['w1']]} {words[row['w2']]}"] += row["count"]
    return pairs


def run_queries(synth: Path, out: Path, *extra: str, wiki_path: str | None = None) -> int:
    args = ["queries", "--workdir", str(out.parent), "--out", out.name,
            "--wiki", wiki_path or str(synth / MULTISTREAM), "--wordnet", str(synth / "wordnet"),
            *SMALL_LIMITS, *extra]
    return main(args + ["--pageviews", str(synth / "pageviews")])


def test_word_and_pair_counts_equal_the_dumps_truth(dump_counts: PartialCounts, truth: dict):
    assert dump_counts.articles == truth["articles"] and dump_counts.pages == truth["pages"]
    assert dump_counts.tokens == truth["tokens"]
    assert dump_counts.unigrams == Counter(truth["unigrams"])
    assert spilled_bigrams(dump_counts.spills) == Counter(truth["bigrams"])


def test_inbound_links_equal_the_dumps_truth(dump_counts: PartialCounts, truth: dict, synth: Path):
    expected: Counter = Counter()
    for title, count in truth["inbound_links"].items():
        expected[normalize_query(title)] += count
    namespaces = plan_dump(str(synth / MULTISTREAM)).namespaces
    assert titles_from_links(dump_counts.links, namespaces) == expected


def test_pageviews_sum_english_article_views_only(synth: Path, truth: dict):
    namespaces = plan_dump(str(synth / MULTISTREAM)).namespaces
    views = read_pageviews(sorted(str(p) for p in (synth / "pageviews").iterdir()), namespaces)
    expected: Counter = Counter()
    for title, count in truth["pageviews"].items():
        prefix = title.split(":", 1)[0] if ":" in title else ""
        if "(disambiguation)" not in title and prefix not in namespaces:
            expected[normalize_query(title)] += count
    assert views == expected and "talk" not in " ".join(views)


def test_title_views_go_to_existing_articles_and_through_redirects(synth: Path, truth: dict,
                                                                    dump_counts: PartialCounts):
    assert dump_counts.titles == set(truth["article_titles"])
    assert dump_counts.redirect_targets == truth["redirect_targets"]
    namespaces = plan_dump(str(synth / MULTISTREAM)).namespaces
    views = read_pageviews(pageviews_files([str(synth / "pageviews")]), namespaces)
    credited = credit_articles(views, dump_counts.titles, dump_counts.redirect_targets)
    articles = {normalize_query(title) for title in truth["article_titles"]}
    redirects = {normalize_query(a): normalize_query(b) for a, b in truth["redirect_targets"].items()}
    expected: Counter = Counter()
    for title, count in views.items():
        target = title if title in articles else redirects.get(title)
        if target in articles:
            expected[target] += count
    assert credited == expected and set(credited) <= articles
    assert any(title in redirects for title in views)  # the redirect case is exercised
    assert not [title for title in credited if title.endswith(" river")]  # red links dropped


def test_wordnet_head_lemmas_and_all_lemmas_are_read_from_the_database(synth: Path):
    expected = json.loads((synth / "wordnet_truth.json").read_text())
    heads = read_wordnet(str(synth / "wordnet"))
    in_file_order = sorted(expected["synsets"], key=lambda s: (FILE_ORDER.index(s["file"]),
                                                                s["offset"]))
    assert heads == list(dict.fromkeys(normalize_query(s["head"]) for s in in_file_order))
    every = read_wordnet(str(synth / "wordnet"), all_lemmas=True)
    assert set(every) == {normalize_query(lemma) for s in expected["synsets"] for lemma in s["lemmas"]}


def test_wordnet_is_also_read_from_wn_lmf_xml(tmp_path: Path):
    lmf = tmp_path / "oewn.xml"
    lmf.write_text(
        '<?xml version="1.0"?><LexicalResource xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<Lexicon id="oewn" label="x" language="en" email="a@b" license="x" version="1">'
        '<LexicalEntry id="e-dog"><Lemma writtenForm="dog" partOfSpeech="n"/>'
        '<Sense id="s1" synset="oewn-1-n"/></LexicalEntry>'
        '<LexicalEntry id="e-hound"><Lemma writtenForm="domestic dog" partOfSpeech="n"/>'
        '<Sense id="s2" synset="oewn-1-n"/></LexicalEntry>'
        '<LexicalEntry id="e-run"><Lemma writtenForm="Run" partOfSpeech="v"/>'
        '<Sense id="s3" synset="oewn-2-v"/></LexicalEntry>'
        '<Synset id="oewn-1-n" ili="i1" partOfSpeech="n" members="e-dog e-hound"/>'
        '<Synset id="oewn-2-v" ili="i2" partOfSpeech="v" members="e-run"/>'
        '</Lexicon></LexicalResource>', encoding="utf-8")
    assert read_wordnet(str(lmf)) == ["dog", "run"]
    assert read_wordnet(str(lmf), all_lemmas=True) == ["dog", "domestic dog", "run"]
    packed = tmp_path / "oewn.xml.gz"
    packed.write_bytes(gzip.compress(lmf.read_bytes()))
    assert read_wordnet(str(packed)) == ["dog", "run"]
    lmf.write_text("<LexicalResource><Lexicon>", encoding="utf-8")
    with pytest.raises(WitError, match="not WN-LMF XML"):
        read_wordnet(str(lmf))


def test_queries_follow_the_contract_and_the_papers_selection(synth: Path, truth: dict,
                                                               tmp_path: Path):
    assert run_queries(synth, tmp_path / "queries") == 0
    table = pq.read_table(tmp_path / "queries" / "queries.parquet")
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("query_id", "int32"), ("query", "string"), ("source", "string"), ("count", "int64"),
        ("pmi", "double")]
    rows = table.to_pylist()
    queries = [row["query"] for row in rows]
    assert queries == sorted(queries) and [r["query_id"] for r in rows] == list(range(len(rows)))
    assert (tmp_path / "queries" / "queries.txt").read_text().splitlines() == queries
    by_source = {source: {r["query"]: r for r in rows if r["source"] == source}
                 for source in ("wordnet", "unigram", "bigram", "title")}
    unigrams = Counter(truth["unigrams"])
    wordnet_heads = set(read_wordnet(str(synth / "wordnet")))
    assert set(by_source["wordnet"]) == wordnet_heads
    # Unigrams: the frequent words but numbers other than years (the synthetic text has "12")
    frequent = {w for w, n in unigrams.items() if n >= 20}
    assert "12" in frequent and "1987" in frequent
    assert set(by_source["unigram"]) == {w for w in frequent if is_query_word(w)} - wordnet_heads
    assert all(r["count"] == unigrams[q] for q, r in by_source["unigram"].items())
    # Bigrams: PMI from the truth's counts, the highest 200 of those seen at least 5 times, of
    # frequent words, not both numbers.
    total = sum(unigrams.values())
    scored = sorted(((-math.log2(n * total / (unigrams[a] * unigrams[b])), pair)
                     for pair, n in truth["bigrams"].items() if n >= 5
                     for a, b in [pair.split(" ")] if a in frequent and b in frequent
                     and (is_query_word(a) or is_query_word(b))))[:200]
    expected_bigrams = {pair for _, pair in scored} - wordnet_heads
    assert set(by_source["bigram"]) == expected_bigrams
    for query, row in by_source["bigram"].items():
        assert row["count"] == truth["bigrams"][query]
        assert row["pmi"] == pytest.approx(-dict((p, s) for s, p in scored)[query])
    assert by_source["title"] and all(r["pmi"] is None for r in by_source["title"].values())
    assert set(by_source["title"]) <= {normalize_query(t) for t in truth["article_titles"]}
    stats = json.loads((tmp_path / "queries" / "stats.json").read_text())
    assert stats["pages_read"] == truth["pages"] and stats["tokens_read"] == truth["tokens"]
    assert stats["queries_per_source"] == {k: len(v) for k, v in by_source.items()}
    assert stats["inputs"]["dump"][0]["sha256"] and stats["title_ranking"] == "pageviews"
    assert stats["peak_rss_mb"]["main"] > 0
    assert stats["tokenization"] == TOKENIZATION
    assert not [p for p in (tmp_path / "queries").iterdir() if p.name.startswith(".")]


def test_keep_numbers_makes_frequent_numbers_unigram_queries(synth: Path, truth: dict,
                                                            tmp_path: Path):
    assert run_queries(synth, tmp_path / "queries", "--keep-numbers") == 0
    rows = pq.read_table(tmp_path / "queries" / "queries.parquet").to_pylist()
    unigrams = {row["query"] for row in rows if row["source"] == "unigram"}
    assert "12" in unigrams and "1987" in unigrams
    stats = json.loads((tmp_path / "queries" / "stats.json").read_text())
    assert stats["parameters"]["keep_numbers"] is True


def test_every_dump_format_and_worker_count_gives_identical_parquet(synth: Path, tmp_path: Path):
    plain = tmp_path / "dump.xml"
    plain.write_bytes(bz2.decompress((synth / SINGLE_STREAM).read_bytes()))
    readings = {
        "multistream-1": (str(synth / MULTISTREAM), ["--workers", "1"]),
        "multistream-2": (str(synth / MULTISTREAM), ["--workers", "2"]),
        "single-stream-2": (str(synth / SINGLE_STREAM), ["--workers", "2"]),
        "parts-1": (str(synth / "parts"), ["--workers", "1"]),
        "xml-2": (str(plain), ["--workers", "2"]),
    }
    outputs = {}
    for name, (source, extra) in readings.items():
        assert run_queries(synth, tmp_path / name, *extra, wiki_path=source) == 0
        outputs[name] = (tmp_path / name / "queries.parquet").read_bytes()
        stats = json.loads((tmp_path / name / "stats.json").read_text())
        assert stats["inputs"]["dump_format"] == name.rsplit("-", 1)[0]
    assert len(set(outputs.values())) == 1


def test_target_truncates_in_source_order_and_titles_fall_back_to_links(tmp_path: Path):
    articles = fx.make_articles(80, seed=5)
    dump = fx.write_multistream(tmp_path, articles)
    wordnet_dir = fx.write_wordnet(tmp_path / "wn", {"noun": [["w1"], ["hot dog", "frank"]]})
    common = ["queries", "--workdir", str(tmp_path), "--wiki", str(dump), "--wordnet",
              str(wordnet_dir), "--min-count", "5", "--bigram-min-count", "2",
              "--title-min-links", "3"]
    assert main(common + ["--out", "all"]) == 0
    rows = pq.read_table(tmp_path / "all" / "queries.parquet").to_pylist()
    sources = {r["query"]: r["source"] for r in rows}
    assert sources["w1"] == "wordnet" and sources["hot dog"] == "wordnet"
    assert {r["count"] for r in rows if r["query"] == "hot dog"} == {None}
    # Ranked by inbound links, existing articles only (links to "w5" lead nowhere).
    assert {q for q, s in sources.items() if s == "title"} <= {f"article {i}" for i in range(10)}
    stats = json.loads((tmp_path / "all" / "stats.json").read_text())
    assert stats["title_ranking"] == "inbound_links" and stats["queries_per_source"]["title"] > 0
    assert main(common + ["--out", "few", "--target", "10"]) == 0
    few = pq.read_table(tmp_path / "few" / "queries.parquet").to_pylist()
    unigram_order = sorted(((-r["count"], r["query"]) for r in rows if r["source"] == "unigram"))
    assert {r["query"] for r in few} == {"w1", "hot dog"} | {q for _, q in unigram_order[:8]}


def error_of(capsys, args: list[str]) -> str:
    assert main(args) != 0
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("problem", ["not-bz2", "truncated", "not-mediawiki", "empty",
                                     "no-articles", "bad-wordnet"])
def test_bad_input_is_a_one_line_error_and_leaves_no_output(tmp_path: Path, capsys, problem: str):
    dump = tmp_path / "dump.xml.bz2"
    wordnet_dir = fx.write_wordnet(tmp_path / "wn", {"noun": [["dog"]]})
    good = bz2.compress((fx.header() + "".join(fx.pages_xml(fx.make_articles(50))) +
                         fx.FOOTER).encode())
    content = {"not-bz2": b"BZh91AY&SY" + b"\x00garbage" * 50, "truncated": good[:len(good) // 2],
               "not-mediawiki": bz2.compress(b"<rss><channel><item>x</item></channel></rss>"),
               "empty": b"", "no-articles": bz2.compress((fx.header() + fx.FOOTER).encode()),
               "bad-wordnet": good}[problem]
    dump.write_bytes(content)
    if problem == "bad-wordnet":
        (wordnet_dir / "data.noun").write_text("not a wordnet line\n")
    message = error_of(capsys, ["queries", "--workdir", str(tmp_path), "--wiki", str(dump),
                                "--wordnet", str(wordnet_dir), "--workers", "2"])
    named = wordnet_dir if problem == "bad-wordnet" else dump
    assert str(named) in message, message
    out = tmp_path / "queries"
    assert not out.exists()


def test_unreadable_wordnet_directory_is_an_error(tmp_path: Path, capsys):
    dump = fx.write_multistream(tmp_path, fx.make_articles(10))
    message = error_of(capsys, ["queries", "--workdir", str(tmp_path), "--wiki", str(dump),
                                "--wordnet", str(tmp_path / "nowhere")])
    assert "nowhere" in message and "does not exist" in message
    empty = tmp_path / "emptywn"
    empty.mkdir()
    assert "no WordNet database files" in error_of(
        capsys, ["queries", "--workdir", str(tmp_path), "--wiki", str(dump), "--wordnet", str(empty)])


def test_corrupt_stream_found_by_a_worker_is_an_error_and_leaves_no_output(tmp_path: Path,
                                                                            capsys):
    dump = fx.write_multistream(tmp_path, fx.make_articles(200, seed=2))
    data = bytearray(dump.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    dump.write_bytes(bytes(data))
    message = error_of(capsys, ["queries", "--workdir", str(tmp_path), "--wiki", str(dump),
                                "--workers", "2"])
    assert str(dump) in message and "bz2" in message
    assert not (tmp_path / "queries").exists()


def test_dump_streamed_from_a_url_gives_the_same_parquet(tmp_path: Path, monkeypatch):
    from wit_builder.net.guard import AddressPolicy
    from wit_builder.queries.wikipedia import reader

    articles = fx.make_articles(60, seed=4)
    fx.write_single_stream(tmp_path / "dump.xml.bz2", articles)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common = ["queries", "--workdir", str(tmp_path), "--min-count", "5", "--bigram-min-count", "2"]
    # wit queries reads public addresses only: trust the test server, as a mirror would be
    trusted = AddressPolicy(trusted_origins=(f"127.0.0.1:{server.server_address[1]}",))
    monkeypatch.setattr(build, "plan_dump", functools.partial(reader.plan_dump, policy=trusted))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dump.xml.bz2"
        assert main(common + ["--wiki", url, "--out", "from-url"]) == 0
    finally:
        server.shutdown()
    assert main(common + ["--wiki", str(tmp_path / "dump.xml.bz2"), "--out", "from-file"]) == 0
    assert (tmp_path / "from-url" / "queries.parquet").read_bytes() == \
        (tmp_path / "from-file" / "queries.parquet").read_bytes()
    stats = json.loads((tmp_path / "from-url" / "stats.json").read_text())
    assert stats["inputs"]["dump_format"] == "url"


def crash_once_counting_partition_2(monkeypatch) -> Counter:
    """The first count of partition 2 fails as a crash would; returns the counts per spill."""
    counted: Counter = Counter()
    count_partition_once = build.count_partition

    def failing_count(task: CountTask) -> PartialCounts:
        counted[task.spill_path] += 1
        if task.spill_path.endswith("part-000002.arrow") and counted[task.spill_path] == 1:
            raise OSError("simulated crash while counting a partition")
        return count_partition_once(task)

    monkeypatch.setattr(build, "count_partition", failing_count)
    return counted


def test_rerun_after_a_failed_partition_recounts_only_unfinished_ones(synth: Path, tmp_path: Path,
                                                                       monkeypatch):

    out = tmp_path / "queries"
    assert run_queries(synth, out, "--workers", "1") == 0  # counts in this process
    uninterrupted = {name: (out / name).read_bytes() for name in ("queries.parquet",
                                                                  "queries.txt")}
    counted_fields = ("queries_per_source", "candidates_per_source", "pages_read",
                      "articles_read", "redirects_skipped", "tokens_read", "distinct_words")

    def stats_counts() -> dict:
        stats = json.loads((out / "stats.json").read_text())
        return {name: stats[name] for name in counted_fields}
    uninterrupted_stats = stats_counts()
    counted = crash_once_counting_partition_2(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        run_queries(synth, out, "--workers", "1")
    assert sorted(path.name for path in (out / ".work").glob("*.done")) == \
        ["part-000000.arrow.done", "part-000001.arrow.done"]
    assert run_queries(synth, out, "--workers", "1") == 0
    parts = sorted(counted)
    assert len(parts) > 3
    assert [counted[part] for part in parts] == [1, 1, 2] + [1] * (len(parts) - 3)
    assert {name: (out / name).read_bytes() for name in uninterrupted} == uninterrupted
    assert stats_counts() == uninterrupted_stats
    assert not (out / ".work").exists()


def test_partitions_counted_under_older_tokenisation_rules_are_recounted(
        synth: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "queries"
    counted = crash_once_counting_partition_2(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        run_queries(synth, out, "--workers", "1")
    for done in (out / ".work").glob("*.done"):  # as the previous rules' markers were
        inputs = json.loads(done.read_text())
        assert inputs.pop("tokenization") == TOKENIZATION
        done.write_text(json.dumps(inputs))
    before = Counter(counted)
    assert run_queries(synth, out, "--workers", "1") == 0
    recounted = counted - before
    assert set(recounted) == set(counted) and set(recounted.values()) == {1}
    assert {str(out / ".work" / f"part-00000{n}.arrow") for n in (0, 1)} <= set(before)


class WritesAMarker:
    """A pickle payload: unpickling it calls open(path, "w"), which creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.mark.parametrize("crafted", ["pickle", "bad_arrow", "truncated", "bad_values"])
def test_a_crafted_result_file_is_never_executed_and_its_partition_is_recounted(
        synth: Path, tmp_path: Path, monkeypatch, crafted: str):
    """Files in the workdir are data: a `.result` a rerun keeps is read as Arrow and checked, and
    one that is not what `wit queries` writes is recounted (never unpickled)."""
    import pickle

    import pyarrow as pa


    out = tmp_path / "queries"
    assert run_queries(synth, out, "--workers", "1") == 0
    uninterrupted = {name: (out / name).read_bytes() for name in ("queries.parquet",
                                                                  "queries.txt")}
    counted = crash_once_counting_partition_2(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        run_queries(synth, out, "--workers", "1")
    result = out / ".work" / "part-000000.arrow.result"
    assert result.read_bytes()[:6] == b"ARROW1"  # Arrow IPC, not a pickle
    marker = tmp_path / "pwned"
    if crafted == "pickle":
        result.write_bytes(pickle.dumps(WritesAMarker(marker)))
    elif crafted == "bad_arrow":  # an Arrow file of another shape
        sink = pa.BufferOutputStream()
        table = pa.table({"kind": pa.array([0], pa.int8()), "key": [b"x"]})
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        result.write_bytes(sink.getvalue().to_pybytes())
    elif crafted == "truncated":
        result.write_bytes(result.read_bytes()[:100])
    else:  # the right columns, a negative count and a spill path of its choosing in the metadata
        table = pa.ipc.open_file(pa.py_buffer(result.read_bytes())).read_all()
        metadata = json.loads(table.schema.metadata[build.RESULT_METADATA])
        metadata["pages"] = -5
        metadata["spills"] = ["/etc/passwd"]
        table = table.replace_schema_metadata(
            {build.RESULT_METADATA: json.dumps(metadata).encode()})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        result.write_bytes(sink.getvalue().to_pybytes())
    assert run_queries(synth, out, "--workers", "1") == 0
    assert not marker.exists()
    parts = sorted(counted)
    assert [counted[part] for part in parts] == [2, 1, 2] + [1] * (len(parts) - 3)
    assert {name: (out / name).read_bytes() for name in uninterrupted} == uninterrupted


def test_partition_results_round_trip_exactly(synth: Path, tmp_path: Path):

    partition = plan_dump(str(synth / MULTISTREAM)).partitions[0]
    partial = count_partition(CountTask(partition, str(tmp_path / "p.arrow"), count_links=True))
    partial.titles.add("lone \ud800 surrogate")
    partial.redirect_targets["R \udfff"] = "T"
    assert partial.unigrams and partial.links and partial.redirect_targets
    back = build.read_result(build.result_bytes(partial), str(tmp_path / "p.arrow"))
    for name in ("pages", "articles", "redirects", "other_namespaces", "tokens", "spill_rows",
                 "peak_rss_kb", "titles", "redirect_targets", "unigrams", "links",
                 "worker_cpu_seconds", "spills"):
        assert getattr(back, name) == getattr(partial, name), name
    assert list(back.redirect_targets) == list(partial.redirect_targets)
    assert list(back.unigrams) == list(partial.unigrams)
