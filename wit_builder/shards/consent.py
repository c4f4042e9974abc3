"""What `wit shards` removes from the shards it has just written, so that a rebuild never brings
back a sample that was taken down: the removals recorded by earlier runs
(manifests/takedown.parquet), the `--takedown` lists, and with `--recheck-optout` the samples
whose owners opted out since the crawl (removal.py, takedown.py, optout.py)."""

from __future__ import annotations

from collections.abc import Callable

from wit_builder.core import store
from wit_builder.shards import optout, removal, takedown
from wit_builder.shards.config import ShardsConfig


def prepare(config: ShardsConfig) -> Callable[[], dict]:
    """Read the takedown lists now (a bad line stops the stage before any work); the step that
    applies the removals once the shards and dataset.json are written, and returns
    dataset.json as it then is (for the report)."""
    choosers = [takedown.takedown_chooser(takedown.load_takedown(config.takedown))] \
        if config.takedown else []

    def apply() -> dict:
        manifests = config.path("manifests")
        if config.recheck_optout:
            optout.recheck_and_remove(config, choosers)
        elif choosers or store.exists(store.join(manifests, "takedown.parquet")):
            removal.remove_samples(config, choosers, "takedown")
        return store.read_json(store.join(manifests, "dataset.json"))

    return apply
