"""A workdir on an object store (`--workdir s3://bucket/run`), against a real S3 API on loopback
(moto's server, reached through s3fs): the store's atomic writes, then `wit crawl` and `wit shards`
writing the same bytes as on a local workdir, with local processes and on Ray, and a crawl rerun
on the store that downloads only its unfinished shard; `wit queries` spilling to the store and
writing the local workdir's queries, leaving no spill behind whether it succeeds or fails."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import wiki_data as fx

fsspec = pytest.importorskip("fsspec")
s3fs = pytest.importorskip("s3fs", reason="the S3 tests need s3fs and moto[server]")
moto_server = pytest.importorskip("moto.server", reason="the S3 tests need moto[server]")

from wit_builder.core import store  # noqa: E402
from wit_builder.cli import main  # noqa: E402
from wit_builder.synthweb.config import SynthwebConfig  # noqa: E402
from wit_builder.cli import load_config
from wit_builder.core.engine import call_partition, ray_session  # noqa: E402
from wit_builder.core.options import WitError  # noqa: E402
from wit_builder.crawl.sources.pool import pool_partitions, read_pool  # noqa: E402
from wit_builder.crawl.sources.warc import expand_warc_locations, read_html_responses  # noqa: E402
from wit_builder.synthweb.concepts import COLOURS, SHAPES  # noqa: E402
from wit_builder.synthweb.server import SiteServer  # noqa: E402
from wit_builder.synthweb.warc import record_site  # noqa: E402

QUERIES = sorted(set(COLOURS) | set(SHAPES) | set(SHAPES.values()))
LOCAL_ONLY = ("queries/queries.automaton",)  # the matcher's cache: beside a local queries file
TIMED_JSON = ("manifests/crawl_stats.json", "manifests/shards_stats.json")  # their timings
TIMED_PARQUET = "manifests/crawl/"            # their `seconds` column
SHARDS_OUTPUTS = ("data/shards/", "manifests/report", "manifests/shards.parquet",
                  "manifests/dedup.parquet", "manifests/dataset.json",
                  "manifests/shards_stats.json")


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, and the environment that points fsspec (in this process,
    in worker processes and on Ray workers) at it with dummy credentials."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}
    environment = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
                   "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                   "FSSPEC_S3": json.dumps(options)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.setitem(fsspec.config.conf, "s3", options)  # read from the environment at import
        s3fs.S3FileSystem.clear_instance_cache()
        yield options
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.fixture
def bucket(s3_endpoint) -> str:
    """A new, empty bucket: its URL."""
    name = f"wit-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return f"s3://{name}"


@pytest.fixture(autouse=True)
def away_from_the_default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# ---- the store ------------------------------------------------------------------------------

def test_atomic_write_appears_whole_and_a_failed_one_leaves_nothing(bucket: str):
    target = store.join(bucket, "run", "data", "raw", "00000.tar")
    with pytest.raises(RuntimeError):
        with store.atomic_path(target) as temporary:
            temporary.write_bytes(b"half a shard")
            assert not store.exists(target)  # nothing under the final name while writing
            raise RuntimeError("worker died")
    assert not store.exists(target)
    assert store.glob(store.join(bucket, "run", "**")) == []
    assert not temporary.exists()  # the local temporary file is gone too
    store.write_bytes(target, b"a whole shard")
    assert store.exists(target) and len(store.read_bytes(target)) == 13
    assert store.read_bytes(target) == b"a whole shard"


def test_glob_list_parquet_json_and_removal_on_s3(bucket: str):
    run = store.join(bucket, "run")
    table = pa.table({"uid": ["a", "b"], "n": pa.array([1, 2], pa.int32())})
    store.write_parquet(store.join(run, "manifests", "crawl", "00001.parquet"), table)
    store.write_parquet(store.join(run, "manifests", "crawl", "00000.parquet"), table)
    store.write_json(store.join(run, "manifests", "crawl_stats.json"), {"b": 1, "a": [2]})
    assert store.glob(store.join(run, "manifests", "crawl", "*.parquet")) == [
        f"{run}/manifests/crawl/00000.parquet", f"{run}/manifests/crawl/00001.parquet"]
    assert store.list_files(store.join(run, "manifests")) == ["crawl_stats.json"]
    assert store.list_files(store.join(run, "nothing")) == []
    assert store.read_parquet(store.join(run, "manifests", "crawl", "00000.parquet")).equals(table)
    assert store.parquet_file(f"{run}/manifests/crawl/00001.parquet").metadata.num_rows == 2
    assert store.read_json(store.join(run, "manifests", "crawl_stats.json")) == {"b": 1, "a": [2]}
    store.remove(store.join(run, "manifests", "crawl", "00000.parquet"))
    store.remove(store.join(run, "manifests", "crawl", "00000.parquet"))  # gone: not an error
    assert not store.exists(store.join(run, "manifests", "crawl", "00000.parquet"))
    store.remove_tree(store.join(run, "manifests"))
    assert store.glob(store.join(run, "**")) == []


def test_local_copy_is_fetched_once_and_again_when_the_object_changes(bucket: str,
                                                                      tmp_path: Path):
    queries = store.join(bucket, "run", "queries", "queries.parquet")
    store.write_bytes(queries, b"version one")
    first = store.local_copy(queries, tmp_path / "cache")
    assert first.read_bytes() == b"version one"
    assert store.local_copy(queries, tmp_path / "cache") == first
    store.write_bytes(queries, b"version two")
    second = store.local_copy(queries, tmp_path / "cache")
    assert second != first and second.read_bytes() == b"version two"
    assert store.local_copy(tmp_path / "local.parquet") == tmp_path / "local.parquet"


def test_workdir_url_resolves_relative_paths_and_keeps_absolute_ones():
    config = load_config("crawl", None, {"workdir": "s3://bucket/run/"})
    assert config.path("manifests/crawl_stats.json") == "s3://bucket/run/manifests/crawl_stats.json"
    assert config.path("/data/pool.parquet") == Path("/data/pool.parquet")
    assert config.path("gs://other/q.parquet") == "gs://other/q.parquet"
    assert load_config("crawl", None, {"workdir": "w"}).path("data") == Path("w/data")


def test_unusable_store_is_a_one_line_error_before_any_work(s3_endpoint, capsys):
    problems = {"s3://no-such-bucket/run": "bucket 'no-such-bucket' does not exist; create it "
                                           "first",
                "nosuch://bucket/run": "cannot use the store (ValueError: Protocol not known: "
                                       "nosuch)"}
    for workdir, problem in problems.items():
        for stage in (["crawl", "--source", "pool:p.parquet"], ["shards"]):
            assert main([*stage, "--workdir", workdir]) == 2
            assert capsys.readouterr().err.strip() == \
                f"wit {stage[0]}: workdir '{workdir}': {problem}"


def report_cwd(_: int) -> str:
    return os.getcwd()


def test_ray_task_needs_the_drivers_directory_only_for_a_local_workdir(tmp_path: Path):
    missing = str(tmp_path / "not-on-this-node")
    assert call_partition(report_cwd, 0, missing, False) == str(tmp_path)
    with pytest.raises(WitError, match="or an fsspec URL"):
        call_partition(report_cwd, 0, missing, True)


# ---- the stages -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(synthweb_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The synthetic site served on 127.0.0.1 (its images are downloaded from it), recorded as a
    WARC and as a pool in two files."""
    target = tmp_path_factory.mktemp("recorded")
    with SiteServer(synthweb_dir / "site") as server:
        record_site(synthweb_dir, SynthwebConfig(), server.url.rstrip("/"), target)
        pool = pq.read_table(target / "pool.parquet")
        (target / "pool").mkdir()
        half = -(-pool.num_rows // 2)
        for number in range(2):
            pq.write_table(pool.slice(number * half, half), target / "pool" / f"{number}.parquet")
        yield [f"warc:{target / 'site.warc.gz'}", f"pool:{target / 'pool'}"]


# ---- inputs on the store --------------------------------------------------------------------

def test_pool_and_warc_inputs_read_from_s3_as_from_local_files(site, bucket: str):
    warc, pool = (Path(source.split(":", 1)[1]) for source in site)
    files = {f"pool/{path.name}": path for path in pool.iterdir()} | {"site.warc.gz": warc}
    for name, path in files.items():
        store.write_bytes(f"{bucket}/inputs/{name}", path.read_bytes())
    local_parts, s3_parts = pool_partitions(str(pool)), pool_partitions(f"{bucket}/inputs/pool/")
    assert [(Path(p.path).name, p.row_groups) for p in local_parts] == \
        [(store.name(p.path), p.row_groups) for p in s3_parts]
    assert [pair for part in s3_parts for pair in read_pool(part)] == \
        [pair for part in local_parts for pair in read_pool(part)]
    assert expand_warc_locations(f"{bucket}/inputs/*.warc.gz") == [f"{bucket}/inputs/site.warc.gz"]
    local_dropped, s3_dropped = Counter(), Counter()
    pages = list(read_html_responses(f"{bucket}/inputs/site.warc.gz", s3_dropped))
    assert pages == list(read_html_responses(str(warc), local_dropped)) and len(pages) > 10
    assert s3_dropped == local_dropped
    with pytest.raises(WitError, match="does not exist"):
        pool_partitions(f"{bucket}/inputs/missing.parquet")


def queries_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"query_id": pa.array(range(len(QUERIES)), pa.int32()),
                             "query": QUERIES}), sink)
    return sink.getvalue().to_pybytes()


