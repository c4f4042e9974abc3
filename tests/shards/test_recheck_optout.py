"""Opt-outs re-checked after the crawl (issue 20, item 4): `wit optout` and `wit shards
--recheck-optout` ask the image hosts again (robots.txt, HEAD for X-Robots-Tag) through the
guarded client and remove the samples whose owners opted out since; unreachable hosts keep
their samples."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from aiohttp import web

from support.removal_data import SHARD_OPTIONS, build_training_shards, digests, samples
from support.servers import Server
from wit_builder.cli import main


class ImageHost:
    """The images' host as it answers after the crawl: its robots.txt and X-Robots-Tag headers
    are set by the test; every request is recorded."""

    def __init__(self) -> None:
        self.robots, self.robots_status = "User-agent: *\nAllow: /\n", 200
        self.tags: dict[str, str] = {}   # path -> X-Robots-Tag
        self.head_refused: set[str] = set()
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if request.path == "/robots.txt":
            return web.Response(text=self.robots, status=self.robots_status)
        if request.method == "HEAD" and request.path in self.head_refused:
            return web.Response(status=405)
        headers = {"X-Robots-Tag": self.tags[request.path]} if request.path in self.tags else {}
        return web.Response(body=b"\xff\xd8 not read", content_type="image/jpeg", headers=headers)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_owners_who_opted_out_since_the_crawl_are_removed(tmp_path, serve):
    host = ImageHost()
    server = serve(host)
    folder = build_training_shards(tmp_path, image_base=server.url)
    before, shas = samples(folder), digests(folder)
    # After the crawl: raw shard 0's images are disallowed to us, one image says noai, one says
    # noai to another bot only, one refuses HEAD (asked by GET) and says noimageai.
    host.robots = "User-agent: otherbot\nDisallow: /\n\nUser-agent: witbuilder\nDisallow: /0/\n"
    urls = sorted({sample["url"] for sample in before.values()
                   if not path_of(sample["url"]).startswith("/0/")})
    noai, other_bot, no_head = urls[0], urls[1], urls[2]
    host.tags = {path_of(noai): "noai", path_of(other_bot): "otherbot: noai",
                 path_of(no_head): "max-image-preview:large, noimageai"}
    host.head_refused = {path_of(no_head)}

    assert main(["optout", "--workdir", str(tmp_path), "--trusted-origins", server.origin]) == 0

    expected = {uid: "robots" for uid, sample in before.items()
                if path_of(sample["url"]).startswith("/0/")}
    expected.update({uid: "opted_out" for uid, sample in before.items()
                     if sample["url"] in (noai, no_head)})
    after = samples(folder)
    assert set(after) == set(before) - set(expected) and other_bot in \
        {sample["url"] for sample in after.values()}
    rows = pq.read_table(tmp_path / "manifests" / "takedown.parquet").to_pylist()
    assert {row["uid"]: row["reason"] for row in rows} == expected
    assert all(row["shard"] == before[row["uid"]]["shard"] for row in rows)
    touched = {before[uid]["shard"] for uid in expected}
    now = digests(folder)
    assert {name for name in shas if now[name] != shas[name]} == touched
    dataset = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert dataset["optout_recheck"]["opted_out"] == 2
    assert dataset["optout_recheck"]["robots"] == len({before[uid]["url"] for uid in expected
                                                       if expected[uid] == "robots"})
    assert dataset["totals"]["samples"] == len(after)
    card = (folder / "README.md").read_text()
    assert "| opted_out | 2 |" in card and "Opt-outs re-checked after the crawl" in card
    # Images were asked with HEAD (GET only where HEAD was refused), robots.txt once.
    images = [(method, path) for method, path in host.requests if path != "/robots.txt"]
    assert {method for method, path in images if path != path_of(no_head)} == {"HEAD"}
    assert ("GET", path_of(no_head)) in images
    assert not any(path.startswith("/0/") for _, path in images)   # disallowed: never asked
    assert [path for _, path in host.requests].count("/robots.txt") == 1

    # Asked again: nothing more to remove, no shard rewritten.
    assert main(["optout", "--workdir", str(tmp_path), "--trusted-origins", server.origin]) == 0
    assert digests(folder) == now


def test_unreachable_hosts_and_unreadable_robots_are_not_opt_outs(tmp_path, serve):
    with Server(ImageHost()) as gone:   # a host that has since gone away
        base = gone.url
    folder = build_training_shards(tmp_path, image_base=base)
    shas = digests(folder)

    assert main(["optout", "--workdir", str(tmp_path), "--trusted-origins",
                 base.removeprefix("http://"), "--recheck-timeout", "5"]) == 0
    assert digests(folder) == shas
    dataset = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert dataset["optout_recheck"]["unreachable"] == len({s["url"] for s in
                                                            samples(folder).values()})
    assert not (tmp_path / "manifests" / "takedown.parquet").exists()

    # A robots.txt answering 503 and images answering 404: kept, unreachable.
    host = ImageHost()
    host.robots, host.robots_status = "", 503
    server = serve(host)
    other = tmp_path / "other"
    folder = build_training_shards(other, image_base=server.url)
    shas = digests(folder)

    async def missing(request: web.Request) -> web.Response:
        return await host(request) if request.path == "/robots.txt" else web.Response(status=404)

    server.handler = missing
    assert main(["optout", "--workdir", str(other), "--trusted-origins", server.origin]) == 0
    assert digests(folder) == shas
    counts = json.loads((other / "manifests" / "dataset.json").read_text())["optout_recheck"]
    assert counts["unreachable"] > 0 and counts["robots"] == counts["opted_out"] == 0


def test_the_address_guard_stays_on(tmp_path, serve, caplog):
    host = ImageHost()
    server = serve(host)
    folder = build_training_shards(tmp_path, image_base=server.url)
    host.robots = "User-agent: *\nDisallow: /\n"
    shas = digests(folder)

    assert main(["optout", "--workdir", str(tmp_path)]) == 0   # no --trusted-origins

    assert digests(folder) == shas and host.requests == []
    counts = json.loads((tmp_path / "manifests" / "dataset.json").read_text())["optout_recheck"]
    assert counts["blocked_address"] > 0 and counts["robots"] == 0
    assert "pass --allow-private or --trusted-origins" in caplog.text


def test_a_rebuild_with_recheck_optout_removes_them(tmp_path, serve):
    host = ImageHost()
    server = serve(host)
    host.robots = "User-agent: *\nDisallow: /1/\n"
    folder = build_training_shards(tmp_path, "--recheck-optout", "--trusted-origins",
                                   server.origin, "--report", image_base=server.url)
    kept = samples(folder)
    assert kept and not any(path_of(s["url"]).startswith("/1/") for s in kept.values())
    rows = pq.read_table(tmp_path / "manifests" / "takedown.parquet").to_pylist()
    assert rows and {row["reason"] for row in rows} == {"robots"}
    report = (tmp_path / "manifests" / "report.html").read_text()
    assert "Removed after the build" in report and "Opt-outs re-checked" in report
    totals = json.loads((tmp_path / "manifests" / "dataset.json").read_text())["totals"]
    assert f"<tr><td>samples</td><td>{totals['samples']:,}</td></tr>" in report  # after removal
    assert f"<tr><td>robots</td><td>{len(rows):,}</td></tr>" in report

    # Rebuilt without the recheck, by then allowed again: the recorded removals still hold.
    host.robots = ""
    assert main(["shards", "--workdir", str(tmp_path), *SHARD_OPTIONS]) == 0
    assert set(samples(folder)) == set(kept)
