"""The address guard (issue 16): without --allow-private no request leaves for a private,
loopback, link-local, metadata or reserved address, in any spelling (IP literals in every form,
IPv6 forms that embed an IPv4, names that resolve inside, redirects to any of them), through the
native downloader, the live crawler or img2dataset; trusted origins are exact host:port.

Safety: every test runs under a tripwire below the guard. Python's socket connect refuses (and
records) any destination but 127.0.0.0/8 and ::1, and names resolve through TEST_HOSTS, never
DNS; img2dataset's worker processes get the same tripwire from a sitecustomize. The test servers
run on 127.0.0.1 and are reached as trusted origins.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from yarl import URL

from support.hostile_web import image_bytes, write_selection
from support.servers import Server
from wit_builder.cli import load_config
from wit_builder.crawl.download import download_selection
from wit_builder.crawl.download import img2dataset_backend
from wit_builder.crawl.download.fetch import FetchSettings, fetch, open_session
from wit_builder.net.guard import (AddressPolicy, BlockedAddressError, guarded_getaddrinfo,
                                  is_public_address)
from wit_builder.core.options import WitError
from wit_builder.crawl.sources.web import WebCrawlSettings, crawl_web, host_of

TESTS_DIR = Path(__file__).parent

# The test resolver: every name a test may look up (and no DNS for any other).
TEST_HOSTS = {
    "localhost": ["127.0.0.1", "::1"],
    "localhost.": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
    "private.example": ["10.0.0.1"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "nat64.example": ["64:ff9b::a00:1"],
    "sixtofour.example": ["2002:a9fe:a9fe::1"],
    "teredo.example": ["2001:0:4136:e378:8000:63bf:f5ff:fffe"],
    "unique-local.example": ["fd12::1"],
    "cgnat.example": ["100.64.0.1"],
}

# Hosts of URLs, each a spelling of a non-public address (names through TEST_HOSTS).
LITERAL_SPELLINGS = [
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.0.0.1", "127.0.0.1.",
    "0.0.0.0", "0", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "192.0.0.8", "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1",
    "[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:a9fe:a9fe]",
    "[::ffff:0:a9fe:a9fe]",                                      # IPv4-translated
    "[64:ff9b::a9fe:a9fe]", "[64:ff9b::7f00:1]", "[64:ff9b::169.254.169.254]",  # NAT64
    "[64:ff9b:1::a00:1]",                                        # local-use NAT64
    "[2002:a9fe:a9fe::]", "[2002:7f00:1::1]",                    # 6to4
    "[::a9fe:a9fe]", "[::127.0.0.1]",                            # IPv4-compatible
    "[2001:0:4136:e378:8000:63bf:f5ff:fffe]",                    # Teredo, client 10.0.0.1
    "[2001:0:a9fe:a9fe::f7f7:f7f7]",                             # Teredo, server 169.254.169.254
    "[fe80::1]", "[fe80::1%25eth0]", "[fc00::1]", "[fd12::1]", "[ff02::1]", "[fec0::1]",
    "[2001:db8::1]", "[100::1]",
    "１２７.０.０.１", "127。0。0。1", "⑯⑨。②⑤④。⑯⑨｡②⑤④", "0x7f.1",  # IDNA maps them to digits
]
NAME_SPELLINGS = ["localhost", "LOCALHOST", "localhost.", *sorted(set(TEST_HOSTS) - {
    "localhost", "localhost."})]
SPELLINGS = LITERAL_SPELLINGS + NAME_SPELLINGS


# ---- the tripwire and the test resolver ---------------------------------------------------------

def is_loopback(host) -> bool:
    """127.0.0.0/8 or ::1 only (not ::ffff:127.0.0.1, nor a name, which connect would resolve)."""
    try:
        ip = ipaddress.ip_address(str(host))
    except ValueError:
        return False
    return ip.is_loopback if ip.version == 4 else ip == ipaddress.IPv6Address("::1")


def tripwired(connect, record):
    """`socket.connect` that refuses, and records, any IP destination but loopback."""

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            record(repr(address))
            raise PermissionError(errno.EACCES, f"tripwire: connection to {address!r}")
        return connect(sock, address)

    return guarded


def fake_getaddrinfo(real_getaddrinfo):
    """getaddrinfo that parses IP literals (AI_NUMERICHOST: never DNS) and answers the names of
    TEST_HOSTS; any other name does not exist."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        numeric = flags | socket.AI_NUMERICHOST
        try:
            return real_getaddrinfo(host, port, family, type, proto, numeric)
        except socket.gaierror:
            pass
        name = (host.decode() if isinstance(host, bytes) else host or "").lower()
        if name not in TEST_HOSTS:
            raise socket.gaierror(socket.EAI_NONAME, f"{name!r} is not in the test resolver")
        answers = []
        for address in TEST_HOSTS[name]:
            try:
                answers += real_getaddrinfo(address, port, family, type, proto, numeric)
            except socket.gaierror:  # another family than asked for
                pass
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{name!r}: no address of that family")
        return answers

    return resolve


