"""`manifests/report.html`: the dataset at a glance, for a person, with matplotlib PNG plots.

Samples per query before and after balancing (rank plot, log axes, the cap drawn), the head/tail
share, download statuses, image sizes and aspects, caption lengths, queries that matched nothing,
and a grid of samples with their captions.
"""

from __future__ import annotations

import html
import io
import json
import logging
import textwrap
from collections import Counter

import matplotlib

matplotlib.use("Agg")  # no display: the report is rendered to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from wit_builder.core import store  # noqa: E402
from wit_builder.shards.config import ShardsConfig  # noqa: E402
from wit_builder.core.tarsamples import read_samples  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_CAP = 20_000
THUMBNAILS = 16
ZERO_MATCH_LISTED = 100


def save_figure(figure: plt.Figure, path: store.Location) -> str:
    """Write the figure as a PNG atomically; its name, for the page's <img>."""
    with store.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=96, metadata={"Software": None})
    plt.close(figure)
    return store.name(path)


def read_table_if_present(path: store.Location, columns: list[str]) -> pa.Table | None:
    if not store.is_file(path):
        return None
    try:
        return store.read_parquet(path, columns=columns)
    except (OSError, pa.ArrowException, KeyError) as error:
        log.warning("report: %s unreadable (%s): its plot is left out", path, error)
        return None


def plot_query_ranks(balance: pa.Table, cap: int, path: store.Location) -> str:
    """Samples per query, queries ranked by count, before and after balancing, log-log."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for column, label in (("matched", "matched (before balancing)"),
                          ("selected", "selected (after balancing)")):
        counts = np.sort(np.asarray(balance[column].to_pylist(), dtype=np.int64))[::-1]
        counts = counts[counts > 0]
        if len(counts):
            axes.plot(np.arange(1, len(counts) + 1), counts, label=label)
    axes.axhline(cap, color="red", linestyle="--", label=f"cap ({cap:,} per query)")
    axes.set(xscale="log", yscale="log", xlabel="query rank", ylabel="pairs per query",
             title="Pairs per query, before and after balancing")
    axes.legend()
    return save_figure(figure, path)


def head_tail_shares(balance: pa.Table, cap: int) -> dict[str, dict[str, float]]:
    """Share of pairs held by head queries (more matches than the cap) vs tail, before and after."""
    matched = np.asarray(balance["matched"].to_pylist(), dtype=np.int64)
    selected = np.asarray(balance["selected"].to_pylist(), dtype=np.int64)
    head = matched > cap
    shares = {}
    for name, counts in (("before", matched), ("after", selected)):
        total = max(int(counts.sum()), 1)
        shares[name] = {"head": counts[head].sum() / total, "tail": counts[~head].sum() / total}
    shares["queries"] = {"head": int(head.sum()), "tail": int((~head).sum())}
    return shares


def plot_head_tail(shares: dict, path: store.Location) -> str:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    labels = ["before balancing", "after balancing"]
    heads = [shares["before"]["head"], shares["after"]["head"]]
    tails = [shares["before"]["tail"], shares["after"]["tail"]]
    axes.barh(labels, heads, label=f"head queries ({shares['queries']['head']:,})")
    axes.barh(labels, tails, left=heads, label=f"tail queries ({shares['queries']['tail']:,})")
    axes.set(xlim=(0, 1), xlabel="share of pairs", title="Head vs tail queries")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_counts(counts: dict[str, int], title: str, path: store.Location) -> str:
    figure, axes = plt.subplots(figsize=(7, 0.4 * max(len(counts), 3) + 1.2))
    names = sorted(counts, key=lambda name: (counts[name], name))  # largest bar on top
    axes.barh(names, [counts[name] for name in names])
    axes.set(xlabel="count", title=title)
    figure.tight_layout()
    return save_figure(figure, path)


def image_sides(samples: pa.Table, prefix: str = "") -> list[tuple[int, int]]:
    """(width, height) of the samples whose sizes are known."""
    return [(w, h) for w, h in zip(samples[f"{prefix}width"].to_pylist(),
                                   samples[f"{prefix}height"].to_pylist()) if w and h]


def plot_images(samples: pa.Table, path: store.Location) -> str:
    """Original and stored longest sides, and aspect ratios, of the kept images."""
    figure, (sizes, aspects) = plt.subplots(1, 2, figsize=(10, 3.8))
    for prefix, label in (("original_", "original"), ("", "stored")):
        longest = [max(side) for side in image_sides(samples, prefix)]
        if longest:
            sizes.hist(longest, bins=30, alpha=0.6, label=label)
    sizes.set(xlabel="longest side (px)", ylabel="images", title="Image sizes")
    sizes.legend()
    ratios = [w / h for w, h in image_sides(samples)]
    if ratios:
        aspects.hist(ratios, bins=30)
    aspects.set(xlabel="aspect ratio (width / height)", ylabel="images", title="Aspect ratios")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_caption_lengths(samples: pa.Table, path: store.Location) -> str:
    figure, axes = plt.subplots(figsize=(7, 3.5))
    lengths = np.asarray(samples["text_chars"].to_pylist(), dtype=np.int64)
    if len(lengths):
        axes.hist(lengths, bins=40)
    axes.set(xlabel="caption length (characters)", ylabel="samples", title="Caption lengths")
    figure.tight_layout()
    return save_figure(figure, path)


def first_samples(shards: list[store.Location], count: int) -> list[tuple[bytes, str]]:
    """(jpeg, caption) of the first `count` samples of the shards, in order."""
    found: list[tuple[bytes, str]] = []
    for shard in shards:
        with store.open(shard, "rb") as stream:
            for _, members in read_samples(stream, Counter(), str(shard)):
                if "jpg" in members and "txt" in members:
                    found.append((members["jpg"], members["txt"].decode("utf-8", "replace")))
                if len(found) == count:
                    return found
    return found


def plot_thumbnails(samples: list[tuple[bytes, str]], path: store.Location) -> str:
    columns = 4
    rows = max(1, -(-len(samples) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(12, 3.4 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, (jpeg, caption) in zip(grid.flat, samples):
        with Image.open(io.BytesIO(jpeg)) as image:
            axes.imshow(np.asarray(image.convert("RGB")))
        short = caption if len(caption) <= 90 else caption[:87] + "..."
        axes.set_title("\n".join(textwrap.wrap(short, 30)), fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def zero_match_queries(balance: pa.Table, queries: pa.Table | None) -> tuple[int, list[str]]:
    """How many queries matched nothing, and the first of them by query id."""
    zero = [qid for qid, matched in zip(balance["query_id"].to_pylist(),
                                        balance["matched"].to_pylist()) if not matched]
    if queries is None:
        return len(zero), [f"query {qid}" for qid in zero[:ZERO_MATCH_LISTED]]
    names = dict(zip(queries["query_id"].to_pylist(), queries["query"].to_pylist()))
    return len(zero), [names.get(qid, f"query {qid}") for qid in zero[:ZERO_MATCH_LISTED]]


def table_html(title: str, counts: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(format_value(v))}</td>"
                   f"</tr>" for k, v in counts.items())
    return f"<h2>{html.escape(title)}</h2><table>{rows or '<tr><td>none</td></tr>'}</table>"


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def figure_html(name: str, caption: str) -> str:
    return (f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>witbuilder dataset report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin-bottom:1em}}td{{border:1px solid #ccc;padding:2px 8px}}
td:last-child{{text-align:right}}img{{max-width:100%}}figure{{margin:1em 0}}</style></head>
<body><h1>witbuilder dataset report</h1>
{body}
</body></html>
"""


