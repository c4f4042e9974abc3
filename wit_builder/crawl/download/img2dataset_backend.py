"""`--downloader img2dataset`: hand the selection to img2dataset, then rewrite its output into our
contract (keys, `.json` fields, manifests with our status names), so later stages cannot tell
which backend ran: each of its rows becomes a `writer.Outcome`, written by `writer.raw_sample`
as the native downloader's are.

img2dataset runs its own worker processes on this machine: with `--engine ray` it is refused (the
native downloader runs on Ray).

img2dataset resolves names and follows redirects itself, with urllib, in processes it spawns: each
of its workers is handed a downloader that first guards the process below urllib (netguard's
`GuardedWorker`), so every hop and DNS answer is checked as the native downloader checks them.
URLs whose host is a refused IP literal never reach img2dataset.

img2dataset's own X-Robots-Tag parser reads any 'name:' as a bot's scope for the rest of the
value, so 'max-image-preview:large, noimageai' would not opt out: its workers are handed our
parser (net.optout) in its place (`OptOutChecked`), so both downloaders give the same answers.

With --image-robots (the default) the selection is pre-filtered here: each image host's robots.txt
is read once (net.robots, through net.http's guarded client) and the URLs it disallows never reach
img2dataset (status `robots`, also when robots.txt cannot be read). img2dataset follows redirects itself: a
redirect's target is not checked against its own host's robots.txt (the native downloader checks
every hop).
"""

from __future__ import annotations

import importlib
import logging
import os
import asyncio
import re
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.core import atomic, store
from wit_builder.crawl.download import writer
from wit_builder.crawl.download.fetch import FetchSettings, open_session, robots_cache
from wit_builder.crawl.download.images import StoredImage
from wit_builder.crawl.download.plan import (DownloadSettings, DownloadShard, check_done,
                                             log_done_check, read_rows, shard_inputs,
                                             warn_unrecorded)
from wit_builder.crawl.download.stats import summary
from wit_builder.core.engine import current
from wit_builder.net.guard import AddressPolicy, BlockedAddressError, GuardedWorker
from wit_builder.net.http import FetchFailed
from wit_builder.net.optout import opted_out, user_agent_token
from wit_builder.net.robots import Rules, denial, origin_of
from wit_builder.core.options import WitError
from wit_builder.core.tarsamples import read_samples

if TYPE_CHECKING:
    from wit_builder.crawl.config import CrawlConfig

log = logging.getLogger(__name__)

# Our modes → img2dataset's: our keep_ratio bounds the longest side, their keep_ratio_largest.
RESIZE_MODES = {"keep_ratio": "keep_ratio_largest", "center_crop": "center_crop",
                "border": "border", "no": "no"}
BLOCKED_URL = "blocked:"  # a URL img2dataset cannot fetch, for rows our guard refuses
ERROR_STATUSES = (       # img2dataset's error messages → our statuses, first match wins
    ("non-public address", "blocked_address"),  # BlockedAddressError, raised in its workers
    ("x-robots-tag", "opted_out"),
    ("too small", "too_small"),
    ("aspect ratio", "bad_aspect_ratio"),
    ("area too large", "too_large"),
    ("infinite loop", "redirect_loop"),
    ("http error", "http_error"),
    ("timed out", "timeout"),
    ("decod", "decode_error"),
    ("cannot identify", "decode_error"),
)

MISSING = {"status": "failed_to_download", "error_message": "missing from img2dataset output"}
MISSING_FROM_TAR = {"status": "failed_to_download",
                    "error_message": "missing from img2dataset's tar (truncated or unsafe)"}


def check_engine(config: CrawlConfig) -> None:
    """img2dataset starts its own worker processes here: it cannot run on Ray; and it writes
    every image to its own output before we see it, so it cannot honour --block-hashes."""
    if config.engine != "local":
        raise WitError("--downloader img2dataset runs on this machine only: use --engine local, "
                       "or --downloader native on Ray")
    if config.block_hashes or config.block_urls:
        raise WitError("--block-hashes and --block-urls need --downloader native: img2dataset "
                       "writes every image to its own output before it can be checked, and "
                       "follows redirects where the lists cannot be applied")
    if config.blur_faces or config.nsfw_threshold > 0:
        raise WitError("--blur-faces and --nsfw-threshold need --downloader native: img2dataset "
                       "encodes and writes every image before it could be checked")