def arm_this_process(log_path: str) -> None:
    """The tripwire and the test resolver for a whole process (img2dataset's workers): hits and
    'armed' lines go to `log_path`, which the test reads."""

    def record(line: str) -> None:
        with open(log_path, "a") as log:
            log.write(line + "\n")

    socket.getaddrinfo = fake_getaddrinfo(socket.getaddrinfo)
    socket.socket.connect = tripwired(socket.socket.connect, lambda hit: record("hit " + hit))
    socket.socket.connect_ex = tripwired(socket.socket.connect_ex,
                                         lambda hit: record("hit " + hit))
    record(f"armed {os.getpid()}")


# Imported by every Python process started while the test runs (PYTHONPATH): a failure to arm
# leaves the process unable to connect anywhere, rather than unguarded.
SITECUSTOMIZE = """\
import socket, sys
sys.path[:0] = [{tests!r}, {helpers!r}]
try:
    import test_netguard
    test_netguard.arm_this_process({log!r})
except BaseException:
    def refuse(sock, *args):
        raise PermissionError("the test tripwire failed to arm")
    socket.socket.connect = socket.socket.connect_ex = refuse
    raise
"""


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch):
    """This process's tripwire and test resolver; the test fails if the tripwire was hit."""
    hits: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(socket.getaddrinfo))
    monkeypatch.setattr(socket.socket, "connect", tripwired(socket.socket.connect, hits.append))
    monkeypatch.setattr(socket.socket, "connect_ex",
                        tripwired(socket.socket.connect_ex, hits.append))
    # uvloop connects below Python's sockets, out of the tripwire's sight
    monkeypatch.setattr("wit_builder.crawl.download.native.uvloop", None)
    asyncio.set_event_loop_policy(None)
    yield hits
    assert hits == [], f"tripwire hit: {hits}"


