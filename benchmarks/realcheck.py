"""`make realcheck`: `wit crawl` and `wit shards` on real material that nobody on the project wrote,
run as a user runs them (whole `wit` processes), with every figure checked against an independent
count.

    .venv/bin/python benchmarks/realcheck.py [--workdir DIR] [--keep]

The material is fetched by the script into the real-material cache (tests/support/realdata.py;
`$WIT_REALDATA`, else ~/.cache/witbuilder-realdata) and never committed:
- GIMP 2.10's user manual in English and in German, Debian's `gimp-help-en` and `gimp-help-de`
  2.10.34-2: ~1,370 HTML pages a language with thousands of `<img alt>` (real alt texts such as
  "Dodge tool", "Gradient usage") and their PNG screenshots, served on 127.0.0.1 (trusted with
  `--trusted-origins`, nothing else opened);
- Debian's `wamerican` 2020.12.07-2 word list as the queries (every word one query), so that the
  matcher keeps any caption with an English word and the language filter decides the rest;
- the English manual recorded by GNU wget (`--warc-file`, the Debian `wget` on PATH) and crawled as
  a WARC.

It prints, per run: pages and image-text pairs the crawl harvested against an independent count
(Python's own html.parser over the same files: every `<img>` with a `src` and a non-empty `alt`);
the live crawl against the crawl of wget's WARC of the same pages;
the share of English captions kept and of German ones dropped by the language filter; the download
statuses; and what `wit shards` removed as exact and near duplicates.
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import print_table, write_queries  # noqa: E402
from support.realdata import Unavailable, fetch_deb  # noqa: E402

GIMP_HELP = "2.10.34-2"
WAMERICAN = "2020.12.07-2"
WIT = [sys.executable, "-m", "wit_builder.cli"]


class ImageAlts(html.parser.HTMLParser):
    """Every `<img>` with a `src` and a non-empty `alt` of one page: (src, alt), in page order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pairs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            values = dict(attrs)
            alt = " ".join((values.get("alt") or "").split())
            if values.get("src") and alt:
                self.pairs.append((values["src"], alt))

    handle_startendtag = handle_starttag


