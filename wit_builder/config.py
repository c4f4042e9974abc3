"""Settings of every stage: one dataclass each, read from a TOML file and overridden by the CLI.

A field's `metadata["help"]` is its documentation: `wit STAGE --help` is generated from it, so a
field added here is at once a TOML key (`[stage] name = ...`) and a command-line option (`--name`).
Paths are relative to `workdir` unless absolute.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import EvalConfig, TrainConfig
from wit_builder.options import ConfigError, StageConfig, option


@dataclass
class PartitionedStageConfig(StageConfig):
    """A stage whose work is split into partitions that engine.py runs."""

    workers: int = option(0, "worker processes (0: one per core)")
    engine: str = option("local", "where partitions run", choices=["local", "ray"])
    ray_address: str = option("", "with --engine ray: the Ray cluster to join (host:port, "
                                  "ray://host:port or auto); default: a local Ray")


@dataclass
class SynthwebConfig(StageConfig):
    action: str = option("generate", "generate the files, or serve the website",
                         choices=["generate", "serve"], positional=True)
    out: str = option("data/synthweb", "directory the synthetic web is generated into")
    articles: int = option(3000, "Wikipedia articles in the synthetic dump")
    vocab_size: int = option(20000, "distinct words of the dump's Zipf vocabulary")
    words_per_article: int = option(400, "mean words of article text")
    site_pages: int = option(400, "HTML pages of the website")
    images_per_page: int = option(8, "images per page (decoys included)")
    image_size: int = option(96, "side in pixels of the rendered images")
    zeroshot_per_class: int = option(20, "held-out renders per zero-shot class")
    recorded_origin: str = option("http://127.0.0.1:8731", "origin (scheme://host:port) of the "
                                  "URLs written into site.warc.gz and pool.parquet")
    host: str = option("127.0.0.1", "address the website is served on")
    port: int = option(0, "port of the website (0: any free port)")


@dataclass
class QueriesConfig(PartitionedStageConfig):
    wiki: str = option("", "the dump (required): multistream or single-stream .xml.bz2, part "
                           "files (a directory or glob), plain .xml, or an http(s):// URL")
    index: str = option("", "multistream index (default: found beside the dump)")
    pageviews: list[str] = option([], "pageviews files (Wikimedia's hourly pageviews-*.gz: "
                                      "'en Title views bytes' lines), summed; repeatable",
                                  metavar="FILE")
    wordnet: str = option("", "WordNet 3.0 database directory (data.noun, ...) or a WN-LMF XML file")
    out: str = option("queries", "output directory")
    min_count: int = option(100, "unigrams occurring at least this often become queries")
    bigram_min_count: int = option(100, "bigrams must occur at least this often")
    bigrams: int = option(100_000, "highest-PMI bigrams kept")
    title_min_views: int = option(70, "titles need at least this many summed page views")
    title_min_links: int = option(100, "without --pageviews: titles need at least this many "
                                       "inbound links from articles of the dump")
    wordnet_all_lemmas: bool = option(False, "add every lemma of a synset, not only the head lemma")
    target: int = option(500_000, "total queries wanted")


@dataclass
class CrawlConfig(PartitionedStageConfig):
    source: list[str] = option([], "web:URL | web:@seeds.txt | warc:PATH_OR_URL | "
                                   "warc:LISTING.paths[.gz] | warc:@LISTING | pool:PATH | "
                                   "synthweb: (repeatable)", metavar="SOURCE")
    warc_prefix: str = option("https://data.commoncrawl.org/", "what the relative lines of a WARC "
                              "listing (Common Crawl's warc.paths.gz, warc:@list.txt) are resolved "
                              "against: a URL or a local directory")
    queries: str = option("queries/queries.parquet", "queries to match texts against")
    per_query: int = option(20_000, "most pairs any one query keeps")
    balance: str = option("exact", "balancing rule", choices=["exact", "probabilistic"])
    download: bool = option(True, "download the selected images (--no-download stops after "
                                  "the selection)")
    downloader: str = option("native", "image downloader", choices=["native", "img2dataset"])
    allow_private: bool = option(False, "turn the address guard off: let every request reach "
                                        "private, loopback, link-local and metadata addresses "
                                        "(logged once per run); prefer --trusted-origins")
    max_pages: int = option(10_000, "pages the web crawler fetches at most")
    max_depth: int = option(5, "links followed from a seed at most")
    allowed_hosts: list[str] = option([], "hosts the crawler may visit (default: the seeds' hosts)",
                                      metavar="HOST")
    user_agent: str = option("witbuilder/0.1 (+https://github.com/witbuilder/witbuilder)",
                             "User-Agent of every request")
    crawl_concurrency: int = option(16, "pages fetched at once by the web crawler")
    per_host_concurrency: int = option(2, "requests in flight to one host")
    crawl_delay: float = option(1.0, "seconds between two page requests to one host (robots.txt "
                                     "Crawl-delay may raise it)")
    max_page_bytes: int = option(5_000_000, "largest HTML page read")
    checkpoint_pages: int = option(1000, "pages between two checkpoints of a live crawl (its "
                                         "pairs so far and its frontier): a killed crawl goes on "
                                         "from the last one; at least one page per 20 URLs seen, "
                                         "so large crawls checkpoint less often (0: only at the end)")
    min_text_chars: int = option(5, "shorter texts are dropped")
    max_text_chars: int = option(1000, "longer texts are dropped")
    partition_rows: int = option(50_000, "candidates per partition of the crawled web pages")
    memory_budget_mb: float = option(512.0, "memory the URL dedupe holds at once; past it, the "
                                            "matched rows go through hash buckets on disk")
    lang: str = option("en", "language kept")
    min_lang_prob: float = option(0.9, "least language probability kept (when not set: 0.9 "
                                       "with langdetect, 0.3 with lingua, whose probabilities "
                                       "of short captions run lower)")
    lang_detector: str = option("langdetect", "language detector",
                                choices=["langdetect", "lingua"])
    url_col: str = option("url", "URL column of pool files")
    text_col: str = option("caption", "caption column of pool files")
    samples_per_shard: int = option(10_000, "samples per raw download shard")
    concurrency: int = option(128, "requests in flight per worker")
    image_size: int = option(256, "longest side of stored images")
    resize_mode: str = option("keep_ratio", "how images are resized. keep_ratio: the longest "
                              "side becomes --image-size (img2dataset's keep_ratio_largest; "
                              "img2dataset's keep_ratio sets the shortest side), smaller images "
                              "are not enlarged; keep_ratio_largest is the same mode. "
                              "center_crop: the shortest side becomes --image-size, then the "
                              "central square is kept. border: the longest side becomes "
                              "--image-size, padded white to a square. no: as downloaded",
                              choices=["keep_ratio", "keep_ratio_largest", "center_crop",
                                       "border", "no"])
    min_size: int = option(32, "images with a smaller side are dropped")
    max_aspect_ratio: float = option(3.0, "images more elongated than this are dropped")
    max_bytes: int = option(20_000_000, "largest image body downloaded")
    quality: int = option(90, "JPEG quality of stored images")
    timeout: float = option(20.0, "seconds per request")
    retries: int = option(2, "retries of timeouts, resets and 5xx")
    download_per_host: int = option(16, "image requests in flight to one host, per worker")
    trusted_origins: list[str] = option([], "host:port origins exempt from the address guard "
                                            "(a known mirror on a private network)",
                                        metavar="HOST:PORT")
    disallowed_header_directives: list[str] = option(
        ["noai", "noimageai", "noindex", "noimageindex"], "X-Robots-Tag directives that keep an "
        "image out (img2dataset's default list), for everyone or scoped to our --user-agent; "
        "repeatable or comma-separated; '' stores every image", metavar="DIRECTIVE")
    synthweb_dir: str = option("data/synthweb", "the generated synthetic web that source "
                                                "synthweb: serves")
    synthweb_port: int = option(8765, "port source synthweb: serves the site on; image URLs, "
                                "hence uids, contain it, so a resumed crawl needs the same port "
                                "(0: any free port, which a resumed crawl does not reuse)")


@dataclass
class ShardsConfig(PartitionedStageConfig):
    samples_per_shard: int = option(10_000, "samples per training shard")
    val_fraction: float = option(0.01, "share of samples held out for validation")
    near_dup_bits: int = option(4, "Hamming distance of perceptual hashes counted as duplicates "
                                    "(0 disables near-duplicate removal)")
    raw: str = option("data/raw", "directory (or fsspec URL) of the raw shards NNNNN.tar")
    crawl_manifests: str = option("manifests/crawl", "directory (or fsspec URL) of the raw "
                                                     "shards' manifests NNNNN.parquet")
    memory_budget_mb: float = option(512.0, "memory one step holds at once: sample bytes to "
                                            "shuffle, index rows to deduplicate (sets the "
                                            "number of on-disk buckets and dedup partitions)")
    report: bool = option(True, "write manifests/report.html with its PNG plots")


@dataclass
class DemoConfig(StageConfig):
    size: str = option("demo", "sizes of the synthetic web", choices=["demo", "test"])
    port: int = option(8765, "port the demo serves its site on; image URLs, hence the uids that "
                       "balancing and the val split hash, contain it (0: any free port)")


STAGES: dict[str, type] = {
    "synthweb": SynthwebConfig,
    "queries": QueriesConfig,
    "crawl": CrawlConfig,
    "shards": ShardsConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "demo": DemoConfig,
}


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file as a dict; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config: file '{path}' does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config: '{path}' is not valid TOML: {error}") from None


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a config dataclass's fields."""
    return typing.get_type_hints(cls)


