"""`--block-hashes` with 64-bit perceptual hashes (issue 20, item 2) on real photographs (Debian's
wallpaper packages, fetched by support.realdata; skipped without network): the pHash is
imagehash's, bit for bit; photographs listed by their pHash are blocked when the web's copies
(half size, JPEG at quality 80) are downloaded from a loopback server, by the native downloader
and by a live crawl, and nothing of them is written; the other photographs pass."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from aiohttp import web
from PIL import Image

from support import photos
from support.hostile_web import Server, download_rows
from support.realdata import Unavailable, fetch_deb
from wit_builder.cli import main
from wit_builder.core import phash
from wit_builder.crawl.blocklists import picture_phash
from wit_builder.crawl.download import native
from wit_builder.crawl.download.images import ImageSettings, decode

LISTED, PASSING = 4, 4   # photographs listed, and photographs that must pass


@pytest.fixture(scope="module")
def pictures() -> dict[str, object]:
    try:
        found = photos.photographs(photos.WALLPAPERS)
    except Unavailable as error:
        pytest.skip(str(error))
    return {name: found[name] for name in sorted(found)[:LISTED + PASSING]}


def listed_phash(picture) -> str:
    """The pHash a list would carry for a photograph: imagehash's (the test extra installs it),
    never ours, so that the download's hash is checked against an independent one."""
    imagehash = pytest.importorskip("imagehash")
    return str(imagehash.phash(picture))


def web_copy(picture) -> bytes:
    return photos.encode(photos.scaled(picture, 0.5), quality=80)


def test_the_phash_is_imagehash_s_bit_for_bit_on_real_photographs(pictures):
    imagehash = pytest.importorskip("imagehash")
    for picture in pictures.values():
        for variant in (picture, picture.convert("L"), photos.scaled(picture, 0.37)):
            assert phash.to_hex(phash.phash_of_image(variant)) == str(imagehash.phash(variant))


def photo_site(pictures: dict) -> tuple[dict[str, bytes], web.Application]:
    files = {f"/{number}.jpg": web_copy(picture)
             for number, picture in enumerate(pictures.values())}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path in files:
            return web.Response(body=files[request.path], content_type="image/jpeg")
        raise web.HTTPNotFound()
    return files, handle


def hash_list(path: Path, pictures: dict, extra: str = "") -> str:
    """A gzip list of the first LISTED photographs' pHashes (one with a distance of its own, one
    with a note), beside an unrelated MD5."""
    lines = [listed_phash(picture) for picture in list(pictures.values())[:LISTED]]
    lines[1] += ":6"
    lines[2] += "  reported twice"
    path.write_bytes(gzip.compress(("# pHash list\n" + "a" * 32 + "\n" + "\n".join(lines) + "\n"
                                    + extra).encode()))
    return str(path)


def test_web_copies_of_listed_photographs_are_blocked_and_nothing_of_them_written(
        pictures, tmp_path, monkeypatch):
    decoded = []
    original = native.process_image
    monkeypatch.setattr(native, "process_image", lambda body, settings, blocked=None:
                        decoded.append(body) or original(body, settings, blocked))
    files, handle = photo_site(pictures)
    with Server(handle) as server:
        rows = {row["url"].rsplit("/", 1)[1]: row for row in download_rows(
            tmp_path / "run", [server.url + path for path in files], server.origin,
            image_size=256, block_hashes=[hash_list(tmp_path / "phash.txt.gz", pictures)])}
    for number in range(LISTED + PASSING):
        row = rows[f"{number}.jpg"]
        if number < LISTED:
            assert (row["status"], row["http_status"], row["sha256"], row["key"]) == \
                ("blocked_hash", 200, None, None)
        else:
            assert row["status"] == "ok"
    assert all(body in decoded for body in files.values())  # a pHash needs the picture decoded
    stored = [sample["json"] for sample in wds.WebDataset(
        sorted(str(p) for p in (tmp_path / "run").rglob("*.tar")), shardshuffle=False)]
    assert sorted(json.loads(meta)["url"].rsplit("/", 1)[1] for meta in stored) == \
        [f"{number}.jpg" for number in range(LISTED, LISTED + PASSING)]
    blocked = [files[f"/{number}.jpg"] for number in range(LISTED)]
    listed = [int(listed_phash(p), 16) for p in list(pictures.values())[:LISTED]]
    for path in (tmp_path / "run").rglob("*"):  # no pixels, digest or pHash of them on disk
        if path.is_file():
            data = path.read_bytes()
            assert not any(body[len(body) // 2:len(body) // 2 + 64] in data for body in blocked)
            assert not any(hashlib.sha256(body).hexdigest().encode() in data for body in blocked)
            assert not any(value.to_bytes(8, order) in data or phash.to_hex(value).encode() in data
                           for value in listed for order in ("big", "little"))


def crawl_phash(data: bytes) -> int:
    """The pHash the download computes for downloaded bytes (the decoded picture)."""
    return picture_phash(decode(data, ImageSettings())[0])


def test_a_phash_matches_within_its_own_distance_or_the_default(pictures, tmp_path):
    picture = next(iter(pictures.values()))
    files = {"/photo.jpg": web_copy(picture)}

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=files["/photo.jpg"], content_type="image/jpeg")

    near = crawl_phash(files["/photo.jpg"]) ^ 0b1011011   # 5 bits away
    listed = tmp_path / "near.txt"
    cases = [(f"{near:016x}:4\n", {}, "ok"), (f"{near:016x}:5\n", {}, "blocked_hash"),
             (f"{near:016X}\n", {}, "blocked_hash"),            # the default: 8 bits
             (f"{near:016x}\n", {"block_phash_distance": 4}, "ok")]
    with Server(handle) as server:
        for number, (line, options, status) in enumerate(cases):
            listed.write_text(line)
            rows = download_rows(tmp_path / f"run{number}", [server.url + "/photo.jpg"],
                                 server.origin, image_size=256, block_hashes=[str(listed)],
                                 **options)
            assert [row["status"] for row in rows] == [status], line


def live_crawl(workdir: Path, files: dict[str, bytes], block_hashes: str) -> int:
    """`wit crawl` of a page showing `files` ({path: bytes}) as pictures of a red star."""
    page = "".join(f"<p><img src='{path}' alt='a red star over the house number {number}'></p>"
                   for number, path in enumerate(files))

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return web.Response(text=page, content_type="text/html")
        if request.path in files:
            return web.Response(body=files[request.path], content_type="image/jpeg")
        raise web.HTTPNotFound()

    (workdir / "queries").mkdir(parents=True)
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["red star"]}),
                   workdir / "queries" / "queries.parquet")
    with Server(handle) as server:
        return main(["crawl", "--workdir", str(workdir), "--source", f"web:{server.url}/",
                     "--workers", "1", "--allow-private", "--crawl-delay", "0",
                     "--block-hashes", block_hashes])