def independent_pairs(pages: dict[str, bytes]) -> set[tuple[str, str, str]]:
    """(page URL, absolute image URL, alt) of every page, by html.parser (not selectolax)."""
    pairs = set()
    for url, body in pages.items():
        parser = ImageAlts()
        parser.feed(body.decode("utf-8", "replace"))
        pairs.update((url, urljoin(url, src), alt) for src, alt in parser.pairs)
    return pairs


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wit(*args: str) -> float:
    """Run one `wit` command as a user does; exit on failure with its last lines."""
    started = time.monotonic()
    done = subprocess.run([*WIT, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"realcheck: `wit {' '.join(args)}` failed ({done.returncode}):\n"
                 + "\n".join(done.stderr.strip().splitlines()[-15:]))
    return time.monotonic() - started


def parquet_rows(folder: Path, columns: list[str] | None = None) -> list[dict]:
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return [row for path in files for row in pq.read_table(path, columns=columns).to_pylist()]


def crawl(workdir: Path, queries: Path, source: str, origin: str, download: bool) -> dict:
    seconds = wit("crawl", "--workdir", str(workdir), "--source", source, "--queries", str(queries),
                  "--trusted-origins", origin, "--crawl-delay", "0", "--max-pages", "100000",
                  "--max-depth", "0", "--workers", "2",
                  "--download" if download else "--no-download")
    stats = json.loads((workdir / "manifests" / "crawl_stats.json").read_text())
    harvested, candidates = ({(row["page_url"], row["url"], row["text"])
                              for row in parquet_rows(workdir / "data" / folder,
                                                      ["page_url", "url", "text"])}
                             for folder in ("harvest", "candidates"))
    matched = parquet_rows(workdir / "data" / "matched", ["url", "text"])
    return {"seconds": seconds, "stats": stats, "harvested": harvested, "candidates": candidates,
            "matched": matched}


def record_warc(url: str, folder: Path) -> tuple[Path, dict[str, bytes]]:
    """GNU wget's WARC of the site below `url` (recursive, page requisites), and its HTML pages."""
    from warcio.archiveiterator import ArchiveIterator

    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["wget", "--recursive", "--level=inf", "--no-parent", "--page-requisites",
                    "--no-verbose", "--tries=1", "--delete-after", "--warc-file=manual",
                    "--directory-prefix", str(folder / "mirror"), url],
                   cwd=folder, capture_output=True, check=False)
    warc = folder / "manual.warc.gz"
    if not warc.exists():
        sys.exit(f"realcheck: GNU wget wrote no WARC for {url}; is wget installed?")
    pages = {}
    with open(warc, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type == "response" and record.http_headers.get_statuscode() == "200" \
                    and "html" in (record.http_headers.get_header("Content-Type") or ""):
                target = record.rec_headers.get_header("WARC-Target-URI").strip("<>")
                pages[target] = record.content_stream().read()
    return warc, pages


def pages_crawled(stats: dict) -> int:
    """Pages the crawl read (crawl_stats.json reports them apart from the dropped pairs)."""
    return stats["counts"].get("pages", 0)


def language_split(workdir: Path, english_texts: set[str], part: str | None) -> tuple[int, int]:
    """(captions the language filter judged, of which it kept) among a crawl's candidates: it
    judges those that matched a query (their `lang` is set) and keeps those of the wanted
    language at or above the least probability (crawl_stats.json records both).
    `part`: only the texts found (`untranslated`) or not found (`translated`) in
    `english_texts`."""
    settings = json.loads((workdir / "manifests" / "crawl_stats.json").read_text())["language"]
    judged = kept = 0
    for row in parquet_rows(workdir / "data" / "candidates", ["text", "lang", "lang_prob"]):
        if row["lang"] is None:
            continue
        if part is not None and (row["text"] in english_texts) != (part == "untranslated"):
            continue
        judged += 1
        kept += row["lang"] == settings["lang"] and \
            row["lang_prob"] >= settings["min_lang_prob"] - 1e-6   # (stored as float32)
    return judged, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where the runs go (default: a temporary "
                        "folder, removed at the end unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the workdirs")
    args = parser.parse_args()
    try:
        english = fetch_deb("gimp-help-en", GIMP_HELP) / "usr/share/gimp/2.0/help"
        german = fetch_deb("gimp-help-de", GIMP_HELP) / "usr/share/gimp/2.0/help"
        words = fetch_deb("wamerican", WAMERICAN) / "usr/share/dict/american-english"
    except Unavailable as error:
        sys.exit(f"realcheck: {error}; run it where Debian's archive is reachable")
    shutil.which("wget") or sys.exit("realcheck: GNU wget is missing: apt-get install wget")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="realcheck-"))
    work.mkdir(parents=True, exist_ok=True)
    site = work / "site"   # one site: /en/ and /de/ side by side, as the manual is installed
    if not site.exists():
        site.mkdir()
        (site / "en").symlink_to(english / "en", target_is_directory=True)
        (site / "de").symlink_to(german / "de", target_is_directory=True)
    queries = work / "queries.parquet"
    query_count = write_queries(words, queries)
    server = serve(site)
    origin = f"127.0.0.1:{server.server_address[1]}"
    base = f"http://{origin}"
    print(f"realcheck: GIMP {GIMP_HELP} manual served at {base}, {query_count:,} queries "
          f"(wamerican {WAMERICAN}), workdirs in {work}")

    runs, pages_of = {}, {}
    for language in ("en", "de"):
        files = sorted((site / language).glob("*.html"))
        pages_of[language] = {f"{base}/{language}/{path.name}": path.read_bytes() for path in files}
        seeds = work / f"seeds-{language}.txt"
        seeds.write_text("".join(f"{url}\n" for url in pages_of[language]))
        runs[language] = crawl(work / f"crawl-{language}", queries, f"web:@{seeds}", origin,
                               download=language == "en")
    warc, warc_pages = record_warc(f"{base}/en/index.html", work / "wget")
    runs["warc"] = crawl(work / "crawl-warc", queries, f"warc:{warc}", origin, download=False)
    server.shutdown()

    rows = []
    for name in ("en", "de"):
        result = runs[name]
        expected = independent_pairs(pages_of[name])
        found = result["harvested"]
        rows.append([name, len(pages_of[name]), pages_crawled(result["stats"]), len(expected),
                     len(found), len(expected - found), len(found - expected)])
    print_table("Pages and image-text pairs found vs Python's html.parser on the same pages "
                "(every <img> with a src and a non-empty alt)",
                ["run", "pages", "crawled", "pairs (html.parser)", "pairs (crawl)", "missed",
                 "extra"], rows)
    live, recorded = runs["en"]["candidates"], runs["warc"]["candidates"]
    print_table("The same English manual crawled live and from GNU wget's WARC: caption pairs "
                "after the caption filters (data/candidates)",
                ["pages in the WARC", "WARC pages crawled", "live crawl", "WARC crawl", "in both",
                 "live only", "WARC only"],
                [[len(warc_pages), pages_crawled(runs["warc"]["stats"]), len(live), len(recorded),
                  len(live & recorded), len(live - recorded), len(recorded - live)]])

    english_texts = {text for _, _, text in runs["en"]["candidates"]}
    rows = []
    for name, label, part in (("en", "English manual", None),
                              ("de", "German manual: translated alt texts", "translated"),
                              ("de", "German manual: alt texts left in English", "untranslated")):
        judged, kept = language_split(work / f"crawl-{name}", english_texts, part)
        share = kept / max(judged, 1) if name == "en" or part == "untranslated" \
            else 1 - kept / max(judged, 1)
        wanted = "kept" if name == "en" or part == "untranslated" else "dropped"
        rows.append([label, judged, judged - kept, f"{share:.1%} {wanted}",
                     runs[name]["stats"].get("language", {}).get("detector", "")])
    print_table("Language filter on real alt texts (captions that matched a query; the German "
                "manual's alt texts identical to the English manual's are untranslated English)",
                ["captions", "judged", "dropped not_en", "share", "detector"], rows)

    dropped = Counter(runs["en"]["stats"]["dropped"])
    print_table("Why pairs of the English manual were dropped (crawl_stats.json)",
                ["reason", "count"], sorted(dropped.items(), key=lambda item: -item[1]))

    seconds = wit("shards", "--workdir", str(work / "crawl-en"), "--workers", "2")
    dataset = json.loads((work / "crawl-en" / "manifests" / "dataset.json").read_text())
    statuses = dataset["per_status"]
    print_table("Download statuses of the English manual's images",
                ["status", "count"], sorted(statuses.items(), key=lambda item: -item[1]))
    dedup = pq.read_table(work / "crawl-en" / "manifests" / "dedup.parquet").to_pylist()
    kinds = Counter(row["kind"] for row in dedup)
    print_table(f"wit shards on the English manual ({seconds:.0f} s)",
                ["samples read", "exact duplicates", "near duplicates", "train", "val"],
                [[dataset["totals"]["samples_read"], kinds.get("exact", 0), kinds.get("near", 0),
                  dataset["totals"]["train"], dataset["totals"]["val"]]])
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
