"""`--disallowed-header-directives` and `--resize-mode keep_ratio_largest` through whole downloads:
both backends refuse the same X-Robots-Tag opt-outs, read back from real manifests and tars."""

from __future__ import annotations

import pytest
import webdataset as wds
from aiohttp import web

from support.hostile_web import Server, download_rows, image_bytes
from wit_builder.cli import main

PICTURE = image_bytes(300, 200, seed=5)
SMALL = image_bytes(50, 40, seed=6)
ROBOTS_TAGS = {                          # path → X-Robots-Tag served with the picture
    "/plain.jpg": None,
    "/noindex.jpg": "noindex",
    "/other-noindex.jpg": "otherbot: noindex",
    "/ours-noimageindex.jpg": "witbuilder: noimageindex",
    "/noai.jpg": "noai",
}


async def tagged_site(request: web.Request) -> web.StreamResponse:
    if request.path == "/small.jpg":
        return web.Response(body=SMALL, content_type="image/jpeg")
    if request.path not in ROBOTS_TAGS:
        raise web.HTTPNotFound()
    tag = ROBOTS_TAGS[request.path]
    return web.Response(body=PICTURE, content_type="image/jpeg",
                        headers={"X-Robots-Tag": tag} if tag else {})


@pytest.fixture(scope="module")
def site():
    with Server(tagged_site) as server:
        yield server


def download(site: Server, workdir, paths: list[str], **options) -> tuple[list[str], list[bytes]]:
    """(status of each path, bytes of each raw tar) after downloading `paths` from the site."""
    rows = download_rows(workdir, [site.url + path for path in paths], site.origin, **options)
    statuses = [row["status"] for row in rows]
    tars = [path.read_bytes() for path in sorted((workdir / "data" / "raw").glob("*.tar"))]
    return statuses, tars


def test_default_directives_refuse_noindex_but_not_another_agents_directive(site, tmp_path):
    statuses, _ = download(site, tmp_path, list(ROBOTS_TAGS))
    assert dict(zip(ROBOTS_TAGS, statuses)) == {
        "/plain.jpg": "ok", "/noindex.jpg": "opted_out", "/other-noindex.jpg": "ok",
        "/ours-noimageindex.jpg": "opted_out", "/noai.jpg": "opted_out"}


def test_empty_directive_list_stores_every_image(site, tmp_path):
    statuses, _ = download(site, tmp_path, list(ROBOTS_TAGS), disallowed_header_directives=[""])
    assert statuses == ["ok"] * len(ROBOTS_TAGS)
    samples = list(wds.WebDataset([str(tmp_path / "data" / "raw" / "00000.tar")],
                                  shardshuffle=False))
    assert len(samples) == len(ROBOTS_TAGS) and all(sample["jpg"] for sample in samples)


def test_both_backends_honour_the_same_chosen_directives(site, tmp_path):
    chosen = {"disallowed_header_directives": ["NoIndex"]}  # noai alone no longer refuses
    expected = ["ok", "opted_out", "ok", "ok", "ok"]
    native, _ = download(site, tmp_path / "native", list(ROBOTS_TAGS), **chosen)
    theirs, _ = download(site, tmp_path / "img2dataset", list(ROBOTS_TAGS),
                         downloader="img2dataset", **chosen)
    assert native == expected and theirs == expected


def test_keep_ratio_largest_writes_the_same_shard_bytes_as_keep_ratio(site, tmp_path):
    paths = ["/plain.jpg", "/small.jpg"]
    ours = download(site, tmp_path / "keep_ratio", paths, resize_mode="keep_ratio")
    alias = download(site, tmp_path / "alias", paths, resize_mode="keep_ratio_largest")
    assert ours[0] == alias[0] == ["ok", "ok"]
    assert alias[1] == ours[1] and len(ours[1]) == 1
    samples = wds.WebDataset([str(tmp_path / "alias" / "data" / "raw" / "00000.tar")],
                             shardshuffle=False).decode("pil")
    # The longest side becomes 96; the small picture is not enlarged.
    assert [sample["jpg"].size for sample in samples] == [(96, 64), (50, 40)]


def test_resize_mode_help_says_keep_ratio_bounds_the_longest_side(capsys):
    with pytest.raises(SystemExit):
        main(["crawl", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("keep_ratio: the longest side becomes --image-size (img2dataset's "
            "keep_ratio_largest; img2dataset's keep_ratio sets the shortest side)") in help_text
    assert "--disallowed-header-directives" in help_text


def test_directive_and_prefix_options_reach_the_crawl_settings(cli_overrides):
    parsed = cli_overrides(["crawl", "--disallowed-header-directives", "noai,noindex",
                            "--disallowed-header-directives", "noimageai", "--warc-prefix",
                            "/mnt/cc", "--resize-mode", "keep_ratio_largest"])
    assert parsed["disallowed_header_directives"] == ["noai,noindex", "noimageai"]
    assert parsed["warc_prefix"] == "/mnt/cc" and parsed["resize_mode"] == "keep_ratio_largest"
