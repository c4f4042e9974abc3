"""Where pairs come from: live pages (web.py), WARC files (warc.py), URL–caption pools (pool.py),
and the served sources other packages plug in (a local site served for the length of a crawl and
crawled live, such as the demo's site)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

# kind -> a function of the crawl's settings that serves the site for the length of a `with`
# block and gives its URL. The crawl trusts exactly that origin and crawls it without delay.
ServeSite = Callable[[Any], AbstractContextManager[str]]
SERVED_SOURCES: dict[str, ServeSite] = {}


def register_served_source(kind: str, serve: ServeSite) -> None:
    """Make `--source KIND:` serve a site with `serve(config)` and crawl it."""
    SERVED_SOURCES[kind] = serve
