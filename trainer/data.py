"""Streaming (image, caption) batches from WebDataset shards, for one or many training processes.

Each data-loader process runs one chain of generators, webdataset-style:
shard urls -> tar samples -> shuffle buffer -> decode + random square crop -> batch + tokenize.
The chain is a pure function of (seed, epoch, rank, worker), so a resumed run can fast-forward it:
every batch reports how many samples its worker has consumed, the checkpoint stores those counts,
and on resume each worker skips that many samples before decoding anything.
"""

from __future__ import annotations

import glob
import io
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
from wit_builder.options import WitError

logger = logging.getLogger(__name__)

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
# CLIP's normalisation statistics, applied on the training device (workers ship uint8 pixels).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def is_remote(url: str) -> bool:
    return url.startswith("pipe:") or "://" in url


def expand_shards(spec: str, workdir: str | Path = ".") -> list[str]:
    """Shard URLs of a spec: `::`-joined parts, brace patterns, globs; local paths must exist."""
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
    if not urls:
        raise WitError(f"train: no shard matches '{spec}' (relative to workdir '{workdir}'); "
                       f"build shards with `wit shards` or pass --train")
    return urls


def open_shard(url: str) -> BinaryIO:
    """A readable stream: local path, file://, pipe:, http(s):// (curl) or any fsspec URL."""
    if url.startswith(("pipe:", "http://", "https://")):
        return wds.gopen(url, "rb")
    if "://" in url and not url.startswith("file://"):
        import fsspec

        return fsspec.open(url, "rb").open()
    return open(url.removeprefix("file://"), "rb")


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


def tar_samples(urls: Iterator[str], total_urls: int) -> Iterator[dict[str, Any]]:
    """Samples (dicts of member bytes by extension) of the shards; corrupt tars logged, skipped."""
    barren = 0  # shards in a row that gave nothing: an endless stream of them would hang
    for url in urls:
        count = 0
        try:
            with open_shard(url) as stream:
                members = wds.tariterators.tar_file_expander(
                    [{"url": url, "stream": stream}], handler=wds.handlers.warn_and_continue)
                for sample in wds.tariterators.group_by_keys(
                        members, handler=wds.handlers.warn_and_continue):
                    count += 1
                    yield sample
        except OSError as error:
            logger.warning("shard %s cannot be read: %s", url, error)
        barren = 0 if count else barren + 1
        if barren >= max(2 * total_urls, 3):
            raise WitError(f"train: {barren} shards in a row gave no sample, last '{url}'")


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
    skip: dict[int, int] = field(default_factory=dict)  # role -> samples to fast-forward

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        workers = info.num_workers if info else 1
        role = ((info.id if info else 0) + self.rotation) % workers
        stream_seed = (self.seed, self.epoch)
        part, parts = self.rank * workers + role, self.world_size * workers
        urls = shard_order(self.urls, stream_seed, self.resampled, part, parts)
        samples = wds.shuffle(self.shuffle, initial=self.shuffle // 2,
                              seed=str((stream_seed, part)))(tar_samples(urls, len(self.urls)))
        batches = self.batches(samples, role, str((stream_seed, part)))
        for _ in range(self.max_batches):
            yield next(batches)

    def batches(self, samples: Iterator[dict], role: int, seed: str
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Decoded, cropped, tokenised batches, each with [role, samples consumed, skipped]."""
        skipped, images, captions = 0, [], []
        start = self.skip.get(role, 0)
        for index, sample in enumerate(samples):
            if index < start:
                continue
            # A crop drawn per sample index: a fast-forward need not decode to stay in step.
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
                yield torch.stack(images), tokens, torch.tensor([role, index + 1, skipped])
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
