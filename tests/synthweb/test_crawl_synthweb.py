"""The crawl on the embedded synthetic web: the live crawl, its WARC recording and its URL pool
yield the same candidates; what the site's ground truth says is English and captioned is found."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.synthweb.config import SynthwebConfig
from wit_builder.cli import load_config
from wit_builder.crawl.run import run, select
from wit_builder.synthweb.concepts import COLOURS, SHAPES
from wit_builder.synthweb.server import SiteServer
from wit_builder.synthweb.warc import record_site


QUERIES = sorted(set(COLOURS) | set(SHAPES) | set(SHAPES.values()))


def prepare(workdir):
    (workdir / "queries").mkdir(parents=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(QUERIES)), pa.int32()),
                             "query": QUERIES}), workdir / "queries" / "queries.parquet")


def candidates(workdir, origin: str) -> set[tuple[str, str]]:
    rows = set()
    for path in sorted((workdir / "data" / "candidates").glob("*.parquet")):
        for row in pq.read_table(path, columns=["url", "text"]).to_pylist():
            rows.add((row["url"].replace(origin, "ORIGIN"), row["text"]))
    return rows


def crawl(workdir, sources, **extra):
    prepare(workdir)
    config = load_config("crawl", None, {"workdir": str(workdir), "source": sources,
                                         "download": False, "allow_private": True,
                                         "crawl_delay": 0.0, "workers": 1, **extra})
    return config


@pytest.fixture(scope="module")
def recorded(synthweb_dir, tmp_path_factory):
    """The site served live, and its WARC re-recorded for the origin it is served on."""
    target = tmp_path_factory.mktemp("recorded")
    with SiteServer(synthweb_dir / "site") as server:
        origin = server.url.rstrip("/")
        record_site(synthweb_dir, SynthwebConfig(), origin, target)
        live = tmp_path_factory.mktemp("live")
        select(crawl(live, ["web:" + server.url]), None)
        paths = server.paths()
    return {"origin": origin, "dir": target, "live": live, "requests": paths}


def test_live_crawl_never_enters_the_disallowed_section(recorded):
    assert "/robots.txt" in recorded["requests"]
    assert not any(path.startswith("/private/") for path in recorded["requests"])


def test_warc_and_pool_yield_the_live_crawls_candidates(recorded, tmp_path):
    origin = recorded["origin"]
    live = candidates(recorded["live"], origin)
    warc_files = sorted(recorded["dir"].glob("*.warc.gz"))
    pool_files = sorted(recorded["dir"].glob("*.parquet"))
    assert warc_files and pool_files
    select(crawl(tmp_path / "warc", [f"warc:{warc_files[0]}"]))
    select(crawl(tmp_path / "pool", [f"pool:{pool_files[0]}"]))
    assert len(live) > 50
    assert candidates(tmp_path / "warc", origin) == live
    assert candidates(tmp_path / "pool", origin) == live


def test_english_captioned_pictures_of_the_truth_are_matched(recorded, synthweb_dir):
    truth = json.loads((synthweb_dir / "site_truth.json").read_text())
    english = {image["path"] for image in truth["images"] if image["lang"] == "en"
               and not image["decoy"] and not image["robots"] and image["text"]}
    foreign = {image["path"] for image in truth["images"] if image["lang"] != "en"}
    matched = {}
    for path in (recorded["live"] / "data" / "matched").glob("part-*.parquet"):
        matched |= {r["url"].removeprefix(recorded["origin"]): r["lang"]
                    for r in pq.read_table(path).to_pylist()}
    assert set(matched.values()) == {"en"} and not (set(matched) & foreign)
    # langdetect misses some very short English captions; nearly all must be found
    assert len(set(matched) & english) >= 0.85 * len(english)
    stats = json.loads((recorded["live"] / "manifests" / "crawl_stats.json").read_text())
    assert stats["dropped"]["not_en"] > 0  # the French, German and Spanish pages
    assert stats["dropped"]["tracking_pixel"] > 0 and stats["dropped"]["text_is_filename"] > 0


def test_synthweb_source_serves_the_site_for_the_crawl(synthweb_dir, tmp_path):
    config = crawl(tmp_path, ["synthweb:"], synthweb_dir=str(synthweb_dir), max_pages=5,
                   synthweb_port=0)  # any free port: this test need not resume
    assert run(config) == 0
    assert (tmp_path / "manifests" / "selection.parquet").exists()