def guarded_input(selection: store.Location, target: Path, policy: AddressPolicy,
                  refused: dict[str, str] | None = None,
                  additional: list[str] | tuple[str, ...] = ()) -> set[str]:
    """Copy the selection for img2dataset with the URLs our guard refuses replaced (refused IP
    literals, and anything but http(s): urllib would read file: URLs), and those of the uids in
    `refused` (robots.txt); the uids the guard refuses."""
    table = store.read_parquet(selection, columns=["uid", "url", "text", *additional])
    urls, blocked = table.column("url").to_pylist(), set()
    for i, (uid, url) in enumerate(zip(table.column("uid").to_pylist(), urls)):
        try:
            policy.check_url(url)
        except (BlockedAddressError, ValueError):
            urls[i] = BLOCKED_URL
            blocked.add(uid)
        if refused and uid in refused:
            urls[i] = BLOCKED_URL
    table = table.set_column(1, "url", pa.array(urls, pa.string()))
    atomic.write_parquet(target, table)
    return blocked


ROBOTS_HOSTS_AT_ONCE = 32


def robots_refused(selection: store.Location, settings: FetchSettings) -> dict[str, str]:
    """uid → why (the manifest's error, status `robots`) for the selection's URLs that their
    host's robots.txt keeps out (net.robots; each host's robots.txt read once, through the guarded
    client). URLs the guard refuses are left to it."""
    table = store.read_parquet(selection, columns=["uid", "url"])
    rows = []
    for uid, url in zip(table.column("uid").to_pylist(), table.column("url").to_pylist()):
        try:
            settings.policy.check_url(url)
        except (BlockedAddressError, ValueError):
            continue
        rows.append((uid, url))
    origins = sorted({origin_of(url) for _, url in rows})

    async def read_all() -> dict[str, Rules]:
        found: dict[str, Rules] = {}
        slots = asyncio.Semaphore(ROBOTS_HOSTS_AT_ONCE)
        async with open_session(settings) as client:
            cache = robots_cache(client, settings)

            async def read(origin: str) -> None:
                async with slots:
                    try:
                        found[origin] = await cache.get(origin + "/")
                    except FetchFailed:  # blocked_address: the guard refuses it in img2dataset
                        pass
            await asyncio.gather(*(read(origin) for origin in origins))
        return found

    rules = asyncio.run(read_all()) if origins else {}
    refused = {}
    for uid, url in rows:
        host_rules = rules.get(origin_of(url))
        why = denial(host_rules, url, settings.user_agent) if host_rules else None
        if why is not None:
            refused[uid] = why
    if refused:
        log.info("download: robots.txt keeps %d of %d image(s) out", len(refused), len(rows))
    return refused


def their_opt_out_check(headers, user_agent_token: str, disallowed_header_directives) -> bool:
    """img2dataset's `is_disallowed(headers, token, directives)` answered by net.optout."""
    return opted_out(headers.get_all("X-Robots-Tag", []) or [], user_agent_token,
                     tuple(disallowed_header_directives or ()))


def use_our_opt_out_check() -> None:
    """Make img2dataset's downloader (in this process) read X-Robots-Tag with net.optout."""
    downloader = importlib.import_module("img2dataset.downloader")
    if not callable(getattr(downloader, "is_disallowed", None)):
        raise WitError("download: this img2dataset version checks X-Robots-Tag in a way we "
                       "cannot replace; use --downloader native")
    downloader.is_disallowed = their_opt_out_check


@dataclass(frozen=True)
class OptOutChecked:
    """`function`, run with img2dataset's X-Robots-Tag check replaced by ours first (picklable,
    for its worker processes)."""

    function: object

    def __call__(self, *args, **kwargs):
        use_our_opt_out_check()
        return self.function(*args, **kwargs)


