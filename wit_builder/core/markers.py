"""Done markers that record their inputs: a rerun reuses a finished piece of work only when what
it was computed from is still the same, and redoes (and says) what changed.

A marker is written last, atomically, through `store` (so a workdir may be a URL): that it exists
says the work is finished, the inputs it records say for what. `check` reads it and decides, for
the inputs now: never done, done, changed (which inputs), unreadable (redone), or done by an older
witbuilder that recorded no inputs. `Decisions` logs a step's decisions in one format.

Each stage states its rule in one place, the function that gives a piece of work's inputs, and
passes the marker's layout to `check` and `write`:

    queries   queries/build.py  partition_inputs   .work/part-NNNNNN.arrow.done: the inputs alone
    crawl     crawl/run.py      web_crawl_inputs   data/harvest/NAME.json, NAME.checkpoint.json
              crawl/run.py      partition_inputs   data/matched/.staging/part-NNNNN.json
              crawl/download/plan.py  shard_inputs    manifests/crawl/NNNNN.parquet (its schema
                                                   metadata `witbuilder.inputs`, see writer.py)
    shards    shards/run.py     scan_inputs        data/shards/.work/done/NNNNN.json
    synthweb  synthweb/generate.py  generation_parameters  synthweb.json ("parameters")

A marker without recorded inputs was written by a witbuilder from before they were recorded: the
crawl's count as done (upgrading never forces a full re-crawl) with one warning; the others, and a
live crawl's checkpoint, are redone (`older_done=False`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wit_builder.core import store

SHOWN = 10  # pieces named in one log line; the rest are counted


def changed_inputs(recorded: dict | None, inputs: dict) -> list[str]:
    """The names of the `recorded` inputs that differ from `inputs` now; none when nothing was
    recorded: a marker written before markers recorded their inputs still counts as done, so
    upgrading never forces a full re-crawl."""
    if recorded is None:
        return []
    now = json.loads(json.dumps(inputs))  # tuples as lists, as the marker holds them
    return sorted(key for key in now.keys() | recorded.keys() if now.get(key) != recorded.get(key))


@dataclass(frozen=True)
class Check:
    """What a marker says about a piece of work, for the inputs it has now.

    `done`: the work can be reused (`record` is the marker's content); else `changed` names the
    inputs that differ from those recorded (empty when it never finished), or `error` says why
    the marker could not be read. `older`: done by an older witbuilder that recorded no inputs."""

    marker: str
    done: bool = False
    record: Any = None
    changed: tuple[str, ...] = ()
    older: bool = False
    error: str = ""


def write(marker: store.Location, inputs: dict, *, key: str | None = "inputs",
          **content: Any) -> None:
    """Mark a piece of work done: `{key: inputs, **content}` (or, with no `key`, the inputs
    alone) as JSON, atomically: the marker appears whole or not at all."""
    if key is None and content:
        raise ValueError("a marker that is its inputs holds nothing else")
    store.write_json(marker, inputs if key is None else {key: inputs, **content})


def check(marker: store.Location, inputs: dict | Callable[[], dict], *,
          key: str | None = "inputs",
          older_done: bool = True,
          read: Callable[[store.Location], Any] = store.read_json) -> Check:
    """Whether the work `marker` marks is done for `inputs` (see Check): the inputs now, or a
    function giving them, called only when there is a marker to compare them with (a file's
    signature may cost a request).

    `key`: where the record holds its inputs (None: the record is its inputs); `older_done`:
    whether a record without inputs counts as done; `read`: how the record is read (JSON, or the
    download manifests' parquet metadata)."""
    where = str(marker)
    if not store.exists(marker):
        return Check(where)
    try:
        record = read(marker)
    except (OSError, ValueError) as error:  # pyarrow's errors are these too
        return Check(where, error=str(error) or type(error).__name__)
    if key is not None and not isinstance(record, dict):
        return Check(where, error=f"not a marker: {type(record).__name__}")
    recorded = record if key is None else record.get(key)
    if recorded is None and older_done:
        return Check(where, True, record, older=True)
    if callable(inputs):
        inputs = inputs()
    if recorded is None:  # not trusted: every input counts as changed
        return Check(where, changed=tuple(changed_inputs({}, inputs)))
    if not isinstance(recorded, dict):
        return Check(where, error=f"its inputs are not an object: {type(recorded).__name__}")
    changed = changed_inputs(recorded, inputs)
    if changed:
        return Check(where, changed=tuple(changed))
    return Check(where, True, record)


def shown(labels: list[str]) -> str:
    """The first SHOWN labels, and how many more."""
    more = f" and {len(labels) - SHOWN} more" if len(labels) > SHOWN else ""
    return ", ".join(labels[:SHOWN]) + more


def log_older(log: logging.Logger, step: str, count: int, unit: str, remedy: str) -> None:
    """The one warning for pieces of work done by an older witbuilder (reused as they are)."""
    if count:
        log.warning("%s: %d %s(s) done by an older witbuilder, which kept no record of their "
                    "inputs: reused as they are; delete %s to redo them", step, count, unit,
                    remedy)


def log_unreadable(log: logging.Logger, step: str, decision: Check, unit: str,
                   label: str) -> None:
    """The one warning for a marker that cannot be read (its work is redone)."""
    log.warning("%s: unreadable marker %s (%s): %s %s redone", step, decision.marker,
                decision.error, unit, label)


class Decisions:
    """The decisions of one step over its pieces of work, logged together in the stage's
    logger: which pieces are redone because which inputs changed, unreadable markers, and how
    many were done by an older witbuilder."""

    def __init__(self, log: logging.Logger, step: str, unit: str, remedy: str):
        self.log, self.step, self.unit, self.remedy = log, step, unit, remedy
        self.redone: dict[str, list[str]] = {}
        self.older = 0

    def add(self, label: str, decision: Check) -> Check:
        """Note the decision on the piece `label`; returns it."""
        if decision.error:
            log_unreadable(self.log, self.step, decision, self.unit, label)
        elif decision.changed:
            self.redone.setdefault(", ".join(decision.changed), []).append(label)
        self.older += decision.older
        return decision

    def report(self) -> None:
        for reason, labels in self.redone.items():
            self.log.info("%s: %s(s) %s redone: %s changed since they were done", self.step,
                          self.unit, shown(labels), reason)
        log_older(self.log, self.step, self.older, self.unit, self.remedy)
