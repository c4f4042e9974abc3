"""A pool's additional columns (`--save-additional-columns`, img2dataset's
save_additional_columns): LAION-like columns of parquet, CSV and JSON-lines pools reach each
sample's `.json` (read back with webdataset) and the download manifests (read back with pyarrow)
with their types, through `wit shards` too; wrong names are refused before any work; reruns redo
what the columns change."""

from __future__ import annotations

import datetime
import gzip
import decimal
import io
import json
import logging
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from aiohttp import web

from support.hostile_web import StaticImages, image_bytes
from wit_builder.cli import main
from wit_builder.core import tarsamples
from wit_builder.core.options import WitError
from wit_builder.crawl.download import writer
from wit_builder.crawl.download.images import StoredImage
from wit_builder.crawl.sources.pool import (PoolColumns, additional_schema, pool_partitions,
                                            read_pool)

QUERIES = ["blue", "circle", "red", "star", "triangle"]
CAPTIONS = ["a red triangle drawn on a plain white background",
            "two large blue circles on a dotted background",
            "a small red star in the middle of the night sky",
            "a blue triangle and a red circle side by side",
            "a big red star shining over the quiet sea"]
# LAION's columns: LICENSE (text, mostly missing), similarity (float64), NSFW (UNLIKELY /
# UNSURE / NSFW), punsafe (float32), WIDTH (int64)
LICENSE = [None, "https://creativecommons.org/licenses/by/4.0/", None, "?", None]
SIMILARITY = [0.3312, 0.2981, 0.35, 0.30125, 0.4]
NSFW = ["UNLIKELY", "UNLIKELY", "UNSURE", "UNLIKELY", "NSFW"]
PUNSAFE = [0.01171875, 0.0625, 0.5, 0.125, 0.9375]   # exact in float32
WIDTH = [120, 121, 122, 123, 124]
POOL_TYPES = {"LICENSE": pa.string(), "similarity": pa.float64(), "NSFW": pa.string(),
              "punsafe": pa.float32(), "WIDTH": pa.int64()}
KEPT = ["LICENSE", "similarity", "NSFW", "punsafe", "WIDTH"]


def pool_table(server_url: str) -> pa.Table:
    # image 3 is missing (404): its manifest row keeps the columns too
    urls = [f"{server_url}/img/{i if i != 3 else 99}.jpg" for i in range(len(CAPTIONS))]
    return pa.table({"url": urls, "caption": CAPTIONS,
                     "LICENSE": pa.array(LICENSE, pa.string()), "similarity": SIMILARITY,
                     "NSFW": NSFW, "punsafe": pa.array(PUNSAFE, pa.float32()), "WIDTH": WIDTH,
                     "key": ["not kept"] * len(CAPTIONS)})


def expected_values(table: pa.Table) -> dict[str, dict]:
    return {row["url"]: {name: row[name] for name in KEPT} for row in table.to_pylist()}


def write_workdir(tmp_path):
    (tmp_path / "queries").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(QUERIES)), pa.int32()),
                             "query": QUERIES}), tmp_path / "queries" / "queries.parquet")
    return tmp_path


class Images(StaticImages):
    async def __call__(self, request):
        if request.path == "/img/99.jpg":
            raise web.HTTPNotFound()
        return await super().__call__(request)


@pytest.fixture
def images(serve):
    return serve(Images([image_bytes(120, 90, seed=i) for i in range(5)]))


def crawl(workdir, pool, *options) -> int:
    return main(["crawl", "--workdir", str(workdir), "--source", f"pool:{pool}", "--workers", "1",
                 "--allow-private", "--image-size", "64", "--retries", "0", *options])


def samples(folder, pattern="*.tar") -> list[dict]:
    tars = sorted(str(path) for path in folder.glob(pattern))
    return list(wds.WebDataset(tars, shardshuffle=False)) if tars else []


def manifest_rows(workdir) -> pa.Table:
    return pa.concat_tables(pq.read_table(path) for path in
                            sorted((workdir / "manifests" / "crawl").glob("*.parquet")))


