"""URLs from the wild: one canonical form before the dedupe, the uid and the fetch; and a web
crawl whose seeds are all blocked by the address guard fails with one line naming the way out."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.cli import load_config
from wit_builder.core.options import WitError
from wit_builder.crawl.run import canonical_url, pair_uid, select


@pytest.mark.parametrize("url, canonical", [
    ("http://img.test/a b.jpg", "http://img.test/a%20b.jpg"),
    ("http://img.test/a%20b.jpg", "http://img.test/a%20b.jpg"),
    ("HTTP://Img.TEST:80/x.jpg#frag", "http://img.test/x.jpg"),
    ("https://h.org:443/p/q.png?w=300&h=2#top", "https://h.org/p/q.png?w=300&h=2"),
    ("https://h.org:8443/a%2fb.jpg", "https://h.org:8443/a%2Fb.jpg"),
    ("http://[::1]:8080/a.jpg", "http://[::1]:8080/a.jpg"),
    ("http://h.org/caf\u00e9.jpg?q=a b", "http://h.org/caf%C3%A9.jpg?q=a%20b"),
    ("data:image/png;base64,AAAA", "data:image/png;base64,AAAA"),
    ("http://host:notaport/x.jpg", "http://host:notaport/x.jpg"),
])
def test_canonical_url(url, canonical):
    assert canonical_url(url) == canonical
    assert canonical_url(canonical) == canonical


def test_ordinary_urls_keep_their_form_and_uid():
    for url in ("http://img.test/1.jpg", "http://127.0.0.1:8000/img/p3-7.png?size=96",
                "https://example.org/images/a-b_c.jpeg"):
        assert canonical_url(url) == url
        assert pair_uid(canonical_url(url), "text") == pair_uid(url, "text")


def write_queries(path, queries):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), path)


def test_two_spellings_of_one_url_are_one_sample(tmp_path):
    write_queries(tmp_path / "queries" / "queries.parquet", ["red", "star"])
    caption = "a small red star on a white page"
    urls = ["http://img.test/a b.jpg", "HTTP://IMG.test:80/a%20b.jpg#x", "http://img.test/a%20b.jpg"]
    pq.write_table(pa.table({"url": urls, "caption": [caption] * 3}), tmp_path / "pool.parquet")
    config = load_config("crawl", None, {"workdir": str(tmp_path), "download": False,
                                         "source": [f"pool:{tmp_path / 'pool.parquet'}"]})
    stats = select(config)
    rows = pq.read_table(tmp_path / "manifests" / "selection.parquet").to_pylist()
    assert [row["url"] for row in rows] == ["http://img.test/a%20b.jpg"]
    assert stats["dropped"]["duplicate_pair"] == 2


def test_a_crawl_whose_seeds_are_all_blocked_says_so(tmp_path):
    write_queries(tmp_path / "queries" / "queries.parquet", ["red"])
    (tmp_path / "seeds.txt").write_text("http://127.0.0.1:9/\nhttp://10.0.0.1/\n")
    config = load_config("crawl", None, {"workdir": str(tmp_path), "download": False,
                                         "source": [f"web:@{tmp_path / 'seeds.txt'}"],
                                         "crawl_delay": 0.0, "timeout": 2.0})
    with pytest.raises(WitError) as error:
        select(config)
    message = str(error.value)
    assert "--allow-private" in message and "\n" not in message
    assert "127.0.0.1" in message
