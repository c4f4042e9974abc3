"""Near-duplicates on real photographs: precision and recall of `wit shards`' near-duplicate test
per Hamming threshold, with the pHash alone and with the look check (phash.same_look).

The photographs come from Debian packages fetched by tests/support/realdata.py into its cache
(tests/support/photos.py: wallpaper photographs and stellarium's telescope photographs). Each
one, its copies (what the web does: recompress, rescale, crop a few %, PNG, WebP, EXIF
rotation), its edits (blur, sharpen, greyscale, sepia, colour filters, brightness, contrast) and
its bursts (neighbouring frames) are stored through the crawl's image step (256 px JPEG) and
hashed by the shards' scan (phash.image_hashes), as `wit crawl` and `wit shards` do.

A pair is counted a duplicate when its hashes are within the threshold (and, with the check,
its signatures agree). Positives: (photo, copy). Negatives: (photo, edit), the two frames of a
burst, and every pair of distinct photographs. Precision is over all predicted pairs.

    .venv/bin/python benchmarks/bench_neardup.py [--wallpapers-only]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from common import print_table  # noqa: E402
from support import photos  # noqa: E402
from support.realdata import Unavailable  # noqa: E402
from wit_builder.crawl.download.images import ImageSettings, process_image  # noqa: E402
from wit_builder.shards import dedup  # noqa: E402
from wit_builder.core.phash import HASH_SIDE, phash_of_grey  # noqa: E402
from wit_builder.shards.phash import image_hashes, same_look  # noqa: E402

THRESHOLDS = (0, 2, 4, 6, 8, 10, 12, 14, 16)
TIMED_UP_TO = 10  # wider searches take minutes on the random index: not timed


def stored(data: bytes) -> bytes:
    """The JPEG the crawl stores for downloaded bytes (256 px, the crawl's defaults)."""
    return process_image(data, ImageSettings()).jpeg


def previous_phash(image_bytes: bytes) -> int:
    """The scan's hashing before the look signature (witbuilder b32e9a6): pHash alone, from a
    grey decode at reduced scale."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.draft("L", (HASH_SIDE * 2, HASH_SIDE * 2))
        return phash_of_grey(image.convert("L"))


def hashed_variants(pictures: dict) -> tuple[dict, list[bytes]]:
    """{photo: {variant: (phash, signature) or a pair of them}} and every stored JPEG."""
    hashes, jpegs = {}, []
    for name, picture in pictures.items():
        entry = {}
        for label, make in {"original": lambda p: photos.encode(p, quality=95),
                            **photos.COPIES, **photos.EDITS}.items():
            jpeg = stored(make(picture))
            jpegs.append(jpeg)
            entry[label] = image_hashes(jpeg)
        for label in photos.BURSTS:
            entry[label] = tuple(image_hashes(stored(frame))
                                 for frame in photos.burst(picture, label))
        hashes[name] = entry
    return hashes, jpegs


def pair_arrays(hashes: dict) -> dict[str, tuple[np.ndarray, ...]]:
    """{class: (phash a, phash b, signature a, signature b)} for each class of pairs."""
    pairs: dict[str, list] = {}
    for entry in hashes.values():
        for label in [*photos.COPIES, *photos.EDITS]:
            pairs.setdefault(label, []).append((entry["original"], entry[label]))
        for label in photos.BURSTS:
            pairs.setdefault(label, []).append(entry[label])
    originals = [entry["original"] for entry in hashes.values()]
    pairs["distinct photographs"] = [(a, b) for i, a in enumerate(originals)
                                     for b in originals[i + 1:]]
    return {label: tuple(np.array([side[part] for side in sides], dtype=np.uint64)
                         for part in (0, 1) for sides in zip(*found))
            for label, found in pairs.items()}


def matched(arrays: tuple[np.ndarray, ...], bits: int, check: bool) -> np.ndarray:
    first_hash, second_hash, first_look, second_look = arrays
    close = np.bitwise_count(first_hash ^ second_hash) <= bits
    return close & same_look(first_look, second_look) if check else close


def random_index(folder: Path, rows: int, per_piece: int = 50_000) -> list[tuple[str, int]]:
    """Index pieces (the scan's columns dedup.py reads) of `rows` random pHashes."""
    rng = np.random.default_rng(0)
    pieces = []
    for shard in range(-(-rows // per_piece)):
        count = min(per_piece, rows - shard * per_piece)
        table = pa.table({
            "uid": [f"{shard}-{i}" for i in range(count)],
            "sha256": [f"{shard:08x}{i:056x}" for i in range(count)],
            "phash": rng.integers(0, 2**64, count, dtype=np.uint64, endpoint=False),
            "signature": rng.integers(0, 2**56, count, dtype=np.uint64) << np.uint64(8),
            "raw_shard": np.full(count, shard, np.int32),
            "position": np.arange(count, dtype=np.int32)})
        path = folder / f"{shard:05d}.parquet"
        pq.write_table(table, path)
        pieces.append((str(path), count))
    return pieces


def search_seconds(rows: int) -> dict[int, float]:
    """{bits: seconds} of dedup.py's whole search (one process) over `rows` random hashes: the
    bands get narrower as the bits grow, so ever more pairs share a band value."""
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        pieces = random_index(Path(scratch), rows)
        for bits in (bits for bits in THRESHOLDS if 0 < bits <= TIMED_UP_TO):
            plan = dedup.plan_dedup(Path(scratch) / "work", {
                int(Path(path).stem): count for path, count in pieces}, bits, 512.0)
            start = time.perf_counter()
            dedup.deduplicate(plan, pieces, progress=False)
            seconds[bits] = time.perf_counter() - start
    return seconds


def threshold_rows(pairs: dict, check: bool, seconds: dict[int, float] | None = None
                   ) -> list[list]:
    positives = set(photos.COPIES)
    rows = []
    for bits in THRESHOLDS:
        found = {label: matched(arrays, bits, check) for label, arrays in pairs.items()}
        true = sum(int(found[label].sum()) for label in positives)
        total = sum(len(found[label]) for label in positives)
        false = {label: int(hits.sum()) for label, hits in found.items()
                 if label not in positives}
        edits = sum(false[label] for label in photos.EDITS)
        bursts = sum(false[label] for label in photos.BURSTS)
        predicted = true + sum(false.values())
        rows.append([bits, f"{true / max(predicted, 1):.3f}", f"{true / total:.3f}",
                     f"{edits} / {sum(len(found[label]) for label in photos.EDITS)}",
                     f"{bursts} / {sum(len(found[label]) for label in photos.BURSTS)}",
                     f"{false['distinct photographs']} / {len(found['distinct photographs'])}"])
        if seconds is not None:
            rows[-1].append(f"{seconds[bits]:.1f}" if bits in seconds else "—")
    return rows


def class_rows(groups: dict[str, dict], bits: int) -> list[list]:
    """Per class of pairs, the share counted duplicates in each group of photographs."""
    rows = []
    for label in next(iter(groups.values())):
        kind = "copy" if label in photos.COPIES else "different"
        cells = [f"{matched(pairs[label], bits, False).mean():.3f} → "
                 f"{matched(pairs[label], bits, True).mean():.3f}" for pairs in groups.values()]
        rows.append([label, kind, *cells])
    return rows


def hashing_cost(jpegs: list[bytes], rounds: int = 5) -> list[list]:
    """Time per stored image of the scan's hashing, before (pHash) and now (pHash + signature),
    interleaved so that the machine's other load falls on both."""
    sample = jpegs[:: max(1, len(jpegs) // 400)]
    timings: dict[str, list[float]] = {"pHash (before)": [], "pHash + signature (now)": []}
    for _ in range(rounds):
        for label, function in (("pHash (before)", previous_phash),
                                ("pHash + signature (now)", image_hashes)):
            start = time.perf_counter()
            for jpeg in sample:
                function(jpeg)
            timings[label].append((time.perf_counter() - start) / len(sample))
    before = statistics.median(timings["pHash (before)"])
    return [[label, len(sample), f"{statistics.median(values) * 1e6:,.0f}",
             f"{statistics.median(values) / before:.2f}"] for label, values in timings.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wallpapers-only", action="store_true",
                        help="leave out stellarium's telescope photographs (a 246 MB package)")
    parser.add_argument("--bits", type=int, default=None,
                        help="threshold of the per-class table (default: the shards' default)")
    parser.add_argument("--search-rows", type=int, default=100_000,
                        help="random hashes the near search is timed on (0: not timed)")
    args = parser.parse_args()
    from wit_builder.shards.config import ShardsConfig
    bits = ShardsConfig().near_dup_bits if args.bits is None else args.bits
    packages = photos.WALLPAPERS + (() if args.wallpapers_only else photos.ASTRO)
    try:
        pictures = photos.photographs(packages)
    except Unavailable as error:
        sys.exit(f"bench_neardup: {error}")
    start = time.perf_counter()
    hashes, jpegs = hashed_variants(pictures)
    pairs = pair_arrays(hashes)
    groups = {"wallpaper photographs": pair_arrays(
                  {name: entry for name, entry in hashes.items() if not name.startswith("stell")}),
              "telescope photographs": pair_arrays(
                  {name: entry for name, entry in hashes.items() if name.startswith("stell")})}
    groups = {name: group for name, group in groups.items() if len(group["jpeg q90"][0])}
    print(f"{len(pictures)} photographs from {', '.join(packages)}; "
          f"{len(jpegs) + 2 * len(pictures) * len(photos.BURSTS)} stored images hashed in "
          f"{time.perf_counter() - start:.0f} s")
    columns = ["bits", "precision", "recall", "edits matched", "burst pairs matched",
               "distinct pairs matched"]
    print_table("pHash alone (as before)", columns, threshold_rows(pairs, check=False))
    seconds = search_seconds(args.search_rows) if args.search_rows else None
    print_table("pHash + look check (now)",
                columns + ([f"search s, {args.search_rows:,} random hashes"] if seconds else []),
                threshold_rows(pairs, check=True, seconds=seconds))
    print_table(f"Per class at {bits} bits: share of pairs counted duplicates, pHash alone → "
                "with the look check", ["pair", "should be",
                                        *(f"{name} ({len(group['jpeg q90'][0])})"
                                          for name, group in groups.items())],
                class_rows(groups, bits))
    print_table("Scan hashing cost per stored image (median of interleaved rounds)",
                ["hashing", "images", "µs per image", "ratio"], hashing_cost(jpegs))


if __name__ == "__main__":
    main()
