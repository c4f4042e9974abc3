"""`wit crawl --source synthweb:`: the embedded site served on 127.0.0.1 for the whole crawl, a
served source plugged into the crawl from here (the crawl's own code never names it)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.crawl.sources import register_served_source

log = logging.getLogger(__name__)


@contextlib.contextmanager
def serve_site(config: Any) -> Iterator[str]:
    """The site of `--synthweb-dir` served on a fixed port (`--synthweb-port`): the port is part
    of every image URL, so a resumed crawl must find the same one."""
    from wit_builder.synthweb.server import SiteServer

    if store.is_url(config.path(config.synthweb_dir)):
        raise WitError(f"source synthweb: serves local files; with --workdir "
                       f"'{config.workdir}' give an absolute local --synthweb-dir")
    site_dir = Path(config.path(config.synthweb_dir)) / "site"
    if not site_dir.is_dir():
        raise WitError(f"source synthweb: needs {site_dir}; run `wit synthweb generate` first")
    port = config.synthweb_port
    if port == 0:
        log.warning("crawl: --synthweb-port 0 serves the site on any free port; its URLs, hence "
                    "the pairs' uids, change with the port, so a rerun of this crawl starts over")
    site = SiteServer(site_dir, host="127.0.0.1", port=port)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(site)
        except WitError as error:
            reason = str(error).rsplit(": ", 1)[-1]
            raise WitError(f"source synthweb: cannot serve on 127.0.0.1:{port} ({reason}): is "
                           f"another `wit crawl`, `wit demo` or `wit synthweb serve` using it? "
                           f"Stop it, or give another --synthweb-port (the same on every run "
                           f"of this workdir)") from None
        log.info("crawl: serving the synthetic web at %s", server.url)
        yield server.url


register_served_source("synthweb", serve_site)