@pytest.fixture
def worker_tripwire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The tripwire in every Python process started during the test; yields its log."""
    site, log = tmp_path / "site", tmp_path / "tripwire.log"
    site.mkdir()
    log.touch()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(tests=str(TESTS_DIR), helpers=str(TESTS_DIR.parent),
                                                                log=str(log)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    yield log
    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("hit")], lines


# ---- test servers -------------------------------------------------------------------------------

class Servers:
    """Three loopback servers logging every request: `trusted` (as 127.0.0.1:PORT), `named`
    (trusted as localhost:PORT) and `canary` (not trusted: must never be reached)."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []

    def handler(self, label: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((label, request.path))
            if request.path == "/to":
                raise web.HTTPFound(request.query["u"])
            if request.path.startswith("/ok") and request.path.endswith(".html"):
                return web.Response(text="<p>fine</p>", content_type="text/html")
            if request.path.startswith("/ok"):
                return web.Response(body=image_bytes(64, 48), content_type="image/jpeg")
            raise web.HTTPNotFound()
        return handle

    def __enter__(self) -> Servers:
        self.trusted = Server(self.handler("trusted")).__enter__()
        self.named = Server(self.handler("named")).__enter__()
        self.canary = Server(self.handler("canary")).__enter__()
        self.origins = (self.trusted.origin, f"localhost:{self.named.port}")
        return self

    def __exit__(self, *exc) -> None:
        for server in (self.trusted, self.named, self.canary):
            server.__exit__(*exc)

    def redirect(self, target: str) -> str:
        return f"{self.trusted.url}/to?u={quote(target, safe='')}"

    def paths(self) -> set[str]:
        return {path for _, path in self.requests}


@pytest.fixture
def servers():
    with Servers() as running:
        yield running


@dataclass(frozen=True)
class Case:
    name: str
    url: str       # what the client is asked for
    target: str    # where it leads: the URL itself, or where a trusted server redirects
    expected: str  # "blocked_address" or "ok"


def cases(servers: Servers, ok_suffix: str) -> list[Case]:
    """Every spelling; the loopback servers on ports or names that are not trusted; the trusted
    origins themselves (reached): each directly and as a redirect from a trusted origin."""
    targets = [(host, f"http://{host}/c{i}", "blocked_address")
               for i, host in enumerate(SPELLINGS)]
    targets += [(name, url, "blocked_address") for name, url in {
        "127.0.0.1 on another port": f"http://127.0.0.1:{servers.canary.port}/t1",
        "localhost on the trusted literal's port": f"http://localhost:{servers.trusted.port}/t2",
        "[::1] on the trusted literal's port": f"http://[::1]:{servers.trusted.port}/t3",
        "the trusted name on another port": f"http://localhost:{servers.canary.port}/t4",
        "the trusted name's server as a literal": f"http://127.0.0.1:{servers.named.port}/t5",
    }.items()]
    targets += [("trusted literal origin", f"{servers.trusted.url}/ok1{ok_suffix}", "ok"),
                ("trusted name origin", f"http://localhost:{servers.named.port}/ok2{ok_suffix}",
                 "ok")]
    return [case for name, target, expected in targets for case in (
        Case(name, target, target, expected),
        Case(f"redirect to {name}", servers.redirect(target), target, expected))]


def check_outcomes(servers: Servers, outcomes: dict[Case, str]) -> None:
    """Every case got its expected status, and no server saw a request it should not have."""
    wrong = {case.name: status for case, status in outcomes.items() if status != case.expected}
    assert wrong == {}
    allowed = {urlsplit(case.target).path for case in outcomes if case.expected == "ok"}
    assert servers.paths() - {"/to", "/robots.txt"} <= allowed
    assert not [request for request in servers.requests if request[0] == "canary"]


# ---- the policy on its own ----------------------------------------------------------------------

def test_tripwire_refuses_all_but_loopback_before_connecting():
    """Checked on a stand-in connect: no real socket, so a broken tripwire sends nothing."""
    connected, hits = [], []
    connect = tripwired(lambda sock, address: connected.append(address), hits.append)
    inet = type("Socket", (), {"family": socket.AF_INET})()
    inet6 = type("Socket", (), {"family": socket.AF_INET6})()
    connect(inet, ("127.0.0.1", 80))
    connect(inet6, ("::1", 80, 0, 0))
    for sock, address in [(inet, ("10.0.0.1", 80)), (inet, ("localhost", 80)),
                          (inet6, ("::ffff:127.0.0.1", 80, 0, 0)),
                          (inet6, ("64:ff9b::a9fe:a9fe", 80, 0, 0))]:
        with pytest.raises(PermissionError):
            connect(sock, address)
    assert connected == [("127.0.0.1", 80), ("::1", 80, 0, 0)] and len(hits) == 4


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("1.1.1.1", True), ("2606:4700:4700::1111", True),
    ("::ffff:8.8.8.8", True), ("64:ff9b::808:808", True), ("2002:808:808::1", True),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # Teredo: both ends public
    ("0.0.0.0", False), ("0.1.2.3", False), ("10.1.2.3", False), ("100.64.0.1", False),
    ("127.0.0.1", False), ("169.254.169.254", False), ("172.31.255.255", False),
    ("192.0.0.8", False), ("192.0.2.1", False), ("192.88.99.1", False), ("192.168.0.1", False),
    ("198.18.0.1", False), ("198.51.100.1", False), ("203.0.113.1", False),
    ("224.0.0.1", False), ("239.255.255.250", False), ("240.0.0.1", False),
    ("255.255.255.255", False),
    ("::", False), ("::1", False), ("::ffff:127.0.0.1", False), ("::ffff:0:a9fe:a9fe", False),
    ("::a9fe:a9fe", False), ("::127.0.0.1", False), ("64:ff9b::a9fe:a9fe", False),
    ("64:ff9b::7f00:1", False), ("64:ff9b:1::808:808", False), ("2002:a9fe:a9fe::", False),
    ("2002:7f00:1::1", False), ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),
    ("2001:0:a9fe:a9fe::f7f7:f7f7", False), ("fe80::1", False), ("fe80::1%eth0", False),
    ("fec0::1", False), ("fc00::1", False), ("fd12::1", False), ("ff02::1", False),
    ("2001:db8::1", False), ("3fff::1", False), ("100::1", False),
])
def test_is_public_address_decodes_embedded_ipv4_and_blocks_special_ranges(address, public):
    assert is_public_address(address) is public


