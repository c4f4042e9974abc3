"""`--engine ray`: `wit queries`, `wit crawl` and `wit shards` on a local Ray cluster write the same
bytes as the local engine; a Ray worker that dies mid-partition is retried; a task's WitError is the
same one-line error; a crawl that failed on Ray resumes with only its unfinished partitions."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install '.[ray]'")

from wit_builder.crawl import run as crawl  # noqa: E402
from wit_builder.shards import run as shards
from wit_builder.cli import main  # noqa: E402
from wit_builder.synthweb.config import SynthwebConfig  # noqa: E402
from wit_builder.cli import load_config
from wit_builder.core.engine import (current, join_cluster, map_partitions,  # noqa: E402
                                     ray_session, run_partitions, stage_engine)
from wit_builder.core.options import WitError  # noqa: E402
from wit_builder.synthweb.concepts import COLOURS, SHAPES  # noqa: E402
from wit_builder.synthweb.server import SiteServer  # noqa: E402
from wit_builder.synthweb.warc import record_site  # noqa: E402

QUERIES = sorted(set(COLOURS) | set(SHAPES) | set(SHAPES.values()))
POOL_FILES = 4
# Outputs that hold timings or a cache, not data: compared without those parts.
TIMED_PARQUET = "manifests/crawl/"
NOT_CONTRACTS = ("queries/queries.automaton", "manifests/crawl_stats.json")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray (2 CPUs) for the whole module: every stage below joins it."""
    # The hooks below are defined here, a module Ray workers cannot import: send them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with ray_session(workers=2):
        yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True)
