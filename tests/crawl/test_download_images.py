"""Image checks and conversions on real encoded images (Pillow-made), and the small rules of the
fetcher: opt-out headers, the address guard's trusted origins."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from support.hostile_web import decompression_bomb_png, image_bytes
from wit_builder.core import markers
from wit_builder.crawl.config import CrawlConfig
from wit_builder.crawl.download.plan import download_settings, shard_inputs
from wit_builder.crawl.download.images import (ImageRejected, ImageSettings, process_image,
                                         sniff_format)
from wit_builder.net.guard import AddressPolicy, BlockedAddressError
from wit_builder.net.optout import HEADER_OPT_OUTS, header_directives, opted_out, user_agent_token


def stored_size(data: bytes, **settings) -> tuple[int, int]:
    image = process_image(data, ImageSettings(**{"min_size": 8, **settings}))
    decoded = Image.open(io.BytesIO(image.jpeg))
    assert decoded.format == "JPEG" and decoded.size == (image.width, image.height)
    return decoded.size


@pytest.mark.parametrize("mode, expected", [
    ("keep_ratio", (64, 32)), ("center_crop", (64, 64)), ("border", (64, 64)), ("no", (400, 200)),
])
def test_resize_modes_give_the_sizes_of_img2dataset_modes(mode, expected):
    assert stored_size(image_bytes(400, 200), image_size=64, resize_mode=mode) == expected


def test_keep_ratio_never_enlarges_small_images():
    assert stored_size(image_bytes(40, 30), image_size=64) == (40, 30)


@pytest.mark.parametrize("width, height", [(400, 200), (150, 300), (40, 30)])
def test_keep_ratio_largest_is_an_alias_giving_byte_identical_images(width, height):
    data = image_bytes(width, height, seed=3)
    ours = process_image(data, ImageSettings(image_size=64, min_size=8, resize_mode="keep_ratio"))
    alias = process_image(data, ImageSettings(image_size=64, min_size=8,
                                              resize_mode="keep_ratio_largest"))
    assert alias == ours
    assert max(ours.width, ours.height) == min(64, max(width, height))  # the longest side


def test_reduced_jpeg_decode_matches_full_decode():
    data = image_bytes(800, 600, seed=4)
    reduced = process_image(data, ImageSettings(image_size=100))
    full = Image.open(io.BytesIO(data)).resize((100, 75), Image.BOX)
    stored = np.asarray(Image.open(io.BytesIO(reduced.jpeg)), np.float32)
    assert np.abs(stored - np.asarray(full, np.float32)).mean() < 6


def test_decode_setting_reaches_the_workers_and_redoes_shards_stored_before_it(tmp_path):
    """--decode is an image setting the shard manifests record: a shard stored before it existed
    (with the 1x reduced decode, sized from the decoded image) counts as changed."""
    settings = download_settings(CrawlConfig(workdir=tmp_path, decode="full"))
    assert settings.image.decode == "full"
    inputs = shard_inputs([], settings)
    older = json.loads(json.dumps(inputs))
    del older["image_settings"]["decode"]
    assert markers.changed_inputs(older, inputs) == ["image_settings"]
    with pytest.raises(ValueError, match="decode must be one of reduced, fast, full"):
        ImageSettings(decode="draft")


def test_exif_orientation_is_applied_to_jpeg():
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :100] = (255, 0, 0)  # left half red, right half black
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif, quality=95)
    image = process_image(buffer.getvalue(), ImageSettings(image_size=200, min_size=8))
    assert (image.original_width, image.original_height) == (100, 200)
    stored = np.asarray(Image.open(io.BytesIO(image.jpeg)))
    assert stored.shape[:2] == (200, 100)
    assert stored[:90, :, 0].mean() > 200 and stored[110:, :, 0].mean() < 40, "red on top"


def test_cmyk_jpeg_becomes_rgb_with_its_colours():
    cmyk = Image.new("CMYK", (60, 60), (0, 255, 255, 0))  # pure red in CMYK
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    stored = Image.open(io.BytesIO(process_image(buffer.getvalue(), ImageSettings()).jpeg))
    red, green, blue = np.asarray(stored).reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 50 and blue < 50


def test_magic_bytes_decide_the_format_not_the_name():
    assert sniff_format(image_bytes(40, 40, "WEBP")) == "webp"
    assert sniff_format(image_bytes(40, 40, "GIF")) == "gif"
    assert sniff_format(b"<html><body>hello</body></html>") is None
    with pytest.raises(ImageRejected) as rejected:
        process_image(b"<!doctype html>", ImageSettings())
    assert rejected.value.status == "not_image"


@pytest.mark.parametrize("data, status", [
    (decompression_bomb_png(), "decode_error"),
    (image_bytes(20, 20), "too_small"),
    (image_bytes(400, 100), "bad_aspect_ratio"),
    (image_bytes(200, 150)[:900], "decode_error"),
])
def test_rejected_images_get_their_status(data, status):
    with pytest.raises(ImageRejected) as rejected:
        process_image(data, ImageSettings(min_size=32, max_aspect_ratio=3.0))
    assert rejected.value.status == status


@pytest.mark.parametrize("values, expected", [
    (["noai"], True), (["noindex, NoImageAI"], True), (["witbuilder: noai"], True),
    (["otherbot: noai"], False), (["nofollow", "noarchive"], False), ([], False),
    (["*: noimageai"], True), (["noindex", "nofollow"], True), (["NoImageIndex"], True),
    (["otherbot: noindex"], False), (["otherbot: noimageindex, noai"], False),
    (["otherbot: noai", "witbuilder: noimageindex"], True),
])
def test_x_robots_tag_opt_outs_follow_img2dataset_defaults_scoped_to_our_agent(values, expected):
    assert opted_out(values, user_agent_token("witbuilder/0.1 (+https://x)")) is expected


def test_directive_list_is_chosen_by_the_user_and_empty_disables_the_check():
    assert header_directives(CrawlConfig().disallowed_header_directives) == HEADER_OPT_OUTS
    assert header_directives(["noai,NoIndex", " noai ", ""]) == ("noai", "noindex")
    assert header_directives([""]) == () and header_directives([]) == ()
    chosen = header_directives(["noindex"])
    assert opted_out(["noindex"], "witbuilder", chosen)
    assert not opted_out(["noai", "noimageai"], "witbuilder", chosen)
    assert not opted_out(["noai, noindex", "*: noimageai"], "witbuilder", ())


def test_trusted_origin_lets_one_private_server_through_and_no_other():
    trusting = AddressPolicy(False, ("127.0.0.1:8080",))
    trusting.check_url("http://127.0.0.1:8080/a.jpg")
    for url in ("http://127.0.0.1:8081/a.jpg", "http://169.254.169.254/", "http://[::1]:8080/",
                "http://10.1.2.3/x.jpg"):
        with pytest.raises(BlockedAddressError):
            trusting.check_url(url)
    AddressPolicy(allow_private=True).check_url("http://10.1.2.3/x.jpg")
