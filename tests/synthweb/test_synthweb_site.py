"""The synthetic website and its recordings: pictures show what captions say, the site is crawlable
over HTTP with robots.txt, and the WARC, pool and zero-shot sets read back with real readers."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import math
import random
import re
import signal
import subprocess
import sys
import urllib.request
import urllib.robotparser
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from fastwarc.warc import ArchiveIterator, WarcRecordType
from PIL import Image

from tests.conftest import TEST_SYNTHWEB
from wit_builder.cli import load_config
from wit_builder.core.options import WitError
from wit_builder.synthweb import pool, render, site, warc, zeroshot
from wit_builder.synthweb.concepts import COLOURS, SHAPES
from wit_builder.synthweb.server import SiteServer

USER_AGENT = "witbuilder-test/1.0"


def synthweb_config(workdir: Path, **overrides):
    return load_config("synthweb", None, {"workdir": str(workdir), **TEST_SYNTHWEB, **overrides})


def generate_site(out: Path, config) -> Path:
    """Everything this helper owns (site, WARC, pool, zero-shot) without the Wikipedia side."""
    site.write_site(out, config)
    warc.write_warc(out, config)
    pool.write_pool(out, config)
    zeroshot.write_zeroshot(out, config)
    return out


@pytest.fixture(scope="module")
def web(synthweb_dir) -> tuple[Path, object]:
    """The session's synthetic web (made by `generate`) and the settings it was made with."""
    return synthweb_dir, synthweb_config(synthweb_dir.parents[1])


@pytest.fixture(scope="module")
def truth(web) -> dict:
    return json.loads((web[0] / site.TRUTH).read_text())


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def served_body(out: Path, path: str, origin: str) -> bytes:
    """The file behind a URL path as the server sends it from `origin`."""
    file = out / "site" / path.lstrip("/")
    file = file / "index.html" if path.endswith("/") else file
    body = file.read_bytes()
    if file.suffix in (".html", ".txt"):
        body = body.replace(site.PLACEHOLDER_ORIGIN.encode(), origin.encode())
    return body


# --- pictures and captions ---------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "fr", "de", "es"])
def test_every_caption_names_its_scene_colour_and_shape(lang):
    rng = random.Random(lang)
    for _ in range(300):
        scene = render.sample_scene(rng)
        text = render.caption(scene, rng, lang)
        colours, shapes = render.colour_and_shape_words(scene, lang)
        assert words(text) & {word.lower() for word in colours}, (scene, text)
        assert words(text) & {word.lower() for word in shapes}, (scene, text)
        other_colours = set(COLOURS) - {scene.colour, scene.background_colour}
        if lang == "en":  # no colour or shape but the scene's is named
            assert not words(text) & other_colours, (scene, text)
            assert not words(text) & (set(SHAPES) - {scene.shape}), (scene, text)


def test_site_captions_are_true_of_their_pictures(truth):
    captioned = [row for row in truth["images"] if row["decoy"] is None]
    assert len(captioned) > 50
    for row in captioned:
        scene = render.Scene(**row["scene"])
        colours, shapes = render.colour_and_shape_words(scene, row["lang"])
        assert words(row["text"]) & {w.lower() for w in colours}, row
        assert words(row["text"]) & {w.lower() for w in shapes}, row


def share_near(image: Image.Image, colour: tuple[int, int, int], tolerance: float = 45) -> float:
    pixels = list(image.convert("RGB").get_flattened_data())
    near = sum(1 for pixel in pixels if math.dist(pixel, colour) <= tolerance)
    return near / len(pixels)


def test_pictures_show_the_scene_colour_large_objects_cover_more():
    rng = random.Random(7)
    for colour in COLOURS:
        coverage = {}
        for size in ("small", "large"):
            background = render.contrasting_backgrounds(colour)[0]
            scene = render.Scene(colour, "circle", 1, size, "plain", background)
            data = render.encode(render.render(scene, 64, rng), "jpeg")
            picture = Image.open(io.BytesIO(data))
            assert picture.size == (64, 64)
            coverage[size] = share_near(picture, COLOURS[colour])
        # A small circle covers ~6% of the picture and a large one ~28%.
        assert 0.03 < coverage["small"] < coverage["large"], (colour, coverage)