def flat_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "wit_builder.crawl.blocklists" and record.levelno >= logging.WARNING]


def test_a_live_crawl_blocks_listed_photographs(pictures, tmp_path, capsys, caplog):
    files, _ = photo_site(pictures)
    with caplog.at_level(logging.WARNING):
        code = live_crawl(tmp_path, files, hash_list(tmp_path / "list.gz", pictures))
    assert code == 0
    assert flat_warnings(caplog) == []   # photographs' pHashes: far from a flat picture's
    table = capsys.readouterr().out.splitlines()   # the final table of statuses
    assert [line.split()[:2] for line in table if line.split()[0] in ("ok", "blocked_hash")] \
        == [["ok", str(PASSING)], ["blocked_hash", str(LISTED)]]
    manifest = pa.concat_tables(pq.read_table(path) for path in
                                sorted((tmp_path / "manifests" / "crawl").glob("*.parquet")))
    blocked = {url.rsplit("/", 1)[1] for url, status in
               zip(manifest.column("url").to_pylist(), manifest.column("status").to_pylist())
               if status == "blocked_hash"}
    assert blocked == {f"{number}.jpg" for number in range(LISTED)}


def one_tone(colour: tuple[int, int, int], format: str = "PNG") -> bytes:
    return photos.encode(Image.new("RGB", (320, 240), colour), format)


NEAR_FLAT = ("abstract/Silk.png", "abstract/Waves.png", "abstract/Spring.png",
             "desktop/MATE-Stripes-Light.png")   # mate-backgrounds: all but one tone at 32x32


def test_flat_and_near_flat_pictures_hash_as_imagehash_hashes_them():
    """The DCT's exact zeros: a picture of one tone hashes 8000000000000000 (the zero frequency
    alone) and a black one 0, as imagehash has them; the matrix product's rounding noise made
    them c62929d629d6c628 and the like."""
    imagehash = pytest.importorskip("imagehash")
    try:
        root = fetch_deb("mate-backgrounds", photos.VERSIONS["mate-backgrounds"])
    except Unavailable as error:
        pytest.skip(str(error))
    textures = {name: photos.original(root / "usr/share/backgrounds/mate" / name)
                for name in NEAR_FLAT}
    tones = {colour: Image.open(io.BytesIO(one_tone(colour))) for colour in
             [(128, 128, 128), (255, 255, 255), (200, 30, 30), (1, 1, 1), (0, 0, 0)]}
    for name, picture in {**textures, **tones}.items():
        assert phash.to_hex(phash.phash_of_image(picture)) == str(imagehash.phash(picture)), name
    for colour, picture in tones.items():
        expected = phash.BLACK if colour == (0, 0, 0) else phash.FLAT
        assert phash.phash_of_image(picture) == expected
        assert crawl_phash(one_tone(colour)) == expected   # the download's own steps
    assert all(phash.phash_of_image(picture) == phash.FLAT for picture in textures.values())


@pytest.mark.parametrize("line, blocks", [
    ("8000000000000000", "every one-tone (flat) image"),
    ("8000000000000003:2", "every one-tone (flat) image"),
    ("0000000000000000:0", "every all-black image")])
