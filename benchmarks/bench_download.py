"""Download speed: witbuilder's native downloader against img2dataset, on the same generated
JPEGs served from a separate process on 127.0.0.1, with the same resize settings and process
count; two ceilings (one core's image step, no network, times the processes): a plain Pillow
full decode + resize + encode (neutral), and witbuilder's own image step (`process_image`, the
code its workers run); and the output quality of each image step: PSNR against a full-decode
reference (full decode + exact Lanczos resize) on the served JPEGs and on real photographs
(Pillow's sdist and Debian's plasma-workspace-wallpapers, fetched into the real-material cache),
and how many output sizes differ from img2dataset's.

    .venv/bin/python benchmarks/bench_download.py --images 5000 --workers 2 --repeats 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import print_table  # noqa: E402
from support.realdata import Unavailable, fetch_deb, fetch_sdist  # noqa: E402

from wit_builder.core import schemas  # noqa: E402
from wit_builder.cli import load_config  # noqa: E402
from wit_builder.crawl.download import download_selection  # noqa: E402
from wit_builder.crawl.download.images import (DECODE_HEADROOM, ImageSettings,  # noqa: E402
                                               process_image, scaled_size)

PILLOW = "11.0.0"
WALLPAPERS = "4:5.27.5-2"   # Debian's plasma-workspace-wallpapers (apt-cache policy)
# The real photographs in Pillow's Tests/images (as in tests/crawl/test_image_quality.py).
PILLOW_PHOTOGRAPHS = ("exif-72dpi-int.jpg", "exif_typeerror.jpg", "flower.jpg", "flower2.jpg",
                      "frozenpond.mpo", "fujifilm.mpo", "iptc.jpg", "junk_jpeg_header.jpg",
                      "sugarshack.mpo", "xmp_test.jpg")
WALLPAPER_SIZES = ("800x600", "1280x1024", "1920x1080")


def generate_jpegs(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` JPEGs of varied sizes (0.05 to 1.5 MP, most larger than the target)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        width = int(rng.integers(160, 1400))
        height = int(np.clip(width * rng.uniform(0.5, 1.5), 120, 1200))
        small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small, "RGB").resize((width, height), Image.BICUBIC)
        noise = rng.normal(0, 3, (height, width, 3))
        pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


class ImageServer(asyncio.Protocol):
    """A minimal HTTP/1.1 server (keep-alive, GET only): /img/N.jpg is image N modulo the count,
    anything else 404. It shares the machine's cores with the tools it serves, so it does as
    little as it can (a prepared header, no framework): 0.07-0.09 CPU ms a request on bench_crawl's
    images, against 0.11-0.15 for an aiohttp.web server, which took that CPU from whichever tool
    was running."""

    def __init__(self, bodies: list[bytes]):
        self.bodies, self.buffer, self.transport = bodies, b"", None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            request_line, _, headers = head.partition(b"\r\n")
            parts = request_line.split(b" ")
            path = parts[1] if len(parts) == 3 else b""
            name = path.rsplit(b"/", 1)[-1]
            if parts[0] == b"GET" and path.startswith(b"/img/") and name.endswith(b".jpg") \
                    and name[:-4].isdigit():
                body = self.bodies[int(name[:-4]) % len(self.bodies)]
                status, kind = b"200 OK", b"image/jpeg"
            else:
                body, status, kind = b"not found", b"404 Not Found", b"text/plain"
            close = parts[-1] == b"HTTP/1.0" or b"connection: close" in headers.lower()
            header = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
                status, kind, len(body), b"Connection: close\r\n" if close else b"")
            self.transport.writelines((header, body))   # one send: no wait for an ACK between
            if close:
                self.transport.close()
                return


def serve(folder: str) -> None:
    """The image server (run in its own process): prints its port, then serves until killed."""
    bodies = [p.read_bytes() for p in sorted(Path(folder).glob("*.jpg"),
                                                key=lambda p: int(p.stem))]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: ImageServer(bodies), "127.0.0.1", 0,
                                          backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DescendantCPU:
    """CPU seconds used by this process's descendants (worker pools included), sampled from /proc
    while they run, since pool workers exit before anyone could read their usage."""

    def __init__(self, exclude: int, interval: float = 0.1):
        self.exclude, self.interval = exclude, interval
        self.seen: dict[int, float] = {}
        self.sampling_cpu = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample_until_stopped, daemon=True)

    def __enter__(self) -> "DescendantCPU":
        # Processes already alive (a fork server kept from an earlier run) count from now on.
        self.before = self.read_all()
        self.thread.start()
        return self

    def read_all(self) -> dict[int, float]:
        usage = {}
        for pid in descendants(os.getpid(), self.exclude):
            try:
                usage[pid] = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
        return usage

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def sample_until_stopped(self) -> None:
        started = time.thread_time()
        while not self.stop.wait(self.interval):
            for pid, seconds in self.read_all().items():
                self.seen[pid] = max(self.seen.get(pid, 0.0), seconds)
            self.sampling_cpu = time.thread_time() - started

    @property
    def seconds(self) -> float:
        return sum(seconds - self.before.get(pid, 0.0) for pid, seconds in self.seen.items())


def descendants(root: int, exclude: int) -> list[int]:
    """Pids below `root` in the process tree, without the subtree of `exclude`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child != exclude:
                found.append(child)
                stack.append(child)
    return found


