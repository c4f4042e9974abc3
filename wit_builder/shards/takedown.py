"""Takedown lists (`wit takedown FILE`, `wit shards --takedown FILE`): URLs whose samples leave
the training shards.

A list holds http(s) URLs, one a line (plain or gzip, `#` comments), compared in canonical form
(net/urls.py, the crawl's) with each sample's image URL (reason `takedown`) and the URL of the
page it was found on (reason `takedown_page`: every image taken from a listed page). A line that
is not an http(s) URL is an error naming the file and the line, before any shard is touched.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from wit_builder.core.engine import stage_engine
from wit_builder.core.listfile import read_list_lines
from wit_builder.core.options import WitError
from wit_builder.net.urls import canonical_http_url, canonical_url
from wit_builder.shards import removal
from wit_builder.shards.config import TakedownConfig

log = logging.getLogger(__name__)


def load_takedown(paths: list[str]) -> frozenset[str]:
    """The canonical URLs of the takedown lists at `paths`."""
    urls = set()
    for path in paths:
        for number, line in read_list_lines(path, "takedown list"):
            url = canonical_http_url(line)
            if url is None:
                raise WitError(f"takedown list '{path}' line {number}: '{line[:80]}' is not an "
                               f"http(s) URL (one URL a line, # for comments)")
            urls.add(url)
    return frozenset(urls)


def takedown_chooser(listed: frozenset[str]) -> removal.Chooser:
    """The samples whose image URL (`takedown`) or page URL (`takedown_page`) is `listed`."""

    def choose(index: pa.Table) -> dict[str, str]:
        chosen = {}
        for uid, url, page_url in zip(index["uid"].to_pylist(), index["url"].to_pylist(),
                                      index["page_url"].to_pylist()):
            if url and canonical_url(url) in listed:
                chosen[uid] = "takedown"
            elif page_url and canonical_url(page_url) in listed:
                chosen[uid] = "takedown_page"
        return chosen

    return choose


@stage_engine
def run(config: TakedownConfig) -> int:
    """`wit takedown FILE`: remove the listed URLs' samples from the existing training shards."""
    if not config.file:
        raise WitError("give the takedown list: wit takedown FILE (URLs, one a line)")
    listed = load_takedown([config.file])
    log.info("takedown: %d URLs listed in %s", len(listed), config.file)
    removal.remove_samples(config, [takedown_chooser(listed)], "takedown")
    return 0