def crawl_and_shard(workdir: str, sources: list[str], *engine: str, shards: bool = True) -> None:
    """`wit crawl` (downloading) into `workdir`, then `wit shards` (with its report) unless told
    not to."""
    store.write_bytes(store.join(workdir, "queries", "queries.parquet"), queries_bytes())
    args = ["crawl", "--workdir", workdir, "--allow-private", "--image-size", "32",
            "--samples-per-shard", "20", "--retries", "0", *engine]
    for source in sources:
        args += ["--source", source]
    assert main(args) == 0
    if shards:
        assert main(["shards", "--workdir", workdir, "--samples-per-shard", "8", "--val-fraction",
                     "0.2", "--memory-budget-mb", "0.02", *engine]) == 0


def comparable(name: str, data: bytes) -> bytes:
    """The bytes of an output, without the parts that hold timings."""
    if name in TIMED_JSON:
        return json.dumps({k: v for k, v in json.loads(data).items()
                           if k not in ("seconds", "cpu_seconds")}).encode()
    if name.startswith(TIMED_PARQUET):
        return repr(pq.read_table(pa.BufferReader(data)).drop_columns(["seconds"])
                    .to_pylist()).encode()
    return data


def digests(workdir: str) -> dict[str, str]:
    """sha256 of every file under a local or s3 workdir, by its name relative to it."""
    fs, root = store.filesystem(workdir)
    found = {}
    for path in fs.find(root):
        name = path[len(root.rstrip("/")) + 1:]
        if name not in LOCAL_ONLY:
            found[name] = hashlib.sha256(comparable(name, fs.cat_file(path))).hexdigest()
    return found


