"""The whole crawl as a user runs it: `wit crawl --source pool:` (read the pool, caption filters,
query matching, language ID, balance, download, resize, shards) against img2dataset downloading the
same URLs, both as whole processes from the command line, their whole process trees' CPU counted.

    .venv/bin/python benchmarks/bench_crawl.py [--urls 20000,100000] [--workers 2]
        [--before CHECKOUT] [--no-img2dataset]

The material is real and fetched by the script into the real-material cache
(tests/support/realdata.py), never committed:
- images: the photographs and artwork of KDE Plasma's wallpapers (Debian
  plasma-workspace-wallpapers 4:5.27.5-2), each scaled to six web sizes (longest side 320 to
  1,280 px) and re-encoded as JPEG; a server in its own process serves URL N as variant N modulo
  their number (a different URL each time, so nothing is cached);
- captions: the alt texts of GIMP's English manual (Debian gimp-help-en 2.10.34-2) that `wit crawl`
  keeps (a first pass over the distinct texts finds them), so every pool row reaches the download
  and both tools download every URL;
- queries: every word of Debian's wamerican word list.
Both tools get the same resize (keep_ratio, 256 px, JPEG quality 90), two processes, 64 requests
in flight each (img2dataset: `--thread_count 64`), shards of 10,000 samples, no retries. Each size
runs img2dataset then witbuilder then the other way round (2 rounds), on fresh output folders; the
table gives the median. "Marginal" is the cost of one more image between the two sizes (wall ms and
CPU ms), which start-up costs do not blur.

`--before CHECKOUT` also runs `wit crawl` from another checkout of witbuilder (its C extensions
built, run with this Python), interleaved with the others in every round, and adds a table of
this checkout against it: a change's effect measured on a shared machine, where load moves both
alike. `--no-img2dataset` leaves img2dataset out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from bench_download import DescendantCPU  # noqa: E402
from common import print_table, write_queries  # noqa: E402
from realcheck import GIMP_HELP, WAMERICAN, ImageAlts  # noqa: E402
from support.realdata import Unavailable, fetch_deb  # noqa: E402

WALLPAPERS = "4:5.27.5-2"
SIZES = (320, 480, 640, 800, 1024, 1280)
IMAGE_SIZE, WORKERS_DEFAULT, CONCURRENCY, PER_SHARD = 256, 2, 64, 10_000
BIN = Path(sys.executable).parent
WIT = [sys.executable, "-m", "wit_builder.cli"]   # this checkout's witbuilder


def web_variants(wallpapers: Path, folder: Path) -> int:
    """Each wallpaper's largest JPEG at SIZES (longest side), written as 0.jpg, 1.jpg, …"""
    from PIL import Image

    largest: dict[str, Path] = {}
    for path in wallpapers.rglob("*.jpg"):
        name = path.parts[path.parts.index("wallpapers") + 1]
        if name not in largest or path.stat().st_size > largest[name].stat().st_size:
            largest[name] = path
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in sorted(largest):
        with Image.open(largest[name]) as image:
            image = image.convert("RGB")
            for side in SIZES:
                scale = side / max(image.size)
                resized = image.resize((max(1, round(image.width * scale)),
                                        max(1, round(image.height * scale))), Image.LANCZOS)
                resized.save(folder / f"{count}.jpg", quality=85)
                count += 1
    return count


def manual_alts(manual: Path) -> list[str]:
    """The distinct alt texts of the manual's pages, in a fixed order."""
    texts = set()
    for page in sorted(manual.glob("*.html")):
        parser = ImageAlts()
        parser.feed(page.read_text("utf-8", "replace"))
        texts.update(alt for _, alt in parser.pairs)
    return sorted(texts)


def write_pool(path: Path, base: str, texts: list[str], count: int, offset: int = 0) -> None:
    urls = [f"{base}/img/{offset + i}.jpg" for i in range(count)]
    captions = [texts[i % len(texts)] for i in range(count)]
    pq.write_table(pa.table({"url": urls, "caption": captions}), path, row_group_size=count)


