"""`wit demo`: every stage on the embedded synthetic web, ending with a summary table.

generate → queries → serve the site on 127.0.0.1 → crawl it (live pages, and the same site as a
WARC file and as a URL pool, re-recorded for the port it is served on) → download → shards → train
(tiny) → zero-shot and retrieval evaluation. The server stops whatever happens.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from wit_builder.core import atomic
from wit_builder.synthweb.config import DemoConfig
from wit_builder.cli import load_config
from wit_builder.shards.summary import read_json_if_present
from wit_builder.core.options import WitError

log = logging.getLogger(__name__)

# Per size, the settings of each stage that differ from witbuilder.toml. "test" is the reduced
# demo of the test suite: the same code path on a smaller web and a shorter training run. The
# per-query cap is small so that, on a web of a few thousand pairs, balancing visibly bites.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "demo": {
        "synthweb": {"site_pages": 1200},
        "crawl": {"samples_per_shard": 1000, "image_size": 64, "per_query": 200},
        "shards": {"samples_per_shard": 500, "val_fraction": 0.05},
        "train": {"name": "demo", "model": "tiny-cnn", "steps": 700},
    },
    "test": {
        "synthweb": {"articles": 400, "vocab_size": 3000, "words_per_article": 250,
                     "site_pages": 160, "images_per_page": 8, "image_size": 64,
                     "zeroshot_per_class": 50},
        "crawl": {"samples_per_shard": 500, "image_size": 64, "per_query": 100, "workers": 1},
        "shards": {"samples_per_shard": 250, "val_fraction": 0.05, "workers": 1},
        "train": {"name": "demo", "model": "tiny-cnn", "steps": 150, "workers": 1},
    },
}


def stage_config(stage: str, demo: DemoConfig, **overrides: Any) -> Any:
    """A stage's settings: the config file, then the demo size's settings, then `overrides`."""
    values = {"workdir": demo.workdir, "seed": demo.seed,
              **SIZES[demo.size].get(stage, {}), **overrides}
    return load_config(stage, getattr(demo, "config_file", None) or None, values)


def crawl_synthweb(demo: DemoConfig, synthweb_config: Any, out: Path) -> None:
    """Serve the site and crawl it three ways: live, as a WARC recording, as a URL pool."""
    from wit_builder.crawl import run as crawl
    from wit_builder.synthweb.warc import record_site

    with serve_site(out / "site", demo.port) as server:
        recorded = out / "recorded"
        record_site(out, synthweb_config, server.url.rstrip("/"), recorded)
        sources = [f"web:{server.url}", f"warc:{recorded / 'site.warc.gz'}",
                   f"pool:{recorded / 'pool.parquet'}"]
        # The guard stays on: the demo trusts exactly the origin it serves, and nothing else
        # on this machine or its network; no delay between requests to its own server.
        config = stage_config("crawl", demo, source=sources, crawl_delay=0.0)
        crawl.run(crawl.trusting_site(config, server.url))


@contextmanager
def serve_site(site: Path, port: int) -> Iterator[Any]:
    """The site served on `port` when it is free (same URLs, so the same selection and val split
    on every run), else on any free port."""
    from wit_builder.synthweb.server import SiteServer

    with ExitStack() as stack:
        try:
            server = stack.enter_context(SiteServer(site, host="127.0.0.1", port=port))
        except WitError as error:
            if port == 0:
                raise
            log.warning("demo: %s; serving on another port, so this run's selection of pairs "
                        "and its val split differ from a run on port %d", error, port)
            server = stack.enter_context(SiteServer(site, host="127.0.0.1", port=0))
        yield server


def run_stages(demo: DemoConfig) -> dict:
    """Every stage, in order; returns what the summary needs."""
    from trainer import train
    from wit_builder.shards import run as shards
    from wit_builder.queries import build
    from wit_builder.synthweb.generate import generate

    timings: dict[str, float] = {}

    def timed(name: str, function, *args) -> Any:
        started = time.monotonic()
        result = function(*args)
        timings[name] = round(time.monotonic() - started, 1)
        return result

    synthweb_config = stage_config("synthweb", demo)
    out = Path(timed("synthweb", generate, synthweb_config))
    timed("queries", build.run, stage_config("queries", demo, **demo_queries_inputs(synthweb_config)))
    timed("crawl", crawl_synthweb, demo, synthweb_config, out)
    # Decontaminated against the demo's own held-out zero-shot sets (issue 20).
    held_out = [str(out / "zeroshot" / name) for name in ("shape", "colour")]
    timed("shards", shards.run, stage_config("shards", demo, exclude=held_out))
    train_config = stage_config("train", demo)
    if Path(train_config.path(f"runs/{train_config.name}/checkpoints/latest.pt")).exists():
        train_config = stage_config("train", demo, resume=True)  # a rerun continues the run
    timed("train", train.run, train_config)
    evaluation = timed("eval", evaluate_run, demo, train_config, out)
    return {"timings": timings, "evaluation": evaluation, "run": train_config.name}


def demo_queries_inputs(synthweb_config: Any) -> dict[str, Any]:
    """The queries stage's inputs: the generated dump, pageviews and WordNet, named by the demo
    itself (relative to the workdir, as witbuilder.toml names them), whatever config is read."""
    from wit_builder.synthweb.wiki import MULTISTREAM

    out = str(synthweb_config.out).rstrip("/")
    return {"wiki": f"{out}/{MULTISTREAM}", "pageviews": [f"{out}/pageviews"],
            "wordnet": f"{out}/wordnet"}


def evaluate_run(demo: DemoConfig, train_config: Any, out: Path) -> dict:
    """Zero-shot top-1 on the held-out shape and colour sets, and retrieval on the val shards."""
    from trainer.evaluate import evaluate_checkpoint

    checkpoint = Path(train_config.path(f"runs/{train_config.name}/checkpoints/latest.pt"))
    zeroshot = [out / "zeroshot" / "shape", out / "zeroshot" / "colour"]
    return evaluate_checkpoint(checkpoint.resolve(), [p.resolve() for p in zeroshot],
                               str((Path(demo.workdir) / "data" / "shards").resolve() / "val-*.tar"))


def summary_rows(workdir: Path, outcome: dict) -> list[tuple[str, str]]:
    """(what, figure) rows of the demo's closing table, read back from the stages' outputs."""
    rows: list[tuple[str, str]] = []
    queries = pq.read_table(workdir / "queries" / "queries.parquet", columns=["source"])
    per_source = queries.column("source").value_counts().to_pylist()
    rows.append(("queries", f"{queries.num_rows:,} (" + ", ".join(
        f"{item['values']} {item['counts']:,}" for item in per_source) + ")"))
    crawl = read_json_if_present(workdir / "manifests" / "crawl_stats.json")
    found = sum(source.get("candidates", 0) for source in crawl.get("per_source", {}).values())
    rows.append(("candidates found", f"{found:,}"))
    dropped = crawl.get("dropped", {})
    top = sorted(((count, reason) for reason, count in dropped.items() if reason != "pages"),
                 reverse=True)[:6]
    rows.append(("dropped, by reason", ", ".join(f"{reason} {count:,}" for count, reason in top)))
    balance = crawl.get("balance", {})
    rows.append(("matched → selected", f"{balance.get('matched_pairs', 0):,} → "
                                       f"{balance.get('selected_pairs', 0):,}"))
    dataset = read_json_if_present(workdir / "manifests" / "dataset.json")
    statuses = dict(dataset.get("per_status", {}))
    rows.append(("images stored", f"{statuses.pop('ok', 0):,}"))
    rows.append(("download failures", ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items()))
                 or "none"))
    totals = dataset.get("totals", {})
    for split in ("train", "val"):
        rows.append((f"{split} shards", f"{totals.get(f'{split}_shards', 0)} "
                                        f"({totals.get(split, 0):,} samples)"))
    losses = training_losses(workdir / "runs" / outcome["run"] / "metrics.jsonl")
    rows.append(("training loss", f"{losses[0]:.3f} → {losses[-1]:.3f}" if losses else "—"))
    for name, result in outcome["evaluation"].get("zeroshot", {}).items():
        rows.append((f"zero-shot top-1, {name}",
                     f"{result['top1']:.1%} (chance {result['chance']:.1%}, "
                     f"{result['top1'] / result['chance']:.1f}×)"))
    retrieval = outcome["evaluation"].get("retrieval", {})
    if retrieval:
        rows.append(("retrieval recall@5",
                     f"image→text {retrieval['image_to_text']['recall@5']:.1%}, "
                     f"text→image {retrieval['text_to_image']['recall@5']:.1%}"))
    rows.append(("report", str(workdir / "manifests" / "report.html")))
    rows.append(("run", str(workdir / "runs" / outcome["run"])))
    rows.append(("seconds per stage", ", ".join(f"{k} {v}" for k, v in outcome["timings"].items())))
    return rows


def training_losses(metrics: Path) -> list[float]:
    if not metrics.exists():
        return []
    lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [line["loss"] for line in lines if "loss" in line]


def print_summary(rows: list[tuple[str, str]]) -> None:
    width = max(len(what) for what, _ in rows)
    print("\nwitbuilder demo — summary")
    for what, figure in rows:
        print(f"  {what.ljust(width)}  {figure}")


def run(config: DemoConfig) -> int:
    if config.size not in SIZES:
        raise WitError(f"demo: unknown size '{config.size}'")
    started = time.monotonic()
    outcome = run_stages(config)
    workdir = Path(config.workdir)
    rows = summary_rows(workdir, outcome)
    rows.append(("total seconds", f"{time.monotonic() - started:.0f}"))
    print_summary(rows)
    atomic.write_json(workdir / "manifests" / "demo.json",
                      {"summary": dict(rows), "evaluation": outcome["evaluation"],
                       "timings": outcome["timings"]})
    return 0
