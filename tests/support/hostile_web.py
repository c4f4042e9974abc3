"""Test helpers for the downloader: images made with Pillow, a selection parquet, and real aiohttp
servers on 127.0.0.1 (a hostile one, with every way an image URL can go wrong)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
from aiohttp import web
from PIL import Image

from support.servers import Server  # noqa: F401  (re-exported for the download tests)
from wit_builder.core import schemas


def image_bytes(width: int, height: int, fmt: str = "JPEG", mode: str = "RGB", seed: int = 0,
                **save: object) -> bytes:
    """A noisy gradient image (so JPEG sizes are realistic) encoded in `fmt`."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    base = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header claiming side×side pixels, in a few hundred bytes."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side // 8 + 1) * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows)
            + png_chunk(b"IEND", b""))


def sixteen_bit_png(width: int = 80, height: int = 60, value: int = 0x8000) -> bytes:
    image = Image.fromarray(np.full((height, width), value, dtype=np.uint16))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def alpha_png(width: int = 80, height: int = 60) -> bytes:
    """Left half opaque red, right half fully transparent."""
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def animated_gif(width: int = 64, height: int = 48) -> bytes:
    frames = [Image.new("P", (width, height), color) for color in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def selection_table(urls: list[str], texts: list[str] | None = None) -> pa.Table:
    """A selection (schemas.SELECTION) with one row per URL."""
    texts = texts or [f"a picture number {i}" for i in range(len(urls))]
    rows = [{"uid": hashlib.sha1(f"{url}\t{text}".encode()).hexdigest(), "url": url,
             "text": text, "page_url": "http://pages.example/", "source": "web", "lang": "en",
             "lang_prob": 0.99, "query_ids": [i % 7, 11], "selected_by": [i % 7]}
            for i, (url, text) in enumerate(zip(urls, texts))]
    return pa.Table.from_pylist(rows, schema=schemas.SELECTION)


class StaticImages:
    """Serves `/img/N.jpg` from a list of bodies (N modulo the list), counting requests; no
    robots.txt (404: every image allowed)."""

    def __init__(self, bodies: list[bytes], delay: float = 0.0):
        self.bodies, self.delay, self.requests = bodies, delay, Counter()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            raise web.HTTPNotFound()
        number = int(request.path.rsplit("/", 1)[-1].split(".")[0])
        self.requests[number] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(body=self.bodies[number % len(self.bodies)],
                            content_type="image/jpeg")


GOOD = image_bytes(200, 150, seed=1)


class HostileWeb:
    """Every way an image URL goes wrong; `EXPECTED` maps each path to the status it must get."""

    EXPECTED = {
        "/good.jpg": "ok",
        "/drip.jpg": "timeout",
        "/endless.jpg": "too_large",
        "/huge.jpg": "too_large",
        "/bomb.png": "decode_error",
        "/truncated.jpg": "decode_error",
        "/html-as-jpeg.jpg": "not_image",
        "/jpeg-as-html.html": "ok",
        "/loop-a": "redirect_loop",
        "/to-metadata": "blocked_address",
        "/to-localhost": "blocked_address",
        "/to-loopback": "blocked_address",
        "/to-loopback-other-port": "blocked_address",
        "/missing.jpg": "http_error",
        "/flaky.jpg": "ok",
        "/reset.jpg": "connection_error",
        "/gzip.png": "ok",
        "/noai.jpg": "opted_out",
        "/scoped-noimageai.jpg": "opted_out",
        "/other-bot-noai.jpg": "ok",
        "/cmyk.jpg": "ok",
        "/alpha.png": "ok",
        "/sixteen-bit.png": "ok",
        "/animated.gif": "ok",
        "/image.webp": "ok",
        "/one-pixel.png": "too_small",
    }

    def __init__(self) -> None:
        self.requests: Counter = Counter()
        self.port = 0
        self.bodies = {
            "/good.jpg": GOOD,
            "/truncated.jpg": GOOD[: len(GOOD) // 2],
            "/bomb.png": decompression_bomb_png(),
            "/cmyk.jpg": image_bytes(120, 90, mode="CMYK", seed=2),
            "/alpha.png": alpha_png(),
            "/sixteen-bit.png": sixteen_bit_png(),
            "/animated.gif": animated_gif(),
            "/image.webp": image_bytes(100, 80, "WEBP", seed=3),
            "/one-pixel.png": image_bytes(1, 1, "PNG"),
        }

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests[path] += 1
        if path in self.bodies:
            return web.Response(body=self.bodies[path], content_type="image/jpeg")
        handler = getattr(self, path.strip("/").split(".")[0].replace("-", "_"), None)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    async def stream(self, request: web.Request, chunk: bytes, pause: float,
                     length: int | None = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        while True:  # until the client gives up (the write then fails)
            await response.write(chunk)
            await asyncio.sleep(pause)

    async def drip(self, request):
        return await self.stream(request, b"\xff", 1.0)

    async def endless(self, request):
        return await self.stream(request, b"\0" * 65536, 0)

    async def huge(self, request):
        return await self.stream(request, b"\0" * 65536, 0, length=50_000_000)

    async def html_as_jpeg(self, request):
        return web.Response(text="<html><body>not an image</body></html>",
                            content_type="image/jpeg")

    async def jpeg_as_html(self, request):
        return web.Response(body=GOOD, content_type="text/html")

    async def loop_a(self, request):
        raise web.HTTPFound("/loop-b")

    async def loop_b(self, request):
        raise web.HTTPFound("/loop-a")

    async def to_metadata(self, request):
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def to_localhost(self, request):
        raise web.HTTPFound(f"http://localhost:{self.port}/good.jpg")

    async def to_loopback(self, request):
        raise web.HTTPFound(f"http://127.0.0.2:{self.port}/good.jpg")

    async def to_loopback_other_port(self, request):
        raise web.HTTPFound("http://127.0.0.1:1/good.jpg")

    async def flaky(self, request):
        if self.requests[request.path] == 1:
            raise web.HTTPInternalServerError()
        return web.Response(body=GOOD, content_type="image/jpeg")

    async def reset(self, request):
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = len(GOOD)
        await response.prepare(request)
        await response.write(GOOD[:500])
        request.transport.abort()
        return response

    async def gzip(self, request):
        return web.Response(body=gzip.compress(self.bodies["/alpha.png"]),
                            headers={"Content-Type": "image/png", "Content-Encoding": "gzip"})

    async def noai(self, request):
        return web.Response(body=GOOD, content_type="image/jpeg",
                            headers={"X-Robots-Tag": "noai"})

    async def scoped_noimageai(self, request):
        return web.Response(body=GOOD, content_type="image/jpeg",
                            headers={"X-Robots-Tag": "witbuilder: noindex, noimageai"})

    async def other_bot_noai(self, request):
        return web.Response(body=GOOD, content_type="image/jpeg",
                            headers={"X-Robots-Tag": "otherbot: noai"})


def write_selection(path: Path, urls: list[str]) -> Path:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(selection_table(urls), path)
    return path


def download_rows(workdir: Path, urls: list[str], origin: str, **options) -> list[dict]:
    """The manifest rows of the native download of `urls` from the loopback server at `origin`
    (trusted), with small shards and no retries; `options` override the crawl settings."""
    return download_summary(workdir, urls, origin, **options)[1]


def download_summary(workdir: Path, urls: list[str], origin: str, **options
                     ) -> tuple[dict, list[dict]]:
    """`download_rows`, with the summary the download returned first."""
    import pyarrow.parquet as pq

    from wit_builder.cli import load_config
    from wit_builder.crawl.download import download_selection

    selection = write_selection(workdir / "manifests" / "selection.parquet", urls)
    config = load_config("crawl", None, {
        "workdir": str(workdir), "workers": 1, "samples_per_shard": 10, "concurrency": 4,
        "image_size": 96, "min_size": 20, "timeout": 5.0, "retries": 0,
        "trusted_origins": [origin], **options})
    stats = download_selection(config, selection)
    manifests = sorted((workdir / "manifests" / "crawl").glob("*.parquet"))
    return stats, [row for path in manifests for row in pq.read_table(path).to_pylist()]