def test_parquet_pool_columns_reach_the_json_the_manifests_and_the_training_shards(tmp_path,
                                                                                   images):
    workdir = write_workdir(tmp_path)
    table = pool_table(images.url)
    pq.write_table(table, workdir / "pool.parquet")
    expected = expected_values(table)
    # img2dataset's spelling and a comma list, together
    assert crawl(workdir, workdir / "pool.parquet", "--save-additional-columns",
                 "LICENSE,similarity", "--save_additional_columns", "NSFW,punsafe",
                 "--save-additional-columns", "WIDTH") == 0

    raw = samples(workdir / "data" / "raw")
    assert len(raw) == 4
    for sample in raw:
        meta = json.loads(sample["json"])
        assert {name: meta[name] for name in KEPT} == expected[meta["url"]]
        assert "key" not in meta   # a pool column not named is not kept
    licences = [json.loads(sample["json"])["LICENSE"] for sample in raw]
    assert licences.count(None) == 3   # null as null, not "None" nor ""
    assert all(isinstance(json.loads(s["json"])["WIDTH"], int) for s in raw)

    manifest = manifest_rows(workdir)
    assert {name: manifest.schema.field(name).type for name in KEPT} == POOL_TYPES
    assert len(manifest) == 5   # the 404 too
    for row in manifest.to_pylist():
        assert {name: row[name] for name in KEPT} == expected[row["url"]]
    selection = pq.read_table(workdir / "manifests" / "selection.parquet")
    assert selection.schema.names[-len(KEPT):] == KEPT
    stats = json.loads((workdir / "manifests" / "crawl_stats.json").read_text())
    assert stats["additional_columns"] == KEPT

    assert main(["shards", "--workdir", str(workdir), "--val-fraction", "0.5"]) == 0
    shards = samples(workdir / "data" / "shards")
    assert sorted(s["__key__"] for s in shards) == sorted(s["__key__"] for s in raw)
    for sample in shards:
        meta = json.loads(sample["json"])
        assert {name: meta[name] for name in KEPT} == expected[meta["url"]]
    info = json.loads((workdir / "data" / "shards" / "_info.json").read_text())
    assert info["additional_columns"] == KEPT
    card = (workdir / "data" / "shards" / "README.md").read_text()
    assert "`LICENSE`" in card and "similarity" in card

    # a takedown rewrites the shards holding a listed URL, and _info.json keeps the columns
    taken = json.loads(shards[0]["json"])["url"]
    (tmp_path / "takedown.txt").write_text(taken + "\n")
    assert main(["takedown", "--workdir", str(workdir), str(tmp_path / "takedown.txt")]) == 0
    assert taken not in {json.loads(s["json"])["url"] for s in samples(workdir / "data" / "shards")}
    info = json.loads((workdir / "data" / "shards" / "_info.json").read_text())
    assert info["additional_columns"] == KEPT and info["total_samples"] == len(raw) - 1


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_csv_and_json_lines_pools_keep_their_columns_typed(tmp_path, images, kind):
    workdir = write_workdir(tmp_path)
    table = pool_table(images.url)
    path = workdir / f"pool.{kind}"
    if kind == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)  # a missing LICENSE is an empty cell
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    assert crawl(workdir, path, "--save-additional-columns", ",".join(KEPT)) == 0
    expected = expected_values(table)
    if kind == "csv":  # pyarrow's CSV reader (img2dataset's too): an empty text cell is ""
        for values in expected.values():
            values["LICENSE"] = values["LICENSE"] or ""
    manifest = manifest_rows(workdir)
    types = {name: manifest.schema.field(name).type for name in KEPT}
    assert types == POOL_TYPES | {"punsafe": pa.float64()}  # text and JSON have no float32
    for row in manifest.to_pylist():
        assert {name: row[name] for name in KEPT} == expected[row["url"]]
    for sample in samples(workdir / "data" / "raw"):
        meta = json.loads(sample["json"])
        assert {name: meta[name] for name in KEPT} == expected[meta["url"]]


def test_img2dataset_backend_writes_the_same_json_keys_and_values(tmp_path, images):
    metas = {}
    for downloader in ("native", "img2dataset"):
        workdir = write_workdir(tmp_path / downloader)
        pq.write_table(pool_table(images.url), workdir / "pool.parquet")
        assert crawl(workdir, workdir / "pool.parquet", "--downloader", downloader,
                     "--save-additional-columns", ",".join(KEPT)) == 0
        metas[downloader] = sorted((json.loads(sample["json"]) for sample in
                                    samples(workdir / "data" / "raw")), key=lambda m: m["url"])
        manifest = manifest_rows(workdir)
        assert {name: manifest.schema.field(name).type for name in KEPT} == POOL_TYPES
    assert len(metas["native"]) == 4
    assert metas["img2dataset"] == metas["native"]


