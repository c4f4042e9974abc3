"""Training throughput of witbuilder's trainer against open_clip, on the same shards, in one run.

1. Training step (model + loss + AdamW) on the same batches, same architecture: our CLIP vs
   open_clip's, each fed what its own data pipeline produces (ours trims caption padding to the
   longest caption of the batch). The captions are real: the image captions of English
   Wikipedia articles (`[[File:…|caption]]` of gensim 4.4.0's enwiki excerpt, fetched from PyPI
   into the real-material cache), ~8 words each, so the trimmed row shows what real caption
   lengths leave of the gain. Rounds interleave the contenders; the table shows the median and
   the spread (min to max) of 20 rounds.
2. Data loader alone: our pipeline vs a minimal webdataset decode loop (open_clip's recipe:
   decode("pilrgb") + torchvision RandomResizedCrop/ToTensor/Normalize + tokenizer, batched).
   They do not produce the same thing, and the rows say so: ours decodes JPEGs at reduced scale
   (Pillow's draft mode) and ships uint8 pixels, normalised later on the training device; the
   webdataset loop decodes in full and ships normalised float32. A third row adds our
   normalisation to float32 in the loop, the same output dtype as theirs.
3. End to end: `wit train` (our loop, loader and all) samples/s from its metrics.jsonl.
On CUDA (when a GPU is present) ViT-B/32 runs in bf16 and the data-wait share is reported.

    .venv/bin/python benchmarks/bench_train.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

GENSIM = "4.4.0"   # its test data holds a real English Wikipedia excerpt
ENWIKI = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

from common import print_table  # noqa: E402
from trainer.data import ClipStream, expand_shards, make_loader, normalize  # noqa: E402
from trainer.loss import ClipLoss  # noqa: E402
from trainer.model import CLIP, load_preset  # noqa: E402
from trainer.tokenizer import clip_tokenizer, trim_padding  # noqa: E402
from trainer.train import (autocast_context, parameter_groups, run,  # noqa: E402
                           training_step)
from support.realdata import Unavailable, fetch_sdist  # noqa: E402
from support.trainer_data import write_shape_shards  # noqa: E402
from wit_builder.cli import load_config  # noqa: E402


def open_clip_model(preset: str, vocab_size: int):
    """open_clip's CLIP with the architecture of our preset (random weights)."""
    import open_clip
    from open_clip.model import CLIP as OpenClip

    if preset == "vit-b-32":
        return open_clip.create_model("ViT-B-32", pretrained=None)
    config, _ = load_preset(preset)
    kwargs = config.image_kwargs
    vision = {"image_size": config.image_size, "layers": kwargs["depth"],
              "width": kwargs["embed_dim"], "patch_size": kwargs["patch_size"],
              "head_width": kwargs["embed_dim"] // kwargs["num_heads"]}
    text = {"context_length": config.context_length, "vocab_size": vocab_size,
            "width": config.text_width, "heads": config.text_heads, "layers": config.text_layers}
    return OpenClip(config.embed_dim, vision, text)


def our_model(preset: str, tokenizer) -> CLIP:
    config, _ = load_preset(preset)
    config.vocab_size, config.eot_token_id = tokenizer.vocab_size, tokenizer.end_id
    return CLIP(config)


def stepper(model, batches, device: str, precision: str):
    """A function running `training_step` over `batches` once and returning samples/s."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.2), lr=1e-4)
    loss_fn = ClipLoss()
    if not hasattr(model, "clamp_logit_scale"):  # open_clip's model: the same clamp, done
        model.clamp_logit_scale = lambda: model.logit_scale.data.clamp_(0, 4.6052)  # its way

    def steps(some_batches=batches) -> float:
        start = time.perf_counter()
        for images, tokens in some_batches:
            training_step(model, model, loss_fn, optimizer, images.to(device), tokens.to(device),
                          autocast_context(device, precision), grad_clip=1.0)
        if device == "cuda":
            torch.cuda.synchronize()
        return sum(len(i) for i, _ in some_batches) / (time.perf_counter() - start)

    steps(batches[:1])  # warm-up
    return steps


def wikipedia_captions() -> list[str]:
    """The image captions of a real English Wikipedia excerpt (the last field of every
    `[[File:…]]` / `[[Image:…]]` link), markup removed."""
    import bz2
    import html
    import re

    try:
        dump = fetch_sdist("gensim", GENSIM) / ENWIKI
    except Unavailable as error:
        sys.exit(f"bench_train: {error}; the captions come from gensim's enwiki excerpt")
    text = html.unescape(bz2.decompress(dump.read_bytes()).decode("utf-8"))
    text = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>|\{\{[^{}]*\}\}|<[^>]+>", "", text, flags=re.S)
    captions = []
    for link in re.findall(r"\[\[(?:File|Image):([^\[\]]*(?:\[\[[^\[\]]*\]\][^\[\]]*)*)\]\]", text):
        caption = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", link.split("|")[-1])
        caption = caption.replace("]]", "").replace("[[", "")
        if len(caption.split()) >= 2 and "=" not in caption:
            captions.append(" ".join(caption.split()))
    return captions


def real_caption_batches(batches: list, captions: list[str], tokenizer) -> list:
    """`batches` with their captions replaced by real ones, trimmed as ClipStream trims."""
    out, offset = [], 0
    for images, _ in batches:
        chosen = [captions[(offset + i) % len(captions)] for i in range(len(images))]
        offset += len(images)
        out.append((images, trim_padding(tokenizer(chosen), tokenizer.end_id)))
    return out


def interleaved_rates(steppers: list, rounds: int) -> list[tuple[float, float, float]]:
    """(median, min, max) samples/s of each stepper, run in turn round after round (the order
    rotating), so that the load of a shared machine falls on all of them alike."""
    rates: list[list[float]] = [[] for _ in steppers]
    for round_index in range(rounds):
        for offset in range(len(steppers)):
            index = (round_index + offset) % len(steppers)
            rates[index].append(steppers[index]())
    return [(statistics.median(r), min(r), max(r)) for r in rates]


def spread(rate: tuple[float, float, float]) -> str:
    return f"{rate[1]:,.1f} to {rate[2]:,.1f}"


def bench_steps(preset: str, urls: list[str], batch: int, steps: int, rounds: int,
                device: str, precision: str, captions: list[str]) -> list[list[object]]:
    tokenizer = clip_tokenizer()
    config, _ = load_preset(preset)
    stream = ClipStream(urls, tokenizer, batch, config.image_size, shuffle=64)
    ours = real_caption_batches([(images, tokens) for images, tokens, _ in
                                 (batch_ for _, batch_ in zip(range(steps), stream))],
                                captions, tokenizer)
    full = [(images, tokenizer_pad(tokens, config.context_length)) for images, tokens in ours]
    torch.manual_seed(0)
    theirs = stepper(open_clip_model(preset, tokenizer.vocab_size), full, device, precision)
    torch.manual_seed(0)
    ours_full = stepper(our_model(preset, tokenizer), full, device, precision)
    torch.manual_seed(0)
    ours_trimmed = stepper(our_model(preset, tokenizer), ours, device, precision)
    theirs_rate, full_rate, trimmed_rate = interleaved_rates([theirs, ours_full, ours_trimmed],
                                                             rounds)
    label = f"{preset}, batch {batch}, {device} {precision}"
    longest = statistics.mean(tokens.shape[1] for _, tokens in ours)
    return [[label, "open_clip model + ClipLoss, 77 tokens", theirs_rate[0], spread(theirs_rate),
             1.0],
            [label, "witbuilder, 77 tokens", full_rate[0], spread(full_rate),
             full_rate[0] / theirs_rate[0]],
            [label, f"witbuilder, padding trimmed (as trained: {longest:.0f} tokens a batch on "
                    f"Wikipedia captions)", trimmed_rate[0], spread(trimmed_rate),
             trimmed_rate[0] / theirs_rate[0]]]


def tokenizer_pad(tokens: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(tokens, (0, length - tokens.shape[1]))


def minimal_webdataset_loader(urls: list[str], batch: int, size: int, workers: int):
    """The usual webdataset recipe, as open_clip_train builds it."""
    import webdataset as wds
    from torchvision import transforms

    tokenizer = clip_tokenizer()
    preprocess = transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.9, 1.0),
                                     interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073),
                             (0.26862954, 0.26130258, 0.27577711))])
    dataset = (wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node,
                              workersplitter=wds.split_by_worker, empty_check=False)
               .repeat().shuffle(64).decode("pilrgb").to_tuple("jpg", "txt")
               .map_tuple(preprocess, lambda text: tokenizer(text)[0]).batched(batch))
    return wds.WebLoader(dataset, batch_size=None, num_workers=workers)


def loader_throughput(loader, batches: int) -> float:
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start = time.perf_counter()
    count = sum(len(next(iterator)[0]) for _ in range(batches))
    return count / (time.perf_counter() - start)


class Normalised:
    """Our loader's batches normalised to float32 in the loop: the webdataset loop's output."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        for images, tokens, *rest in self.loader:
            yield (normalize(images), tokens, *rest)


def bench_loader(urls: list[str], batch: int, size: int, workers: int, batches: int,
                 rounds: int) -> list[list[object]]:
    ours = make_loader(ClipStream(urls, clip_tokenizer(), batch, size, shuffle=64), workers)
    theirs = minimal_webdataset_loader(urls, batch, size, workers)
    contenders = [theirs, ours, Normalised(ours)]
    rates: list[list[float]] = [[] for _ in contenders]
    for round_index in range(rounds):  # rotate the order, so machine noise hits all alike
        for offset in range(len(contenders)):
            index = (round_index + offset) % len(contenders)
            rates[index].append(loader_throughput(contenders[index], batches))
    theirs_rate, ours_rate, same_rate = ((statistics.median(r), min(r), max(r)) for r in rates)
    label = f"{size} px crops, batch {batch}, {workers} workers"
    return [[label, "minimal webdataset decode loop (full decode, float32 normalised)",
             theirs_rate[0], spread(theirs_rate), 1.0],
            [label, "witbuilder ClipStream (reduced-scale decode, uint8: normalised later on "
                    "the device)", ours_rate[0], spread(ours_rate), ours_rate[0] / theirs_rate[0]],
            [label, "witbuilder ClipStream + float32 normalisation in the loop (same output "
                    "dtype; decode still reduced-scale)", same_rate[0], spread(same_rate),
             same_rate[0] / theirs_rate[0]]]


def bench_end_to_end(workdir: Path, preset: str, batch: int, steps: int, workers: int,
                     device: str) -> list[object]:
    config = load_config("train", None, {
        "workdir": str(workdir), "model": preset, "train": "shards/*.tar", "name": f"e2e-{preset}",
        "batch_size": batch, "steps": steps, "log_every": max(1, steps // 4), "workers": workers,
        "checkpoint_every": 10 ** 9, "tokenizer": "clip", "device": device})
    run(config)
    records = [json.loads(line) for line in
               (workdir / "runs" / f"e2e-{preset}" / "metrics.jsonl").read_text().splitlines()]
    later = records[1:] or records  # the first interval holds start-up
    return [f"{preset}, batch {batch}, {device}", "wit train (loader + loop)",
            statistics.mean(r["samples_per_s"] for r in later),
            statistics.mean(r["data_wait"] for r in later)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rounds = 2 if args.quick else 20
    captions = wikipedia_captions()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        write_shape_shards(workdir / "shards", shards=4, per_shard=128, size=256)
        urls = expand_shards("shards/*.tar", workdir)
        rows = bench_steps("tiny", urls, 64, 2 if args.quick else 3, rounds, "cpu", "fp32",
                           captions)
        rows += bench_steps("vit-b-32", urls, 8, 1, rounds, "cpu", "fp32", captions)
        if device == "cuda":
            rows += bench_steps("vit-b-32", urls, 256, 10, rounds, "cuda", "bf16", captions)
        print_table(f"Training step: samples/s, median and spread of {rounds} interleaved "
                    f"rounds (same batches, same architecture)",
                    ["model", "implementation", "samples/s", "spread", "ratio"], rows)
        loader_rounds = 2 if args.quick else 6
        print_table(f"Data loader alone: samples/s, median and spread of {loader_rounds} "
                    f"interleaved rounds",
                    ["setting", "pipeline", "samples/s", "spread", "ratio"],
                    bench_loader(urls, 64, 64, args.workers, 4 if args.quick else 16,
                                 loader_rounds)
                    + bench_loader(urls, 32, 224, args.workers, 2 if args.quick else 8,
                                   loader_rounds))
        end_to_end = [bench_end_to_end(workdir, "tiny", 64, 8 if args.quick else 24,
                                       args.workers, device)]
        if device == "cuda":
            end_to_end.append(bench_end_to_end(workdir, "vit-b-32", 256, 60, 8, device))
        print_table("End to end: `wit train`", ["model", "what", "samples/s",
                                                "data wait share"], end_to_end)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
