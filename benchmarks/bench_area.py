"""The image step's INTER_AREA shrink alone: the compiled `_area.c` (each of its code paths this
CPU runs: SSE2, AVX2, AVX-512) against cv2.resize(..., INTER_AREA), CPU ms per image.

    .venv/bin/python benchmarks/bench_area.py [--rounds 15] [--before FILE]

The material is what the crawl's resize gets (bench_crawl.py's): the photographs and artwork of
KDE Plasma's wallpapers (Debian plasma-workspace-wallpapers 4:5.27.5-2, fetched into the
real-material cache, never committed), each scaled to six web sizes (longest side 320 to
1,280 px), JPEG-encoded, then decoded by the image step's own `images.decode` (its reduced
decode: 1/2 for 1,024 and 1,280 px) and shrunk to `scaled_size` (keep_ratio, 256 px longest
side). Only the images the compiled path takes (non-whole factors) are timed. Each round times
every candidate over all images, the candidates in turn (the order reversed every other round),
each resize right after its image's decode as in the image step (its pixels in the caches; the
decode untimed), per-thread CPU (time.thread_time); the table gives the median round, ms per
image, and each output is checked to be cv2's bytes. `--before FILE` also times another version
of the extension, interleaved the same way: its source (e.g. `git show HEAD~1:wit_builder/crawl/
download/_area.c > /tmp/old_area.c`; compiled here as setup.py compiles it) or a built .so.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests"), str(ROOT)]
from bench_crawl import WALLPAPERS, web_variants  # noqa: E402
from common import print_table  # noqa: E402
from support.realdata import Unavailable, fetch_deb  # noqa: E402

from wit_builder.crawl.download import area  # noqa: E402
from wit_builder.crawl.download.images import ImageSettings, decode, scaled_size  # noqa: E402



def web_jpegs(wallpapers: Path) -> list[bytes]:
    """bench_crawl's images: each wallpaper's largest JPEG at its six web sizes, re-encoded."""
    with tempfile.TemporaryDirectory() as folder:
        count = web_variants(wallpapers, Path(folder))
        return [(Path(folder) / f"{number}.jpg").read_bytes() for number in range(count)]


def load_build(path: Path):
    """The extension built at `path`, or compiled from the C source `path` (setup.py's flags)."""
    if path.suffix == ".c":
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = Path(tempfile.mkdtemp(prefix="bench-area-")) / f"_area{suffix}"
        command = [sysconfig.get_config_var("CC").split()[0],
                   *sysconfig.get_config_var("CFLAGS").split(), "-ffp-contract=off", "-fPIC",
                   "-shared", f"-I{sysconfig.get_paths()['include']}", str(path), "-o", str(built)]
        if subprocess.run(command).returncode != 0:
            sys.exit(f"bench_area: cannot compile --before {path} (the command: "
                     f"{' '.join(command)})")
        path = built
    spec = importlib.util.spec_from_file_location("wit_builder.crawl.download._area", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", type=Path,
                        help="another version of _area to time too: its .c source or a built .so")
    args = parser.parse_args()
    if args.before and not args.before.is_file():
        sys.exit(f"bench_area: --before {args.before} is no file; give an _area.c or a built .so")
    if area._area is None:
        sys.exit("bench_area: _area is not built; run .venv/bin/python setup.py build_ext "
                 "--inplace")
    try:
        wallpapers = fetch_deb("plasma-workspace-wallpapers", WALLPAPERS)
    except Unavailable as error:
        sys.exit(f"bench_area: {error}; run it where Debian's archive is reachable")
    settings = ImageSettings()
    jobs, decoded = [], []   # (JPEG bytes, output size) of the images the compiled path takes
    for data in web_jpegs(wallpapers):
        array, width, height = decode(data, settings)
        target = scaled_size(width, height, settings)
        if area.shrink_like_opencv(array, *target) is not None:
            jobs.append((data, target))
            decoded.append(max(array.shape[:2]))
    print(f"bench_area: {len(jobs)} decoded images the compiled resize takes (decoded "
          f"{min(decoded)}-{max(decoded)} px longest side, 256 px out); paths here: "
          f"{', '.join(area._area.paths())}, default {area._area.default_path()}")

    def ours(module, path):
        def run(array, target):
            out = np.empty((target[1], target[0], 3), np.uint8)
            module.resize(array, array.shape[1], array.shape[0], out, target[0], target[1], path)
            return out
        return run

    candidates = {"cv2.resize INTER_AREA":
                  lambda a, t: cv2.resize(a, t, interpolation=cv2.INTER_AREA)}
    if args.before:
        before = load_build(args.before)
        candidates["before (--before)"] = lambda a, t: _plain(before, a, t)
    for path in area._area.paths():
        candidates[f"_area.c {path}"] = ours(area._area, path)
    for data, target in jobs:  # every candidate gives cv2's bytes
        array = decode(data, settings)[0]
        expected = cv2.resize(array, target, interpolation=cv2.INTER_AREA)
        for name, run in candidates.items():
            assert np.array_equal(run(array, target), expected), (name, array.shape, target)

    # Each resize times itself right after its image's decode, as in the image step (the pixels
    # fresh in the caches), the decode untimed.
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for round_number in range(args.rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            run, spent = candidates[name], 0.0
            for data, target in jobs:
                array = decode(data, settings)[0]
                start = time.thread_time()
                run(array, target)
                spent += time.thread_time() - start
            times[name].append(spent * 1e3 / len(jobs))
    base = "before (--before)" if args.before else f"_area.c {area._area.paths()[0]}"
    reference = statistics.median(times[base])
    rows = [[name, statistics.median(values), reference / statistics.median(values)]
            for name, values in times.items()]
    print_table(f"INTER_AREA shrink of {len(jobs)} decoded web images to 256 px, CPU ms per image "
                f"(median of {args.rounds} interleaved rounds)",
                ["resize", "ms / image", f"speed vs {base}"], rows)


def _plain(module, array, target):
    """A build whose resize takes no path argument (the SSE2-only _area.c)."""
    out = np.empty((target[1], target[0], 3), np.uint8)
    module.resize(array, array.shape[1], array.shape[0], out, target[0], target[1])
    return out


if __name__ == "__main__":
    main()