def test_a_phash_near_a_flat_picture_s_warns_once_naming_its_line(line, blocks, tmp_path,
                                                                   caplog):
    from wit_builder.crawl.blocklists import load_blocklist
    listed = tmp_path / "list.txt"
    listed.write_text(f"# listed\n0123456789abcdef\n{line}  a note\n{line}\n")
    with caplog.at_level(logging.WARNING):
        load_blocklist([str(listed)], [])
    warning, = flat_warnings(caplog)
    assert warning.startswith(f"blocklist '{listed}' line 3: pHash {line.split(':')[0]} within ")
    assert f"blocks {blocks}" in warning and "(1 more such line(s))" in warning
    assert "list that picture by its SHA-256" in warning


def test_a_listed_flat_picture_blocks_every_one_tone_picture_and_the_crawl_says_so(
        pictures, tmp_path, capsys, caplog):
    """The hazard the warning names, on real files: a list carrying the pHash of one blue PNG
    blocks a red JPEG and a near-flat wallpaper too; the photographs pass. `wit crawl` warns
    once, at the start (the download does not warn again)."""
    imagehash = pytest.importorskip("imagehash")
    blue = Image.open(io.BytesIO(one_tone((40, 90, 200))))
    listed = tmp_path / "list.txt"
    listed.write_text(f"{imagehash.phash(blue)}\n")
    passing = list(pictures.values())[LISTED:]
    silk = fetch_deb("mate-backgrounds", photos.VERSIONS["mate-backgrounds"]) / \
        "usr/share/backgrounds/mate" / NEAR_FLAT[0]
    files = {"/red.jpg": one_tone((200, 30, 30), "JPEG"), "/silk.png": silk.read_bytes(),
             **{f"/{number}.jpg": web_copy(picture) for number, picture in enumerate(passing)}}
    with caplog.at_level(logging.WARNING):
        assert live_crawl(tmp_path, files, str(listed)) == 0
    warning, = flat_warnings(caplog)
    assert f"'{listed}' line 1" in warning and "every one-tone (flat) image" in warning
    manifest = pa.concat_tables(pq.read_table(path) for path in
                                sorted((tmp_path / "manifests" / "crawl").glob("*.parquet")))
    statuses = dict(zip((url.rsplit("/", 1)[1] for url in manifest["url"].to_pylist()),
                        manifest["status"].to_pylist()))
    assert (statuses.pop("red.jpg"), statuses.pop("silk.png")) == ("blocked_hash",) * 2
    assert set(statuses.values()) == {"ok"} and len(statuses) == len(passing)


def test_the_default_distance_is_range_checked(tmp_path, capsys):
    assert main(["crawl", "--workdir", str(tmp_path / "run"), "--source", "pool:x.parquet",
                 "--block-phash-distance", "17"]) == 2
    assert "--block-phash-distance" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_distance_joins_the_lists_fingerprint(tmp_path):
    from wit_builder.crawl.blocklists import load_blocklist
    listed = tmp_path / "list.txt"
    listed.write_text("0123456789abcdef\n")
    prints = {load_blocklist([str(listed)], [], bits).fingerprint for bits in (6, 8)}
    listed.write_text("0123456789abcdef:8\n")
    assert len(prints) == 2   # a new distance redoes the download shards
    assert load_blocklist([str(listed)], [], 6).fingerprint in prints


def test_a_worker_builds_a_lists_phash_index_once_whatever_the_shards(tmp_path):
    """The settings (and the blocklist in them) reach a download worker anew with every shard;
    the pHash index is built once per process and list, and a different list gets its own."""
    import pickle
    from wit_builder.crawl.blocklists import load_blocklist
    listed = tmp_path / "list.txt"
    listed.write_text("0123456789abcdef\n")
    first = pickle.loads(pickle.dumps(load_blocklist([str(listed)], [])))
    second = pickle.loads(pickle.dumps(load_blocklist([str(listed)], [])))
    assert first.phash_index is second.phash_index
    listed.write_text("fedcba9876543210\n")
    other = load_blocklist([str(listed)], [])
    assert other.phash_index is not first.phash_index
    assert other.phash_index.near(0xfedcba9876543210)
    assert not other.phash_index.near(0x0123456789abcdef)


def test_shards_downloaded_with_a_phash_list_record_the_phash_rules(tmp_path):
    """A change of the pHash's bits (a new phash.VERSION) redoes the shards that used a pHash
    list, and only those: a list of SHA-256 lines alone records no pHash rules."""
    from wit_builder.crawl.blocklists import load_blocklist
    from wit_builder.crawl.download.fetch import FetchSettings
    from wit_builder.crawl.download.plan import DownloadSettings, shard_inputs
    rows = [{"uid": "u", "url": "http://example.com/a.jpg", "text": "a", "page_url": "",
             "query_ids": [1]}]
    listed = tmp_path / "list.txt"
    for line, recorded in (("0123456789abcdef", phash.VERSION), ("ab" * 32, None)):
        listed.write_text(line + "\n")
        settings = DownloadSettings(workdir=str(tmp_path), fetch=FetchSettings(
            blocklist=load_blocklist([str(listed)], [])), image=ImageSettings())
        assert shard_inputs(rows, settings).get("phash") == recorded
