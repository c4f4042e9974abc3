"""Raw crawl outputs in the contract's format (DESIGN.md) for the `wit shards` tests and benchmark.

Images are Pillow renders of random shapes; the raw shards are written by the crawl's own writer
(webdataset.TarWriter) with one manifest each, plus the selection, balance, queries and crawl stats
files the report reads. Exact copies (the same original bytes under another URL) and near copies
(the same picture resized and re-encoded) are placed after their originals.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from wit_builder.core import atomic, schemas
from wit_builder.crawl.download import writer

WORDS = ("red", "blue", "circle", "square", "dog", "cat", "house", "tree", "river", "car",
         "bridge", "mountain", "flower", "bird", "boat", "city", "night", "old", "small", "big")


@dataclass
class RawDataset:
    workdir: Path
    ok_uids: list[str] = field(default_factory=list)           # every stored sample, in order
    exact_copies: dict[str, str] = field(default_factory=dict)  # copy uid -> original uid
    near_copies: dict[str, str] = field(default_factory=dict)
    image_bytes: int = 0


def render_picture(rng: random.Random, side: int, noise: bool) -> Image.Image:
    """A random composition of shapes (distinct pictures differ in their low frequencies)."""
    image = Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 6)):
        x0, y0 = rng.randrange(side), rng.randrange(side)
        x1, y1 = x0 + rng.randint(side // 6, side // 2), y0 + rng.randint(side // 6, side // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice((draw.ellipse, draw.rectangle))
        shape((x0, y0, x1, y1), fill=colour)
    if noise:  # texture that inflates the JPEG (memory tests) without changing the picture
        grain = np.random.default_rng(rng.randrange(2**32)).integers(-40, 40, (side, side, 3))
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int64) + grain, 0, 255)
                                .astype(np.uint8))
    return image


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def caption(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))


def plan_samples(rng: random.Random, count: int, exact: int, near: int, side: int,
                 noise: bool) -> list[dict]:
    """`count` samples in crawl order: originals, with copies inserted after their originals."""
    plans = [{"picture": render_picture(rng, side, noise), "copy_of": None, "kind": None}
             for _ in range(count - exact - near)]
    for kind in ["exact"] * exact + ["near"] * near:
        source = rng.choice([p for p in plans[: len(plans) // 2] if p["kind"] is None])
        position = next(i for i, plan in enumerate(plans) if plan is source)
        plans.insert(rng.randint(position + 1, len(plans)),
                     {"picture": source["picture"], "copy_of": id(source), "kind": kind})
    return plans


def original_bytes(plan: dict) -> bytes:
    """What the downloader fetched: near copies are resized and re-encoded at lower quality."""
    picture = plan["picture"]
    if plan["kind"] == "near":
        side = int(picture.width * 0.8)
        return encode_jpeg(picture.resize((side, side), Image.Resampling.BILINEAR), quality=55)
    return encode_jpeg(picture, quality=95)


def build_raw_dataset(workdir: Path, shards: int = 3, per_shard: int = 20, exact: int = 3,
                      near: int = 3, failed_per_shard: int = 2, side: int = 64,
                      noise: bool = False, seed: int = 0,
                      image_base: str = "http://images.test") -> RawDataset:
    """Raw shards 00000.tar ... with manifests, selection, balance, queries and crawl stats
    (image URLs `image_base`/SHARD/INDEX.jpg)."""
    rng = random.Random(seed)
    dataset = RawDataset(Path(workdir))
    plans = plan_samples(rng, shards * per_shard, exact, near, side, noise)
    uid_of: dict[int, str] = {}
    selection = []
    for shard in range(shards):
        rows = []
        with writer.shard_tar(writer.tar_path(workdir, shard)) as tar:
            for index, plan in enumerate(plans[shard * per_shard:(shard + 1) * per_shard]):
                key = writer.shard_key(shard, index)
                row, sample, meta = sample_for(plan, shard, index, key, rng, image_base)
                uid_of[id(plan)] = meta["uid"]
                tar.write(sample)
                rows.append(row)
                selection.append(selection_row(meta, sample["txt"].decode("utf-8")))
                dataset.ok_uids.append(meta["uid"])
                dataset.image_bytes += len(sample["jpg"])
                if plan["kind"] == "exact":
                    dataset.exact_copies[meta["uid"]] = uid_of[plan["copy_of"]]
                elif plan["kind"] == "near":
                    dataset.near_copies[meta["uid"]] = uid_of[plan["copy_of"]]
        rows += [failed_row(shard, n, rng) for n in range(failed_per_shard)]
        writer.write_manifest(writer.manifest_path(workdir, shard), rows)
    write_crawl_side_files(Path(workdir), selection)
    return dataset


def sample_for(plan: dict, shard: int, index: int, key: str, rng: random.Random,
               image_base: str = "http://images.test") -> tuple[dict, dict, dict]:
    """(manifest row, TarWriter sample, json metadata) of one stored image."""
    original = original_bytes(plan)
    stored = original if plan["kind"] != "near" else encode_jpeg(
        Image.open(io.BytesIO(original)).convert("RGB"), quality=90)
    text = caption(rng)
    url = f"{image_base}/{shard}/{index}.jpg"
    uid = hashlib.sha1(f"{url}\t{text}".encode()).hexdigest()
    width, height = Image.open(io.BytesIO(stored)).size
    sha256 = hashlib.sha256(original).hexdigest()
    meta = {"uid": uid, "url": url, "page_url": f"http://pages.test/{shard}.html",
            "query_ids": sorted(rng.sample(range(30), rng.randint(1, 3))), "width": width,
            "height": height, "original_width": width, "original_height": height,
            "sha256": sha256}
    row = {"uid": uid, "url": url, "status": "ok", "http_status": 200, "error": None,
           "bytes": len(original), "sha256": sha256, "shard": shard, "key": key, "seconds": 0.01}
    return row, writer.sample_members(key, stored, text, meta), meta


def failed_row(shard: int, number: int, rng: random.Random) -> dict:
    url = f"http://images.test/{shard}/failed-{number}.jpg"
    status = rng.choice(("http_error", "timeout", "not_image"))
    return {"uid": hashlib.sha1(url.encode()).hexdigest(), "url": url, "status": status,
            "http_status": 404 if status == "http_error" else None, "error": status, "bytes": 0,
            "sha256": None, "shard": shard, "key": None, "seconds": 0.5}


def selection_row(meta: dict, text: str) -> dict:
    return {"uid": meta["uid"], "url": meta["url"], "text": text, "page_url": meta["page_url"],
            "source": "web" if int(meta["uid"], 16) % 3 else "pool", "lang": "en",
            "lang_prob": 0.99, "query_ids": meta["query_ids"], "selected_by": meta["query_ids"]}


def write_crawl_side_files(workdir: Path, selection: list[dict]) -> None:
    """selection.parquet, balance.parquet (Zipf-like counts, some over the cap, some zero),
    queries/queries.parquet and crawl_stats.json."""
    manifests = workdir / "manifests"
    atomic.write_parquet(manifests / "selection.parquet",
                         pa.Table.from_pylist(selection, schema=schemas.SELECTION))
    matched = [int(60_000 / (rank + 1) ** 1.1) if rank < 25 else 0 for rank in range(30)]
    balance = [{"query_id": q, "matched": m, "selected": min(m, 20_000)}
               for q, m in enumerate(matched)]
    atomic.write_parquet(manifests / "balance.parquet",
                         pa.Table.from_pylist(balance, schema=schemas.BALANCE))
    queries = pa.table({"query_id": pa.array(range(30), pa.int32()),
                        "query": [f"{WORDS[q % len(WORDS)]} {q}" for q in range(30)]})
    atomic.write_parquet(workdir / "queries" / "queries.parquet", queries)
    atomic.write_json(manifests / "crawl_stats.json", {
        "per_query": 20_000, "balance_mode": "exact", "sources": ["web:http://pages.test/"],
        "dropped": {"not_en": 7, "too_short": 3},
        "queries_sha256": atomic.sha256_file(workdir / "queries" / "queries.parquet")})


def read_shards(folder: Path, split: str) -> list[dict]:
    """Every sample of the split's shards, in order, read back with webdataset."""
    import webdataset as wds

    samples = []
    for path in sorted(folder.glob(f"{split}-*.tar")):
        for sample in wds.WebDataset(str(path), shardshuffle=False):
            meta = json.loads(sample["json"])
            samples.append({"key": sample["__key__"], "uid": meta["uid"], "shard": path.name,
                            "jpg": sample["jpg"], "txt": sample["txt"]})
    return samples