@contextmanager
def guarded_workers(policy: AddressPolicy):
    """While open, img2dataset's multiprocessing distributor hands its worker processes a
    downloader wrapped in `GuardedWorker(policy)`. Fails closed: an img2dataset whose `download`
    no longer picks that distributor by name cannot be guarded, and is refused."""
    main = importlib.import_module("img2dataset.main")  # the package's `main` is a function
    original = getattr(main, "multiprocessing_distributor", None)
    if original is None or "multiprocessing_distributor" not in main.download.__code__.co_names:
        raise WitError("download: this img2dataset version cannot be guarded against private "
                       "addresses; use --downloader native, or --allow-private")

    def distributor(processes_count, downloader, *args, **kwargs):
        return original(processes_count, GuardedWorker(OptOutChecked(downloader), policy),
                        *args, **kwargs)

    main.multiprocessing_distributor = distributor
    try:
        yield
    finally:
        main.multiprocessing_distributor = original


def run_img2dataset(config: CrawlConfig, settings: DownloadSettings, input_path: Path,
                    output: Path) -> None:
    # img2dataset imports albumentations, which otherwise asks the network for a newer version
    # (offline, that costs seconds in every worker process).
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset import download

    resize_mode = settings.image.resize_mode
    with guarded_workers(settings.fetch.policy):
        download(url_list=str(input_path), input_format="parquet", url_col="url",
                 caption_col="text", output_format="webdataset",
                 save_additional_columns=["uid", *settings.additional.names],
                 output_folder=str(output), processes_count=current().worker_count,
                 thread_count=config.concurrency, image_size=config.image_size,
                 resize_mode=RESIZE_MODES[resize_mode],
                 resize_only_if_bigger=resize_mode == "keep_ratio",
                 encode_quality=config.quality, number_sample_per_shard=config.samples_per_shard,
                 min_image_size=config.min_size, max_aspect_ratio=config.max_aspect_ratio,
                 timeout=config.timeout, retries=config.retries, compute_hash="sha256",
                 extract_exif=False, enable_wandb=False, distributor="multiprocessing",
                 user_agent_token=user_agent_token(config.user_agent),
                 # An empty list turns img2dataset's check off, as it turns ours off.
                 disallowed_header_directives=list(settings.fetch.disallowed_directives),
                 incremental_mode="incremental")


def our_status(status: str, message: str | None) -> tuple[str, int | None]:
    """(status, HTTP status) of one img2dataset row."""
    if status == "success":
        return "ok", 200
    text = (message or "").lower()
    code = re.search(r"http error (\d{3})", text)
    for needle, ours in ERROR_STATUSES:
        if needle in text:
            return ours, int(code.group(1)) if code else None
    return ("decode_error" if status == "failed_to_resize" else "connection_error"), None


def their_samples(path: Path) -> dict[str, dict[str, bytes]]:
    """img2dataset's samples by key: {'jpg': ..., ...}; a truncated tar keeps the samples before
    the break (the rest are counted missing by `convert_shard`), unsafe members are skipped."""
    if not path.exists():
        return {}
    problems: Counter = Counter()
    with open(path, "rb") as stream:
        samples = dict(read_samples(stream, problems, str(path)))
    if problems:
        log.warning("download: img2dataset shard %s: %s", path, dict(problems))
    return samples


def their_outcome(their: dict, images: dict[str, dict[str, bytes]], blocked: bool,
                  refused: str | None = None) -> writer.Outcome:
    """One row of img2dataset's parquet (MISSING when absent) as our outcome: img2dataset does
    not report the body's size nor the time taken."""
    if their["status"] == "success" and "jpg" not in images.get(their["key"], {}):
        their = MISSING_FROM_TAR
    status, http_status = our_status(their["status"], their.get("error_message"))
    if blocked:
        status, http_status = "blocked_address", None
    elif refused is not None:  # robots.txt: the URL never reached img2dataset
        status, http_status = "robots", None
        their = {**their, "error_message": refused}
    if status != "ok":
        return writer.Outcome(status, http_status, their.get("error_message"),
                              sha256=their.get("sha256"))
    image = StoredImage(images[their["key"]]["jpg"], their["width"], their["height"],
                        their["original_width"], their["original_height"])
    return writer.Outcome(status, http_status, sha256=their["sha256"], image=image)


