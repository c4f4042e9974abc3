"""`pool.parquet`: the site's captioned pictures as a LAION-like URL-caption list.

One row per picture a robots-obeying crawler keeps (the images of `site.crawl_order`, in that
order), so every URL of the pool is also in `site.warc.gz`. URLs are absolute with one origin:
`config.recorded_origin` when generated, another through `warc.record_site`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from wit_builder.core import atomic
from wit_builder.synthweb import site

log = logging.getLogger(__name__)

POOL_NAME = "pool.parquet"
POOL_SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string()), ("width", pa.int32()),
                         ("height", pa.int32()), ("lang", pa.string())])


def pool_rows(truth: dict, origin: str) -> list[dict]:
    pictures = {row["path"]: row for rows in site.kept_images(truth).values() for row in rows}
    return [{"url": origin + path, "caption": pictures[path]["text"],
             "width": pictures[path]["width"], "height": pictures[path]["height"],
             "lang": pictures[path]["lang"]}
            for path in site.crawl_order(truth) if path in pictures]


def write_pool(out: Path, config, origin: str | None = None, path: Path | None = None) -> dict:
    """Write the pool of the site generated under `out` into `path` (default `out/pool.parquet`)."""
    origin = site.check_origin(origin or config.recorded_origin)
    rows = pool_rows(site.read_truth(out), origin)
    path = Path(path) if path else Path(out) / POOL_NAME
    atomic.write_parquet(path, pa.Table.from_pylist(rows, schema=POOL_SCHEMA))
    log.info("synthweb: pool of %d captioned pictures at %s", len(rows), path)
    return {"path": path.name, "origin": origin, "rows": len(rows),
            "sha256": atomic.sha256_file(path)}