def wit_crawl(pool: Path, queries: Path, workdir: Path, origin: str, workers: int,
              download: bool = True, checkout: Path = ROOT) -> subprocess.CompletedProcess:
    """`wit crawl` from `checkout` (python -m imports the package of its working directory)."""
    return subprocess.run(
        [*WIT, "crawl", "--workdir", str(workdir), "--source", f"pool:{pool}",
         "--queries", str(queries), "--per-query", "100000000", "--trusted-origins", origin,
         "--workers", str(workers), "--concurrency", str(CONCURRENCY),
         "--download-per-host", str(CONCURRENCY), "--samples-per-shard", str(PER_SHARD),
         "--image-size", str(IMAGE_SIZE), "--resize-mode", "keep_ratio", "--quality", "90",
         "--retries", "0", "--download" if download else "--no-download"],
        capture_output=True, text=True, cwd=checkout)


def kept_texts(texts: list[str], queries: Path, work: Path, base: str, origin: str) -> list[str]:
    """The texts `wit crawl` selects (caption filters, a query match, English)."""
    pool, workdir = work / "texts.parquet", work / "texts-run"
    write_pool(pool, base, texts, len(texts), offset=10**9)
    done = wit_crawl(pool, queries, workdir, origin, 2, download=False)
    if done.returncode != 0:
        sys.exit(f"bench_crawl: the caption pass failed:\n{done.stderr[-2000:]}")
    selection = pq.read_table(workdir / "manifests" / "selection.parquet", columns=["text"])
    kept = set(selection.column("text").to_pylist())
    return [text for text in texts if text in kept]


def run_img2dataset(pool: Path, output: Path, workers: int) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run(
        [str(BIN / "img2dataset"), "--url_list", str(pool), "--input_format", "parquet",
         "--url_col", "url", "--caption_col", "caption", "--output_format", "webdataset",
         "--output_folder", str(output), "--processes_count", str(workers),
         "--thread_count", str(CONCURRENCY), "--image_size", str(IMAGE_SIZE),
         "--resize_mode", "keep_ratio", "--resize_only_if_bigger", "True",
         "--encode_quality", "90", "--number_sample_per_shard", str(PER_SHARD),
         "--timeout", "20", "--retries", "0", "--enable_wandb", "False",
         "--distributor", "multiprocessing"],
        capture_output=True, text=True, env=environment, cwd=output.parent)


def stored_img2dataset(output: Path) -> int:
    return sum(pq.read_table(path, columns=["status"]).column("status").to_pylist()
               .count("success") for path in output.glob("*.parquet"))


def stored_witbuilder(workdir: Path) -> int:
    return sum(pq.read_table(path, columns=["status"]).column("status").to_pylist().count("ok")
               for path in (workdir / "manifests" / "crawl").glob("*.parquet"))


