"""core/markers.py: a done marker records its inputs; a rerun reuses the work only for the same
inputs, names the ones that changed, counts a marker from an older witbuilder (no inputs) as done
or not as its stage says, redoes the work of an unreadable marker, and writes markers atomically
on local disk and on an fsspec store."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from wit_builder.core import markers, store

INPUTS = {"file": [10, 20], "seed": 0, "limits": {"min_chars": 5}}


def test_same_inputs_are_done_and_the_record_comes_back(tmp_path: Path):
    marker = tmp_path / "part" / "00000.json"
    markers.write(marker, INPUTS, dropped={"no_url": 2}, chunks=["a.parquet"])
    assert json.loads(marker.read_text()) == {"inputs": INPUTS, "dropped": {"no_url": 2},
                                              "chunks": ["a.parquet"]}
    assert marker.read_text() == json.dumps(json.loads(marker.read_text()), indent=2,
                                            sort_keys=True, ensure_ascii=False) + "\n"
    check = markers.check(marker, dict(INPUTS))
    assert check.done and not check.older and check.changed == () and not check.error
    assert check.record["dropped"] == {"no_url": 2} and check.marker == str(marker)


def test_tuples_compare_equal_to_the_lists_a_marker_holds(tmp_path: Path):
    markers.write(tmp_path / "m.json", {"row_groups": (0, 1)})
    assert markers.check(tmp_path / "m.json", {"row_groups": (0, 1)}).done


def test_changed_inputs_are_named_added_removed_and_modified(tmp_path: Path):
    markers.write(tmp_path / "m.json", INPUTS)
    now = {"file": [10, 21], "limits": {"min_chars": 5}, "lang": "en"}
    check = markers.check(tmp_path / "m.json", now)
    assert not check.done and check.changed == ("file", "lang", "seed")
    assert check.record is None


def test_no_marker_is_not_done_and_the_inputs_are_not_computed(tmp_path: Path):
    def inputs() -> dict:
        raise AssertionError("computed without a marker to compare with")

    check = markers.check(tmp_path / "missing.json", inputs)
    assert (check.done, check.changed, check.error, check.older) == (False, (), "", False)


def test_inputs_given_as_a_function_are_computed_when_compared(tmp_path: Path):
    markers.write(tmp_path / "m.json", INPUTS)
    assert markers.check(tmp_path / "m.json", lambda: dict(INPUTS)).done
    assert markers.check(tmp_path / "m.json", lambda: {**INPUTS, "seed": 1}).changed == ("seed",)


def test_a_marker_of_an_older_witbuilder_counts_as_done_or_not_as_the_stage_says(tmp_path):
    marker = tmp_path / "old.json"
    marker.write_text(json.dumps({"dropped": {}, "chunks": []}))
    older = markers.check(marker, lambda: pytest.fail("not needed"))
    assert older.done and older.older and older.record == {"dropped": {}, "chunks": []}
    strict = markers.check(marker, {"seeds": ["a"], "max_pages": 3, "unset": None},
                           older_done=False)
    assert not strict.done and strict.changed == ("max_pages", "seeds")


def test_a_marker_that_is_its_inputs(tmp_path: Path):
    marker = tmp_path / "part-000000.arrow.done"
    markers.write(marker, INPUTS, key=None)
    assert json.loads(marker.read_text()) == INPUTS
    assert markers.check(marker, INPUTS, key=None, older_done=False).done
    assert markers.check(marker, {**INPUTS, "seed": 2}, key=None).changed == ("seed",)
    with pytest.raises(ValueError):
        markers.write(marker, INPUTS, key=None, result={})


def test_a_marker_under_another_key_and_another_reader(tmp_path: Path):
    markers.write(tmp_path / "synthweb.json", {"seed": 1}, key="parameters", seconds=0.5)
    assert markers.check(tmp_path / "synthweb.json", {"seed": 1}, key="parameters").done
    check = markers.check(tmp_path / "synthweb.json", {"seed": 1}, key=None,
                          read=lambda location: store.read_json(location)["parameters"])
    assert check.done and check.record == {"seed": 1}


@pytest.mark.parametrize("content", [b"{\"inputs\": {\"seed\"", b"[1, 2]", b"\xff\xfe",
                                     b"{\"inputs\": [1]}"])
def test_an_unreadable_marker_is_redone_with_its_reason(tmp_path: Path, content: bytes):
    (tmp_path / "m.json").write_bytes(content)
    check = markers.check(tmp_path / "m.json", INPUTS)
    assert not check.done and check.error and check.changed == ()


def test_a_failed_write_leaves_the_old_marker_whole(tmp_path: Path, monkeypatch):
    marker = tmp_path / "m.json"
    markers.write(marker, INPUTS)
    before = marker.read_bytes()

    def half_then_fail(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        markers.write(marker, {**INPUTS, "seed": 9})
    monkeypatch.undo()
    assert marker.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["m.json"]  # no temporary left


def test_markers_on_an_fsspec_store():
    pytest.importorskip("fsspec")
    base = f"memory://markers-{uuid.uuid4().hex}/run"
    marker = store.join(base, "data", "harvest", "web-00000.json")
    assert not markers.check(marker, INPUTS).done
    markers.write(marker, INPUTS, dropped={"pages": 3})
    assert store.read_json(marker) == {"inputs": INPUTS, "dropped": {"pages": 3}}
    check = markers.check(marker, INPUTS)
    assert check.done and check.record["dropped"] == {"pages": 3}
    assert markers.check(marker, {**INPUTS, "seed": 1}).changed == ("seed",)
    store.remove_tree(base)


def test_decisions_are_logged_in_one_format_by_the_stages_logger(tmp_path: Path, caplog):
    stage = logging.getLogger("wit_builder.tests.stage")
    decisions = markers.Decisions(stage, "crawl: filter + match", "partition",
                                  "data/matched/.staging")
    for number in range(13):
        markers.write(tmp_path / f"{number}.json", {"seed": 0, "file": [1]})
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "bad.json").write_text("{")
    with caplog.at_level(logging.INFO, logger="wit_builder.tests.stage"):
        for number in range(12):
            decisions.add(f"{number:05d}", markers.check(tmp_path / f"{number}.json",
                                                         {"seed": 1, "file": [1]}))
        decisions.add("00012", markers.check(tmp_path / "12.json", {"seed": 0, "file": [2]}))
        decisions.add("00013", markers.check(tmp_path / "old.json", {"seed": 0}))
        decisions.add("00014", markers.check(tmp_path / "bad.json", {"seed": 0}))
        decisions.add("00015", markers.check(tmp_path / "none.json", {"seed": 0}))
        decisions.report()
    assert all(record.name == "wit_builder.tests.stage" for record in caplog.records)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith(f"crawl: filter + match: unreadable marker {tmp_path}/bad.json (")
    assert messages[0].endswith("): partition 00014 redone")
    assert messages[1:] == [
        "crawl: filter + match: partition(s) 00000, 00001, 00002, 00003, 00004, 00005, 00006, "
        "00007, 00008, 00009 and 2 more redone: seed changed since they were done",
        "crawl: filter + match: partition(s) 00012 redone: file changed since they were done",
        "crawl: filter + match: 1 partition(s) done by an older witbuilder, which kept no record "
        "of their inputs: reused as they are; delete data/matched/.staging to redo them"]
