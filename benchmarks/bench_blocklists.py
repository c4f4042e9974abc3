"""pHash blocklists (`--block-hashes` with 64-bit pHashes) on real photographs: agreement of
core/phash.py with the `imagehash` package, how far the web's copies of a listed photograph land
from its listed pHash through the download's decode (each --decode mode, the pHash taken before
and after the resize), how close distinct photographs come, and what a list costs per image.

The photographs come from Debian packages fetched by tests/support/realdata.py into its cache
(tests/support/photos.py). A list carries what a user would distribute: `imagehash.phash` of the
photograph as published (≤ 1024 px). Copies: photos.COPIES (recompressed, rescaled, thumbnail,
cropped, PNG, WebP, EXIF rotation) and the usual web copy (half size, JPEG q80).

The download hashes the decoded picture with OpenCV's grey and Pillow's Lanczos after a box
reduction (blocklists.picture_phash); imagehash's exact steps are measured beside it. The cost is
the download's decode thread (native.stored_outcome: decode, pHash and match, resize, encode) per
web copy, without a list and with lists of 10,000 and 1,000,000 pHashes (random, none matching;
1,000,000 also compared whole, without the index), in interleaved rounds so the machine's other
load falls on each.

    pip install imagehash   # the test extra has it
    .venv/bin/python benchmarks/bench_blocklists.py [--astro] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from common import print_table  # noqa: E402
from support import photos  # noqa: E402
from support.realdata import Unavailable  # noqa: E402
from wit_builder.core import phash  # noqa: E402
from wit_builder.crawl.blocklists import load_blocklist, picture_phash  # noqa: E402
from wit_builder.crawl.download.fetch import Fetched  # noqa: E402
from wit_builder.crawl.download.images import ImageSettings, decode, resize_array  # noqa: E402
from wit_builder.crawl.download.native import stored_outcome  # noqa: E402

BITS = (0, 2, 4, 6, 8, 10, 12, 14, 16)
WEB_COPY = "web copy (half size, q80)"


def copies() -> dict:
    return {**photos.COPIES,
            WEB_COPY: lambda p: photos.encode(photos.scaled(p, 0.5), quality=80)}


def agreement(pictures: dict, imagehash) -> list[list]:
    """core.phash against imagehash.phash on each photograph and each decoded copy."""
    import io
    distances = []
    for picture in pictures.values():
        for make in (lambda p: p, *copies().values()):
            made = make(picture)
            image = Image.open(io.BytesIO(made)) if isinstance(made, bytes) else made
            reference = int(str(imagehash.phash(image)), 16)
            distances.append((phash.phash_of_image(image) ^ reference).bit_count())
    distances = np.array(distances)
    return [[len(distances), f"{100 * np.mean(distances == 0):.2f}%", int(distances.max())]]


def exact_phash(pixels: np.ndarray) -> int:
    """imagehash's exact steps on the decoded picture (Pillow's grey, Lanczos from full size)."""
    rgb = Image.fromarray(np.ascontiguousarray(pixels[..., ::-1]))
    return phash.phash_of_image(rgb)


HASHINGS = {"download's (OpenCV grey, reducing gap 2)": picture_phash,
            "imagehash's exact steps": exact_phash}


def crawl_distances(pictures: dict, listed: np.ndarray, mode: str, hashing) -> dict:
    """{(where, copy): distances to the photograph's listed pHash}, and {("other", where,
    group): distances of each copy to the other photographs' listed pHashes of its group}."""
    settings = ImageSettings(decode=mode)
    groups = np.array([name.startswith("stellarium") for name in pictures])
    found: dict = {}
    for number, picture in enumerate(pictures.values()):
        others = (groups == groups[number]) & (np.arange(len(groups)) != number)
        for label, make in copies().items():
            array, width, height = decode(make(picture), settings)
            for where, pixels in (("before resize", array),
                                  ("after resize", resize_array(array, settings, width, height))):
                distances = np.bitwise_count(listed ^ np.uint64(hashing(pixels)))
                found.setdefault((where, label), []).append(int(distances[number]))
                found.setdefault(("other", where, bool(groups[number])), []).extend(
                    distances[others].tolist())
    return found


def summary_row(found: dict, mode: str, where: str, hashing: str) -> list:
    copied = np.concatenate([found[(where, label)] for label in copies() if "crop" not in label])
    crops = np.concatenate([found[(where, label)] for label in copies() if "crop" in label])
    row = [mode, where, hashing, int(copied.max()), f"{copied.mean():.2f}",
           f"{np.mean(crops <= 8):.2f}"]
    for group in (False, True):
        others = np.array(found.get(("other", where, group), [99]))
        row.append(f"{int(others.min())} / {int((others <= 8).sum()):,} of {others.size:,}"
                   if others.size > 1 else "—")
    return row


def distance_rows(found: dict, where: str) -> list[list]:
    rows = []
    for label in copies():
        distances = np.array(found[(where, label)])
        rows.append([label, int(distances.max()),
                     *(f"{np.mean(distances <= bits):.2f}" for bits in BITS[1:-1])])
    return rows


