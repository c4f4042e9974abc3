"""A polite breadth-first web crawler on net.http's guarded client: robots.txt obeyed per host
(net.robots, RFC 9309), per-host concurrency and delay, a user agent that names the project,
redirects followed by hand (each hop checked against robots.txt and the address guard, off-site
targets refused), HTML only, size and time caps.

The crawler hands every page to a callback that parses it once and returns its links, so pages
never accumulate in memory. With a `parse` callback, parsing runs in worker threads (selectolax
releases the GIL while Lexbor parses), so fetches go on while a page is parsed; the callback's
result is then recorded on the event loop. A page that fails to parse or to record is counted
(`page_error`, `page_too_complex`) and the crawl goes on. Every `checkpoint_pages` pages it hands
a snapshot of its frontier to another callback, and a crawl started from such a snapshot goes on
where that one stood.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from wit_builder.crawl.blocklists import Blocklist
from wit_builder.crawl.sources.html import PageTooComplex, is_html_type
from wit_builder.net.urls import canonical_url
from wit_builder.net.guard import AddressPolicy
from wit_builder.net.http import Client, FetchFailed, Response, check_status
from wit_builder.net.robots import MAX_ROBOTS_BYTES, Rules, denying_all, rules_from_answer

log = logging.getLogger(__name__)

NOT_PAGES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".bmp", ".ico", ".pdf", ".zip",
             ".gz", ".mp4", ".mp3", ".css", ".js", ".json", ".xml", ".tar")


@dataclass(frozen=True)
class WebCrawlSettings:
    max_pages: int = 10_000
    max_depth: int = 5
    allowed_hosts: tuple[str, ...] = ()  # default: the seeds' hosts
    user_agent: str = "witbuilder/0.1"
    concurrency: int = 16
    per_host_concurrency: int = 2
    delay: float = 0.0  # seconds between two requests to one host (robots Crawl-delay may raise it)
    timeout: float = 20.0
    max_page_bytes: int = 5_000_000
    max_redirects: int = 5
    allow_private: bool = False
    trusted_origins: tuple[str, ...] = ()  # 'host:port' exempt from the address guard
    checkpoint_pages: int = 0  # pages between two frontier snapshots (0: none)
    # Pages parsed at once, off the event loop (with a `parse` callback). Lexbor's parse runs
    # without the GIL beside the loop, but the walk of the parsed page holds it, so more threads
    # make the loop wait longer (benchmarks/bench_live_parse.py); two keep pages moving while
    # one takes long to parse.
    parse_threads: int = 2
    blocklist: Blocklist = Blocklist()  # --block-urls: pages never requested, hops included


# At most this many seen URLs rewritten by a checkpoint per page crawled since the last one
# (~2 kB a page): checkpoints space out as the crawl grows, their cost stays linear.
SEEN_PER_CHECKPOINT_PAGE = 20


@dataclass
class Frontier:
    """Where a crawl stands: the URLs it has seen, those still to fetch (with their depth) and
    what it has counted; the pages in flight when it was taken count as still to fetch."""

    seen: list[str]
    pending: list[tuple[str, int]]
    pages_started: int
    stats: dict[str, int]

    def to_json(self) -> dict:
        return {"seen": self.seen, "pending": [list(item) for item in self.pending],
                "pages_started": self.pages_started, "stats": self.stats}

    @classmethod
    def from_json(cls, value: dict) -> Frontier:
        return cls(list(value["seen"]), [(url, int(depth)) for url, depth in value["pending"]],
                   int(value["pages_started"]), dict(value["stats"]))


@dataclass
class HostState:
    slots: asyncio.Semaphore
    next_request: float = 0.0
    robots: Rules | None = None
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def looks_like_page(url: str) -> bool:
    return not urlsplit(url).path.lower().endswith(NOT_PAGES)


class Crawler:
    """One crawl: the frontier, the hosts' states and the counts of what happened."""

    def __init__(self, settings: WebCrawlSettings,
                 handle_page: Callable[[str, object], Iterable[str]], stats: Counter,
                 checkpoint: Callable[[Frontier], None] | None = None,
                 parse: Callable[[str, bytes, bool], object] | None = None,
                 progress: Callable[[], None] | None = None):
        self.settings = settings
        self.handle_page = handle_page
        self.parse = parse
        self.parsers: ThreadPoolExecutor | None = None  # while the crawl runs, with `parse`
        self.progress = progress
        self.stats = stats
        self.checkpoint = checkpoint
        self.hosts: dict[str, HostState] = {}
        self.seen: set[str] = set()
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        # queued or in flight, in queue order: what a snapshot must fetch again
        self.unfinished: dict[str, int] = {}
        self.pages_started = 0
        self.pages_finished = 0
        self.pages_since_checkpoint = 0
        self.stopped = False  # a checkpoint failed: the crawl ends with its error
        self.allowed: set[str] = set(settings.allowed_hosts)
        self.policy = AddressPolicy(settings.allow_private, settings.trusted_origins)

    def snapshot(self) -> Frontier:
        """The frontier now. Taken between two awaits, so every finished page's links are in it
        and no page is half recorded."""
        return Frontier(sorted(self.seen), list(self.unfinished.items()), self.pages_finished,
                        dict(self.stats))

    def restore(self, frontier: Frontier) -> None:
        """Start from `frontier` instead of the seeds."""
        self.seen = set(frontier.seen)
        self.pages_started = self.pages_finished = frontier.pages_started
        self.stats.update(frontier.stats)
        for url, depth in frontier.pending:
            self.unfinished[url] = depth
            self.queue.put_nowait((url, depth))

    def host_state(self, url: str) -> HostState:
        origin = origin_of(url)
        if origin not in self.hosts:
            self.hosts[origin] = HostState(asyncio.Semaphore(self.settings.per_host_concurrency))
        return self.hosts[origin]

    def enqueue(self, url: str, depth: int) -> None:
        url = canonical_url(url)
        if url in self.seen or depth > self.settings.max_depth:
            return
        if host_of(url) not in self.allowed:
            self.stats["off_site_link"] += 1
            return
        if not looks_like_page(url):
            return
        self.seen.add(url)
        self.unfinished[url] = depth
        self.queue.put_nowait((url, depth))

    @asynccontextmanager
    async def host_slot(self, url: str):
        """Hold one of the host's connection slots, spaced by its delay."""
        state = self.host_state(url)
        async with state.slots:
            now = time.monotonic()
            start = max(now, state.next_request)
            state.next_request = start + max(self.settings.delay, self.robots_delay(state))
            if start > now:
                await asyncio.sleep(start - now)
            yield

    def robots_delay(self, state: HostState) -> float:
        if state.robots is None:
            return 0.0
        return state.robots.delay(self.settings.user_agent)

    async def robots_allow(self, client: Client, url: str) -> bool:
        state = self.host_state(url)
        async with state.robots_lock:
            if state.robots is None:
                state.robots = await self.fetch_robots(client, origin_of(url) + "/robots.txt")
        return state.robots.allowed(url, self.settings.user_agent)

    async def fetch_robots(self, client: Client, robots_url: str) -> Rules:
        """A host's rules (net.robots): its robots.txt; none (4xx) allows all; unreachable (5xx,
        timeout) denies all, as search engines do, so an outage is never read as permission."""
        try:
            answer = await self.get(client, robots_url, check_robots=False,
                                    max_bytes=MAX_ROBOTS_BYTES)
        except FetchFailed as failure:
            if failure.status == "blocked_address":
                raise  # counted as the page's own failure: the host is out of bounds
            self.stats["robots_unavailable"] += 1
            log.info("web: %s unavailable (%s): host skipped", robots_url, failure.status)
            return denying_all()
        rules = rules_from_answer(answer.status, answer.body, robots_url)
        if not rules.available:
            self.stats["robots_unavailable"] += 1
        return rules

    async def get(self, client: Client, url: str, check_robots: bool = True,
                  max_bytes: int | None = None) -> Response:
        """The final answer to `url` after redirects, each hop allowed by robots.txt (when
        `check_robots`) and made in its host's slot, each redirect kept on the allowed hosts;
        the body read only for a 200 HTML page (or robots.txt). FetchFailed with the status."""

        @asynccontextmanager
        async def hop(hop_url: str):
            if self.settings.blocklist.blocks_url(hop_url):
                raise FetchFailed("blocked_url", f"{hop_url} is on a --block-urls list")
            if check_robots and not await self.robots_allow(client, hop_url):
                raise FetchFailed("robots", f"robots.txt disallows {hop_url}")
            async with self.host_slot(hop_url):
                yield

        def follow(target: str) -> None:
            if check_robots and host_of(target) not in self.allowed:
                raise FetchFailed("off_site_redirect", f"redirect to {target}")

        def read_body(hop_url: str, response: aiohttp.ClientResponse) -> bool:
            wanted = is_html_type(response.headers.get("Content-Type", "")) \
                or hop_url.endswith("/robots.txt")
            return response.status == 200 and wanted

        return await client.get(url, max_bytes=max_bytes or self.settings.max_page_bytes,
                                max_redirects=self.settings.max_redirects, read_body=read_body,
                                hop=hop, follow=follow)

    async def visit(self, client: Client, url: str, depth: int) -> None:
        """Fetch one page, hand it over, and queue its links."""
        try:
            answer = await self.get(client, url)
            check_status(answer.status)
        except FetchFailed as failure:
            self.stats[failure.status] += 1
            return
        if self.stopped:  # finished while the crawl stops: neither counted nor handed over
            return
        if not is_html_type(answer.headers.get("Content-Type", "")):
            self.stats["not_html"] += 1
            return
        self.stats["pages"] += 1
        self.seen.add(canonical_url(answer.url))
        try:
            links = await self.handle(answer.url, answer.body, depth < self.settings.max_depth)
        except Exception as error:  # one page that cannot be parsed never stops the crawl
            reason = page_failure(error)
            self.stats[reason] += 1
            log.warning("web: %s: %s on '%s': %s", reason, type(error).__name__, answer.url,
                        error)
            return
        for link in links:
            self.enqueue(link, depth + 1)

    async def handle(self, url: str, body: bytes, with_links: bool) -> Iterable[str]:
        """The page's links, once `parse` (in a worker thread) and `handle_page` (here, on the
        loop: records and the frontier change together, so a snapshot never holds half a
        page) are done with it."""
        if self.parsers is None:
            return self.handle_page(url, body)
        parsed = await asyncio.get_running_loop().run_in_executor(
            self.parsers, self.parse, url, body, with_links)
        if self.stopped:  # parsed while the crawl stops: not recorded
            return ()
        return self.handle_page(url, parsed)

    async def worker(self, client: Client) -> None:
        while True:
            url, depth = await self.queue.get()
            visited = False
            try:
                if self.pages_started < self.settings.max_pages:
                    self.pages_started += 1
                    visited = True
                    await self.visit(client, url, depth)
                else:
                    self.stats["max_pages_reached"] += 1
            except Exception:  # one bad page must never stop the crawl
                log.exception("web: unexpected error on %s", url)
                self.stats["crawler_error"] += 1
            finally:
                self.unfinished.pop(url, None)
                self.pages_finished += visited
                self.queue.task_done()
            if visited:
                if self.progress is not None:
                    self.progress()
                self.page_finished()

    def page_finished(self) -> None:
        """Hand a snapshot to the checkpoint callback every `checkpoint_pages` pages, and never
        more often than every `len(seen) / SEEN_PER_CHECKPOINT_PAGE` pages: a snapshot holds every
        URL seen, so a large crawl would otherwise spend its time rewriting them."""
        self.pages_since_checkpoint += 1
        every = self.settings.checkpoint_pages
        if self.checkpoint is None or not every:
            return
        if self.pages_since_checkpoint >= max(every, len(self.seen) // SEEN_PER_CHECKPOINT_PAGE):
            self.pages_since_checkpoint = 0
            try:
                self.checkpoint(self.snapshot())
            except BaseException:
                self.stopped = True
                raise

    async def run(self, seeds: list[str], frontier: Frontier | None = None) -> Frontier:
        """Crawl from `seeds`, or from `frontier` when given (the seeds then only name the
        allowed hosts), and return the final frontier (nothing pending); a failing checkpoint
        callback stops the crawl with its error."""
        self.allowed = self.allowed or {host_of(seed) for seed in seeds}
        if frontier is not None:
            self.restore(frontier)
        else:
            for seed in seeds:
                self.enqueue(seed, 0)
        if self.parse is not None:
            self.parsers = ThreadPoolExecutor(max(1, self.settings.parse_threads),
                                              thread_name_prefix="wit-parse")
        try:
            await self.crawl(seeds)
        finally:
            if self.parsers is not None:
                # a parse still running (a crawl stopped by its checkpoint) is not waited for
                self.parsers.shutdown(wait=False, cancel_futures=True)
                self.parsers = None
        return self.snapshot()

    async def crawl(self, seeds: list[str]) -> None:
        async with Client(self.policy, user_agent=self.settings.user_agent,
                          timeout=self.settings.timeout,
                          concurrency=self.settings.concurrency) as client:
            workers = [asyncio.create_task(self.worker(client))
                       for _ in range(self.settings.concurrency)]
            drained = asyncio.create_task(self.queue.join())
            try:
                # a worker only ends by raising (its checkpoint failed): waiting on the queue
                # alone would then never end
                await asyncio.wait([drained, *workers], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in [drained, *workers]:
                    task.cancel()
                results = await asyncio.gather(drained, *workers, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    raise result


def page_failure(error: Exception) -> str:
    """The reason a page that raised is counted under: over its parse budget, or an error."""
    return "page_too_complex" if isinstance(error, PageTooComplex) else "page_error"


def crawl_web(seeds: list[str], settings: WebCrawlSettings,
              handle_page: Callable[[str, object], Iterable[str]], stats: Counter,
              checkpoint: Callable[[Frontier], None] | None = None,
              frontier: Frontier | None = None,
              parse: Callable[[str, bytes, bool], object] | None = None,
              progress: Callable[[], None] | None = None) -> Frontier:
    """Crawl from `seeds` (or on from `frontier`). Without `parse`, `handle_page(url, body)` gets
    every HTML page and returns its links; with it, `parse(url, body, with_links)` runs in a
    worker thread (`with_links` False at the last depth) and `handle_page(url, parsed)` gets its
    result. `checkpoint(frontier)` gets a snapshot every `settings.checkpoint_pages` pages,
    `progress()` a call per page visited. Returns the final frontier."""
    crawler = Crawler(settings, handle_page, stats, checkpoint, parse, progress)
    return asyncio.run(crawler.run(seeds, frontier))