@pytest.mark.parametrize("names, source, message", [
    ("LICENSE,licence", "pool", r"pool: '.*pool\.parquet' has no column 'licence' "
                                r"\(--save-additional-columns\); its columns are url, caption"),
    ("sha256", "pool", "'sha256' is a key witbuilder"),
    ("caption", "pool", "'caption' is a key witbuilder"),
    ("LICENSE", "warc", r"source 'warc:.*' has no columns \(only pool: sources have\)"),
])
def test_wrong_columns_are_one_line_errors_before_any_work(tmp_path, capsys, names, source,
                                                          message):
    workdir = write_workdir(tmp_path)
    pq.write_table(pool_table("http://img.test"), workdir / "pool.parquet")
    (workdir / "site.warc.gz").write_bytes(b"")
    location = workdir / ("pool.parquet" if source == "pool" else "site.warc.gz")
    status = main(["crawl", "--workdir", str(workdir), "--source", f"{source}:{location}",
                   "--save-additional-columns", names])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert re.search(message, error), error
    assert not (workdir / "data").exists() and not (workdir / "manifests").exists()


def test_a_rerun_with_other_columns_redoes_the_steps_and_a_killed_one_resumes(tmp_path, images,
                                                                              caplog):
    workdir = write_workdir(tmp_path)
    pq.write_table(pool_table(images.url), workdir / "pool.parquet")
    pool = workdir / "pool.parquet"
    assert crawl(workdir, pool, "--samples-per-shard", "2",
                 "--save-additional-columns", "LICENSE") == 0
    first = {s["__key__"]: json.loads(s["json"]) for s in samples(workdir / "data" / "raw")}
    assert all("LICENSE" in meta and "NSFW" not in meta for meta in first.values())

    caplog.set_level(logging.INFO)
    assert crawl(workdir, pool, "--samples-per-shard", "2",
                 "--save-additional-columns", "LICENSE,NSFW") == 0
    assert "partition(s) 00000 redone: additional_columns changed" in caplog.text
    for shard in ("00000", "00001", "00002"):
        assert f"shard {shard} downloaded again: its additional_columns" in caplog.text
    second = {s["__key__"]: json.loads(s["json"]) for s in samples(workdir / "data" / "raw")}
    assert second.keys() == first.keys()
    assert all(meta["NSFW"] in NSFW for meta in second.values())

    # a run killed before its last shard was done: the rerun redoes that shard alone
    (workdir / "manifests" / "crawl" / "00002.parquet").unlink()
    caplog.clear()
    assert crawl(workdir, pool, "--samples-per-shard", "2",
                 "--save-additional-columns", "LICENSE,NSFW") == 0
    assert "redone" not in caplog.text   # the partition is reused
    assert "shard 00000 already done" in caplog.text and "shard 00001 already done" in caplog.text
    assert "shard 00002 already done" not in caplog.text
    third = {s["__key__"]: json.loads(s["json"]) for s in samples(workdir / "data" / "raw")}
    assert third == second
    assert pq.read_table(workdir / "manifests" / "crawl" / "00002.parquet").schema.names[-2:] \
        == ["LICENSE", "NSFW"]


def test_files_of_a_pool_whose_types_differ_keep_the_first_files_types(tmp_path, caplog):
    pq.write_table(pa.table({"url": ["http://a/1.jpg"], "caption": ["one"],
                             "similarity": pa.array([0.5], pa.float64()),
                             "WIDTH": pa.array([7], pa.int64())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"url": ["http://a/2.jpg", "http://a/3.jpg"], "caption": ["2", "3"],
                             "similarity": pa.array([1, 2], pa.int32()),
                             "WIDTH": pa.array(["8", "wide"])}), tmp_path / "b.parquet")
    schema = additional_schema(str(tmp_path), PoolColumns(), ["similarity", "WIDTH"])
    assert schema == pa.schema([("similarity", pa.float64()), ("WIDTH", pa.int64())])
    columns = PoolColumns(additional=schema)
    batches = []
    pairs = [pair for part in pool_partitions(str(tmp_path))
             for pair in read_pool(part, columns, additional=batches)]
    assert [url for url, _ in pairs] == ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"]
    values = pa.Table.from_batches(batches, schema).to_pylist()
    assert values == [{"similarity": 0.5, "WIDTH": 7}, {"similarity": 1.0, "WIDTH": 8},
                      {"similarity": 2.0, "WIDTH": None}]
    assert "1 value(s) of column 'WIDTH'" in caplog.text and "b.parquet" in caplog.text