@pytest.fixture(scope="module")
def local_run(site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    workdir = tmp_path_factory.mktemp("local-run")
    crawl_and_shard(str(workdir), site, "--workers", "1")
    return digests(str(workdir))


def assert_same_crawl(workdir: str, local_run: dict[str, str]) -> None:
    crawl = {name: digest for name, digest in local_run.items()
             if not name.startswith(SHARDS_OUTPUTS)}
    assert digests(workdir) == crawl
    assert len([name for name in crawl if name.startswith("data/raw/")]) >= 3


def assert_same_outputs(workdir: str, local_run: dict[str, str]) -> None:
    on_store = digests(workdir)
    assert on_store == local_run
    for kind in ("data/raw/", "manifests/crawl/", "data/shards/train-", "manifests/report/"):
        assert len([name for name in on_store if name.startswith(kind)]) >= 3, kind
    assert {"manifests/selection.parquet", "manifests/shards.parquet", "manifests/dataset.json",
            "manifests/report.html", "manifests/dedup.parquet"} <= set(on_store)
    assert not [name for name in on_store if "/.work/" in name or "/.balance/" in name]


def test_crawl_and_shards_on_s3_write_the_local_workdirs_bytes(site, local_run, bucket: str,
                                                               tmp_path: Path):
    crawl_and_shard(f"{bucket}/run", site, "--workers", "1")
    assert_same_outputs(f"{bucket}/run", local_run)
    assert list(tmp_path.iterdir()) == []  # nothing written to the local directory


def test_crawl_rerun_on_s3_downloads_only_the_unfinished_shard(site, local_run, bucket: str,
                                                               monkeypatch, capsys):
    workdir = f"{bucket}/run"
    crawl_and_shard(workdir, site, "--workers", "1", shards=False)
    store.remove(f"{workdir}/manifests/crawl/00002.parquet")  # as if killed in shard 2
    store.remove(f"{workdir}/data/raw/00002.tar")
    uploaded = []
    put_file = store.put_file
    monkeypatch.setattr(store, "put_file", lambda local, location: (
        uploaded.append(str(location)), put_file(local, location)))
    capsys.readouterr()
    crawl_and_shard(workdir, site, "--workers", "1", shards=False)
    assert "(4 shards, 3 already done)" in capsys.readouterr().out
    rewritten = {name for name in uploaded if "/data/raw/" in name or "/manifests/crawl/" in name
                 or "/data/matched/.staging/" in name}
    assert rewritten == {f"{workdir}/data/raw/00002.tar",
                         f"{workdir}/manifests/crawl/00002.parquet"}
    assert_same_crawl(workdir, local_run)


def test_crawl_and_shards_on_ray_with_s3_write_the_local_workdirs_bytes(site, local_run,
                                                                        bucket: str,
                                                                        tmp_path: Path):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install '.[ray]'")
    with ray_session(workers=2):  # started here, so its workers inherit the S3 environment
        crawl_and_shard(f"{bucket}/run", site, "--workers", "2", "--engine", "ray")
    assert_same_outputs(f"{bucket}/run", local_run)
    assert list(tmp_path.iterdir()) == []


# ---- wit queries ----------------------------------------------------------------------------

QUERIES_OUTPUTS = ("queries.parquet", "queries.txt", "stats.json")
UNTIMED_STATS = ("seconds", "count_seconds", "cpu_seconds", "peak_rss_mb")


def run_wit_queries(workdir: str, synthweb_dir: Path, *extra: str) -> None:
    assert main(["queries", "--workdir", workdir, "--workers", "2", *extra,
                 "--wiki", str(synthweb_dir / "enwiki-20260101-pages-articles-multistream.xml.bz2"),
                 "--wordnet", str(synthweb_dir / "wordnet"),
                 "--pageviews", str(synthweb_dir / "pageviews"),
                 "--min-count", "20", "--bigram-min-count", "5", "--bigrams", "200"]) == 0


def queries_outputs(workdir: str) -> dict[str, bytes | dict]:
    """The three outputs under `workdir/queries` (the only files there), stats.json without its
    timings, memory and workdir."""
    fs, root = store.filesystem(workdir)
    assert sorted(fs.find(root)) == [f"{root}/queries/{name}" for name in QUERIES_OUTPUTS]
    outputs: dict[str, bytes | dict] = {
        name: store.read_bytes(store.join(workdir, "queries", name)) for name in QUERIES_OUTPUTS}
    stats = json.loads(outputs["stats.json"])
    outputs["stats.json"] = {key: value for key, value in stats.items()
                             if key not in UNTIMED_STATS}
    del outputs["stats.json"]["parameters"]["workdir"]
    return outputs


@pytest.fixture(scope="module")
def s3_forkserver(s3_endpoint):
    """Worker processes that see the S3 environment: they are forked from the fork server, which
    has the environment of when it started (an earlier test may have started it without)."""
    import multiprocessing.forkserver

    multiprocessing.forkserver._forkserver._stop()  # the next pool starts a new one
    yield
    multiprocessing.forkserver._forkserver._stop()


@pytest.fixture(scope="module")
def local_queries(synthweb_dir: Path, s3_forkserver,
                  tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = tmp_path_factory.mktemp("local-queries")
    run_wit_queries(str(workdir), synthweb_dir)
    return queries_outputs(str(workdir))


def test_queries_on_s3_spill_there_and_write_the_local_workdirs_bytes(synthweb_dir: Path,
                                                                       local_queries: dict,
                                                                       bucket: str,
                                                                       tmp_path: Path,
                                                                       monkeypatch):
    uploaded, spilled = [], []
    put_file, remove_tree = store.put_file, store.remove_tree
    # The bigram reduce of this small dump runs in this process; the counting does not.
    monkeypatch.setattr(store, "put_file", lambda local, location: (
        uploaded.append(str(location)), put_file(local, location)))
    monkeypatch.setattr(store, "remove_tree", lambda location: (
        spilled.extend(map(store.name, store.filesystem(location)[0].find(location))),
        remove_tree(location)))
    run_wit_queries(f"{bucket}/run", synthweb_dir)
    assert queries_outputs(f"{bucket}/run") == local_queries
    assert local_queries["stats.json"]["queries"] > 100
    # Every worker's spill and its words went through the store and were removed from it.
    # With each partition's result and done marker beside them (a rerun after a crash keeps them).
    parts = len(spilled) // 4
    assert parts >= 2 and sorted(spilled) == sorted(
        f"part-{n:06d}.arrow{suffix}" for n in range(parts)
        for suffix in ("", ".words", ".result", ".done"))
    assert [name for name in uploaded if "/.work/" in name and "/bucket-" in name]
    assert list(tmp_path.iterdir()) == []  # nothing written to the local directory


def test_queries_on_ray_with_s3_write_the_local_workdirs_bytes(synthweb_dir: Path,
                                                               local_queries: dict, bucket: str):
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install '.[ray]'")
    with ray_session(workers=2):  # started here, so its workers inherit the S3 environment
        run_wit_queries(f"{bucket}/run", synthweb_dir, "--engine", "ray")
    on_ray = queries_outputs(f"{bucket}/run")
    assert on_ray["stats.json"]["parameters"].pop("engine") == "ray"
    local = {**local_queries, "stats.json": json.loads(json.dumps(local_queries["stats.json"]))}
    assert local["stats.json"]["parameters"].pop("engine") == "local"
    assert on_ray == local


def test_queries_failing_on_s3_leave_nothing_on_the_store(s3_forkserver, bucket: str,
                                                         tmp_path: Path, capsys, monkeypatch):
    dump = fx.write_multistream(tmp_path, fx.make_articles(200, seed=2))
    data = bytearray(dump.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    dump.write_bytes(bytes(data))
    workdir = f"{bucket}/run"
    earlier = store.join(workdir, "queries", "queries.txt")  # an earlier run's output: kept
    store.write_text(earlier, "dog\n")
    spilled, remove_tree = [], store.remove_tree
    monkeypatch.setattr(store, "remove_tree", lambda location: (
        spilled.extend(store.filesystem(location)[0].find(location)), remove_tree(location)))
    assert main(["queries", "--workdir", workdir, "--wiki", str(dump), "--workers", "2"]) == 2
    message = capsys.readouterr().err.strip()
    assert str(dump) in message and "bz2" in message and "\n" not in message
    assert [path for path in spilled if path.endswith(".arrow.words")]  # the good partitions'
    fs, root = store.filesystem(workdir)
    assert fs.find(root) == [f"{root}/queries/queries.txt"] and store.read_bytes(earlier) == b"dog\n"
    # A relative input under a URL workdir would be on the store: refused before any work.
    assert main(["queries", "--workdir", workdir, "--wiki", "dump.xml.bz2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"wit queries: dump '{workdir}/dump.xml.bz2': wit queries reads its inputs from local "
        f"paths or http(s) URLs; copy it to a local disk (an absolute path when the workdir is "
        f"a URL)")


def test_remove_tree_removes_a_folder_a_file_or_nothing(tmp_path):
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "sub" / "a.txt").write_text("a")
    (tmp_path / "plain.txt").write_text("b")
    for name in ("folder", "plain.txt", "missing"):
        store.remove_tree(str(tmp_path / name))
    assert list(tmp_path.iterdir()) == []