class FakeResolver(AbstractResolver):
    """aiohttp's view of TEST_HOSTS."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0,
                 "flags": 0} for address in TEST_HOSTS[host.lower()]]

    async def close(self):
        pass



@pytest.mark.parametrize("host", SPELLINGS)
def test_policy_refuses_every_spelling(host):
    """A literal is refused by check_url; a name passes it and is refused by the resolver."""
    policy, url = AddressPolicy(), f"http://{host}/x.jpg"
    if host in LITERAL_SPELLINGS:
        with pytest.raises(BlockedAddressError):
            policy.check_url(url)
        return
    policy.check_url(url)
    with pytest.raises(BlockedAddressError):
        asyncio.run(policy.resolver(FakeResolver()).resolve(host.lower(), 80))


def test_trusted_origins_are_exact_host_and_port():
    policy = AddressPolicy(False, ("127.0.0.1:8080", "Mirror.lan:9000", "https://[::1]"))
    policy.check_url("http://127.0.0.1:8080/a.jpg")
    policy.check_url("https://[::1]/a.jpg")
    for url in ("http://127.0.0.1:8081/", "http://[::1]:8080/", "http://169.254.169.254/",
                "http://10.1.2.3/x.jpg", "http://[::1]/", "file:///etc/passwd"):
        with pytest.raises((BlockedAddressError, ValueError)):
            policy.check_url(url)
    assert policy.allows("mirror.lan", 9000, "10.0.0.5")
    assert not policy.allows("mirror.lan", 9001, "10.0.0.5")
    assert not policy.allows("other.lan", 9000, "10.0.0.5")
    AddressPolicy(allow_private=True).check_url("http://10.1.2.3/x.jpg")
    with pytest.raises(ValueError, match="HOST:PORT"):
        AddressPolicy(False, ("mirror.lan",))


def test_socket_layer_guard_keeps_only_allowed_answers(tripwire):
    policy = AddressPolicy(False, ("localhost:8080",))
    resolve = guarded_getaddrinfo(policy, socket.getaddrinfo)
    assert {answer[4][0] for answer in resolve("localhost", 8080)} == {"127.0.0.1", "::1"}
    for host, port in [("localhost", 8081), ("127.0.0.1", 8080), ("nat64.example", 80),
                       ("2130706433", 80), ("::1", 8080)]:
        with pytest.raises(BlockedAddressError):
            resolve(host, port)


# ---- the three clients --------------------------------------------------------------------------

def test_native_downloader_blocks_every_spelling(tripwire, servers):
    settings = FetchSettings(trusted_origins=servers.origins, retries=0, timeout=5.0)
    all_cases = cases(servers, ".jpg")

    async def fetch_all() -> dict[Case, str]:
        async with open_session(settings) as session:
            return {case: (await fetch(session, case.url, settings)).status
                    for case in all_cases}

    check_outcomes(servers, asyncio.run(fetch_all()))


def crawl_outcome(url: str, settings: WebCrawlSettings) -> str:
    stats: Counter = Counter()
    crawl_web([url], settings, lambda page_url, body: [], stats)
    if stats["pages"] == 1:
        return "ok"
    return "blocked_address" if stats["blocked_address"] else str(dict(stats))


def test_live_crawler_blocks_every_spelling_and_trusts_exact_origins(tripwire, servers):
    all_cases = cases(servers, ".html")
    # the off-site check must not stop the redirects first; aiohttp sends Location normalised
    hosts = {host_of(spelling) for case in all_cases
             for spelling in (case.url, case.target, str(URL(case.target)))}
    settings = WebCrawlSettings(user_agent="witbuilder-test/1", max_depth=0, timeout=5.0,
                                concurrency=1, trusted_origins=servers.origins,
                                allowed_hosts=tuple(hosts))
    check_outcomes(servers, {case: crawl_outcome(case.url, settings) for case in all_cases})


def test_img2dataset_blocks_every_spelling_in_its_workers(tmp_path, tripwire, worker_tripwire,
                                                          servers):
    all_cases = cases(servers, ".jpg")
    workdir = tmp_path / "work"
    selection = write_selection(workdir / "manifests" / "selection.parquet",
                                [case.url for case in all_cases])
    config = load_config("crawl", None, {
        "workdir": str(workdir), "downloader": "img2dataset", "workers": 1,
        "samples_per_shard": len(all_cases), "concurrency": 16, "image_size": 32,
        "min_size": 8, "timeout": 5.0, "retries": 0, "trusted_origins": list(servers.origins)})
    download_selection(config, selection)
    rows = pq.read_table(workdir / "manifests" / "crawl" / "00000.parquet").to_pylist()
    status = {row["url"]: row["status"] for row in rows}
    check_outcomes(servers, {case: status[case.url] for case in all_cases})
    assert "armed" in worker_tripwire.read_text()


def test_allow_private_reaches_the_loopback_server(tripwire, servers):
    url = f"http://localhost:{servers.canary.port}/ok.html"
    settings = FetchSettings(allow_private=True, retries=0, timeout=5.0)

    async def fetch_one() -> str:
        async with open_session(settings) as session:
            return (await fetch(session, url, settings)).status

    assert asyncio.run(fetch_one()) == "ok"
    crawl = WebCrawlSettings(user_agent="witbuilder-test/1", max_depth=0, allow_private=True)
    assert crawl_outcome(url, crawl) == "ok"
    assert servers.requests.count(("canary", "/ok.html")) == 2


def test_img2dataset_that_cannot_be_guarded_is_refused(monkeypatch):
    import importlib
    monkeypatch.delattr(importlib.import_module("img2dataset.main"),
                        "multiprocessing_distributor")
    with pytest.raises(WitError, match="--allow-private"):
        with img2dataset_backend.guarded_workers(AddressPolicy()):
            pass