def write_report(config: ShardsConfig, summary: dict, samples: pa.Table, written: list[dict]
                 ) -> store.Location:
    """Write manifests/report.html and its PNGs from the stage's results and the crawl's files."""
    manifests = config.path("manifests")
    folder = store.join(manifests, "report")
    cap = summary["parameters"].get("per_query") or DEFAULT_CAP
    parts = [table_html("Totals", summary["totals"])]
    balance = read_table_if_present(store.join(manifests, "balance.parquet"),
                                    ["query_id", "matched", "selected"])
    if balance is not None and balance.num_rows:
        ranks = plot_query_ranks(balance, cap, store.join(folder, "queries.png"))
        parts.append(figure_html(f"report/{ranks}",
                                 "Pairs per query, ranked, before and after balancing"))
        shares = head_tail_shares(balance, cap)
        head_tail = plot_head_tail(shares, store.join(folder, "head_tail.png"))
        parts.append(figure_html(f"report/{head_tail}",
                                 f"Share of pairs held by queries over the cap of {cap:,}"))
        queries = read_table_if_present(config.path("queries/queries.parquet"),
                                        ["query_id", "query"])
        zero, names = zero_match_queries(balance, queries)
        listed = ", ".join(html.escape(name) for name in names)
        parts.append(f"<h2>Queries with zero matches: {zero:,} of {balance.num_rows:,}</h2>"
                     f"<p>{listed}{' ...' if zero > len(names) else ''}</p>")
    if summary["per_status"]:
        name = plot_counts(summary["per_status"], "Download statuses",
                           store.join(folder, "statuses.png"))
        parts.append(figure_html(f"report/{name}", "Download statuses of every attempted URL"))
    if samples.num_rows:
        images = plot_images(samples, store.join(folder, "images.png"))
        parts.append(figure_html(f"report/{images}",
                                 "Image sizes and aspect ratios of the kept samples"))
        captions = plot_caption_lengths(samples, store.join(folder, "captions.png"))
        parts.append(figure_html(f"report/{captions}",
                                 "Caption lengths of the kept samples"))
    for title, key in (("Per source", "per_source"), ("Language decisions", "per_language"),
                       ("Duplicates removed", "per_dedup_kind"), ("Skipped inputs", "skipped"),
                       ("Parameters", "parameters")):
        parts.append(table_html(title, summary[key]))
    for title, key in (("Removed after the build (takedown lists, opt-outs re-checked)",
                        "per_removal_reason"), ("Opt-outs re-checked, per image URL",
                                                "optout_recheck"),
                       ("Faces blurred at download (wit crawl --blur-faces)", "blurred")):
        if summary.get(key):  # only when asked for (shards/consent.py, the crawl's options)
            parts.append(table_html(title, summary[key]))
    shards = sorted(written, key=lambda row: (row["split"] != "train", row["shard"]))
    out = config.path("data/shards")
    thumbnails = first_samples([store.join(out, row["shard"]) for row in shards], THUMBNAILS)
    if thumbnails:
        name = plot_thumbnails(thumbnails, store.join(folder, "samples.png"))
        parts.append(figure_html(f"report/{name}", "The first samples of the training shards, "
                                                   "with their captions"))
    path = store.join(manifests, "report.html")
    store.write_text(path, PAGE.format(body="\n".join(parts)))
    return path
