"""URL–caption pools: every format reads back the same pairs, streamed; bad files fail clearly."""

from __future__ import annotations

import gzip
import json
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.core.options import WitError
from wit_builder.crawl.sources.pool import PoolColumns, PoolPartition, pool_partitions, read_pool

ROWS = [(f"http://img.test/{i}.jpg", f"caption number {i}, with a comma") for i in range(50)]


def write_pool(path, kind, rows=ROWS, url_col="url", text_col="caption"):
    if kind == "parquet":
        table = pa.table({url_col: [u for u, _ in rows], text_col: [t for _, t in rows],
                          "width": list(range(len(rows)))})
        if str(path).endswith(".gz"):
            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer, row_group_size=10)
            path.write_bytes(gzip.compress(buffer.getvalue().to_pybytes()))
        else:
            pq.write_table(table, path, row_group_size=10)
        return
    if kind in ("csv", "tsv"):
        sep = "\t" if kind == "tsv" else ","
        lines = [f"{url_col}{sep}{text_col}"]
        lines += [f'{u}{sep}"{t}"' for u, t in rows]
        data = ("\n".join(lines) + "\n").encode()
    else:
        data = "".join(json.dumps({url_col: u, text_col: t, "x": 1}) + "\n"
                       for u, t in rows).encode()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def read_all(spec, columns=PoolColumns()):
    return [pair for part in pool_partitions(str(spec)) for pair in read_pool(part, columns)]


@pytest.mark.parametrize("name", ["p.parquet", "p.csv", "p.tsv", "p.jsonl", "p.csv.gz",
                                  "p.jsonl.gz", "p.parquet.gz"])
def test_every_format_reads_back_the_same_pairs(tmp_path, name):
    path = tmp_path / name
    write_pool(path, name.split(".")[1])
    assert read_all(path) == ROWS


def test_parquet_is_split_into_row_group_partitions(tmp_path):
    write_pool(tmp_path / "big.parquet", "parquet")
    parts = pool_partitions(str(tmp_path / "big.parquet"))
    assert len(parts) == 2  # 5 row groups of 10 rows, 4 groups a partition
    assert read_all(tmp_path / "big.parquet") == ROWS


def test_directory_and_glob_list_pool_files(tmp_path):
    write_pool(tmp_path / "a.parquet", "parquet", ROWS[:10])
    write_pool(tmp_path / "b.jsonl", "jsonl", ROWS[10:20])
    (tmp_path / "notes.md").write_text("not a pool")
    assert read_all(tmp_path) == ROWS[:20]
    assert read_all(tmp_path / "*.jsonl") == ROWS[10:20]


def test_configurable_columns(tmp_path):
    write_pool(tmp_path / "d.parquet", "parquet", url_col="URL", text_col="TEXT")
    assert read_all(tmp_path / "d.parquet", PoolColumns(url="URL", text="TEXT")) == ROWS


@pytest.mark.parametrize("name", ["m.parquet", "m.csv", "m.jsonl"])
def test_missing_url_column_is_a_clear_error(tmp_path, name):
    write_pool(tmp_path / name, name.split(".")[1], url_col="link")
    with pytest.raises(WitError, match=f"{name}' has no column 'url'.*link"):
        read_all(tmp_path / name)