def write_selection(path: Path, base: str, count: int) -> None:
    rows = [{"uid": f"{i:040x}", "url": f"{base}/img/{i}.jpg", "text": f"image {i}",
             "page_url": "", "source": "pool", "lang": "en", "lang_prob": 1.0,
             "query_ids": [0], "selected_by": [0]} for i in range(count)]
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas.SELECTION), path)


def run_img2dataset(selection: Path, output: Path, args: argparse.Namespace) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset import download

    download(url_list=str(selection), input_format="parquet", url_col="url", caption_col="text",
             output_format="webdataset", output_folder=str(output),
             processes_count=args.workers, thread_count=args.concurrency,
             image_size=args.image_size, resize_mode="keep_ratio_largest",
             resize_only_if_bigger=True, encode_quality=90,
             number_sample_per_shard=args.per_shard, timeout=20, retries=0,
             compute_hash="sha256", extract_exif=False, enable_wandb=False,
             distributor="multiprocessing")
    return sum(pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
               for p in output.glob("*.parquet"))


def run_witbuilder(selection: Path, workdir: Path, args: argparse.Namespace) -> int:
    config = load_config("crawl", None, {
        "workdir": str(workdir), "workers": args.workers, "concurrency": args.concurrency,
        "download_per_host": args.concurrency, "samples_per_shard": args.per_shard,
        "image_size": args.image_size, "resize_mode": "keep_ratio", "quality": 90,
        "decode": args.decode, "retries": 0, "allow_private": True})
    return download_selection(config, selection)["stored"]


def real_photographs() -> dict[str, list[bytes]]:
    """{set name: JPEG bodies} of the real photographs that can be fetched (a set that cannot is
    left out, with the reason on stderr)."""
    found = {}
    try:
        folder = fetch_sdist("pillow", PILLOW) / "Tests" / "images"
        found[f"Pillow {PILLOW} photographs"] = [(folder / name).read_bytes()
                                                for name in PILLOW_PHOTOGRAPHS]
    except Unavailable as error:
        print(f"bench_download: Pillow's photographs left out: {error}", file=sys.stderr)
    try:
        root = fetch_deb("plasma-workspace-wallpapers", WALLPAPERS) / "usr/share/wallpapers"
        found["KDE Plasma wallpapers"] = [
            path.read_bytes() for path in sorted(root.glob("*/contents/images/*.jpg"))
            if path.stem in WALLPAPER_SIZES]
    except Unavailable as error:
        print(f"bench_download: the Plasma wallpapers left out: {error}", file=sys.stderr)
    return found


def pillow_step(image_size: int, quality: int):
    """The neutral ceiling's image step: Pillow decodes in full, resizes (bicubic, its default)
    to img2dataset's size and encodes; no reduced decode, no OpenCV."""
    from PIL import Image

    settings = ImageSettings(image_size=image_size)

    def step(body: bytes) -> bytes:
        with Image.open(io.BytesIO(body)) as image:
            picture = image.convert("RGB")
        picture = picture.resize(scaled_size(*picture.size, settings), Image.Resampling.BICUBIC)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=quality)
        return out.getvalue()
    return step


