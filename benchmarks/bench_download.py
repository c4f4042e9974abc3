"""Download speed: witbuilder's native downloader against img2dataset, on the same generated
JPEGs served from a separate process on 127.0.0.1, with the same resize settings and process
count; and the in-process ceiling (decode + resize + encode per core, no network).

    .venv/bin/python benchmarks/bench_download.py --images 5000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from wit_builder.core import schemas  # noqa: E402
from wit_builder.cli import load_config  # noqa: E402
from wit_builder.crawl.download import download_selection  # noqa: E402
from wit_builder.crawl.download.images import ImageSettings, process_image  # noqa: E402


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


def serve(folder: str) -> None:
    """The image server (run in its own process): /img/N.jpg is image N modulo the count."""
    from aiohttp import web

    bodies = [p.read_bytes() for p in sorted(Path(folder).glob("*.jpg"),
                                                key=lambda p: int(p.stem))]

    async def image(request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        return web.Response(body=bodies[number % len(bodies)], content_type="image/jpeg")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/img/{number}.jpg", image)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

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
        "retries": 0, "allow_private": True})
    return download_selection(config, selection)["stored"]


def ceiling_slice(bodies: list[bytes], settings: ImageSettings,
                  seconds: float) -> tuple[int, float]:
    """(images, CPU seconds) of decode + resize + encode in one thread, no network, for about
    `seconds` of CPU (CPU time, not wall time, so other programs do not lower the ceiling)."""
    import cv2

    cv2.setNumThreads(1)
    done, started = 0, time.thread_time()
    while time.thread_time() - started < seconds:
        process_image(bodies[done % len(bodies)], settings)
        done += 1
    return done, time.thread_time() - started


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
            # The ceiling is measured in slices before, between and after the runs, so that it
            # sees the same machine (load, clock) as they do; with --repeats 2 the runs go
            # img2dataset, witbuilder, witbuilder, img2dataset, which cancels a drifting load.
            bodies = [path.read_bytes() for path in paths]
            settings = ImageSettings(image_size=args.image_size, quality=90)
            slices = [ceiling_slice(bodies, settings, 4)]
            runs: dict[str, list[dict]] = {"img2dataset": [], "witbuilder": []}
            for repeat in range(args.repeats):
                for label in list(runs)[::1 if repeat % 2 == 0 else -1]:
                    run = run_img2dataset if label == "img2dataset" else run_witbuilder
                    output = scratch / f"{label}-{repeat}"
                    runs[label].append(timed(label, lambda: run(selection, output, args),
                                             server.pid, args.images))
                    slices.append(ceiling_slice(bodies, settings, 4))
        finally:
            server.terminate()
            server.wait()
    i2d, wit = (combined(results) for results in runs.values())
    per_core = sum(done for done, _ in slices) / sum(cpu for _, cpu in slices)
    ceiling, ceiling_ms = per_core * args.workers, 1000 / per_core
    rows = [[r["label"], args.workers, r["stored"], r["seconds"], r["rate"],
             r["rate"] / i2d["rate"], r["rate"] / ceiling, r["cpu_ms"], ceiling_ms / r["cpu_ms"],
             r["server_cpu"]] for r in (i2d, wit)]
    rows.append([f"ceiling ({per_core:.0f}/core x {args.workers})", args.workers, "-", "-",
                 ceiling, ceiling / i2d["rate"], 1.0, ceiling_ms, 1.0, "-"])
    print_table(f"Download: {args.repeats} x {args.images} JPEGs ({args.distinct} distinct, mean "
                f"{mean_kb:.0f} kB) to {args.image_size} px longest side, {os.cpu_count()} cores, "
                f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
                ["downloader", "processes", "stored", "seconds", "images/s", "vs img2dataset",
                 "share of ceiling (wall)", "CPU ms/image", "share of ceiling (CPU)",
                 "server CPU s"], rows)


if __name__ == "__main__":
    main()
