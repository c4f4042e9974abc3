"""Done markers that record their inputs: a rerun reuses a finished piece of work only when what
it was computed from is still the same (crawl partitions, download shards)."""

from __future__ import annotations

import json


def changed_inputs(recorded: dict | None, inputs: dict) -> list[str]:
    """The names of the `recorded` inputs that differ from `inputs` now; none when nothing was
    recorded: a marker written before markers recorded their inputs still counts as done, so
    upgrading never forces a full re-crawl."""
    if recorded is None:
        return []
    now = json.loads(json.dumps(inputs))  # tuples as lists, as the marker holds them
    return sorted(key for key in now.keys() | recorded.keys() if now.get(key) != recorded.get(key))