def timed(run, server_pid: int) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and CPU seconds of the whole process tree that `run()` starts."""
    started = time.perf_counter()
    with DescendantCPU(exclude=server_pid) as tree:
        done = run()
    return time.perf_counter() - started, tree.seconds, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", default="20000,100000",
                        help="pool sizes, comma-separated (default: 20000,100000)")
    parser.add_argument("--workers", type=int, default=WORKERS_DEFAULT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    parser.add_argument("--before", type=Path,
                        help="another witbuilder checkout to run too, interleaved (an A/B)")
    parser.add_argument("--no-img2dataset", action="store_true", help="leave img2dataset out")
    args = parser.parse_args()
    if args.before and not (args.before / "wit_builder" / "cli.py").is_file():
        sys.exit(f"bench_crawl: --before {args.before} is no witbuilder checkout (no "
                 "wit_builder/cli.py); give the root of one")
    tools = ([] if args.no_img2dataset else ["img2dataset"]) + ["witbuilder"] + \
        (["before"] if args.before else [])
    sizes = [int(size) for size in args.urls.split(",")]
    try:
        wallpapers = fetch_deb("plasma-workspace-wallpapers", WALLPAPERS)
        manual = fetch_deb("gimp-help-en", GIMP_HELP) / "usr/share/gimp/2.0/help/en"
        words = fetch_deb("wamerican", WAMERICAN) / "usr/share/dict/american-english"
    except Unavailable as error:
        sys.exit(f"bench_crawl: {error}; run it where Debian's archive is reachable")

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    work.mkdir(parents=True, exist_ok=True)
    variants = web_variants(wallpapers, work / "images")
    queries = work / "queries.parquet"
    write_queries(words, queries)
    server = subprocess.Popen([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                               " from bench_download import serve; serve(sys.argv[2])",
                               str(ROOT / "benchmarks"), str(work / "images")],
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    origin, base = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    texts = kept_texts(manual_alts(manual), queries, work, base, origin)
    print(f"bench_crawl: {variants} images ({len(SIZES)} web sizes of the KDE wallpapers), "
          f"{len(texts):,} real captions that wit crawl keeps, {args.workers} workers")

    results: dict[tuple[int, str], list[tuple[float, float, int]]] = {}
    try:
        for size in sizes:
            pool = work / f"pool-{size}.parquet"
            write_pool(pool, base, texts, size)
            for round_number in range(args.rounds):
                order = tools if round_number % 2 == 0 else tools[::-1]
                for tool in order:
                    out = work / f"{tool}-{size}-{round_number}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    if tool == "img2dataset":
                        seconds, cpu, done = timed(lambda: run_img2dataset(pool, out, args.workers),
                                                   server.pid)
                        stored = stored_img2dataset(out) if done.returncode == 0 else 0
                    else:
                        checkout = args.before if tool == "before" else ROOT
                        seconds, cpu, done = timed(lambda: wit_crawl(
                            pool, queries, out, origin, args.workers, checkout=checkout),
                            server.pid)
                        stored = stored_witbuilder(out) if done.returncode == 0 else 0
                    if done.returncode != 0:
                        sys.exit(f"bench_crawl: {tool} failed at {size}:\n{done.stderr[-3000:]}")
                    results.setdefault((size, tool), []).append((seconds, cpu, stored))
                    print(f"  {size:>7,} {tool:<12} round {round_number}: {seconds:7.1f} s wall, "
                          f"{cpu:7.1f} CPU s, {stored:,} stored", flush=True)
                    if not args.keep:
                        shutil.rmtree(out, ignore_errors=True)
    finally:
        server.terminate()

    def median(size: int, tool: str, field: int) -> float:
        return statistics.median(run[field] for run in results[(size, tool)])

    if not args.no_img2dataset:
        compare(sizes, median, "img2dataset", "witbuilder",
                f"wit crawl --source pool: vs img2dataset, whole process trees, {args.workers} "
                f"workers (median of {args.rounds})",
                ["img2dataset s", "wit crawl s", "stored (img2dataset / wit)"])
    if args.before:
        compare(sizes, median, "before", "witbuilder",
                f"wit crawl, this checkout vs {args.before}, whole process trees, "
                f"{args.workers} workers (median of {args.rounds})",
                ["before s", "now s", "stored (before / now)"])


def compare(sizes: list[int], median, theirs: str, ours: str, title: str,
            labels: list[str]) -> None:
    """The table of `ours` against `theirs` at each size, and the marginal cost of an image."""
    rows = []
    for size in sizes:
        slow, fast = median(size, theirs, 0), median(size, ours, 0)
        rows.append([f"{size:,}", round(slow, 1), round(fast, 1), f"{slow / fast:.2f}x",
                     round(median(size, theirs, 1), 1), round(median(size, ours, 1), 1),
                     f"{median(size, theirs, 2):,.0f} / {median(size, ours, 2):,.0f}"])
    slow_label, fast_label, stored_label = labels
    print_table(title, ["URLs", slow_label, fast_label, "speed-up",
                        slow_label.replace(" s", " CPU s"), fast_label.replace(" s", " CPU s"),
                        stored_label], rows)
    if len(sizes) >= 2:
        low, high = sizes[0], sizes[-1]
        extra = high - low
        marginal = [[tool, round(1000 * (median(high, tool, 0) - median(low, tool, 0)) / extra, 3),
                     round(1000 * (median(high, tool, 1) - median(low, tool, 1)) / extra, 3)]
                    for tool in (theirs, ours)]
        marginal.append(["ratio", f"{marginal[0][1] / marginal[1][1]:.2f}x",
                         f"{marginal[0][2] / marginal[1][2]:.2f}x"])
        print_table(f"Marginal cost of one image between {low:,} and {high:,} URLs",
                    ["tool", "wall ms / image", "CPU ms / image"], marginal)


if __name__ == "__main__":
    main()
