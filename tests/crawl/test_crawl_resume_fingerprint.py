"""A rerun of `wit crawl` reuses a finished partition only when it was computed from the same
inputs: other queries, other filter settings, a changed source file or other seeds redo what they
change (and say so), while markers written before markers recorded their inputs still count as
done. The embedded site is served on a fixed port, so its URLs (hence uids) survive a rerun."""

from __future__ import annotations

import json
import logging
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test_crawl import pool_and_warc_workdir, write_queries
from test_crawl import crawl_config as two_source_config
from wit_builder.crawl.run import run, select
from wit_builder.core.options import WitError

OTHER_QUERIES = ["blue", "circle", "star"]


@pytest.fixture
def workdir(tmp_path):
    return pool_and_warc_workdir(tmp_path,
                                 '<img src="/img/10.jpg" alt="a blue star drawn on a page">'
                                 '<img src="/img/11.jpg" alt="a red circle and a triangle">')


def crawl_config(workdir, **settings):
    """test_crawl's pool + WARC crawl, in this process (no worker processes to start)."""
    return two_source_config(workdir, workers=1, **settings)


def fresh_crawl(tmp_path, workdir, queries: list[str], **settings) -> bytes:
    """The selection of a first crawl of the same source files, in a workdir of its own."""
    fresh = tmp_path / "fresh"
    (fresh / "queries").mkdir(parents=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), fresh / "queries" / "queries.parquet")
    select(crawl_config(fresh, source=[f"pool:{workdir / 'pool.parquet'}",
                                       f"warc:{workdir / 'site.warc.gz'}"], **settings))
    return (fresh / "manifests" / "selection.parquet").read_bytes()


def output_times(workdir) -> dict[str, int]:
    folders = ("data/candidates", "data/matched/.staging")
    return {f"{folder}/{path.name}": path.stat().st_mtime_ns for folder in folders
            for path in (workdir / folder).iterdir()}


def test_rerun_with_other_queries_rematches_instead_of_reusing(workdir, tmp_path, caplog):
    select(crawl_config(workdir))
    texts = {row["text"] for row in pq.read_table(workdir / "manifests" / "selection.parquet")
             .to_pylist()}
    assert "A red triangle on a plain background" in texts
    pq.write_table(pa.table({"query_id": pa.array(range(3), pa.int32()), "query": OTHER_QUERIES}),
                   workdir / "queries" / "queries.parquet")
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        select(crawl_config(workdir))
    selection = (workdir / "manifests" / "selection.parquet").read_bytes()
    assert selection == fresh_crawl(tmp_path, workdir, OTHER_QUERIES)
    rows = pq.read_table(workdir / "manifests" / "selection.parquet").to_pylist()
    assert "A red triangle on a plain background" not in {row["text"] for row in rows}
    assert {q for row in rows for q in row["query_ids"]} <= {0, 1, 2}
    assert "partition(s) 00000, 00001 redone: queries_sha256 changed" in caplog.text


@pytest.mark.parametrize("setting, value, reason", [("min_text_chars", 30, "limits"),
                                                    ("lang", "fr", "lang")])
def test_rerun_with_other_filter_settings_refilters(workdir, tmp_path, caplog, setting, value,
                                                    reason):
    first = select(crawl_config(workdir))
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        second = select(crawl_config(workdir, **{setting: value}))
    assert second["dropped"] != first["dropped"]
    assert (workdir / "manifests" / "selection.parquet").read_bytes() == \
        fresh_crawl(tmp_path, workdir, ["blue", "circle", "red", "red triangle", "star",
                                        "triangle"], **{setting: value})
    assert f"redone: {reason} changed" in caplog.text


def test_rerun_after_a_source_file_changed_refilters_only_its_partition(workdir, caplog):
    select(crawl_config(workdir))
    before = output_times(workdir)
    pq.write_table(pa.table({"url": ["http://img.test/20.jpg"],
                             "caption": ["a big blue circle on a red square"]}),
                   workdir / "pool.parquet")
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        select(crawl_config(workdir))
    after = output_times(workdir)
    assert after["data/candidates/part-00001.parquet"] == \
        before["data/candidates/part-00001.parquet"]  # the WARC's partition is kept
    assert after["data/candidates/part-00000.parquet"] != \
        before["data/candidates/part-00000.parquet"]
    urls = pq.read_table(workdir / "data" / "candidates" / "part-00000.parquet")["url"]
    assert urls.to_pylist() == ["http://img.test/20.jpg"]
    assert "partition(s) 00000 redone: file changed" in caplog.text


def test_markers_without_recorded_inputs_still_count_as_done(workdir, caplog):
    select(crawl_config(workdir))
    for marker in (workdir / "data" / "matched" / ".staging").glob("*.json"):
        stats = json.loads(marker.read_text())
        del stats["inputs"]  # as the previous version wrote them
        marker.write_text(json.dumps(stats))
    before = output_times(workdir)
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        select(crawl_config(workdir, min_text_chars=30))
    assert output_times(workdir) == before
    assert "2 partition(s) done by an older witbuilder" in caplog.text


# ---- the embedded site: a fixed port --------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def synthweb_crawl(workdir, synthweb_dir, port: int):
    write_queries(workdir / "queries" / "queries.parquet")
    return crawl_config(workdir, source=["synthweb:"], synthweb_dir=str(synthweb_dir),
                        synthweb_port=port, crawl_delay=0.0, max_pages=8,
                        per_query=50)


def selected_urls(workdir) -> list[str]:
    return pq.read_table(workdir / "manifests" / "selection.parquet")["url"].to_pylist()


def test_synthweb_source_serves_on_its_port_and_a_rerun_reuses_the_harvest(synthweb_dir,
                                                                          tmp_path):
    port = free_port()
    assert run(synthweb_crawl(tmp_path, synthweb_dir, port)) == 0
    urls = selected_urls(tmp_path)
    assert urls and all(url.startswith(f"http://127.0.0.1:{port}/") for url in urls)
    marker = tmp_path / "data" / "harvest" / "web-00000.json"
    stamp = marker.stat().st_mtime_ns
    assert run(synthweb_crawl(tmp_path, synthweb_dir, port)) == 0
    assert marker.stat().st_mtime_ns == stamp and selected_urls(tmp_path) == urls


def test_synthweb_port_taken_is_a_clear_error(synthweb_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WitError, match=f"cannot serve on 127.0.0.1:{port} .*--synthweb-port"):
            run(synthweb_crawl(tmp_path, synthweb_dir, port))


def test_web_source_on_another_port_is_crawled_again_not_reused(synthweb_dir, tmp_path, caplog):
    first = free_port()
    second = next(port for port in iter(free_port, None) if port != first)
    assert run(synthweb_crawl(tmp_path, synthweb_dir, first)) == 0
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        assert run(synthweb_crawl(tmp_path, synthweb_dir, second)) == 0
    # the site's origin, trusted by the guard, moved with the seed
    assert "web-00000 is crawled again: seeds, trusted_origins changed" in caplog.text
    urls = selected_urls(tmp_path)
    assert urls and all(url.startswith(f"http://127.0.0.1:{second}/") for url in urls)