def img2dataset_step(image_size: int, quality: int):
    """img2dataset's own image step (its Resizer, as bench runs set it), for comparison."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset.resizer import Resizer

    resizer = Resizer(image_size, "keep_ratio_largest", resize_only_if_bigger=True,
                      encode_quality=quality)
    return lambda body: resizer(io.BytesIO(body))[0]


def witbuilder_step(image_size: int, quality: int, decode: str):
    settings = ImageSettings(image_size=image_size, quality=quality, decode=decode)
    return lambda body: process_image(body, settings).jpeg


def image_steps(args: argparse.Namespace) -> dict[str, object]:
    """label → the image step (bytes → stored JPEG) of each ceiling and comparison row."""
    steps = {"Pillow full decode + resize + encode": pillow_step(args.image_size, 90),
             "img2dataset's Resizer": img2dataset_step(args.image_size, 90)}
    for decode in [args.decode] + [d for d in DECODE_HEADROOM if d != args.decode]:
        steps[f"witbuilder process_image, --decode {decode}"] = witbuilder_step(
            args.image_size, 90, decode)
    return steps


def ceiling_round(bodies: list[bytes], steps: dict, seconds: float) -> dict[str, float]:
    """CPU ms an image of each step, one after the other in one thread, no network, for about
    `seconds` of CPU each (CPU time, not wall time, so other programs do not lower a ceiling;
    the steps interleave, so a drifting load reaches them all)."""
    import cv2

    cv2.setNumThreads(1)
    costs = {}
    for label, step in steps.items():
        done, started = 0, time.thread_time()
        while time.thread_time() - started < seconds:
            step(bodies[done % len(bodies)])
            done += 1
        costs[label] = 1000 * (time.thread_time() - started) / done
    return costs


def psnr(stored: bytes, reference: np.ndarray) -> float:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"), np.float64)
    return 10 * np.log10(255 ** 2 / np.mean((pixels - reference) ** 2))


def quality(bodies: list[bytes], steps: dict, image_size: int) -> dict[str, tuple[float, int]]:
    """label → (mean PSNR against a full decode + exact Lanczos resize to img2dataset's output
    size, how many output sizes differ from img2dataset's)."""
    from PIL import Image

    theirs = img2dataset_step(image_size, 90)
    scores: dict[str, list[float]] = {label: [] for label in steps}
    wrong_size = dict.fromkeys(steps, 0)
    for body in bodies:
        with Image.open(io.BytesIO(theirs(body))) as stored:
            size = stored.size
        with Image.open(io.BytesIO(body)) as image:
            reference = np.asarray(image.convert("RGB").resize(
                size, Image.Resampling.LANCZOS, reducing_gap=None), np.float64)
        for label, step in steps.items():
            jpeg = step(body)
            with Image.open(io.BytesIO(jpeg)) as stored:
                if stored.size != size:
                    wrong_size[label] += 1
                    continue
            scores[label].append(psnr(jpeg, reference))
    return {label: (float(np.mean(scores[label])), wrong_size[label]) for label in steps}


def timed(label: str, function, server_pid: int, images: int) -> dict:
    """Wall time, and CPU time of this process and its workers (the server's counted apart)."""
    cpu_before, started = cpu_seconds(server_pid), time.perf_counter()
    own_before = time.process_time()
    with DescendantCPU(exclude=server_pid) as workers:
        stored = function()
    seconds = time.perf_counter() - started
    # This process's CPU counts (the driver, tqdm), the sampler's own /proc reading does not.
    cpu = workers.seconds + time.process_time() - own_before - workers.sampling_cpu
    return {"label": label, "stored": stored, "seconds": seconds, "rate": images / seconds,
            "cpu_ms": 1000 * cpu / images, "server_cpu": cpu_seconds(server_pid) - cpu_before}


def combined(results: list[dict]) -> dict:
    """Several runs of one downloader as one: total images over total seconds and CPU."""
    images = sum(r["rate"] * r["seconds"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    return {"label": results[0]["label"], "stored": sum(r["stored"] for r in results),
            "seconds": seconds, "rate": images / seconds,
            "cpu_ms": sum(r["cpu_ms"] * r["rate"] * r["seconds"] for r in results) / images,
            "server_cpu": sum(r["server_cpu"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--distinct", type=int, default=300, help="distinct JPEGs generated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-shard", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each downloader (2: img2dataset, witbuilder, witbuilder, "
                             "img2dataset)")
    parser.add_argument("--decode", default="reduced", choices=list(DECODE_HEADROOM),
                        help="witbuilder's --decode")
    parser.add_argument("--ceiling-seconds", type=float, default=1.5,
                        help="CPU seconds of each image step in each round of the ceilings")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "jpegs").mkdir()
        paths = generate_jpegs(scratch / "jpegs", args.distinct, seed=0)
        mean_kb = np.mean([os.path.getsize(p) for p in paths]) / 1e3
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(scratch / "jpegs")],
                                  stdout=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{server.stdout.readline().strip()}"
            selection = scratch / "selection.parquet"
            write_selection(selection, base, args.images)
            # The ceilings are measured in rounds before, between and after the runs, so that
            # they see the same machine (load, clock) as the runs do; with --repeats 2 the runs
            # go img2dataset, witbuilder, witbuilder, img2dataset, which cancels a drifting load.
            bodies = [path.read_bytes() for path in paths]
            steps = image_steps(args)
            rounds = [ceiling_round(bodies, steps, args.ceiling_seconds)]
            runs: dict[str, list[dict]] = {"img2dataset": [], "witbuilder": []}
            for repeat in range(args.repeats):
                for label in list(runs)[::1 if repeat % 2 == 0 else -1]:
                    run = run_img2dataset if label == "img2dataset" else run_witbuilder
                    output = scratch / f"{label}-{repeat}"
                    runs[label].append(timed(label, lambda: run(selection, output, args),
                                             server.pid, args.images))
                    rounds.append(ceiling_round(bodies, steps, args.ceiling_seconds))
        finally:
            server.terminate()
            server.wait()
        load_after = os.getloadavg()[0]
        sets = {f"served JPEGs ({args.distinct})": bodies, **real_photographs()}
        scores = {name: quality(images, steps, args.image_size) for name, images in sets.items()}
    costs = {label: statistics.median(r[label] for r in rounds) for label in steps}
    print_download_table(args, runs, costs, mean_kb, load_before, load_after)
    print_step_table(args, rounds, costs, scores, {name: len(b) for name, b in sets.items()})


def print_download_table(args, runs, costs, mean_kb, load_before, load_after) -> None:
    i2d, wit = (combined(results) for results in runs.values())
    neutral_ms = costs["Pillow full decode + resize + encode"]
    own_ms = costs[f"witbuilder process_image, --decode {args.decode}"]
    neutral = 1000 / neutral_ms * args.workers
    rows = [[f"{r['label']}" + (f" (--decode {args.decode})" if r is wit else ""), args.workers,
             r["stored"], r["seconds"], r["rate"], r["rate"] / i2d["rate"], r["rate"] / neutral,
             r["cpu_ms"], neutral_ms / r["cpu_ms"], own_ms / r["cpu_ms"], r["server_cpu"]]
            for r in (i2d, wit)]
    for label, ms in (("ceiling: Pillow full decode + resize + encode", neutral_ms),
                      (f"ceiling: witbuilder's image step (--decode {args.decode})", own_ms)):
        rate = 1000 / ms * args.workers
        rows.append([f"{label} ({1000 / ms:.0f}/core x {args.workers})", args.workers, "-", "-",
                     rate, rate / i2d["rate"], rate / neutral, ms, neutral_ms / ms, own_ms / ms,
                     "-"])
    print_table(f"Download: {args.repeats} x {args.images} JPEGs ({args.distinct} distinct, mean "
                f"{mean_kb:.0f} kB) to {args.image_size} px longest side, {os.cpu_count()} cores, "
                f"load average {load_before:.1f} before, {load_after:.1f} after",
                ["downloader", "processes", "stored", "seconds", "images/s", "vs img2dataset",
                 "share of Pillow ceiling (wall)", "CPU ms/image",
                 "share of Pillow ceiling (CPU)", "share of own image-step ceiling (CPU)",
                 "server CPU s"], rows)


def print_step_table(args, rounds, costs, scores, counts) -> None:
    """One core's image step: median CPU ms over the interleaved rounds (and their spread), and
    its output quality on each image set, against img2dataset's."""
    i2d = "img2dataset's Resizer"
    columns = ["image step (one core)", "CPU ms/image (median)", f"spread ({len(rounds)} rounds)",
               "images/s per core"]
    for name, count in counts.items():
        columns += [f"PSNR dB, {name}" + ("" if "served" in name else f" ({count})"),
                    "vs img2dataset", "sizes != img2dataset"]
    rows = []
    for label, ms in costs.items():
        spread = [r[label] for r in rounds]
        row = [label, ms, f"{min(spread):.2f}-{max(spread):.2f}", 1000 / ms]
        for name in counts:
            mean, wrong = scores[name][label]
            row += [mean, f"{mean - scores[name][i2d][0]:+.2f}", wrong]
        rows.append(row)
    print_table(f"Image step alone: {args.image_size} px longest side, quality 90; PSNR against "
                f"a full decode + exact Lanczos resize to img2dataset's size", columns, rows)


if __name__ == "__main__":
    main()