def test_unreadable_inputs_are_clear_errors(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(WitError, match="not a readable parquet"):
        read_all(tmp_path / "x.parquet")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(WitError, match="unknown extension"):
        read_all(tmp_path / "x.xlsx")
    with pytest.raises(WitError, match="matches no file"):
        read_all(tmp_path / "none-*.csv")
    (tmp_path / "y.parquet.gz").write_bytes(b"not gzip either")
    with pytest.raises(WitError, match="y.parquet.gz' is not a readable gzip file"):
        read_all(tmp_path / "y.parquet.gz")


def test_gzipped_parquet_is_read_by_batches_from_a_scratch_file_then_removed(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    rows = [(f"http://img.test/{i}.jpg", f"caption {i}") for i in range(5000)]
    write_pool(tmp_path / "big.parquet.gz", "parquet", rows)
    part, = pool_partitions(str(tmp_path / "big.parquet.gz"))
    pairs = read_pool(part)
    assert next(pairs) == rows[0]
    assert len(list((tmp_path / "scratch").iterdir())) == 1  # the unzipped file, while reading
    assert [rows[0], *pairs] == rows
    assert list((tmp_path / "scratch").iterdir()) == []


def test_missing_values_come_back_empty_for_the_filters_to_count(tmp_path):
    table = pa.table({"url": ["http://a.test/1.jpg", None], "caption": [None, "orphan"]})
    pq.write_table(table, tmp_path / "n.parquet")
    assert read_all(tmp_path / "n.parquet") == [("http://a.test/1.jpg", ""), ("", "orphan")]


def test_one_big_row_group_splits_into_row_ranges_read_once_each(tmp_path):
    rows = [(f"http://img.test/{i}.jpg", f"caption {i}") for i in range(2_500)]
    path = tmp_path / "one-group.parquet"
    pq.write_table(pa.table({"url": [u for u, _ in rows], "caption": [t for _, t in rows]}),
                   path, row_group_size=len(rows))
    assert pq.ParquetFile(path).num_row_groups == 1
    parts = pool_partitions(str(path), rows=1_000)
    assert len(parts) == 3 and [part.rows for part in parts] == [(0, 1000), (1000, 2000),
                                                                 (2000, 2500)]
    assert [pair for part in parts for pair in read_pool(part)] == rows
    # at the default size, batches of BATCH_ROWS do not line up with the ranges either
    parts = pool_partitions(str(path), rows=777)
    assert len(parts) == 4 and [pair for part in parts for pair in read_pool(part)] == rows


def test_small_row_groups_keep_their_partitions(tmp_path):
    """A file whose row groups are small is partitioned as before (4 groups a partition), so the
    done markers of an earlier crawl still match."""
    write_pool(tmp_path / "p.parquet", "parquet")
    parts = pool_partitions(str(tmp_path / "p.parquet"))
    assert [(part.row_groups, part.rows) for part in parts] == [((0, 1, 2, 3), None), ((4,), None)]


def test_row_groups_are_grouped_up_to_the_row_budget(tmp_path):
    write_pool(tmp_path / "p.parquet", "parquet")  # 5 groups of 10 rows
    parts = pool_partitions(str(tmp_path / "p.parquet"), rows=25)
    assert [part.row_groups for part in parts] == [(0, 1), (2, 3), (4,)]
    assert [pair for part in parts for pair in read_pool(part)] == ROWS


def test_unreadable_rows_are_counted_and_the_rest_read(tmp_path, caplog):
    from collections import Counter

    (tmp_path / "bad.csv").write_text(
        'url,caption\nhttp://a.test/1.jpg,one\nhttp://a.test/2.jpg,two,"a third field"\n'
        'http://a.test/3.jpg,three\n')
    (tmp_path / "bad.jsonl").write_text(
        '{"url": "http://a.test/4.jpg", "caption": "four"}\n{not json\n[1, 2]\n"text"\n'
        '{"url": "http://a.test/5.jpg", "caption": ["a", "list"]}\n'
        '{"url": 6, "caption": "six"}\n' + "[" * 100_000 + "\n")
    dropped: Counter = Counter()
    pairs = [pair for part in pool_partitions(str(tmp_path))
             for pair in read_pool(part, dropped=dropped)]
    assert pairs == [("http://a.test/1.jpg", "one"), ("http://a.test/3.jpg", "three"),
                     ("http://a.test/4.jpg", "four"), ("http://a.test/5.jpg", '["a", "list"]'),
                     ("6", "six")]
    assert dropped == {"row_error": 5}
    assert "bad.csv" in caplog.text and "bad.jsonl': line 2 is not JSON" in caplog.text


def test_a_file_of_no_json_at_all_is_a_clear_error(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n binary \n")
    with pytest.raises(WitError, match="x.jsonl' holds no JSON object"):
        read_all(tmp_path / "x.jsonl")


def test_a_thousand_small_files_group_into_few_partitions(tmp_path):
    rows = [(f"http://img.test/{i}.jpg", f"caption {i}") for i in range(3_000)]
    for number in range(1_000):
        kind = ("parquet", "jsonl", "csv")[number // 400]  # 400 parquet, 400 jsonl, 200 csv
        write_pool(tmp_path / f"{number:04d}.{kind}", kind, rows[3 * number:3 * number + 3])
    parts = pool_partitions(str(tmp_path), rows=500)
    # parquet: 1,200 rows (3 a file) by 500; jsonl and csv: ~180 bytes a file, sized at
    # ROW_BYTES a row: one partition each
    assert len(parts) == 5
    assert all(len({pool_format_of(p) for p in (part.path, *part.more)}) == 1 for part in parts)
    assert [pair for part in parts for pair in read_pool(part)] == rows
    assert pool_partitions(str(tmp_path / "0000.parquet")) == [
        PoolPartition(str(tmp_path / "0000.parquet"), "parquet", (0,))]  # one file: as before


def pool_format_of(path: str) -> str:
    return path.rsplit(".", 1)[1]


@pytest.mark.parametrize("name", ["big.csv", "big.tsv", "big.jsonl", "big.csv.gz"])
def test_a_big_text_file_is_read_in_shares_each_row_once(tmp_path, name):
    from collections import Counter

    rows = [(f"http://img.test/{i}.jpg", f"caption {i}, long enough " + "x" * (i % 50))
            for i in range(60_000)]
    bad = {7, 20_000, 41_234, 59_999}
    path = tmp_path / name
    write_pool(path, name.split(".")[1], rows)
    lines = path.read_bytes()
    if name.endswith(".gz"):
        lines = gzip.decompress(lines)
    lines = lines.decode().split("\n")
    header = 0 if name.endswith("jsonl") else 1
    for i in bad:  # a row that cannot be read, in several batches
        lines[i + header] = "{not json" if name.endswith("jsonl") else \
            lines[i + header] + ("\tx\ty" if name.endswith("tsv") else ",x,y")
    data = "\n".join(lines).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    kept = [row for i, row in enumerate(rows) if i not in bad]
    # sized from the file's bytes (a gzipped one at GZIP_RATIO; these rows compress better)
    parts = pool_partitions(str(path), rows=2_000 if name.endswith(".gz") else 10_000)
    assert len(parts) >= 3 and {part.share[1] for part in parts} == {len(parts)}
    dropped: Counter = Counter()
    pairs = [pair for part in parts for pair in read_pool(part, dropped=dropped)]
    assert sorted(pairs) == sorted(kept) and len(pairs) == len(kept)
    assert dropped == {"row_error": len(bad)}


@pytest.mark.parametrize("name", ["latin.csv", "latin.tsv", "latin.jsonl", "latin.csv.gz"])
def test_a_caption_in_latin_1_is_read_as_pages_are(tmp_path, name):
    """One caption that is not UTF-8 (Windows-1252, as in old pools) neither makes the file
    unreadable nor loses its letters."""
    write_pool(tmp_path / name, name.split(".")[1], ROWS[:3])
    data = tmp_path.joinpath(name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    data = data.replace(b"caption number 1,", "café number 1,".encode("cp1252"))
    tmp_path.joinpath(name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert read_all(tmp_path / name) == [ROWS[0], (ROWS[1][0], "café number 1, with a comma"),
                                         ROWS[2]]


def test_binary_and_numeric_columns_come_back_as_text(tmp_path):
    table = pa.table({"url": pa.array([b"http://a.test/1.jpg", b"http://a.test/\xe9.jpg"]),
                      "caption": pa.array([b"caf\xc3\xa9", b"caf\xe9"]),
                      "n": pa.array([1, 2])})
    pq.write_table(table, tmp_path / "b.parquet")
    assert read_all(tmp_path / "b.parquet") == [("http://a.test/1.jpg", "café"),
                                                ("http://a.test/é.jpg", "café")]
    pq.write_table(pa.table({"url": [7], "caption": [1.5]}), tmp_path / "n.parquet")
    assert read_all(tmp_path / "n.parquet") == [("7", "1.5")]


def test_a_damaged_row_group_costs_only_its_rows(tmp_path, caplog):
    from collections import Counter

    rows = [(f"http://img.test/{i}.jpg", f"caption {i} " * 5) for i in range(300)]
    path = tmp_path / "damaged.parquet"
    write_pool(path, "parquet", rows)  # row groups of 10 rows
    column = pq.ParquetFile(path).metadata.row_group(12).column(1)
    data = bytearray(path.read_bytes())
    for offset in range(column.data_page_offset + 8, column.data_page_offset + 40):
        data[offset] ^= 0x5A  # the page header of row group 12's captions
    path.write_bytes(bytes(data))
    dropped: Counter = Counter()
    pairs = [pair for part in pool_partitions(str(path))
             for pair in read_pool(part, dropped=dropped)]
    assert pairs == rows[:120] + rows[130:]
    assert dropped == {"pool_read_error": 1}
    assert "damaged.parquet' row group 12 cannot be read after 0 rows" in caplog.text


@pytest.mark.parametrize("name", ["cut.csv.gz", "cut.jsonl.gz"])
def test_a_gzipped_file_cut_short_keeps_the_rows_before_the_cut(tmp_path, name):
    from collections import Counter

    rows = [(f"http://img.test/{i}.jpg", f"caption {i}") for i in range(200_000)]
    path = tmp_path / name  # ~7 MB of text: the cut falls after a few CSV blocks
    write_pool(path, name.split(".")[1], rows)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    readable = zlib.decompressobj(wbits=31).decompress(path.read_bytes())  # up to the cut
    whole_lines = readable.count(b"\n") - (1 if name.startswith("cut.csv") else 0)
    dropped: Counter = Counter()
    pairs = [pair for part in pool_partitions(str(path))
             for pair in read_pool(part, dropped=dropped)]
    assert pairs == rows[:whole_lines] and 50_000 < whole_lines < len(rows)  # every whole line
    assert dropped == {"pool_read_error": 1}
    parts = pool_partitions(str(path), rows=1_000)  # in shares: each row once, damage once
    assert len(parts) > 3
    dropped = Counter()
    assert sorted(pair for part in parts for pair in read_pool(part, dropped=dropped)) == \
        sorted(pairs)
    assert dropped == {"pool_read_error": 1}


def test_gzip_members_one_after_another_and_zero_padding_read_whole(tmp_path):
    from collections import Counter

    path = tmp_path / "members.csv.gz"
    rows = [(url, text.replace(",", ";")) for url, text in ROWS]
    lines = [f"{url},{text}\n".encode() for url, text in rows]
    path.write_bytes(gzip.compress(b"url,caption\n" + b"".join(lines[:30]))
                     + gzip.compress(b"".join(lines[30:])) + b"\0" * 1000)
    dropped: Counter = Counter()
    pairs = [pair for part in pool_partitions(str(path))
             for pair in read_pool(part, dropped=dropped)]
    assert pairs == rows and not dropped
