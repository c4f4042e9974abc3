"""Streaming (image, caption) batches from WebDataset shards, for one or many training processes.

Each data-loader process runs one chain of generators, webdataset-style:
shard urls -> tar samples -> shuffle buffer -> decode + random square crop -> batch + tokenize.
The chain is a pure function of (seed, epoch, rank, worker), so a resumed run can take it up
exactly where it stopped: every batch reports how many samples its worker has consumed and a
`StreamState` (the next shard and sample its reader takes, and the ids of the samples its shuffle
buffer holds); the checkpoint stores them, and on resume each worker reads back only the buffered
samples and the rest of its current shard, passing over the shards it finished without opening them.
"""

from __future__ import annotations

import contextlib
import glob
import io
import itertools
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import braceexpand
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from trainer.tokenizer import TextTokenizer, trim_padding
from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.net.guard import AddressPolicy
from wit_builder.net.http import FetchFailed, is_http_url, open_stream

logger = logging.getLogger(__name__)

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
# CLIP's normalisation statistics, applied on the training device (workers ship uint8 pixels).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def is_remote(url: str) -> bool:
    """A shard URL webdataset-style: a `pipe:` command or a URL (store.is_url), not a path."""
    return url.startswith("pipe:") or store.is_url(url)


def expand_shards(spec: str, workdir: str | Path = ".", split: str = "train") -> list[str]:
    """Shard URLs of a spec: `::`-joined parts, brace patterns, globs, folders of shards (their
    `{split}-*.tar`, as `wit shards` writes, else every `*.tar`); local paths must exist."""
    urls: list[str] = []
    for part in spec.split("::"):
        for item in braceexpand.braceexpand(part.strip()):
            if is_remote(item):
                urls.append(item)
                continue
            path = Path(workdir) / item
            if glob.has_magic(str(path)):
                urls.extend(sorted(glob.glob(str(path))))
            elif path.is_file():
                urls.append(str(path))
            elif path.is_dir():
                urls.extend(folder_shards(path, split))
    if not urls:
        raise WitError(f"train: no shard matches '{spec}'{relative_note(spec, workdir)}; build "
                       f"shards with `wit shards` or pass --train")
    return urls


def relative_note(spec: str, workdir: str | Path) -> str:
    """' (relative to workdir W)' for a spec of relative local paths; '' for absolute ones."""
    relative = any(not is_remote(part.strip()) and not Path(part.strip()).is_absolute()
                   for part in spec.split("::"))
    return f" (relative to workdir '{workdir}')" if relative else ""


def folder_shards(folder: Path, split: str = "train") -> list[str]:
    """The shards of a folder: those of `split` as `wit shards` names them (train-*.tar or
    val-*.tar) when it holds any, else every *.tar."""
    chosen = sorted(folder.glob(f"{split}-*.tar"))
    if chosen:
        skipped = len(list(folder.glob("*.tar"))) - len(chosen)
        if skipped:
            logger.info("%s: reading its %d %s-*.tar shards, not its %d other shards",
                        folder, len(chosen), split, skipped)
        return [str(path) for path in chosen]
    return [str(path) for path in sorted(folder.glob("*.tar"))]


@contextlib.contextmanager
def open_shard(url: str) -> Iterator[BinaryIO]:
    """A readable stream (entered with `with`): local path, file://, pipe:, http(s):// (the
    guarded client: public addresses only) or any fsspec URL."""
    if is_http_url(url):
        with open_http_shard(url) as stream:
            yield stream
    elif url.startswith("pipe:"):
        with wds.gopen(url, "rb") as stream:
            yield stream
    elif store.is_url(url) and not url.startswith("file://"):
        with store.open(url, "rb") as stream:
            yield stream
    else:
        with open(url.removeprefix("file://"), "rb") as stream:
            yield stream


@contextlib.contextmanager
def open_http_shard(url: str) -> Iterator[BinaryIO]:
    """An http(s) shard through net.http.open_stream with the default policy: training has no
    --allow-private, so a shard in private space is a WitError saying what to do; any other
    failure an OSError (the shard is logged and skipped, as an unreadable file is)."""
    try:
        with open_stream(url, AddressPolicy()) as stream:
            yield stream
    except FetchFailed as failure:
        if failure.status == "blocked_address":
            raise WitError(f"train: shard '{url}' is refused: {failure.error}; training reads "
                           f"http(s) shards from public addresses only: copy the shards to a "
                           f"local disk or serve them from a public address") from None
        raise OSError(f"{url}: {failure.status}: {failure.error}") from None


