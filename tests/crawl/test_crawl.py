"""`wit crawl --no-download` end to end on pool and WARC sources: filters, English, dedupe,
balance, stats, resume and determinism."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from wit_builder.cli import load_config
from wit_builder.crawl.run import parse_source, select
from wit_builder.core.options import WitError

QUERIES = ["blue", "circle", "red", "red triangle", "star", "triangle"]

POOL = [
    ("http://img.test/1.jpg", "A red triangle on a plain background"),
    ("http://img.test/2.jpg", "two large blue circles on a dotted background"),
    ("http://img.test/3.jpg", "un grand triangle rouge sur un fond rayé bleu"),   # French
    ("http://img.test/4.jpg", "nothing that any query names here"),
    ("http://img.test/5.jpg", "IMG_2041.jpg"),
    ("http://img.test/6.jpg", "https://img.test/6.jpg"),
    ("http://img.test/1.jpg", "A red triangle on a plain background"),            # same pair
    ("http://img.test/1.jpg", "the same image with another red caption"),         # same URL
    ("http://img.test/7.jpg", "a small red star"),
    ("", "a caption without an image"),
    ("http://img.test/8.jpg", "redstar"),
    ("http://img.test/9.jpg", "cafÃ© with a red star"),                           # mojibake
]


def write_queries(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(QUERIES)), pa.int32()),
                             "query": QUERIES}), path)


def warc_file(path, pages: dict[str, str]):
    records = []
    for url, html in pages.items():
        body = html.encode()
        http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
                % len(body)) + body
        head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
                f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{len(records)}>\r\n"
                f"Content-Type: application/http; msgtype=response\r\n"
                f"Content-Length: {len(http)}\r\n\r\n").encode()
        records.append(gzip.compress(head + http + b"\r\n\r\n", mtime=0))
    path.write_bytes(b"".join(records))


@pytest.fixture
def workdir(tmp_path):
    write_queries(tmp_path / "queries" / "queries.parquet")
    pq.write_table(pa.table({"url": [u for u, _ in POOL], "caption": [t for _, t in POOL]}),
                   tmp_path / "pool.parquet")
    warc_file(tmp_path / "site.warc.gz", {
        "http://page.test/a/index.html":
            '<img src="../img/10.jpg" alt="a blue star drawn on a white page"><img src="x.jpg">'
            '<img src="/img/11.jpg" alt="une étoile bleue et un cercle rouge dessinés">',
        "http://page.test/b.html": '<figure><img src="http://img.test/7.jpg">'
                                   '<figcaption>a small red star again</figcaption></figure>',
    })
    return tmp_path


def pool_and_warc_workdir(tmp_path, images_html: str):
    """A workdir with the queries, the POOL as a parquet pool and a WARC of one page holding
    `images_html`: the two sources crawl_config names."""
    work = tmp_path / "work"
    write_queries(work / "queries" / "queries.parquet")
    pq.write_table(pa.table({"url": [u for u, _ in POOL], "caption": [t for _, t in POOL]}),
                   work / "pool.parquet")
    warc_file(work / "site.warc.gz", {"http://page.test/a.html": images_html})
    return work


def crawl_config(workdir, **overrides):
    values = {"workdir": str(workdir), "download": False, "per_query": 2,
              "source": [f"pool:{workdir / 'pool.parquet'}", f"warc:{workdir / 'site.warc.gz'}"],
              **overrides}
    return load_config("crawl", None, values)


def test_selection_keeps_english_matched_deduplicated_pairs(workdir):
    stats = select(crawl_config(workdir))
    matched = pq.read_table(workdir / "data" / "matched" / "part-00000.parquet").to_pylist()
    texts = [row["text"] for row in matched]
    assert texts == ["A red triangle on a plain background",
                     "two large blue circles on a dotted background", "a small red star",
                     "café with a red star"]
    assert matched[0]["query_ids"] == [2, 3, 5] and matched[0]["lang"] == "en"
    assert matched[0]["source"] == "pool"
    dropped = stats["dropped"]
    assert dropped["not_en"] == 1  # the French caption that contains "triangle"
    assert dropped["no_query"] == 3 and dropped["text_is_filename"] == 1
    assert dropped["text_is_url"] == 1 and dropped["no_url"] == 1
    assert dropped["duplicate_pair"] == 1 and dropped["duplicate_url"] == 2
    assert dropped["no_text"] == 1  # the WARC image without alt
    warc_rows = pq.read_table(workdir / "data" / "matched" / "part-00001.parquet").to_pylist()
    assert [(r["url"], r["page_url"]) for r in warc_rows] == [
        ("http://page.test/img/10.jpg", "http://page.test/a/index.html")]
    balance = pq.read_table(workdir / "manifests" / "balance.parquet").to_pylist()
    assert all(row["selected"] == min(row["matched"], 2) for row in balance)
    red = balance[QUERIES.index("red")]
    assert red["matched"] == 3 and red["selected"] == 2
    selection = pq.read_table(workdir / "manifests" / "selection.parquet")
    assert selection.num_rows >= 3
    assert (workdir / "manifests" / "crawl_stats.json").exists()


def test_rerun_resumes_and_gives_identical_outputs(workdir, tmp_path_factory):
    select(crawl_config(workdir))
    first = (workdir / "manifests" / "selection.parquet").read_bytes()
    stamp = (workdir / "data" / "candidates" / "part-00000.parquet").stat().st_mtime_ns
    select(crawl_config(workdir))
    assert (workdir / "manifests" / "selection.parquet").read_bytes() == first
    assert (workdir / "data" / "candidates" / "part-00000.parquet").stat().st_mtime_ns == stamp


def test_two_workers_give_the_same_selection(workdir, tmp_path):
    select(crawl_config(workdir, workers=1))
    one = (workdir / "manifests" / "selection.parquet").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    for name in ("queries", "pool.parquet", "site.warc.gz"):
        source = workdir / name
        (other / name).symlink_to(source, target_is_directory=source.is_dir())
    select(crawl_config(other, workers=2, source=[f"pool:{other / 'pool.parquet'}",
                                                  f"warc:{other / 'site.warc.gz'}"]))
    assert (other / "manifests" / "selection.parquet").read_bytes() == one


def test_bad_sources_are_clear_errors(workdir):
    with pytest.raises(WitError, match="must be web:URL"):
        select(crawl_config(workdir, source=["ftp://x"]))
    with pytest.raises(WitError, match="run `wit queries` first"):
        select(crawl_config(workdir, queries="nope.parquet"))
    (workdir / "bad.csv").write_text("link,caption\nhttp://a/1.jpg,a red star\n")
    with pytest.raises(WitError, match="no column 'url'"):
        select(crawl_config(workdir, source=[f"pool:{workdir / 'bad.csv'}"]))


def write_big_pool(folder, kind: str, rows) -> str:
    """`rows` as one parquet row group, one CSV file, or 36 small JSON-lines files."""
    if kind == "parquet":
        pq.write_table(pa.table({"url": [u for u, _ in rows], "caption": [t for _, t in rows]}),
                       folder / "big.parquet", row_group_size=len(rows))
        return str(folder / "big.parquet")
    if kind == "csv":
        pacsv.write_csv(pa.table({"url": [u for u, _ in rows],
                                   "caption": [t for _, t in rows]}), folder / "big.csv")
        return str(folder / "big.csv")
    (folder / "files").mkdir()
    for number in range(36):
        (folder / "files" / f"{number:02d}.jsonl").write_text("".join(
            json.dumps({"url": url, "caption": text}) + "\n"
            for url, text in rows[10 * number:10 * number + 10]))
    return str(folder / "files")


@pytest.mark.parametrize("kind, partitions", [("parquet", 4), ("csv", 4), ("files", 6)])
def test_a_pool_is_crawled_in_partitions_of_rows(tmp_path, monkeypatch, kind, partitions):
    """Every core works on a pool of one row group, one big CSV file (shares of its batches) or
    many small files (36 grouped in 6): the crawl finds what the pool read as one partition
    gives."""
    import wit_builder.crawl.sources.pool as pool

    rows = POOL * 30  # 360 rows
    for name in ("whole", "split"):
        write_queries(tmp_path / name / "queries" / "queries.parquet")
    source = [f"pool:{write_big_pool(tmp_path, kind, rows)}"]
    whole = select(crawl_config(tmp_path / "whole", source=source, workers=1,
                                partition_rows=10_000))
    monkeypatch.setattr(pool, "ROW_BYTES", 50)  # this CSV's rows: ~45 bytes
    monkeypatch.setattr(pool, "CSV_BLOCK_BYTES", 2048)
    split = select(crawl_config(tmp_path / "split", source=source, workers=2,
                                partition_rows=100))
    parts = sorted((tmp_path / "split" / "data" / "candidates").glob("part-*.parquet"))
    assert len(parts) == partitions
    assert sum(pq.read_metadata(part).num_rows for part in parts) == \
        pq.read_metadata(tmp_path / "whole" / "data" / "candidates" / "part-00000.parquet").num_rows
    assert split["dropped"] == whole["dropped"] and split["balance"] == whole["balance"]
    selected = [pq.read_table(tmp_path / name / "manifests" / "selection.parquet",
                              columns=["url", "text"]).to_pylist() for name in ("whole", "split")]
    assert sorted(map(str, selected[0])) == sorted(map(str, selected[1]))
    again = select(crawl_config(tmp_path / "split", source=source, workers=2,
                                partition_rows=100))  # resumes
    assert again["balance"] == split["balance"]


def test_a_pair_that_fails_is_counted_and_the_rest_kept(workdir, monkeypatch, caplog):
    import wit_builder.crawl.run as crawl_run

    real = crawl_run.clean_caption

    def clean(text):  # any exception on one pair, not a known one
        if text == "a small red star":
            raise UnicodeError("a hostile caption")
        return real(text)

    monkeypatch.setattr(crawl_run, "clean_caption", clean)
    stats = select(crawl_config(workdir, workers=1))
    assert stats["dropped"]["pair_error"] == 1
    texts = pq.read_table(workdir / "data" / "matched").column("text").to_pylist()
    assert "a small red star" not in texts
    assert {"A red triangle on a plain background", "café with a red star",
            "two large blue circles on a dotted background", "a blue star drawn on a white page",
            "a small red star again"} <= set(texts)  # the same source's others, the WARC's
    assert "pair_error: UnicodeError on image 'http://img.test/7.jpg'" in caplog.text


def test_pages_and_off_site_links_are_counted_apart_from_dropped_pairs(workdir):
    stats = select(crawl_config(workdir))
    assert stats["counts"] == {"pages": 2}
    assert "pages" not in stats["dropped"]


def test_a_pool_partition_of_the_old_shape_keeps_its_recorded_inputs(workdir):
    """A pool partitioned as before (whole row groups of one file) records the same inputs as
    before, so the done markers of a crawl made before partitions by rows still match."""
    from wit_builder.crawl.run import partition_inputs, partition_settings, source_partitions

    config = crawl_config(workdir)
    partition, = source_partitions(parse_source(f"pool:{workdir / 'pool.parquet'}"), config,
                                   str(workdir / "data" / "harvest"), 0, Counter(), {})
    inputs = partition_inputs(partition, partition_settings(config, workdir / "queries"))
    assert inputs["row_groups"] == [0] and {"rows", "share", "more"}.isdisjoint(inputs)