def test_background_patterns_show_in_every_background_colour():
    rng = random.Random(5)
    for name in render.BACKGROUND_COLOURS:
        _, pattern = render.background_tints(name)
        for background in ("plain", "striped", "dotted", "checkered"):
            scene = render.Scene("black", "circle", 1, "small", background, name)
            share = share_near(render.render(scene, 64, rng), pattern, tolerance=8)
            assert (share > 0.05) == (background != "plain"), (name, background, share)


def test_shapes_are_distinguishable_by_their_footprint():
    """At 64 px each shape covers a different share of the picture (a ring has a hole...)."""
    rng = random.Random(3)
    coverage = {}
    for shape in SHAPES:
        scene = render.Scene("red", shape, 1, "large", "plain", "white")
        coverage[shape] = share_near(render.render(scene, 64, rng), COLOURS["red"])
    assert coverage["ring"] < coverage["circle"] and coverage["star"] < coverage["square"]
    assert coverage["cross"] < coverage["circle"]
    assert len({round(value, 2) for value in coverage.values()}) == len(SHAPES), coverage


# --- the site over HTTP ------------------------------------------------------------------------

class PageLinks(HTMLParser):
    """Links and picture URLs of a page, as a crawler would read them."""

    def __init__(self):
        super().__init__()
        self.links, self.pictures, self.lang, self.base = [], [], None, None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if tag == "base":
            self.base = attributes.get("href")
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
        if tag == "img":
            if attributes.get("srcset"):
                candidates = [item.split() for item in attributes["srcset"].split(",")]
                largest = max(candidates, key=lambda item: float(item[1][:-1]))
                self.pictures.append(largest[0])
            elif attributes.get("data-src"):
                self.pictures.append(attributes["data-src"])
            elif attributes.get("src"):
                self.pictures.append(attributes["src"])


def fetch(url: str, user_agent: str = USER_AGENT) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def crawl(base: str) -> dict:
    """A polite breadth-first crawl of the site: pages and the pictures they link to."""
    robots = urllib.robotparser.RobotFileParser(base + "/robots.txt")
    status, _, body = fetch(base + "/robots.txt")
    robots.parse(body.decode().splitlines())
    pages, pictures, blocked, queue, seen = {}, {}, set(), [base + "/"], {base + "/"}
    while queue:
        url = queue.pop(0)
        if not robots.can_fetch(USER_AGENT, url):
            blocked.add(urlsplit(url).path)
            continue
        status, headers, body = fetch(url)
        pages[urlsplit(url).path] = status
        if status != 200:
            continue
        parser = PageLinks()
        parser.feed(body.decode())
        page_base = urljoin(url, parser.base) if parser.base else url
        for picture in parser.pictures:
            absolute = urljoin(page_base, picture)
            if absolute.startswith(base) and absolute not in pictures:
                pictures[absolute] = fetch(absolute)
        for href in parser.links:
            target = urljoin(page_base, href).split("#")[0]
            if target.startswith(base + "/") and target not in seen:
                seen.add(target)
                queue.append(target)
    return {"pages": pages, "pictures": pictures, "blocked": blocked}


def download_outcome(status: int, body: bytes) -> str:
    """What a downloader makes of a fetched picture, in DESIGN.md's status words."""
    if status in (301, 302):
        return "redirect_loop"  # urllib gave up following
    if status != 200:
        return "http_error"
    try:
        Image.open(io.BytesIO(body)).load()
    except Image.UnidentifiedImageError:
        return "not_image"
    except OSError:
        return "decode_error"
    return "ok"