def hashing_cost(pictures: dict, rounds: int) -> list[list]:
    arrays = [decode(copies()[WEB_COPY](picture), ImageSettings())[0]
              for picture in pictures.values()]
    timings: dict[str, list[float]] = {name: [] for name in HASHINGS}
    for _ in range(rounds):
        for name, hashing in HASHINGS.items():
            started = time.perf_counter()
            for pixels in arrays:
                hashing(pixels)
            timings[name].append((time.perf_counter() - started) / len(arrays))
    return [[name, f"{statistics.median(values) * 1e6:,.0f}"] for name, values in timings.items()]


def list_file(folder: Path, entries: int, seed: int = 0) -> str:
    rng = np.random.default_rng(entries + seed)
    path = folder / f"{entries}-{seed}.txt"
    values = rng.integers(0, 2**64, entries, dtype=np.uint64, endpoint=False)
    path.write_text("\n".join(f"{value:016x}" for value in values.tolist()) + "\n")
    return str(path)


def cost_rows(pictures: dict, rounds: int) -> list[list]:
    """µs per web copy in the decode thread, per list size, interleaved rounds."""
    bodies = [copies()[WEB_COPY](picture) for picture in pictures.values()]
    settings = ImageSettings()
    lists = {"no list": load_blocklist([], [], 8)}
    with tempfile.TemporaryDirectory() as scratch:
        for entries in (10_000, 1_000_000):
            started = time.perf_counter()
            lists[f"{entries:,} pHashes"] = load_blocklist([list_file(Path(scratch), entries)],
                                                           [], 8)
            loaded = time.perf_counter()
            lists[f"{entries:,} pHashes"].phash_index
            print(f"a list of {entries:,} pHashes: read in {loaded - started:.1f} s, "
                  f"indexed in {time.perf_counter() - loaded:.2f} s (once per worker process)")
    # other hashes than the indexed list's, so that its fingerprint (the index cache's key) differs
    whole = load_blocklist([list_file(Path(scratch_whole := tempfile.mkdtemp()), 1_000_000, 1)],
                           [], 8)
    saved, phash.BRUTE_FORCE_BELOW = phash.BRUTE_FORCE_BELOW, 10**9
    whole.phash_index   # built now, without the band tables: every entry compared
    phash.BRUTE_FORCE_BELOW = saved
    assert not whole.phash_index.bands and lists["1,000,000 pHashes"].phash_index.bands
    shutil.rmtree(scratch_whole)
    lists["1,000,000 pHashes, compared whole (no index)"] = whole
    timings: dict[str, list[float]] = {label: [] for label in lists}
    for _ in range(rounds):
        for label, blocklist in lists.items():
            started = time.perf_counter()
            for body in bodies:
                outcome = stored_outcome(Fetched("ok", 200, None, body), settings, blocklist)
                assert outcome.status == "ok", outcome
            timings[label].append((time.perf_counter() - started) / len(bodies))
    base = statistics.median(timings["no list"])
    return [[label, f"{statistics.median(values) * 1e6:,.0f}",
             f"{(statistics.median(values) - base) * 1e6:+,.0f}",
             f"{statistics.median(values) / base:.2f}"] for label, values in timings.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--astro", action="store_true",
                        help="add stellarium's telescope photographs (a 246 MB package)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import imagehash
    except ImportError:
        sys.exit("bench_blocklists: the imagehash package is needed (pip install imagehash)")
    try:
        pictures = photos.photographs(photos.WALLPAPERS + (photos.ASTRO if args.astro else ()))
    except Unavailable as error:
        sys.exit(f"bench_blocklists: {error}")
    print(f"{len(pictures)} photographs")
    print_table("core/phash.py against imagehash.phash (photographs and decoded copies)",
                ["images", "identical", "largest distance (bits)"],
                agreement(pictures, imagehash))
    listed = np.array([int(str(imagehash.phash(p)), 16) for p in pictures.values()], np.uint64)
    summary, detail = [], None
    for mode in ("reduced", "fast", "full"):
        for name, hashing in HASHINGS.items():
            found = crawl_distances(pictures, listed, mode, hashing)
            summary += [summary_row(found, mode, where, name)
                        for where in ("before resize", "after resize")]
            if detail is None:
                detail = found
    print_table("Distance of the web's copies to the listed pHash (imagehash's, of the "
                "photograph as published), as the download computes it",
                ["--decode", "pHash taken", "hashing", "largest, copies but crops",
                 "mean, copies but crops", "crops within 8", "distinct wallpapers: min / within 8",
                 "distinct telescope photos: min / within 8"], summary)
    print_table("Per copy (--decode reduced, before the resize, the download's hashing): share "
                "within the bits", ["copy", "largest", *(f"≤ {bits}" for bits in BITS[1:-1])],
                distance_rows(detail, "before resize"))
    print_table("pHash alone per decoded web copy (median of interleaved rounds)",
                ["hashing", "µs per image"], hashing_cost(pictures, args.rounds))
    print_table("Decode thread per web copy (decode, pHash + match, resize, encode; median of "
                "interleaved rounds)", ["list", "µs per image", "added µs", "ratio"],
                cost_rows(pictures, args.rounds))


if __name__ == "__main__":
    main()
