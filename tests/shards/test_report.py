"""The dataset report: an HTML page whose every image exists and is a readable PNG."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from support.shards_data import build_raw_dataset
from wit_builder.shards import run as shards
from wit_builder.cli import load_config
from wit_builder.shards.report import head_tail_shares


class PageReader(HTMLParser):
    """The page's image sources and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_page_references_only_existing_readable_plots(tmp_path):
    build_raw_dataset(tmp_path, shards=2, per_shard=12)
    config = load_config("shards", None, {"workdir": str(tmp_path), "samples_per_shard": 5,
                                          "workers": 1, "memory_budget_mb": 0.05})
    shards.run(config)
    page = tmp_path / "manifests" / "report.html"
    reader = PageReader()
    reader.feed(page.read_text(encoding="utf-8"))
    reader.close()
    assert len(reader.images) == 6  # ranks, head/tail, statuses, sizes, captions, thumbnails
    for source in reader.images:
        path = page.parent / source
        assert path.is_file(), source
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 200
    text = " ".join(reader.text)
    assert "Queries with zero matches: 5 of 30" in text
    assert "house 26" in text and "car 29" in text  # the zero-match queries, by name
    assert "memory_budget_mb 0.05" in text
    for heading in ("Totals", "Per source", "Duplicates removed", "Skipped inputs"):
        assert heading in text


def test_report_is_left_out_with_no_report(tmp_path):
    build_raw_dataset(tmp_path, shards=1, per_shard=6, exact=0, near=0)
    config = load_config("shards", None, {"workdir": str(tmp_path), "workers": 1,
                                          "report": False})
    shards.run(config)
    assert not (tmp_path / "manifests" / "report.html").exists()
    assert (tmp_path / "manifests" / "dataset.json").is_file()


def test_head_queries_lose_share_after_balancing():
    balance = pa.table({"query_id": [0, 1, 2, 3], "matched": [90, 30, 10, 0],
                        "selected": [20, 20, 10, 0]})
    shares = head_tail_shares(balance, cap=20)
    assert shares["queries"] == {"head": 2, "tail": 2}
    assert shares["before"]["head"] == 120 / 130 and shares["after"]["head"] == 40 / 50
    assert abs(shares["after"]["head"] + shares["after"]["tail"] - 1) < 1e-12


def test_report_survives_a_crawl_without_balance_or_queries_files(tmp_path):
    build_raw_dataset(tmp_path, shards=1, per_shard=6, exact=0, near=0)
    for name in ("manifests/balance.parquet", "queries/queries.parquet",
                 "manifests/selection.parquet", "manifests/crawl_stats.json"):
        (tmp_path / name).unlink()
    shards.run(load_config("shards", None, {"workdir": str(tmp_path), "workers": 1}))
    reader = PageReader()
    reader.feed((tmp_path / "manifests" / "report.html").read_text(encoding="utf-8"))
    assert reader.images and all((tmp_path / "manifests" / src).is_file()
                                 for src in reader.images)
    assert not any("queries.png" in src for src in reader.images)
    assert Path(tmp_path / "manifests" / "report" / "samples.png").is_file()


def index_piece(path: Path, rows: int) -> tuple[str, int]:
    """A scan piece of `rows` index rows (shard 0, positions 0..rows-1) with sha1-like uids."""
    import hashlib

    import pyarrow.parquet as pq

    uids = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(rows)]
    columns = {field.name: pa.nulls(rows, field.type) for field in shards.INDEX}
    columns.update(uid=pa.array(uids), raw_shard=pa.array([0] * rows, pa.int32()),
                   position=pa.array(range(rows), pa.int32()))
    pq.write_table(pa.table(columns, schema=shards.INDEX), path)
    return str(path), rows


def test_report_plots_a_bounded_uniform_sample_of_the_kept_samples(tmp_path, monkeypatch):
    piece = index_piece(tmp_path / "index.parquet", 4000)
    (tmp_path / "drop").mkdir()
    np.array([0, 1, 2], np.int64).tofile(tmp_path / "drop" / "train-0.orders")
    everything = shards.kept_index([piece], tmp_path, seed=0)
    assert everything.num_rows == 3997  # under the cap: every kept sample, the dropped excluded
    assert not {0, 1, 2} & set(everything["position"].to_pylist())
    monkeypatch.setattr(shards, "REPORT_ROWS", 1000)
    sample = shards.kept_index([piece], tmp_path, seed=0)
    assert 1000 - 3 * 28 <= sample.num_rows <= 1000 + 3 * 28  # binomial(4000, 1/4)
    assert sample.equals(shards.kept_index([piece], tmp_path, seed=0))
    assert not sample.equals(shards.kept_index([piece], tmp_path, seed=1))