def test_crawl_over_http_reaches_every_public_page_and_pictures_download_as_truth_says(web, truth):
    out, _ = web
    with SiteServer(out / "site") as server:
        result = crawl(server.url)
        requested = server.paths()
    public = {page["path"] for page in truth["pages"] if not page["robots"]}
    assert public <= set(result["pages"])
    assert result["pages"][site.MISSING_PAGE] == 404
    assert "/private/" in result["blocked"]
    expected = {server.url + row["path"] for row in truth["images"]
                if row["path"] and row["page"] in public and row["decoy"] != "srcset-smaller"}
    assert expected <= set(result["pictures"])
    by_path = {row["path"]: row for row in truth["images"] if row["path"]}
    outcomes = Counter()
    for url, (status, headers, body) in result["pictures"].items():
        row = by_path.get(urlsplit(url).path, {})
        outcome = download_outcome(status, body)
        is_page = status == 200 and headers["Content-Type"].startswith("text/html")
        assert (outcome == "not_image") == is_page
        if outcome == "ok" and headers.get("X-Robots-Tag") == "noai":
            outcome = "opted_out"
        assert outcome == (row.get("download") or "ok"), (url, row)
        outcomes[outcome] += 1
    assert set(outcomes) == {"ok", "opted_out", "http_error", "not_image", "decode_error",
                             "redirect_loop"}
    # robots.txt was read first and nothing under /private/ was ever requested.
    assert requested[0] == "/robots.txt"
    assert not any(path.startswith("/private/") for path in requested)


def test_robots_txt_disallows_private_section_that_is_still_linked(web, truth):
    out, _ = web
    robots = urllib.robotparser.RobotFileParser()
    robots.parse((out / "site" / "robots.txt").read_text().splitlines())
    assert not robots.can_fetch("anybot", "http://h/private/")
    assert robots.can_fetch("anybot", "http://h/gallery/")
    assert not robots.can_fetch("witbuilder-test-banned", "http://h/gallery/")
    home = next(page for page in truth["pages"] if page["path"] == "/")
    assert "/private/" in home["links"]
    private = [page for page in truth["pages"] if page["path"].startswith("/private/")]
    assert len(private) >= 2 and all(page["robots"] for page in private)
    assert any(row["robots"] and row["decoy"] is None for row in truth["images"])


def test_server_substitutes_the_origin_of_each_request(web):
    out, _ = web
    with SiteServer(out / "site") as server:
        _, _, home = fetch(server.url + "/")
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/", headers={"Host": "pictures.example:8080"})
        other = connection.getresponse().read()
        connection.close()
        _, _, picture = fetch(server.url + "/px.gif")
        agents = [item.user_agent for item in server.requests]
    assert f'href="{server.url}/blog/"'.encode() in home
    assert site.PLACEHOLDER_ORIGIN.encode() not in home
    assert b'href="http://pictures.example:8080/blog/"' in other
    assert picture == (out / "site" / "px.gif").read_bytes()
    assert agents[0] == USER_AGENT and len(agents) == 3