def shard_order(urls: list[str], seed: tuple, resampled: bool, part: int, parts: int
                ) -> Iterator[str]:
    """Endless shard URLs for one (rank, worker) of `parts`: drawn with replacement, or this
    part's slice of a shuffled list, reshuffled on every pass (the same order on every rank)."""
    if resampled or len(urls) < parts:
        if not resampled and part == 0:
            logger.warning("%d shards for %d data streams (ranks x workers): shards are drawn "
                           "with replacement", len(urls), parts)
        rng = random.Random(str((seed, part)))
        while True:
            yield rng.choice(urls)
    for passes in range(1 << 62):
        order = list(urls)
        random.Random(str((seed, passes))).shuffle(order)
        yield from order[part::parts]


def shard_samples(url: str) -> Iterator[dict[str, Any]]:
    """The samples (dicts of member bytes by extension) of one shard, in order; a shard that
    cannot be read is logged and ends there."""
    try:
        with open_shard(url) as stream:
            members = wds.tariterators.tar_file_expander(
                [{"url": url, "stream": stream}], handler=wds.handlers.warn_and_continue)
            yield from wds.tariterators.group_by_keys(members,
                                                      handler=wds.handlers.warn_and_continue)
    except OSError as error:
        logger.warning("shard %s cannot be read: %s", url, error)


def check_not_barren(barren: int, total_urls: int, url: str) -> None:
    """An endless stream of shards that give nothing would hang the loader: stop it."""
    if barren >= max(2 * total_urls, 3):
        raise WitError(f"train: {barren} shards in a row gave no sample, last '{url}'")


def tar_samples(urls: Iterator[str], total_urls: int) -> Iterator[dict[str, Any]]:
    """Samples of the shards in order; corrupt tars logged, skipped."""
    barren = 0  # shards in a row that gave nothing
    for url in urls:
        count = 0
        for sample in shard_samples(url):
            count += 1
            yield sample
        barren = 0 if count else barren + 1
        check_not_barren(barren, total_urls, url)


SampleId = tuple[int, int]  # (ordinal of the shard in its stream's shard order, sample offset)


@dataclass
class StreamState:
    """Where one data stream stands between two samples: the id of the next sample its reader
    takes, the ids of the samples its shuffle buffer holds (in buffer order), and the internal
    state of the shuffle's random generator (empty before the first pick is restored)."""

    shard: int = 0
    offset: int = 0
    buffer: list[SampleId] = field(default_factory=list)
    rng: list[int] = field(default_factory=list)

    def to_tensor(self) -> torch.Tensor:
        """(2 + buffered + ceil(rng / 2), 2) int64: the next sample's id; the buffer's and the
        generator's lengths; the buffer's ids; the generator's words, two a row."""
        words = self.rng + [0] * (len(self.rng) % 2)
        pairs = [tuple(words[i:i + 2]) for i in range(0, len(words), 2)]
        return torch.tensor([(self.shard, self.offset), (len(self.buffer), len(self.rng)),
                             *self.buffer, *pairs], dtype=torch.int64).reshape(-1, 2)

    @classmethod
    def from_tensor(cls, rows: torch.Tensor) -> StreamState:
        (shard, offset), (buffered, words), *rest = (tuple(row) for row in rows.tolist())
        rng = [word for pair in rest[buffered:] for word in pair][:words]
        return cls(shard, offset, [tuple(row) for row in rest[:buffered]], rng)


def buffered_samples(url: str, ordinal: int, offsets: set[int]) -> Iterator[dict[str, Any]]:
    """The samples of shard `url` at `offsets`, reading it no further than the last of them."""
    last, samples = max(offsets), shard_samples(url)
    try:
        for offset, sample in enumerate(samples):
            if offset in offsets:
                sample["__id__"] = (ordinal, offset)
                yield sample
                if offset == last:
                    return
    finally:
        samples.close()  # stop reading now, not when the generator is collected
    logger.warning("shard %s ends before sample %d, held by the resumed shuffle buffer", url, last)


