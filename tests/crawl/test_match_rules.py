"""A crawl workdir built under other tokenisation rules: its filter+match partitions are redone
(their markers record the rules), and a queries file whose stats.json names other rules is
reported (the crawl warns: rerun `wit queries`)."""

from __future__ import annotations

import json
import logging

from test_crawl import crawl_config, pool_and_warc_workdir
from wit_builder.core.text import TOKENIZATION
from wit_builder.crawl.run import select


def make_workdir(tmp_path):
    return pool_and_warc_workdir(tmp_path,
                                 '<img src="/img/10.jpg" alt="a red circle and a triangle">')


def test_partitions_matched_under_other_rules_are_rematched(tmp_path, caplog):
    work = make_workdir(tmp_path)
    select(crawl_config(work, workers=1))
    first = (work / "manifests" / "selection.parquet").read_bytes()
    markers = sorted((work / "data" / "matched" / ".staging").glob("*.json"))
    assert markers
    for marker in markers:  # as the first rules' markers were: no tokenisation recorded
        record = json.loads(marker.read_text())
        assert record["inputs"].pop("tokenization") == TOKENIZATION
        marker.write_text(json.dumps(record))
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        select(crawl_config(work, workers=1))
    assert "redone: tokenization changed" in caplog.text
    assert (work / "manifests" / "selection.parquet").read_bytes() == first


def test_queries_built_under_other_rules_are_reported(tmp_path, caplog):
    work = make_workdir(tmp_path)
    (work / "queries" / "stats.json").write_text(json.dumps({"tokenization": "witbuilder-tokens-1"}))
    with caplog.at_level(logging.WARNING, logger="wit_builder.crawl.match"):
        select(crawl_config(work, workers=1))
    assert "built under tokenisation rules witbuilder-tokens-1" in caplog.text
    assert "rerun `wit queries`" in caplog.text
