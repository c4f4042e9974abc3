"""Opt-outs re-checked after the crawl (`wit optout`, `wit shards --recheck-optout`): the image
hosts are asked again, and samples whose owners opted out since are removed from the training
shards (removal.py: only the shards that hold them are rewritten).

For every distinct image URL of the training shards, through the one guarded client (the address
guard on, `--allow-private` / `--trusted-origins` as the crawl had them):
- the host's robots.txt (net/robots.py, fetched once per host): a URL it now disallows for our
  user agent is removed (reason `robots`), at every redirect hop;
- a HEAD request (a GET whose body is never read when HEAD is refused with 405/501): an
  `X-Robots-Tag` with an opt-out of net/optout.py's table (`noai`, `noimageai`, ...) for everyone
  or for us removes it (reason `opted_out`).
An unreachable host, a robots.txt that cannot be read, an image that is gone (4xx, 5xx): not an
opt-out, the sample is kept and counted `unreachable`; a URL the address guard refuses is kept
and counted `blocked_address`. Requests are polite: `--recheck-per-host` in flight to one host,
its robots.txt Crawl-delay between two of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pyarrow as pa
from tqdm import tqdm

from wit_builder.core import store
from wit_builder.core.engine import stage_engine
from wit_builder.net.http import Client, FetchFailed
from wit_builder.net.optout import HEADER_OPT_OUTS, opted_out, user_agent_token
from wit_builder.net.robots import MAX_ROBOTS_BYTES, RobotsCache, origin_of
from wit_builder.shards import card, removal
from wit_builder.shards.config import OptoutConfig, RecheckOptions

log = logging.getLogger(__name__)

VERDICTS = ("kept", "robots", "opted_out", "unreachable", "blocked_address")
HEAD_REFUSED = frozenset({405, 501})


@dataclass
class Host:
    """One origin's politeness: requests wait for its lock to keep its Crawl-delay."""
    lock: asyncio.Lock
    last: float = 0.0


class Recheck:
    """The opt-out verdicts of image URLs, asked through one client (open it with `async with`)."""

    def __init__(self, options: RecheckOptions,
                 directives: tuple[str, ...] = HEADER_OPT_OUTS):
        self.options, self.directives = options, directives
        self.agent = user_agent_token(options.user_agent)
        self.client = Client(options.address_policy(), user_agent=options.user_agent,
                             timeout=options.recheck_timeout,
                             concurrency=options.recheck_concurrency,
                             per_host=options.recheck_per_host)
        self.robots = RobotsCache(self.robots_answer)
        self.hosts: dict[str, Host] = {}

    async def __aenter__(self) -> Recheck:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.__aexit__(*exc)

    async def robots_answer(self, url: str) -> tuple[int, bytes]:
        response = await self.client.get(url, max_bytes=MAX_ROBOTS_BYTES,
                                         read_body=lambda _, reply: reply.status == 200)
        return response.status, response.body

    @asynccontextmanager
    async def hop(self, url: str):
        """Around each request: robots.txt's verdict on `url`, then the host's Crawl-delay."""
        rules = await self.robots.get(url)
        if rules.available and not rules.allowed(url, self.options.user_agent):
            raise FetchFailed("robots", f"robots.txt disallows {url}")
        host = self.hosts.setdefault(origin_of(url), Host(asyncio.Lock()))
        async with host.lock:
            wait = host.last + rules.delay(self.options.user_agent) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            host.last = time.monotonic()
        yield

    async def verdict(self, url: str) -> str:
        """One of VERDICTS for the image at `url`."""
        try:
            response = await self.client.get(url, max_bytes=0, method="HEAD", hop=self.hop,
                                             read_body=lambda *_: False)
            if response.status in HEAD_REFUSED:
                response = await self.client.get(url, max_bytes=0, hop=self.hop,
                                                 read_body=lambda *_: False)
        except FetchFailed as failure:
            if failure.status in ("robots", "blocked_address"):
                return failure.status
            return "unreachable"
        if response.status != 200:
            return "unreachable"
        if opted_out(response.headers.getall("X-Robots-Tag", []), self.agent, self.directives):
            return "opted_out"
        return "kept"


async def recheck_urls(urls: list[str], options: RecheckOptions) -> dict[str, str]:
    """{url: verdict} of every URL, `--recheck-concurrency` at a time."""
    verdicts: dict[str, str] = {}
    slots = asyncio.Semaphore(options.recheck_concurrency)
    with tqdm(total=len(urls), desc="optout: recheck", unit="url", leave=False) as bar:
        async with Recheck(options) as recheck:

            async def one(url: str) -> None:
                async with slots:
                    verdicts[url] = await recheck.verdict(url)
                bar.update()

            await asyncio.gather(*(one(url) for url in urls))
    return verdicts


def optout_chooser(options: RecheckOptions, counts: Counter) -> removal.Chooser:
    """The samples whose image URL now opts out (`robots`, `opted_out`); every URL's verdict is
    counted in `counts`."""

    def choose(index: pa.Table) -> dict[str, str]:
        urls = sorted({url for url in index["url"].to_pylist() if url})
        log.info("optout: asking %d image hosts again about %d image URLs",
                 len({origin_of(url) for url in urls}), len(urls))
        verdicts = asyncio.run(recheck_urls(urls, options))
        counts.update(verdicts.values())
        if counts["blocked_address"]:
            log.warning("optout: %d image URLs refused by the address guard were kept unchecked; "
                        "pass --allow-private or --trusted-origins as the crawl did",
                        counts["blocked_address"])
        return {uid: verdicts[url] for uid, url in zip(index["uid"].to_pylist(),
                                                        index["url"].to_pylist())
                if verdicts.get(url) in ("robots", "opted_out")}

    return choose


def record_counts(config: OptoutConfig, counts: Counter) -> None:
    """The recheck's verdicts per image URL, in dataset.json (`optout_recheck`) and the card."""
    manifests = config.path("manifests")
    path = store.join(manifests, "dataset.json")
    if store.exists(path):
        summary = store.read_json(path)
        summary["optout_recheck"] = {verdict: counts.get(verdict, 0) for verdict in VERDICTS}
        store.write_json(path, summary)
        card.write_card(config.path("data/shards"), summary, removal.card_crawl_stats(manifests))
    log.info("optout: image URLs %s", ", ".join(f"{verdict}: {counts.get(verdict, 0)}"
                                                 for verdict in VERDICTS))


def recheck_and_remove(config: OptoutConfig, extra: list[removal.Chooser] = ()) -> Counter:
    """Re-check the opt-outs (after the `extra` choosers) and remove the opted-out samples."""
    counts: Counter = Counter()
    removed = removal.remove_samples(config, [*extra, optout_chooser(config, counts)], "optout")
    record_counts(config, counts)
    return removed


@stage_engine
def run(config: OptoutConfig) -> int:
    """`wit optout`: re-check the opt-outs of the training shards' images."""
    recheck_and_remove(config)
    return 0