def stream_samples(urls: Iterator[str], total_urls: int, start: StreamState
                   ) -> Iterator[tuple[dict[str, Any], SampleId | None]]:
    """(sample, id of the sample after it) of a stream's shards from `start` on, led by the
    samples of `start.buffer` (paired with None). Shards before `start.shard` are opened only
    when the buffer holds some of their samples, and read only as far as those."""
    wanted: dict[int, set[int]] = {}
    for shard, offset in start.buffer:
        wanted.setdefault(shard, set()).add(offset)
    barren = 0
    for ordinal, url in enumerate(urls):
        if ordinal < start.shard:
            if ordinal in wanted:
                yield from ((sample, None) for sample in
                            buffered_samples(url, ordinal, wanted[ordinal]))
            continue
        first = start.offset if ordinal == start.shard else 0
        previous = None  # held back one sample: the last of a shard is followed by the next shard
        for offset, sample in enumerate(shard_samples(url)):
            sample["__id__"] = (ordinal, offset)
            if offset < first:
                if offset in wanted.get(ordinal, ()):
                    yield sample, None
                continue
            if previous is not None:
                yield previous, (ordinal, offset)
            previous = sample
        if previous is not None:
            yield previous, (ordinal + 1, 0)
        barren = 0 if previous is not None else barren + 1
        check_not_barren(barren, total_urls, url)


class ResumableShuffle:
    """webdataset's shuffle buffer, pick for pick (fill to `initial`; then one sample in and one
    out, two in while below `bufsize`; `random.Random(seed).randint` picks a slot and the last
    sample takes its place), whose contents, reader position and generator state `state()`
    reports after any output, and which starts again from such a state."""

    def __init__(self, items: Iterator[tuple[dict[str, Any], SampleId | None]], bufsize: int,
                 initial: int, seed: str, start: StreamState):
        self.items, self.bufsize, self.initial = items, bufsize, min(initial, bufsize)
        self.start = start
        self.rng = random.Random(seed)
        if start.rng:
            self.rng.setstate((self.rng.getstate()[0], tuple(start.rng), None))
        self.buffer: list[dict[str, Any]] = []
        self.next_id: SampleId = (start.shard, start.offset)

    def state(self) -> StreamState:
        return StreamState(*self.next_id, [sample["__id__"] for sample in self.buffer],
                           list(self.rng.getstate()[1]))

    def restore_buffer(self) -> Iterator[tuple[dict[str, Any], SampleId]]:
        """Put the start's buffered samples back in their slots; returns the fresh items."""
        slots = {sample_id: slot for slot, sample_id in enumerate(self.start.buffer)}
        restored: list[dict[str, Any] | None] = [None] * len(slots)
        items = iter(self.items)
        for sample, next_id in items:
            if next_id is not None:  # the first fresh sample: the restored ones all came before
                items = itertools.chain([(sample, next_id)], items)
                break
            restored[slots[sample["__id__"]]] = sample
        if None in restored:
            logger.warning("resume: %d of the %d samples of the shuffle buffer could not be read "
                           "back; the data order differs from an uninterrupted run",
                           restored.count(None), len(restored))
        self.buffer = [sample for sample in restored if sample is not None]
        return items

    def take(self) -> dict[str, Any]:
        slot = self.rng.randint(0, len(self.buffer) - 1)
        sample, self.buffer[slot] = self.buffer[slot], self.buffer[-1]
        self.buffer.pop()
        return sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        items = self.restore_buffer()
        for sample, next_id in items:
            self.buffer.append(sample)
            self.next_id = next_id
            if len(self.buffer) < self.bufsize:
                extra = next(items, None)
                if extra is not None:
                    self.buffer.append(extra[0])
                    self.next_id = extra[1]
            if len(self.buffer) >= self.initial:
                yield self.take()
        while self.buffer:
            yield self.take()


def random_square_crop(image: Image.Image, size: int, min_scale: float, rng: random.Random
                       ) -> Image.Image:
    """A random square covering `min_scale`..1 of the largest square, resized to `size` (the
    paper's only augmentation)."""
    width, height = image.size
    side = min(width, height) * math.sqrt(rng.uniform(min_scale, 1.0))
    left = rng.uniform(0, width - side)
    top = rng.uniform(0, height - side)
    return image.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side))


def decode_sample(sample: dict[str, Any], size: int, min_scale: float, rng: random.Random
                  ) -> tuple[torch.Tensor, str]:
    """(uint8 image (3, size, size), caption); raises ValueError/OSError on a bad sample."""
    key = next((k for k in IMAGE_KEYS if k in sample), None)
    if key is None or "txt" not in sample:
        raise ValueError(f"sample {sample.get('__key__')} lacks an image or a .txt caption")
    image = Image.open(io.BytesIO(sample[key]))
    # JPEG can decode at 1/2, 1/4, 1/8 scale for free; keep enough pixels for the smallest crop.
    image.draft("RGB", (math.ceil(size / math.sqrt(min_scale)),) * 2)
    image = random_square_crop(image.convert("RGB"), size, min_scale, rng)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return pixels.view(size, size, 3).permute(2, 0, 1), sample["txt"].decode("utf-8").strip()


