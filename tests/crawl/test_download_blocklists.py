"""`--block-hashes` and `--block-urls` (issue 20, item 2) through whole native downloads from a
loopback server: a listed image is dropped in memory (never decoded, never in a tar, no hash of
it in the manifest; pHash lists: test_download_blocklists_phash.py), a listed URL or domain is never requested, redirect hops included; lists in
the formats takedown lists ship in (hex digests of three kinds, gzip), bad lines refused up front."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import webdataset as wds
from aiohttp import web

from support.hostile_web import Server, download_rows, image_bytes
from wit_builder.cli import main
from wit_builder.crawl.download import native

PICTURES = {f"/{name}.jpg": image_bytes(120 + number * 10, 90, seed=number)
            for number, name in enumerate(["md5", "sha1", "sha256", "kept", "also-kept"])}


class Site:
    """The pictures, a redirect to a blocked domain, and the paths every request asked for."""

    def __init__(self):
        self.paths: list[str] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        if request.path == "/robots.txt":
            raise web.HTTPNotFound()
        if request.path == "/to-blocked-domain.jpg":
            raise web.HTTPFound("http://img.blocked.example/x.jpg")
        if request.path not in PICTURES:
            raise web.HTTPNotFound()
        return web.Response(body=PICTURES[request.path], content_type="image/jpeg")


@pytest.fixture
def site():
    handler = Site()
    with Server(handler) as server:
        server.handler_state = handler
        yield server


def hash_lists(folder: Path) -> list[str]:
    """One plain list (MD5 and SHA-1, upper-case, a comment) and one gzip list (SHA-256)."""
    plain, zipped = folder / "hashes.txt", folder / "sha256.txt.gz"
    plain.write_text("# takedown list\n\n"
                     + hashlib.md5(PICTURES["/md5.jpg"]).hexdigest().upper() + "\n"
                     + hashlib.sha1(PICTURES["/sha1.jpg"]).hexdigest() + "  a note\n")
    zipped.write_bytes(gzip.compress(
        (hashlib.sha256(PICTURES["/sha256.jpg"]).hexdigest() + "\n").encode()))
    return [str(plain), str(zipped)]


def test_a_listed_image_is_dropped_in_memory_and_never_written(site, tmp_path, monkeypatch):
    decoded, screens = [], []
    original = native.process_image
    monkeypatch.setattr(native, "process_image", lambda body, settings, blocked=None: (
        decoded.append(body), screens.append(blocked)) and original(body, settings, blocked))
    urls = [site.url + path for path in PICTURES]
    rows = {row["url"].rsplit("/", 1)[1]: row for row in
            download_rows(tmp_path / "run", urls, site.origin,
                          block_hashes=hash_lists(tmp_path))}
    for name in ("md5.jpg", "sha1.jpg", "sha256.jpg"):
        row = rows[name]
        assert (row["status"], row["http_status"], row["sha256"], row["key"]) == \
            ("blocked_hash", 200, None, None)
        assert PICTURES["/" + name] not in decoded
    assert rows["kept.jpg"]["status"] == rows["also-kept.jpg"]["status"] == "ok"
    assert screens == [None, None]  # lists without pHashes cost the decoding nothing
    stored = {sample["json"].decode() for sample in
              wds.WebDataset(sorted(str(p) for p in (tmp_path / "run").rglob("*.tar")),
                             shardshuffle=False, empty_check=False)}
    assert len(stored) == 2 and not any(name in "".join(stored) for name in
                                        ("md5.jpg", "sha1.jpg", "sha256.jpg"))
    blocked = [PICTURES[f"/{name}"] for name in ("md5.jpg", "sha1.jpg", "sha256.jpg")]
    for path in (tmp_path / "run").rglob("*"):  # no run of a blocked picture's pixels on disk
        if path.is_file():
            data = path.read_bytes()
            assert not any(body[len(body) // 2:len(body) // 2 + 64] in data for body in blocked)


def test_a_listed_url_or_domain_is_never_requested(site, tmp_path):
    lists = tmp_path / "urls.txt"
    lists.write_text(f"{site.url}/md5.JPG#x\n{site.url}/sha1.jpg\n*.blocked.example\n"
                     .replace("/md5.JPG#x", "/md5.jpg#fragment"))
    urls = [site.url + path for path in ("/md5.jpg", "/sha1.jpg", "/kept.jpg",
                                         "/to-blocked-domain.jpg")]
    rows = {row["url"].rsplit("/", 1)[1]: row["status"] for row in
            download_rows(tmp_path / "run", urls, site.origin, block_urls=[str(lists)])}
    assert rows == {"md5.jpg": "blocked_url", "sha1.jpg": "blocked_url", "kept.jpg": "ok",
                    "to-blocked-domain.jpg": "blocked_url"}
    requested = site.handler_state.paths
    assert "/md5.jpg" not in requested and "/sha1.jpg" not in requested
    assert "/to-blocked-domain.jpg" in requested   # its redirect hop is what was refused


def test_a_new_list_redoes_the_shards_and_no_list_records_nothing(site, tmp_path):
    import pyarrow.parquet as pq

    urls = [site.url + path for path in PICTURES]
    workdir = tmp_path / "run"
    download_rows(workdir, urls, site.origin)
    manifest = next((workdir / "manifests" / "crawl").glob("*.parquet"))
    assert b"blocklists_sha256" not in pq.read_schema(manifest).metadata[b"witbuilder.inputs"]
    rows = download_rows(workdir, urls, site.origin, block_hashes=hash_lists(tmp_path))
    assert sorted(row["status"] for row in rows).count("blocked_hash") == 3


@pytest.mark.parametrize("line, says", [
    ("not-a-digest", "is not an MD5, SHA-1 or SHA-256 hex digest"),
    ("0123456789abcdef0", "is not an MD5, SHA-1 or SHA-256 hex digest"),
    ("z" * 64, "is not an MD5, SHA-1 or SHA-256 hex digest"),
    ("0123456789abcdef:17", "a pHash's distance is a number of bits from 0 to 16"),
    ("0123456789abcdef:x", "a pHash's distance is a number of bits from 0 to 16"),
    ("0123456789abcde", "nor a pHash (16, optionally :BITS)"),
    ("a" * 32 + ":4", "is not an MD5, SHA-1 or SHA-256 hex digest"),
])
def test_a_bad_hash_line_stops_the_crawl_before_anything_runs(line, says, tmp_path, capsys):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{'a' * 32}\n{line}\n")
    workdir = tmp_path / "run"
    code = main(["crawl", "--workdir", str(workdir), "--source", "pool:nothing.parquet",
                 "--block-hashes", str(listed)])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert f"blocklist '{listed}' line 2" in error and says in error
    assert not workdir.exists()


def test_a_bad_url_line_is_refused(tmp_path, capsys):
    listed = tmp_path / "urls.txt"
    listed.write_text("ftp://host/x\n")
    assert main(["crawl", "--workdir", str(tmp_path / "run"), "--source", "pool:x.parquet",
                 "--block-urls", str(listed)]) == 2
    assert "line 1: 'ftp://host/x' is not an http(s) URL" in capsys.readouterr().err


def test_img2dataset_cannot_honour_a_hash_list(tmp_path, capsys):
    listed = tmp_path / "list.txt"
    listed.write_text("a" * 64 + "\n")
    assert main(["crawl", "--workdir", str(tmp_path / "run"), "--source", "pool:x.parquet",
                 "--downloader", "img2dataset", "--block-hashes", str(listed)]) == 2
    assert "--block-hashes and --block-urls need --downloader native" in capsys.readouterr().err