def test_pool_values_json_has_no_type_for_are_written_as_json_can_hold_them(tmp_path):
    extra = {"similarity": float("nan"), "taken": datetime.datetime(2021, 3, 4, 5, 6, 7),
             "price": decimal.Decimal("1.25"), "raw": b"\xff\x00", "tags": ["a", None],
             "LICENSE": None}
    row = {"uid": "u", "url": "http://a/1.jpg", "text": "t", "page_url": "", "query_ids": [1],
           **extra}
    sample = writer.raw_sample(row, 0, 0, writer.Outcome(
        "ok", 200, None, 10, "ab" * 32, 0.1, StoredImage(b"jpeg", 1, 1, 1, 1)), list(extra))
    (_, members), = tarsamples.read_samples(io.BytesIO(sample.members + bytes(1024)),
                                            Counter())
    meta = json.loads(members["json"], parse_constant=None)   # strict JSON: no NaN token
    assert {name: meta[name] for name in extra} == {
        "similarity": None, "taken": "2021-03-04T05:06:07", "price": 1.25, "raw": "/wA=",
        "tags": ["a", None], "LICENSE": None}
    schema = pa.schema([("similarity", pa.float64()), ("taken", pa.timestamp("ms")),
                        ("price", pa.decimal128(5, 2)), ("raw", pa.binary()),
                        ("tags", pa.list_(pa.string())), ("LICENSE", pa.string())])
    writer.write_manifest(tmp_path / "m.parquet", [sample.manifest_row], None, schema)
    manifest = pq.read_table(tmp_path / "m.parquet")
    assert manifest.schema.names[-len(extra):] == list(extra)
    types = [manifest.schema.field(name).type for name in extra]
    assert types[:4] + types[5:] == schema.types[:4] + schema.types[5:]
    assert types[4].value_type == pa.string()   # (parquet names a list's item 'element')
    assert manifest.to_pylist()[0]["taken"] == extra["taken"]


def test_a_pool_file_without_a_named_column_is_named_before_any_work(tmp_path):
    pq.write_table(pa.table({"url": ["http://a/1.jpg"], "caption": ["one"], "LICENSE": ["x"]}),
                   tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("url,caption\nhttp://a/2.jpg,two\n")
    with pytest.raises(WitError, match=r"pool: '.*b\.csv' has no column 'LICENSE' "
                                       r"\(--save-additional-columns\); its columns are url, "
                                       r"caption$"):
        additional_schema(str(tmp_path), PoolColumns(), ["LICENSE"])


@pytest.mark.parametrize("name", ["p.tsv", "p.csv.gz", "p.jsonl.gz"])
def test_tab_separated_and_gzipped_pools_read_their_columns_typed(tmp_path, name):
    lines = ["url\tcaption\tsimilarity\tNSFW", "http://a/1.jpg\tone\t0.25\tUNLIKELY",
             "http://a/2.jpg\ttwo\t\tNSFW", "http://a/3.jpg\tthree\tNA\t"]
    if name.startswith("p.jsonl"):
        text = "".join(json.dumps(dict(zip(lines[0].split("\t"), line.split("\t")))
                                  | {"similarity": value}) + "\n"
                       for line, value in zip(lines[1:], [0.25, None, None]))
    else:
        text = "\n".join(line.replace("\t", "," if ".csv" in name else "\t")
                         for line in lines) + "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    schema = additional_schema(str(path), PoolColumns(), ["similarity", "NSFW"])
    assert schema == pa.schema([("similarity", pa.float64()), ("NSFW", pa.string())])
    batches = []
    pairs = [pair for part in pool_partitions(str(path))
             for pair in read_pool(part, PoolColumns(additional=schema), additional=batches)]
    assert [text for _, text in pairs] == ["one", "two", "three"]
    assert pa.Table.from_batches(batches, schema).to_pylist() == [
        {"similarity": 0.25, "NSFW": "UNLIKELY"}, {"similarity": None, "NSFW": "NSFW"},
        {"similarity": None, "NSFW": ""}]