def raw_request(port: int, method: str, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_server_refuses_paths_outside_the_site_hidden_files_and_writes(web):
    out, _ = web
    with SiteServer(out / "site") as server:
        assert raw_request(server.port, "GET", "/../site_truth.json").status == 404
        assert raw_request(server.port, "GET", "/%2e%2e/site_truth.json").status == 404
        assert raw_request(server.port, "GET", "/" + site.RESPONSES).status == 404
        assert raw_request(server.port, "POST", "/").status == 405
        redirect = raw_request(server.port, "GET", "/gallery")
        assert redirect.status == 301 and redirect.headers["Location"] == "/gallery/"
        assert raw_request(server.port, "HEAD", "/robots.txt").status == 200
        assert [item.method for item in server.requests][-1] == "HEAD"


def test_opted_out_pictures_are_served_with_x_robots_tag(web, truth):
    out, _ = web
    opted = [row for row in truth["images"] if row["opted_out"]]
    assert opted
    plain = next(row for row in truth["images"] if row["decoy"] is None and not row["opted_out"])
    with SiteServer(out / "site") as server:
        for row in opted:
            _, headers, _ = fetch(server.url + row["path"])
            assert headers["X-Robots-Tag"] == "noai"
        _, headers, _ = fetch(server.url + plain["path"])
        assert "X-Robots-Tag" not in headers


def test_serve_forever_prints_its_url_serves_and_stops_on_ctrl_c(web):
    out, _ = web
    code = ("from wit_builder.synthweb.server import serve_forever; "
            f"serve_forever({str(out / 'site')!r}, '127.0.0.1', 0)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        status, _, body = fetch(url + "/")
        assert status == 200 and f'href="{url}/blog/"'.encode() in body
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    assert "stopped" in process.stdout.read()


def test_serving_a_directory_that_is_not_a_site_or_a_busy_port_is_a_clear_error(web, tmp_path):
    with pytest.raises(WitError, match="not a generated site"):
        SiteServer(tmp_path)
    with SiteServer(web[0] / "site") as server:
        with pytest.raises(WitError, match=f"cannot serve on 127.0.0.1:{server.port}"):
            with SiteServer(web[0] / "site", port=server.port):
                pass


# --- ground truth ------------------------------------------------------------------------------

def test_truth_covers_every_markup_form_decoy_and_language(web, truth):
    out, _ = web
    forms = Counter(row["form"] for row in truth["images"])
    assert set(forms) == set(site.FORM_CYCLE)
    assert {row["decoy"] for row in truth["images"]} == {None, *site.DECOY_FORMS, "srcset-smaller"}
    assert {page["lang"] for page in truth["pages"]} == {"en", "fr", "de", "es"}
    bases = {page["path"]: page["base"] for page in truth["pages"] if page["base"]}
    relative = [row for row in truth["images"] if row["form"] == "src-relative"]
    assert any(row["page"] in bases for row in relative)
    for row in relative:  # resolved against the <base href> where the page has one
        directory = bases.get(row["page"], row["page"].rsplit("/", 1)[0] + "/")
        assert row["path"] == directory + row["url"]
    pages = {page["path"]: (out / "site" / page["file"]).read_text() for page in truth["pages"]}
    for page in truth["pages"]:
        assert f'<html lang="{page["lang"]}">' in pages[page["path"]]
        assert '<img src="/px.gif" width="1" height="1" alt="">' in pages[page["path"]]
    for row in truth["images"]:
        assert row["url"] in pages[row["page"]], row
        if row["sha256"] is None:  # missing, or a redirect loop
            assert row["fault"] in ("missing", "redirect-loop")
            assert not (out / "site" / row["path"].lstrip("/")).exists()
            continue
        if row["path"] is None:  # a data: URI
            continue
        data = (out / "site" / (row.get("redirect_to") or row["path"]).lstrip("/")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        if row["fault"] is None:
            assert Image.open(io.BytesIO(data)).size == (row["width"], row["height"])
    faults = Counter(row["fault"] for row in truth["images"] if row["fault"])
    assert set(faults) == set(site.FAULTS)
    assert any(row["url"].startswith(site.PLACEHOLDER_ORIGIN) for row in truth["images"])
    assert any(row["url"].startswith("../") for row in truth["images"])
    assert any("/" not in row["url"] for row in truth["images"])
    assert {row["format"] for row in truth["images"] if row["decoy"] is None} == {"jpeg", "png"}


def test_srcset_truth_is_the_largest_candidate(truth):
    rows = [row for row in truth["images"] if row["form"].startswith("srcset")]
    by_page_scene = {}
    for row in rows:
        by_page_scene.setdefault((row["page"], json.dumps(row["scene"])), []).append(row)
    for group in by_page_scene.values():
        kept = [row for row in group if row["decoy"] is None]
        assert len(kept) == 1 and len(group) == 3
        assert kept[0]["width"] == max(row["width"] for row in group)


def test_too_few_pages_is_a_clear_error(tmp_path):
    with pytest.raises(WitError, match=r"--site-pages \(\[synthweb\] site_pages\) must be at "
                                       r"least 11, not 5"):   # when the settings are read
        synthweb_config(tmp_path, site_pages=5)


# --- WARC and pool -----------------------------------------------------------------------------

def block_digests_verified(path: Path) -> list[bool]:
    """FastWARC's check of each record's WARC-Block-Digest (needs the unparsed HTTP block)."""
    with open(path, "rb") as stream:
        return [record.verify_block_digest() for record in ArchiveIterator(stream, parse_http=False)
                if record.record_type != WarcRecordType.warcinfo]


def warc_records(path: Path) -> list:
    records = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, parse_http=True):
            # Verified before the body is read: verifying keeps a copy of the unread stream.
            digests = record.verify_payload_digest() \
                if record.record_type == WarcRecordType.response else None
            is_http = record.http_headers is not None
            records.append({"type": record.record_type, "headers": dict(record.headers),
                            "uri": record.headers.get("WARC-Target-URI"),
                            "status": record.http_headers.status_code if is_http else None,
                            "http": dict(record.http_headers) if is_http else {},
                            "body": record.reader.read(), "digests": digests})
    return records


def test_warc_reads_back_with_fastwarc(web, truth):
    out, config = web
    origin = config.recorded_origin
    records = warc_records(out / warc.WARC_NAME)
    assert records[0]["type"] == WarcRecordType.warcinfo
    exchanges = records[1:]
    assert [record["type"] for record in exchanges] == \
        [WarcRecordType.request, WarcRecordType.response] * (len(exchanges) // 2)
    responses = exchanges[1::2]
    missing = {row["path"] for row in truth["images"] if row["fault"] == "missing"}
    order = site.crawl_order(truth)
    assert [record["uri"] for record in responses] == [origin + path for path in order]
    for request, response in zip(exchanges[::2], responses):
        assert request["headers"]["WARC-Concurrent-To"] == response["headers"]["WARC-Record-ID"]
        assert response["digests"] is True
        path = urlsplit(response["uri"]).path
        assert not path.startswith("/private/")
        assert int(response["http"]["Content-Length"]) == len(response["body"])
        if path in truth["redirects"]:
            assert response["status"] in (301, 302)
            assert response["http"]["Location"] == truth["redirects"][path]
        elif path == site.MISSING_PAGE or path in missing:
            assert response["status"] == 404
        else:
            assert response["status"] == 200
            assert response["body"] == served_body(out, path, origin), path
    assert all(block_digests_verified(out / warc.WARC_NAME))
    ids = [record["headers"]["WARC-Record-ID"] for record in records]
    assert len(set(ids)) == len(ids)
    # Common Crawl layout: every record is its own gzip member.
    assert (out / warc.WARC_NAME).read_bytes().count(b"\x1f\x8b\x08") >= len(records)
    assert sum(1 for row in truth["images"] if row["opted_out"] and not row["robots"]) == \
        sum(1 for record in responses if record["http"].get("X-Robots-Tag") == "noai")


def test_pool_reads_back_with_pyarrow_and_every_url_is_in_the_warc(web, truth):
    out, config = web
    table = pq.read_table(out / pool.POOL_NAME)
    assert table.column_names[:4] == ["url", "caption", "width", "height"]
    rows = table.to_pylist()
    kept = [row for row in truth["images"] if row["decoy"] is None and not row["robots"]]
    assert len(rows) == len(kept)
    warc_uris = {record["uri"] for record in warc_records(out / warc.WARC_NAME)
                 if record["type"] == WarcRecordType.response}
    by_path = {row["path"]: row for row in kept}
    for row in rows:
        assert row["url"] in warc_uris
        assert row["url"].startswith(config.recorded_origin + "/")
        source = by_path[urlsplit(row["url"]).path]
        assert row["caption"] == source["text"] and row["width"] == source["width"]


def test_record_site_rewrites_warc_and_pool_for_another_origin(web, tmp_path):
    out, config = web
    result = warc.record_site(out, config, "http://127.0.0.1:45678", tmp_path)
    assert result["pool"]["rows"] > 0
    urls = pq.read_table(tmp_path / pool.POOL_NAME).column("url").to_pylist()
    assert all(url.startswith("http://127.0.0.1:45678/") for url in urls)
    records = warc_records(tmp_path / warc.WARC_NAME)
    home = next(record for record in records if record["uri"] == "http://127.0.0.1:45678/"
                and record["type"] == WarcRecordType.response)
    assert b'href="http://127.0.0.1:45678/blog/"' in home["body"]
    with pytest.raises(WitError, match="not of the form"):
        warc.record_site(out, config, "http://127.0.0.1:45678/", tmp_path)


# --- zero-shot sets ----------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["shape", "colour"])
def test_zeroshot_shards_read_back_with_webdataset(web, task):
    out, config = web
    directory = out / "zeroshot" / task
    classnames = (directory / "classnames.txt").read_text().splitlines()
    assert classnames == list(SHAPES if task == "shape" else COLOURS)
    dataset = wds.WebDataset(str(directory / "shard-000000.tar"), shardshuffle=False).decode("pil")
    labels = Counter()
    for sample in dataset:
        label = int(sample["cls"])
        labels[label] += 1
        assert sample["jpg"].size == (config.image_size, config.image_size)
        if task == "colour":  # the labelled colour is really in the picture
            assert share_near(sample["jpg"], COLOURS[classnames[label]]) > 0.01, classnames[label]
    assert labels == {label: config.zeroshot_per_class for label in range(len(classnames))}
    templates = (directory / "templates.txt").read_text().splitlines()
    assert templates and all(template.count("{}") == 1 for template in templates)
    other_words = set(COLOURS) if task == "shape" else set(SHAPES.values())
    assert any(words(template) & other_words for template in templates)


def test_zeroshot_renders_are_not_site_pictures(web, truth):
    out, _ = web
    site_hashes = {row["sha256"] for row in truth["images"]}
    for task in zeroshot.TASKS:
        for sample in wds.WebDataset(str(out / "zeroshot" / task / "shard-000000.tar"),
                                     shardshuffle=False):
            assert hashlib.sha256(sample["jpg"]).hexdigest() not in site_hashes


# --- determinism -------------------------------------------------------------------------------

def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` (or `root` itself) by relative name."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file()}


def test_generate_records_every_artefact_of_the_site_in_its_manifest(web):
    out, config = web
    manifest = json.loads((out / "synthweb.json").read_text())["artefacts"]
    assert manifest["site"]["pages"] == config.site_pages
    assert manifest["warc"]["origin"] == config.recorded_origin
    assert manifest["pool"]["rows"] == pq.read_table(out / pool.POOL_NAME).num_rows
    assert manifest["zeroshot"]["shape"]["samples"] == len(SHAPES) * config.zeroshot_per_class


def test_same_seed_gives_identical_bytes_and_another_seed_differs(web, tmp_path):
    out, config = web
    again = generate_site(tmp_path / "again", synthweb_config(tmp_path))
    for name in ("site", site.TRUTH, warc.WARC_NAME, pool.POOL_NAME, "zeroshot"):
        assert tree_bytes(again / name) == tree_bytes(out / name), name
    other = tmp_path / "other"
    site.write_site(other, synthweb_config(tmp_path, seed=1))
    index = "site/index.html"
    assert (other / index).read_bytes() != (out / index).read_bytes()
    assert (other / site.TRUTH).read_bytes() != (out / site.TRUTH).read_bytes()
