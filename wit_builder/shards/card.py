"""What lies beside the training shards for the tools that read them (issue 19):

- `sizes.json`: shard file name -> samples, the file open_clip_train reads when
  `--train-num-samples` is not given (`get_dataset_size`), for train and val shards alike;
- `_info.json`: the totals per split (samples, shards, bytes) and the shard names, for
  `datasets` and anyone who wants the size without opening a tar;
- `README.md`, the dataset card: where the data came from, what each step kept and dropped and
  why, the filters and their settings, languages, the opt-out policy and what it refused, the
  duplicates removed, the licences as recorded, how to cite; `manifests/report.html` has the plots.

Everything here is derived from `manifests/dataset.json` and the crawl's `crawl_stats.json`, so the
card says nothing the manifests do not record, and the same inputs give the same bytes.
"""

from __future__ import annotations

from wit_builder.core import store

SPLITS = ("train", "val")
OPT_OUT_STATUSES = ("opted_out", "robots", "blocked_address")
NOT_PAIRS = ("pages", "off_site_link")  # counted among the drops by older crawls


def write_sizes(out: store.Location, written: list[dict], additional: list[str] = ()) -> None:
    """sizes.json and _info.json of the shards `written` (rows of manifests/shards.parquet);
    `additional`: the pool columns each sample's `.json` carries too (crawl_stats.json)."""
    rows = sorted(written, key=lambda row: row["shard"])
    store.write_json(store.join(out, "sizes.json"), {row["shard"]: row["samples"] for row in rows})
    splits = {}
    for split in SPLITS:
        mine = [row for row in rows if row["split"] == split]
        splits[split] = {"samples": sum(row["samples"] for row in mine), "shards": len(mine),
                         "bytes": sum(row["bytes"] for row in mine),
                         "files": [row["shard"] for row in mine]}
    store.write_json(store.join(out, "_info.json"),
                     {"format": "webdataset", "members": ["jpg", "txt", "json"],
                      "total_samples": sum(split["samples"] for split in splits.values()),
                      "splits": splits,
                      **({"additional_columns": list(additional)} if additional else {})})


def table(rows: list[tuple[object, object]], header: tuple[str, str]) -> list[str]:
    if not rows:
        return ["(none recorded)", ""]
    lines = [f"| {header[0]} | {header[1]} |", "|---|---:|"]
    lines += [f"| {name} | {value:,} |" if isinstance(value, int) else f"| {name} | {value} |"
              for name, value in rows]
    return lines + [""]


def dataset_card(summary: dict, crawl_stats: dict) -> str:
    """The text of data/shards/README.md."""
    totals, parameters, inputs = summary["totals"], summary["parameters"], summary["inputs"]
    statuses = summary.get("per_status", {})
    dropped = {reason: count for reason, count in crawl_stats.get("dropped", {}).items()
               if reason not in NOT_PAIRS}
    language = crawl_stats.get("language") or {}
    lines = [
        "# Dataset card",
        "",
        "Image-text pairs built by witbuilder, an open rebuild of the WIT recipe of CLIP (Radford",
        "et al., 2021): image-text pairs from the web, English texts that contain one of the",
        "queries, at most `per_query` pairs a query, images stored as resized JPEGs.",
        "Written by `wit shards` from `manifests/dataset.json` and `manifests/crawl_stats.json`;",
        "the plots are in `manifests/report.html`.",
        "",
        "## Contents",
        "",
        *table([(f"{split} samples", totals.get(split, 0)) for split in SPLITS]
               + [(f"{split} shards", totals.get(f"{split}_shards", 0)) for split in SPLITS]
               + [("bytes", totals.get("bytes", 0))], ("", "count")),
        "Each sample: `KEY.jpg` (the image), `KEY.txt` (its text), `KEY.json` (uid, url, page_url,",
        "query_ids, sizes, sha256 of the downloaded bytes). `sizes.json` gives the samples of each",
        "shard (open_clip_train reads it), `_info.json` the totals.",
        *additional_columns_line(crawl_stats),
        "",
        "## Sources",
        "",
        *([f"- `{source}`" for source in inputs.get("sources", [])] or ["(not recorded)"]),
        "",
        *table(sorted(summary.get("per_source", {}).items()), ("source", "samples kept")),
        "## What each step kept and dropped",
        "",
        "Crawl: pairs dropped before the download, by reason (`crawl_stats.json`):",
        "",
        *table(sorted(dropped.items(), key=lambda item: -item[1]), ("reason", "pairs")),
        "Download: every selected URL's status (`manifests/crawl/*.parquet`):",
        "",
        *table(sorted(statuses.items(), key=lambda item: -item[1]), ("status", "URLs")),
        f"Shards: {totals.get('samples_read', 0):,} samples read, "
        f"{totals.get('duplicates', 0):,} duplicates removed, {totals.get('skipped', 0):,} "
        f"skipped; kept {totals.get('samples', 0):,}.",
        "",
        *removed_after_build(summary),
        "## Filters and their settings",
        "",
        f"- Queries: the file with sha256 `{inputs.get('queries_sha256')}`; a pair is kept when its "
        f"text contains a query; at most {parameters.get('per_query')} pairs a query "
        f"({parameters.get('balance_mode')} balancing).",
        f"- Language: `{language.get('lang', 'en')}` only; detector "
        f"`{language.get('detector', 'not recorded')}`"
        + (f", least probability {language['min_lang_prob']}" if "min_lang_prob" in language
           else "") + ".",
        f"- Duplicates: exact (sha256 of the image) and near (perceptual hash within "
        f"{parameters.get('near_dup_bits')} bits"
        + (", confirmed by a second look" if parameters.get("near_dup_check") else "") + ").",
        f"- Validation split: {parameters.get('val_fraction')} of the samples, by a seeded hash "
        f"of their uid (seed {parameters.get('seed')}).",
        "",
        "## Languages",
        "",
        *table(sorted(summary.get("per_language", {}).items()), ("decision", "texts")),
        "## Opt-outs and safety",
        "",
        "The crawl obeys robots.txt for pages and for each image's host (RFC 9309), and the",
        "`noai`/`noimageai` opt-outs of `X-Robots-Tag` headers and robots meta tags; private,",
        "loopback and link-local addresses are never requested unless the run said so",
        "(`--allow-private`, `--trusted-origins`). What they refused:",
        "",
        *table([(status, statuses.get(status, 0)) for status in OPT_OUT_STATUSES]
               + [(reason, count) for reason, count in sorted(dropped.items())
                  if reason in ("robots", "opted_out", "blocked_address")], ("refused", "count")),
        *safety_lines(crawl_stats.get("safety") or {}, statuses, summary.get("blurred") or {}),
        "",
        "## Licences",
        "",
        "The images and texts belong to their owners; witbuilder records no licence for them",
        "(each sample's `url` and `page_url` say where it came from). Check the terms of the",
        "sources before you use or share the data.",
        *(["A licence the pool recorded is in each `.json`, among the pool's columns above."]
          if crawl_stats.get("additional_columns") else []),
        "",
        "## Citation",
        "",
        "The recipe: Radford et al., \"Learning Transferable Visual Models From Natural Language",
        "Supervision\", ICML 2021. The tool: witbuilder (cite its repository and version).",
        "",
    ]
    return "\n".join(lines)