def convert_shard(shard: DownloadShard, output: Path, workdir: str, blocked: set[str],
                  inputs: dict | None = None, refused: dict[str, str] | None = None,
                  additional: pa.Schema | None = None) -> Counter:
    """Rewrite img2dataset's shard `shard.index` as our tar + manifest (in selection order), the
    manifest recording the shard's `inputs` as the native downloader's do."""
    name = f"{shard.index:05d}"
    theirs = {row["uid"]: row for row in pq.read_table(output / f"{name}.parquet").to_pylist()}
    images = their_samples(output / f"{name}.tar")
    manifest = []
    with writer.shard_tar(writer.tar_path(workdir, shard.index)) as tar:
        names = additional.names if additional else []
        for index, row in enumerate(read_rows(shard, names)):
            outcome = their_outcome(theirs.get(row["uid"], MISSING), images, row["uid"] in blocked,
                                    (refused or {}).get(row["uid"]))
            # the pool's columns from our selection, as the native downloader writes them (the
            # same values img2dataset was handed: its copies are not read back)
            sample = writer.raw_sample(row, shard.index, index, outcome, names)
            if sample.members is not None:
                tar.write_members(sample.members)
            manifest.append(sample.manifest_row)
    writer.write_manifest(writer.manifest_path(workdir, shard.index), manifest, inputs,
                          additional)
    return Counter(row["status"] for row in manifest)


def img2dataset_scratch(config: CrawlConfig) -> Path:
    """img2dataset's own input and output: beside the raw shards on local disk, in a local
    temporary folder when the workdir is an object store (it is read back by this process)."""
    if store.is_url(config.workdir):
        return Path(tempfile.mkdtemp(prefix="wit-img2dataset-"))
    return Path(config.path("data/.img2dataset"))


def download_with_img2dataset(config: CrawlConfig, selection: store.Location,
                              shards: list[DownloadShard], settings: DownloadSettings) -> dict:
    """Download with img2dataset into a scratch folder, then convert every shard not done yet
    (for its inputs now: rows, image settings, opt-out directives). Runs on this machine only
    (`check_engine`, before the stage's engine starts)."""
    started = time.monotonic()
    # Only the inputs are kept: a shard still to do reads its rows again when it is converted,
    # so memory holds one shard's rows, not the selection's.
    todo, statuses, unrecorded = [], Counter(), 0
    for shard in shards:
        inputs = shard_inputs(read_rows(shard, settings.additional.names), settings)
        check = check_done(shard, inputs, config.workdir)
        log_done_check(shard.index, check)
        unrecorded += check.unrecorded
        if check.statuses is not None:
            statuses.update(check.statuses)
        else:
            todo.append((shard, inputs))
    warn_unrecorded(unrecorded)
    if todo:
        scratch = img2dataset_scratch(config)
        try:
            refused = (robots_refused(selection, settings.fetch)
                       if settings.fetch.image_robots else {})
            blocked = guarded_input(selection, scratch / "input.parquet", settings.fetch.policy,
                                    refused, settings.additional.names)
            run_img2dataset(config, settings, scratch / "input.parquet", scratch / "output")
            for shard, inputs in todo:
                statuses.update(convert_shard(shard, scratch / "output", config.workdir, blocked,
                                              inputs, refused, settings.additional))
        finally:  # a failed run must not leave a copy of the selection and images behind
            shutil.rmtree(scratch, ignore_errors=True)
    stats = summary(statuses, len(shards), len(shards) - len(todo),
                    time.monotonic() - started, "img2dataset")
    log.info("download: img2dataset stored %d of %d", stats["stored"], stats["attempted"])
    return stats