@dataclass
class ClipStream(IterableDataset):
    """The batches of one training process; each data-loader worker streams its own shards."""

    urls: list[str]
    tokenizer: TextTokenizer
    batch_size: int
    image_size: int
    crop_scale: float = 0.9
    shuffle: int = 1000
    resampled: bool = False
    seed: int = 0
    epoch: int = 0
    rank: int = 0
    world_size: int = 1
    max_batches: int = 1 << 62      # per worker: an upper bound, the training loop counts steps
    rotation: int = 0               # worker i plays role (i + rotation) % workers on resume
    skip: dict[int, int] = field(default_factory=dict)  # role -> samples consumed before resume
    states: dict[int, torch.Tensor] = field(default_factory=dict)  # role -> StreamState tensor

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]:
        info = get_worker_info()
        workers = info.num_workers if info else 1
        role = ((info.id if info else 0) + self.rotation) % workers
        stream_seed = (self.seed, self.epoch)
        part, parts = self.rank * workers + role, self.world_size * workers
        urls = shard_order(self.urls, stream_seed, self.resampled, part, parts)
        start, consumed = StreamState(), self.skip.get(role, 0)
        if role in self.states:
            start = StreamState.from_tensor(self.states[role])
        elif consumed:
            logger.warning("no stream state for data stream %d (an older checkpoint, or other "
                           "--workers): reading %d samples again to fast-forward", part, consumed)
        shuffle = ResumableShuffle(stream_samples(urls, len(self.urls), start), self.shuffle,
                                   self.shuffle // 2, str((stream_seed, part)), start)
        # A restored stream goes on at sample `consumed`; without a state it starts over and
        # passes over the `consumed` samples it gave before.
        first = consumed if role in self.states else 0
        batches = self.batches(shuffle, role, str((stream_seed, part)), first, consumed)
        for _ in range(self.max_batches):
            yield next(batches)

    def batches(self, shuffle: ResumableShuffle, role: int, seed: str, first: int, start: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]:
        """Decoded, cropped, tokenised batches, each with its progress: `role`, `consumed`
        (samples this stream has taken in the epoch), `skipped` (undecodable) and `state`
        (`StreamState.to_tensor()` after the batch's last sample)."""
        skipped, images, captions = 0, [], []
        for index, sample in enumerate(shuffle, start=first):
            if index < start:  # only when resuming without a stream state
                continue
            # A crop drawn per sample index: a resumed stream need not decode to stay in step.
            rng = random.Random(f"{seed}-{index}")
            try:
                image, caption = decode_sample(sample, self.image_size, self.crop_scale, rng)
            except (OSError, ValueError, SyntaxError, UnicodeDecodeError) as error:
                skipped += 1
                if skipped >= 1000 and skipped > 0.9 * (index + 1 - start):
                    raise WitError(f"train: {skipped} of {index + 1 - start} samples cannot "
                                   f"be decoded, last: {error}") from None
                logger.warning("skipped sample %s of %s: %s", sample.get("__key__"),
                               sample.get("__url__"), error)
                continue
            images.append(image)
            captions.append(caption)
            if len(images) == self.batch_size:
                tokens = trim_padding(self.tokenizer(captions), self.tokenizer.end_id)
                progress = {"role": role, "consumed": index + 1, "skipped": skipped,
                            "state": shuffle.state().to_tensor()}
                yield torch.stack(images), tokens, progress
                images, captions = [], []


def make_loader(stream: ClipStream, workers: int, pin_memory: bool = False) -> DataLoader:
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=4 if workers else None,
                      generator=torch.Generator().manual_seed(stream.seed))


def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> CLIP-normalised floats, on the images' device."""
    mean = torch.tensor(MEAN, device=images.device, dtype=dtype).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device, dtype=dtype).view(1, 3, 1, 1) * 255
    return (images.to(dtype) - mean) / std


def read_captions(urls: list[str], limit: int) -> Iterator[str]:
    """Up to `limit` captions from the shards in order (to train the tokenizer on)."""
    count = 0
    for sample in tar_samples(iter(urls), len(urls)):
        if "txt" in sample:
            yield sample["txt"].decode("utf-8", errors="replace")
            count += 1
            if count >= limit:
                return