def additional_columns_line(crawl_stats: dict) -> list[str]:
    """The card's line on the pool columns kept in every `.json` (`--save-additional-columns`)."""
    names = crawl_stats.get("additional_columns") or []
    if not names:
        return []
    return ["The `.json` also holds the pool's own columns, as the pool recorded them "
            "(`--save-additional-columns`): " + ", ".join(f"`{name}`" for name in names) + "."]


def safety_lines(safety: dict, statuses: dict, blurred: dict) -> list[str]:
    """What the download did about faces and NSFW images (`wit crawl --blur-faces`,
    `--nsfw-threshold`: crawl_stats.json), counted in the manifests (`statuses`, `blurred`:
    dataset.json), and what it did not."""
    if not safety:
        return ["Nothing here removes harmful content: no NSFW, face or toxicity filtering was "
                "applied."]
    lines = []
    if "face_detector" in safety:
        counted = (f"{blurred['faces_blurred']:,} faces in {blurred['images_blurred']:,} of "
                   f"{statuses.get('ok', 0):,} stored images; " if blurred else "")
        lines.append(f"Faces found by `{safety['face_detector']}` on each stored image were "
                     f"blurred before it was written ({counted}each sample's `.json` lists "
                     "them, `face_boxes`, its manifest row counts them, `faces`); a face the "
                     "detector missed is not blurred.")
    if "nsfw_threshold" in safety:
        lines.append(f"Images scored over {safety['nsfw_threshold']} by `{safety['nsfw_scorer']}` "
                     f"were dropped ({statuses.get('nsfw', 0):,}, status `nsfw`; each sample's "
                     "`.json` has its `nsfw_score`); the scorer misses some.")
    return lines + ["No toxicity filtering of the texts was applied."]


def removed_after_build(summary: dict) -> list[str]:
    """The card's lines on the samples removed from the written shards (takedown lists, opt-outs
    re-checked: shards/removal.py), none when nothing was."""
    lines = []
    if summary.get("per_removal_reason"):
        lines += ["Removed from the training shards after they were written "
                  "(`manifests/takedown.parquet`; a rebuild removes them again):", "",
                  *table(sorted(summary["per_removal_reason"].items()), ("reason", "samples"))]
    if summary.get("optout_recheck"):
        lines += ["Opt-outs re-checked after the crawl, per image URL (unreachable ones kept):",
                  "", *table(list(summary["optout_recheck"].items()), ("verdict", "URLs"))]
    return lines


def write_card(out: store.Location, summary: dict, crawl_stats: dict) -> None:
    store.write_bytes(store.join(out, "README.md"), dataset_card(summary, crawl_stats).encode())
