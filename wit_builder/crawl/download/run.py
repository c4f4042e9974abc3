"""`download_selection`: check the selection and the settings, cut the selection into shards,
remove the shards a larger selection left, then hand the shards to the downloader chosen
(`native.download_with_native` or `img2dataset_backend.download_with_img2dataset`); both write
every sample through `writer.raw_sample` and return `stats.summary` (with `stats.blur_counts`
under --blur-faces)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wit_builder.core import store
from wit_builder.core.engine import stage_engine
from wit_builder.crawl.download import img2dataset_backend, native
from wit_builder.crawl.download.plan import check_selection, plan_download
from wit_builder.crawl.download.stats import blur_counts

if TYPE_CHECKING:  # the workers' fork server imports this package: only what they run
    from wit_builder.crawl.config import CrawlConfig


def download_selection(config: CrawlConfig, selection: store.Location) -> dict:
    """Download every row of `selection` (a path or URL) into raw shards, redoing the shards
    whose rows or image settings changed; return the counts per status."""
    check_selection(config, selection)
    if config.downloader == "img2dataset":
        img2dataset_backend.check_engine(config)
    return download_checked(config, selection)


@stage_engine  # an entry of its own too (tests, benchmarks); inside `wit crawl`, the crawl's engine
def download_checked(config: CrawlConfig, selection: store.Location) -> dict:
    shards, settings = plan_download(config, selection)
    if config.downloader == "img2dataset":
        stats = img2dataset_backend.download_with_img2dataset(config, selection, shards,
                                                              settings)
    else:
        stats = native.download_with_native(shards, settings)
    if settings.image.safety.blur_faces:   # from the manifests: skipped shards count too
        stats.update(blur_counts(settings.workdir, len(shards)))
    return stats
