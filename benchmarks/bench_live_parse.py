"""The live crawler while it parses heavy pages: pages parsed in its worker threads (what `wit
crawl --source web:` runs: crawl_web with a `parse` callback) against the same pages parsed on
its event loop (the crawler before: the callback parsed in place and every fetch waited).

    .venv/bin/python benchmarks/bench_live_parse.py [--pages 300] [--heavy 12] [--rounds 3]
        [--parse-threads 1,2,4]

A site served from its own process on 127.0.0.1 holds `--pages` ordinary pages (a few images and
links each) and `--heavy` large ones (under the parse budget: ~2 MB, 20,000 images each, ~0.1-0.3 s
to parse), all linked from the home page. The server logs when each request arrives; the table
gives the crawl's wall time and the longest time no request arrived while the crawl ran (a stalled
event loop sends no request). Each thread count and the event loop run in turn, `--rounds` times
each; medians.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from wit_builder.crawl.run import parse_web_page  # noqa: E402
from wit_builder.crawl.sources.web import WebCrawlSettings, crawl_web  # noqa: E402


def site_pages(pages: int, heavy: int) -> dict[str, bytes]:
    every = max(1, pages // (heavy + 1))  # the heavy pages spread among the others
    links = [f"<a href=/p{i}.html>{i}</a>" for i in range(pages)]
    for i in reversed(range(heavy)):
        links.insert((i + 1) * every, f"<a href=/h{i}.html>heavy {i}</a>")
    site = {"/": "".join(links).encode()}
    for i in range(pages):
        site[f"/p{i}.html"] = (f"<p>page {i}</p>" + "".join(
            f"<img src=/img/{i}-{k}.jpg alt='picture {k} of page {i}'>" for k in range(5))
            + f"<a href=/p{(i + 1) % pages}.html>next</a>").encode()
    for i in range(heavy):
        site[f"/h{i}.html"] = "".join(
            f"<div class=c{k % 7}><img src=/big/{i}-{k}.jpg alt='a large picture number {k}' "
            f"width=640 height=480></div>" for k in range(20_000)).encode()
    return site


def serve(pages: int, heavy: int, ready, stop, log) -> None:
    """The site, in its own process: each request's arrival time goes to `log`."""
    import asyncio

    from aiohttp import web

    site = site_pages(pages, heavy)

    async def handle(request: web.Request) -> web.Response:
        log.put(time.monotonic())
        if request.path in site:
            return web.Response(body=site[request.path], content_type="text/html")
        return web.Response(status=404)

    async def main() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        ready.put(tcp._server.sockets[0].getsockname()[1])
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


def crawl_once(url: str, parse_threads: int) -> tuple[float, int]:
    """One crawl of the site: parsed in `parse_threads` threads, or on the event loop (0)."""
    settings = WebCrawlSettings(user_agent="witbuilder-bench/1", allow_private=True,
                                parse_threads=max(parse_threads, 1), max_page_bytes=10_000_000,
                                max_depth=2, concurrency=16, per_host_concurrency=16, timeout=60)
    stats: Counter = Counter()
    pairs = 0

    def keep(page_url: str, parsed) -> list[str]:
        nonlocal pairs
        images, links = parsed
        pairs += len(images.pairs)
        return links

    def in_place(page_url: str, body: bytes) -> list[str]:  # the parse on the event loop
        return keep(page_url, parse_web_page(page_url, body, True))

    started = time.monotonic()
    if parse_threads:
        crawl_web([url], settings, keep, stats, parse=parse_web_page)
    else:
        crawl_web([url], settings, in_place, stats)
    return time.monotonic() - started, pairs


def longest_gap(times: list[float]) -> float:
    times = sorted(times)
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--heavy", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parse-threads", default="1,2,4",
                        help="thread counts compared with the event loop (default %(default)s)")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ready, log, stop = context.Queue(), context.Queue(), context.Event()
    server = context.Process(target=serve, args=(args.pages, args.heavy, ready, stop, log))
    server.start()
    url = f"http://127.0.0.1:{ready.get(timeout=60)}/"
    counts = [int(count) for count in args.parse_threads.split(",")] + [0]
    results: dict[int, list[tuple[float, float, int]]] = {count: [] for count in counts}
    try:
        for _ in range(args.rounds):
            for count in counts:
                wall, pairs = crawl_once(url, count)
                arrivals = []
                while True:
                    try:
                        arrivals.append(log.get(timeout=1.0))
                    except queue.Empty:
                        break
                results[count].append((wall, longest_gap(arrivals), pairs))
    finally:
        stop.set()
        server.join(10)
    rows = []
    for count, runs in results.items():
        name = f"in {count} thread{'s' * (count > 1)}" if count else "on the event loop (before)"
        if count == WebCrawlSettings.parse_threads:
            name += " (wit crawl)"
        rows.append((name, statistics.median(r[0] for r in runs),
                     statistics.median(r[1] for r in runs) * 1000, runs[0][2]))
    print_table(f"Live crawl of {args.pages + args.heavy + 1} pages, {args.heavy} of them heavy "
                f"(medians of {args.rounds} rounds)",
                ["parse", "wall s", "longest time without a request, ms", "pairs"], rows)


if __name__ == "__main__":
    main()