def check_value(stage: str, name: str, value: Any, expected: Any, source: str) -> Any:
    """`value` converted to the field's type, or a ConfigError saying what was expected."""
    origin = typing.get_origin(expected)
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [check_value(stage, name, item, typing.get_args(expected)[0], source) for item in value]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float, str, bool) and not isinstance(value, expected) \
            or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"config: [{stage}] {name} = {value!r} in {source} "
                          f"should be of type {expected.__name__}")
    return value


def build_config(stage: str, file_values: dict[str, Any], overrides: dict[str, Any],
                 source: str = "the config file") -> Any:
    """The stage's dataclass from the file's top-level keys, its [stage] section, then overrides."""
    cls = STAGES[stage]
    types = field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in file_values.items():
        if not isinstance(value, dict) and key in names:
            values[key] = value
    section = file_values.get(stage, {})
    if not isinstance(section, dict):
        raise ConfigError(f"config: '{stage}' in {source} must be a [{stage}] table")
    for key, value in section.items():
        if key not in names:
            raise ConfigError(f"config: unknown key '{key}' in [{stage}] of {source}; "
                              f"known keys: {', '.join(sorted(names))}")
        values[key] = value
    values.update(overrides)
    checked = {key: check_value(stage, key, value, types[key], source)
               for key, value in values.items()}
    config = cls(**checked)
    validate_choices(stage, config)
    # Which options the file or the command line set, so that lower-priority defaults (a model
    # preset's [train] table) apply only to the others.
    config.explicit = frozenset(checked)
    return config


def validate_choices(stage: str, config: Any) -> None:
    for item in dataclasses.fields(config):
        choices = item.metadata.get("choices")
        value = getattr(config, item.name)
        if choices and value not in choices:
            raise ConfigError(f"config: [{stage}] {item.name} = {value!r} is not one of "
                              f"{', '.join(choices)}")


def load_config(stage: str, path: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> Any:
    """The settings of `stage` from the TOML file at `path` (if any) and CLI `overrides`."""
    file_values = read_toml(path) if path else {}
    return build_config(stage, file_values, overrides or {}, source=str(path or "defaults"))