def away_from_the_default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def site(synthweb_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The synthetic site served on 127.0.0.1, recorded as a WARC and as a pool split in files
    (one partition each), for the origin it is served on."""
    target = tmp_path_factory.mktemp("recorded")
    with SiteServer(synthweb_dir / "site") as server:
        record_site(synthweb_dir, SynthwebConfig(), server.url.rstrip("/"), target)
        pool = pq.read_table(target / "pool.parquet")
        (target / "pool").mkdir()
        step = -(-pool.num_rows // POOL_FILES)
        for number in range(POOL_FILES):
            pq.write_table(pool.slice(number * step, step),
                           target / "pool" / f"part-{number}.parquet")
        yield [f"warc:{target / 'site.warc.gz'}", f"pool:{target / 'pool'}"]


def crawl_args(workdir: Path, sources: list[str], *engine: str) -> list[str]:
    """`wit crawl` of `sources` into `workdir` (queries written there), downloading."""
    (workdir / "queries").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"query_id": pa.array(range(len(QUERIES)), pa.int32()),
                             "query": QUERIES}), workdir / "queries" / "queries.parquet")
    # Small partitions: the pool's files are not grouped but split, several tasks for Ray.
    args = ["crawl", "--workdir", str(workdir), "--allow-private", "--image-size", "32",
            "--samples-per-shard", "20", "--retries", "0", "--workers", "2",
            "--partition-rows", "10", *engine]
    for source in sources:
        args += ["--source", source]
    return args


@pytest.fixture(scope="module")
def local_crawl(site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("local-crawl")
    assert main(crawl_args(workdir, site, "--engine", "local")) == 0
    return workdir


def output_digests(workdir: Path) -> dict[str, str]:
    """sha256 of every output under `workdir`; the crawl manifests' `seconds` column left out."""
    digests = {}
    for path in sorted(p for p in workdir.rglob("*") if p.is_file()):
        name = str(path.relative_to(workdir))
        if name in NOT_CONTRACTS:
            continue
        if name.startswith(TIMED_PARQUET):
            table = pq.read_table(path)
            data = repr(table.drop_columns(["seconds"]).to_pylist()).encode()
        else:
            data = path.read_bytes()
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def assert_same_crawl(workdir: Path, reference: Path) -> None:
    digests = output_digests(workdir)
    assert digests == output_digests(reference)
    assert len([name for name in digests if name.startswith("data/raw/")]) >= 3
    assert len([name for name in digests if name.startswith("data/candidates/")]) > 1 + POOL_FILES
    samples = list(wds.WebDataset(str(workdir / "data" / "raw" / "00000.tar"), shardshuffle=False))
    statuses = pq.read_table(workdir / "manifests" / "crawl" / "00000.parquet").column("status")
    assert len(samples) == statuses.to_pylist().count("ok") > 10
    assert all(sample["jpg"] and sample["txt"] for sample in samples)


# ---- the engine itself ----------------------------------------------------------------------

def slow_square(number: int) -> int:
    time.sleep(0.3 if number % 3 == 0 else 0.0)  # finish out of order
    return number * number


def test_a_ray_stage_makes_ray_the_engine_of_every_step_below_it():
    @stage_engine
    def stage(config) -> tuple:
        return current(), map_partitions(slow_square, range(4), desc="test")

    chosen, results = stage(SimpleNamespace(engine="ray", workers=2, ray_address="",
                                            workdir="s3://bucket/run"))
    assert (chosen.kind, chosen.workers, chosen.shared_directory_required) == ("ray", 2, False)
    assert results == [0, 1, 4, 9]
    assert current().kind == "local" and ray.is_initialized()  # the module's Ray stays


def fail_on_three(number: int) -> int:
    if number == 3:
        raise WitError(f"partition '{number}.bin' is not a partition")
    return number


def test_ray_results_come_back_in_partition_order():
    numbers = list(range(11))  # more than the tasks in flight at once (2 per CPU)
    assert map_partitions(slow_square, numbers, engine="ray", desc="test") == \
        [n * n for n in numbers]


def test_wit_error_in_a_ray_task_is_the_same_one_line_error_in_its_turn():
    yielded = []
    with pytest.raises(WitError) as raised:
        for result in run_partitions(fail_on_three, range(6), engine="ray"):
            yielded.append(result)
    assert type(raised.value) is WitError
    assert str(raised.value) == "partition '3.bin' is not a partition"
    assert yielded == [0, 1, 2]  # the results before it, as from the local pool


def divide_by(number: int) -> float:
    return 1 / number


def test_bug_in_a_ray_task_raises_its_own_exception_type():
    with pytest.raises(ZeroDivisionError):
        map_partitions(divide_by, [2, 1, 0], engine="ray")


def test_unreachable_ray_address_is_a_clear_error_at_once():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(WitError, match=f"cannot join the Ray cluster at '127.0.0.1:{port}'"):
        join_cluster(ray, f"127.0.0.1:{port}")
    assert time.monotonic() - started < 10


# ---- the stages -----------------------------------------------------------------------------

def test_queries_on_ray_write_the_local_engines_bytes(synthweb_dir: Path, tmp_path: Path):
    outputs = {}
    for engine in ("local", "ray"):
        args = ["queries", "--workdir", str(tmp_path), "--out", engine, "--workers", "2",
                "--engine", engine,
                "--wiki", str(synthweb_dir / "enwiki-20260101-pages-articles-multistream.xml.bz2"),
                "--wordnet", str(synthweb_dir / "wordnet"),
                "--pageviews", str(synthweb_dir / "pageviews"),
                "--min-count", "20", "--bigram-min-count", "5", "--bigrams", "200"]
        assert main(args) == 0
        outputs[engine] = [(tmp_path / engine / name).read_bytes()
                           for name in ("queries.parquet", "queries.txt")]
    assert outputs["ray"] == outputs["local"]
    assert pq.read_metadata(tmp_path / "ray" / "queries.parquet").num_rows > 100


def test_crawl_on_ray_writes_the_local_engines_bytes(site, local_crawl: Path, tmp_path: Path):
    assert main(crawl_args(tmp_path, site, "--engine", "ray")) == 0
    assert_same_crawl(tmp_path, local_crawl)


def die_on_first_attempt(partition, settings, *, marker: str, original):
    """Kill this Ray worker the first time partition 1 runs (the marker says it happened)."""
    if partition.index == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return original(partition, settings)


def test_crawl_on_ray_finishes_the_same_when_a_worker_dies(site, local_crawl: Path,
                                                           tmp_path: Path, monkeypatch):
    marker = tmp_path / "killed-once"
    monkeypatch.setattr(crawl, "process_partition", functools.partial(
        die_on_first_attempt, marker=str(marker), original=crawl.process_partition))
    workdir = tmp_path / "work"
    assert main(crawl_args(workdir, site, "--engine", "ray")) == 0
    assert marker.exists()  # the worker did die
    assert_same_crawl(workdir, local_crawl)


def fail_partition_three(partition, settings, *, original):
    if partition.index == 3:
        raise WitError("pool file 'part-2.parquet' went away")
    return original(partition, settings)


def test_crawl_failed_on_ray_reruns_only_unfinished_partitions(site, local_crawl: Path,
                                                               tmp_path: Path, monkeypatch,
                                                               capsys):
    workdir = tmp_path / "work"
    with monkeypatch.context() as patch:
        patch.setattr(crawl, "process_partition", functools.partial(
            fail_partition_three, original=crawl.process_partition))
        assert main(crawl_args(workdir, site, "--engine", "ray")) == 2
    err = capsys.readouterr().err  # progress bars, then the error alone
    assert err.strip().splitlines()[-1] == "wit crawl: pool file 'part-2.parquet' went away"
    assert "Traceback" not in err and "RayTaskError" not in err
    staging = workdir / "data" / "matched" / ".staging"
    done = {path.name: path.stat().st_mtime_ns for path in staging.glob("*.json")}
    assert {"part-00000.json", "part-00001.json", "part-00002.json"} <= set(done)
    assert "part-00003.json" not in done and not (workdir / "data" / "raw").exists()
    assert main(crawl_args(workdir, site, "--engine", "ray")) == 0
    assert {name: (staging / name).stat().st_mtime_ns for name in done} == done
    assert_same_crawl(workdir, local_crawl)


def test_download_rerun_on_ray_fetches_only_unfinished_shards(site, local_crawl: Path,
                                                              tmp_path: Path, capsys):
    assert main(crawl_args(tmp_path, site, "--engine", "ray")) == 0
    raw = tmp_path / "data" / "raw"
    (tmp_path / "manifests" / "crawl" / "00002.parquet").unlink()  # as if killed in shard 2
    (raw / "00002.tar").unlink()
    kept = {path.name: path.stat().st_mtime_ns for path in raw.glob("*.tar")}
    capsys.readouterr()
    assert main(crawl_args(tmp_path, site, "--engine", "ray")) == 0
    assert "(4 shards, 3 already done)" in capsys.readouterr().out
    assert {name: (raw / name).stat().st_mtime_ns for name in kept} == kept
    assert_same_crawl(tmp_path, local_crawl)


def test_shards_on_ray_write_the_local_engines_bytes(local_crawl: Path, tmp_path: Path):
    written = {}
    for engine in ("local", "ray"):
        workdir = tmp_path / engine
        for part in ("data/raw", "manifests/crawl"):
            shutil.copytree(local_crawl / part, workdir / part)
        config = load_config("shards", None, {
            "workdir": str(workdir), "samples_per_shard": 8, "val_fraction": 0.2,
            "memory_budget_mb": 0.02, "workers": 2, "engine": engine, "report": False})
        assert shards.run(config) == 0
        written[engine] = {path.name: path.read_bytes() for folder in ("data/shards", "manifests")
                           for path in sorted((workdir / folder).glob("*"))
                           if path.suffix in (".tar", ".parquet")}
    assert written["ray"] == written["local"]
    assert len([name for name in written["ray"] if name.startswith("train-")]) >= 3
