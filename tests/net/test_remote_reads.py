"""Files read from http(s) URLs through the store (pools, ...) go through the address guard:
refused in private space unless --allow-private or a trusted origin, redirects included, and a
refused literal is refused before any connection (the tripwire of test_netguard watches)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from support.servers import Server
from wit_builder.cli import load_config
from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.crawl.run import parse_source, source_partitions
from wit_builder.crawl.sources.pool import pool_partitions, read_pool
from wit_builder.net.guard import AddressPolicy

ROWS = [(f"http://img.test/{i}.jpg", f"caption {i}") for i in range(25)]


class PoolServer:
    """A loopback server of the files of a folder (ranges honoured, as parquet reads need) that
    logs every path asked for; /to?u=URL redirects."""

    def __init__(self, folder: Path):
        self.folder, self.requests = folder, []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        if request.path == "/to":
            raise web.HTTPFound(request.query["u"])
        path = self.folder / request.path.lstrip("/")
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)


@pytest.fixture
def pool_server(tmp_path: Path):
    folder = tmp_path / "served"
    folder.mkdir()
    table = pa.table({"url": [u for u, _ in ROWS], "caption": [t for _, t in ROWS]})
    pq.write_table(table, folder / "pool.parquet", row_group_size=10)
    (folder / "pool.csv").write_text("url,caption\n" + "".join(f"{u},{t}\n" for u, t in ROWS))
    served = PoolServer(folder)
    with Server(served.handle) as server:
        served.server = server
        yield served


def read_all(spec: str, policy: AddressPolicy | None) -> list[tuple[str, str]]:
    return [pair for part in pool_partitions(spec, policy) for pair in read_pool(part, policy=policy)]


@pytest.mark.parametrize("name", ["pool.parquet", "pool.csv"])
def test_a_loopback_pool_is_read_only_when_allowed(tripwire, pool_server, name):
    url = f"{pool_server.server.url}/{name}"
    with pytest.raises(WitError, match="refused.*--allow-private"):
        pool_partitions(url)
    with pytest.raises(WitError, match="refused"):
        pool_partitions(url, AddressPolicy())
    assert pool_server.requests == []  # refused before connecting
    assert read_all(url, AddressPolicy(allow_private=True)) == ROWS
    assert read_all(url, AddressPolicy(trusted_origins=(pool_server.server.origin,))) == ROWS
    # the same server on another port is not the trusted origin
    other = f"127.0.0.1:{pool_server.server.port + 1}"
    with pytest.raises(WitError, match="refused"):
        pool_partitions(url, AddressPolicy(trusted_origins=(other,)))


def test_a_name_that_resolves_inside_is_refused(tripwire, pool_server):
    url = f"http://localhost:{pool_server.server.port}/pool.csv"
    with pytest.raises(WitError, match="refused"):
        pool_partitions(url)
    assert pool_server.requests == []
    assert read_all(url, AddressPolicy(trusted_origins=(f"localhost:{pool_server.server.port}",))) \
        == ROWS


def test_a_redirect_into_private_space_is_refused(tripwire, pool_server, tmp_path):
    """A trusted server redirecting to an untrusted loopback server (an IP literal, which no
    resolver sees): aiohttp follows it inside fsspec, the guarded connector refuses it."""
    canary_hits = []

    async def canary(request: web.Request) -> web.StreamResponse:
        canary_hits.append(request.path)
        return web.Response(text="url,caption\n")

    with Server(canary) as other:
        target = f"{other.url}/pool.csv"
        url = f"{pool_server.server.url}/to?u={quote(target, safe='')}&f=pool.csv"
        policy = AddressPolicy(trusted_origins=(pool_server.server.origin,))
        with pytest.raises(WitError, match="refused, 127.0.0.1 is a non-public address"):
            with store.open(url, "rb", policy) as handle:
                handle.read()
    assert canary_hits == []
    assert "/to" in pool_server.requests


@pytest.mark.parametrize("spec", [
    "pool:http://169.254.169.254/p.parquet", "pool:https://10.0.0.1/pool.parquet",
    "pool:http://[::ffff:169.254.169.254]/p.csv", "pool:http://0x7f.1/p.csv",
    "pool:http://metadata.google.internal/p.parquet", "pool:http://private.example/p.csv"])
def test_a_crawl_pool_in_private_space_is_refused_without_a_connection(tripwire, tmp_path, spec):
    config = load_config("crawl", None, {"workdir": str(tmp_path / "work")})
    with pytest.raises(WitError, match="refused"):
        source_partitions(parse_source(spec), config, str(tmp_path / "staging"), 0, Counter(), {})


@pytest.mark.parametrize("reader", [store.exists, store.read_bytes, store.read_parquet,
                                    store.local_copy, store.parquet_file])
def test_every_store_read_of_a_private_url_is_refused(tripwire, reader):
    with pytest.raises(WitError, match="refused"):
        reader("http://169.254.169.254/latest/meta-data")


def test_http_inside_a_chained_url_is_refused(tripwire):
    with pytest.raises(WitError, match="chained"):
        store.open("simplecache::http://169.254.169.254/p.csv")


def test_a_training_shard_in_private_space_is_refused_saying_what_to_do(tripwire, pool_server):
    """Training has no --allow-private: an http(s) shard goes through the guarded client with
    the default policy, and a refusal is a WitError naming the URL (not a skipped shard)."""
    from trainer.data import is_remote, open_shard, shard_samples

    (pool_server.folder / "000.tar").write_bytes(b"")
    for url in (f"{pool_server.server.url}/000.tar", "http://169.254.169.254/000.tar",
                f"http://localhost:{pool_server.server.port}/000.tar"):
        assert is_remote(url)
        with pytest.raises(WitError, match="refused.*copy the shards to a local disk"):
            list(shard_samples(url))
        with pytest.raises(WitError, match=f"shard '{url}'"):
            with open_shard(url):
                pass
    assert pool_server.requests == []
