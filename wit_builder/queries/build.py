"""`wit queries`: count the dump (map), select unigrams, bigrams, titles and WordNet synsets
(reduce), merge them in the paper's order and write queries.parquet, queries.txt and stats.json."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import json
import math
import os
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from wit_builder.core import cpu as core_cpu
from wit_builder.core import markers, store
from wit_builder.core.text import TOKENIZATION, is_query_word
from wit_builder.queries.config import QueriesConfig
from wit_builder.core import engine
from wit_builder.core.engine import run_partitions, stage_engine
from wit_builder.core.options import WitError
from wit_builder.net.http import is_http_url
from wit_builder.queries.bigrams import select_bigrams
from wit_builder.queries.counts import (CountTable, CountTask, PartialCounts, compiled_available,
                                        count_partition)
from wit_builder.queries.titles import (credit_articles, pageviews_files, popular_titles,
                                        read_pageviews, titles_from_links)
from wit_builder.queries.wordnet import read_wordnet
from wit_builder.queries.wikipedia.reader import DumpPlan, plan_dump, prefetched

log = logging.getLogger(__name__)

QUERIES_SCHEMA = pa.schema([("query_id", pa.int32()), ("query", pa.string()),
                            ("source", pa.string()), ("count", pa.int64()), ("pmi", pa.float64())])
SOURCE_ORDER = ("wordnet", "unigram", "bigram", "title")
# A counted partition's result beside its spill (`{spill}.result`), read back by a rerun after a
# crash: an Arrow IPC file, data only (never a pickle: the workdir may hold files written by
# anyone). Rows are the word counts, link counts, article titles and redirects; the scalars are
# JSON in the schema's metadata. Text is stored as UTF-8 bytes (surrogatepass: a title may hold
# a lone surrogate from a numeric reference).
RESULT_KINDS = ("word", "link", "title", "redirect")
RESULT_SCHEMA = pa.schema([("kind", pa.int8()), ("key", pa.binary()), ("value", pa.binary()),
                          ("count", pa.int64())])
RESULT_METADATA = b"wit.partition_result"
RESULT_INTEGERS = ("pages", "articles", "redirects", "other_namespaces", "tokens", "spill_rows",
                   "peak_rss_kb")


@stage_engine
def run(config: QueriesConfig) -> int:
    """Build the query list described by `config`; 0 on success (bad input raises WitError)."""
    started = time.monotonic()
    if not config.wiki:
        raise WitError("no --wiki given: name the Wikipedia dump to read (e.g. "
                       "enwiki-latest-pages-articles-multistream.xml.bz2; `make queries` reads "
                       "the demo's, named in witbuilder.toml)")
    out = config.path(config.out)
    store.check_reachable(config.workdir)
    store.check_reachable(out, "--out")
    refuse_store_inputs(config)
    wordnet = read_wordnet(str(config.path(config.wordnet)), config.wordnet_all_lemmas) \
        if config.wordnet else []
    pageviews = pageviews_files([str(config.path(p)) for p in config.pageviews])
    workers = engine.current().worker_count
    plan = plan_dump(str(config.path(config.wiki)),
                     str(config.path(config.index)) if config.index else "", workers)
    log.info("queries: reading %s dump %s with %d workers", plan.kind, plan.source, workers)
    if not compiled_available():
        log.warning("queries: the compiled hot loop is not built (`pip install -e .` builds it "
                    "with a C compiler); counting in Python, several times slower")
    hashes = start_hashing(plan.files if plan.kind != "url" else [])
    created = not store.exists(out)
    spill_dir = make_spill_dir(out)
    try:
        counts = count_dump(plan, spill_dir, config)
        phases = {"count_seconds": time.monotonic() - started, "reduce_cpu": {}}
        log.info("queries: counted %d pages, %d tokens (%d distinct words) in %.1f s; peak "
                 "memory so far %.0f MB", counts.pages, counts.tokens, len(counts.unigrams),
                 phases["count_seconds"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if counts.articles == 0:
            raise WitError(f"dump '{plan.source}' holds no articles (namespace 0, not redirects)")
        sources = select_sources(config, plan, counts, wordnet, pageviews, spill_dir,
                                 phases["reduce_cpu"])
    except WitError:
        store.remove_tree(spill_dir)  # bad input: a rerun needs other input, nothing to resume
        if created:
            store.remove_tree(out)  # nothing else can be in it yet
        raise
    store.remove_tree(spill_dir)
    log.info("queries: skipped %d redirects and %d pages outside the article namespace",
             counts.redirects, counts.other_namespaces)
    if not config.wordnet:
        log.info("queries: no --wordnet given; the wordnet source is empty")
    if not pageviews:
        log.info("queries: no --pageviews given; titles are ranked by inbound links in the dump")
    rows = merge_sources(sources, config.target)
    stats = run_stats(config, plan, counts, rows, sources, hashes, started, workers, pageviews,
                      phases)
    write_outputs(out, rows, stats)
    log.info("queries: %d queries written to %s in %.1f s", len(rows), out, stats["seconds"])
    return 0


def make_spill_dir(out: store.Location) -> store.Location:
    """`out/.work`, for the spill and bucket files: removed after success or bad input, kept
    after a crash so that a rerun recounts only the unfinished partitions (see count_dump)."""
    spill_dir = store.join(out, ".work")
    store.makedirs(spill_dir)
    return spill_dir


def partition_inputs(task: CountTask) -> dict:
    """What a partition's counts depend on: its byte range, its file as it is now, the options."""
    return {"partition": repr(task.partition), "count_links": task.count_links,
            "dump_file": store.file_signature(task.partition.path), "tokenization": TOKENIZATION}


def count_and_record(task: CountTask) -> PartialCounts:
    """`count_partition`, then its result and (last, atomically) a done marker beside its spill."""
    inputs = partition_inputs(task)  # before reading: a change during the count redoes it
    counts = count_partition(task)
    store.write_bytes(f"{task.spill_path}.result", result_bytes(counts))
    markers.write(f"{task.spill_path}.done", inputs, key=None)
    return counts


def result_bytes(counts: PartialCounts) -> bytes:
    """One partition's counts as an Arrow IPC file (see RESULT_SCHEMA); its spill is implied."""
    def encoded(texts) -> list[bytes]:
        return [text.encode("utf-8", "surrogatepass") for text in texts]

    tables = []
    for kind, count_table in ((0, counts.word_counts), (1, counts.link_counts)):
        for table in count_table.tables:
            tables.append(pa.table({"kind": pa.array([kind] * len(table), pa.int8()),
                                    "key": table.column("key").cast(pa.binary()),
                                    "value": pa.nulls(len(table), pa.binary()),
                                    "count": table.column("count")}, schema=RESULT_SCHEMA))
    titles = sorted(counts.titles)
    tables.append(pa.table({"kind": pa.array([2] * len(titles), pa.int8()),
                            "key": pa.array(encoded(titles), pa.binary()),
                            "value": pa.nulls(len(titles), pa.binary()),
                            "count": pa.nulls(len(titles), pa.int64())}, schema=RESULT_SCHEMA))
    redirects = counts.redirect_targets
    tables.append(pa.table({"kind": pa.array([3] * len(redirects), pa.int8()),
                            "key": pa.array(encoded(redirects), pa.binary()),
                            "value": pa.array(encoded(redirects.values()), pa.binary()),
                            "count": pa.nulls(len(redirects), pa.int64())}, schema=RESULT_SCHEMA))
    scalars = {name: getattr(counts, name) for name in RESULT_INTEGERS}
    scalars["worker_cpu_seconds"] = [[pid, seconds]
                                     for pid, seconds in counts.worker_cpu_seconds.items()]
    table = pa.concat_tables(tables).replace_schema_metadata(
        {RESULT_METADATA: json.dumps(scalars).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_result(data: bytes, spill_path: str) -> PartialCounts:
    """The counts `result_bytes` wrote for the partition spilled to `spill_path`; ValueError when
    `data` is not such a file (truncated, another format, wrong schema or values)."""
    try:
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"not an Arrow result file ({error})") from None
    if not table.schema.equals(RESULT_SCHEMA, check_metadata=False):
        raise ValueError(f"unexpected columns {table.schema.names}")
    try:
        scalars = json.loads((table.schema.metadata or {})[RESULT_METADATA])
    except (KeyError, ValueError) as error:
        raise ValueError(f"no readable counts in its metadata ({error!r})") from None
    if not isinstance(scalars, dict) or any(
            type(scalars.get(name)) is not int or scalars[name] < 0 for name in RESULT_INTEGERS):
        raise ValueError("counts in its metadata are not non-negative integers")
    cpu = scalars.get("worker_cpu_seconds")
    if not isinstance(cpu, list) or not all(
            isinstance(item, list) and len(item) == 2 and type(item[0]) is int
            and type(item[1]) in (int, float) and math.isfinite(item[1]) for item in cpu):
        raise ValueError("worker CPU seconds in its metadata are not [pid, seconds] pairs")
    counts = PartialCounts(**{name: scalars[name] for name in RESULT_INTEGERS},
                           worker_cpu_seconds={pid: float(seconds) for pid, seconds in cpu},
                           spills=[spill_path])
    kinds = table.column("kind")
    if kinds.null_count or not set(kinds.unique().to_pylist()) <= set(range(len(RESULT_KINDS))):
        raise ValueError("unknown row kinds")
    for kind, name in enumerate(RESULT_KINDS):
        rows = table.filter(pc.equal(kinds, kind))
        if rows.column("key").null_count:
            raise ValueError(f"a {name} row without a key")
        if kind < 2:
            if rows.column("count").null_count or (len(rows) and pc.min(rows.column("count"))
                                                    .as_py() < 0):
                raise ValueError(f"a {name} row without a non-negative count")
            if len(rows):
                counted = CountTable()
                counted.tables.append(pa.table({"key": rows.column("key").combine_chunks(),
                                                "count": rows.column("count").combine_chunks()}))
                counted.rows = len(rows)
                setattr(counts, "word_counts" if kind == 0 else "link_counts", counted)
            continue
        try:
            keys = [key.decode("utf-8", "surrogatepass") for key in rows.column("key").to_pylist()]
            if kind == 2:
                counts.titles = set(keys)
            else:
                if rows.column("value").null_count:
                    raise ValueError("a redirect without a target")
                counts.redirect_targets = dict(zip(keys, (
                    value.decode("utf-8", "surrogatepass")
                    for value in rows.column("value").to_pylist())))
        except UnicodeDecodeError as error:
            raise ValueError(f"a {name} that is not UTF-8 ({error})") from None
    return counts


def kept_result(task: CountTask) -> PartialCounts:
    """The result an interrupted run recorded for `task`; recounted when it cannot be read."""
    path = f"{task.spill_path}.result"
    try:
        return read_result(store.read_bytes(path), task.spill_path)
    except (OSError, ValueError) as error:
        log.warning("queries: unreadable result %s (%s): recounting its partition", path, error)
        return count_and_record(task)


def finished_partition(task: CountTask, decisions: markers.Decisions) -> bool:
    """Whether an interrupted run counted `task` on the same inputs (its result is kept): the
    marker `SPILL.done` holds the inputs alone (one without them is not ours: recounted)."""
    check = markers.check(f"{task.spill_path}.done", lambda: partition_inputs(task), key=None,
                          older_done=False)
    return decisions.add(store.name(task.spill_path).split(".")[0], check).done


def keep_only(spill_dir: store.Location, finished: list[CountTask]) -> None:
    """Remove every file of `spill_dir` but the spills, words and results of `finished`."""
    kept = {store.name(f"{task.spill_path}{suffix}") for task in finished
            for suffix in ("", ".words", ".result", ".done")}
    for entry in store.glob(store.join(spill_dir, "*")):
        if store.name(entry) not in kept:
            store.remove_tree(entry)


def refuse_store_inputs(config: QueriesConfig) -> None:
    """A one-line WitError for an input on an object store (a relative path under an
    `s3://` workdir becomes one): the dump, pageviews and WordNet are read from local files or
    http(s) URLs only."""
    inputs = [("dump", config.wiki), ("index", config.index), ("wordnet", config.wordnet),
              *(("pageviews", path) for path in config.pageviews)]
    for what, given in inputs:
        location = str(config.path(given)) if given else ""
        if store.is_url(location) and not is_http_url(location):
            raise WitError(f"{what} '{location}': wit queries reads its inputs from local "
                           f"paths or http(s) URLs; copy it to a local disk (an absolute path "
                           f"when the workdir is a URL)")


def count_dump(plan: DumpPlan, spill_dir: store.Location, config: QueriesConfig
               ) -> PartialCounts:
    """The map step over every partition (or every chunk of the serial reader), merged."""
    count_links = not config.pageviews
    total = PartialCounts()
    workers = engine.current().worker_count
    options = {"desc": "queries: counting"}
    if plan.serial:
        keep_only(spill_dir, [])  # the serial reader's chunks are not resumable: read anyway
        tasks = (CountTask(chunk, str(store.join(spill_dir, f"chunk-{chunk.number:06d}.arrow")),
                           count_links)
                 for chunk in prefetched(plan.chunks(), depth=workers + 1))
        # Waves of a few chunks per worker: the reader runs ahead (in a thread) while they count.
        with tqdm(desc="queries: counting", unit="chunk", leave=False) as bar:
            while wave := list(islice(tasks, 4 * workers)):
                for partial in run_partitions(count_partition, wave, progress=False, **options):
                    total.merge(partial)
                    bar.update()
        return total
    tasks = [CountTask(part, str(store.join(spill_dir, f"part-{number:06d}.arrow")), count_links)
             for number, part in enumerate(plan.partitions)]
    decisions = markers.Decisions(log, "queries: counting", "partition", str(spill_dir))
    finished = [task for task in tasks if finished_partition(task, decisions)]
    decisions.report()
    keep_only(spill_dir, finished)
    if finished:
        log.info("queries: %d of %d partitions were counted by an interrupted run: kept",
                 len(finished), len(tasks))
    # Merged as they arrive, in partition order (run_partitions, not map_partitions): holding
    # every partition's counts until the end would make memory grow with the dump.
    kept = {task.spill_path for task in finished}
    counted = run_partitions(count_and_record, [t for t in tasks if t.spill_path not in kept],
                             **options)
    for task in tasks:
        total.merge(kept_result(task) if task.spill_path in kept else next(counted))
    return total


def select_sources(config: QueriesConfig, plan: DumpPlan, counts: PartialCounts,
                   wordnet: list[str], pageviews: list[str], spill_dir: store.Location,
                   reduce_cpu: dict[int, float]) -> dict[str, list[tuple]]:
    """Each source's candidates, best first: (query, count, pmi); the bigram reduce's worker
    CPU seconds are added to `reduce_cpu`."""
    frequent = [(word, n) for word, n in counts.unigrams.items() if n >= config.min_count]
    frequent.sort(key=lambda item: (-item[1], item[0]))
    # Single letters and numbers are not queries, but may stand in a bigram beside a word
    # ("world war 2" has "war 2"); a bigram of two of them ("1 000", "u s") is not one either.
    unigrams = [(word, n) for word, n in frequent if is_query_word(word, config.keep_numbers)]
    # Titles (reading pageviews, or normalising link targets) take this process seconds that
    # would otherwise follow the bigram reduce: they run in a thread while the workers reduce.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="titles") as background:
        titles_ranked = background.submit(title_candidates, config, plan, counts, pageviews)
        bigrams = select_bigrams(counts.spills, counts.spill_rows, counts.unigrams,
                                 [word for word, _ in frequent],
                                 counts.tokens, config.bigram_min_count, config.bigrams,
                                 spill_dir, worker_cpu=reduce_cpu,
                                 queries={word for word, _ in unigrams})
        titles = titles_ranked.result()
    bigram_counts = {bigram.query: bigram.count for bigram in bigrams}

    def dump_count(query: str) -> int | None:
        return counts.unigrams.get(query) if " " not in query else bigram_counts.get(query)

    return {
        "wordnet": [(query, dump_count(query), None) for query in wordnet],
        "unigram": [(word, n, None) for word, n in unigrams],
        "bigram": [(bigram.query, bigram.count, bigram.pmi) for bigram in bigrams],
        "title": [(title, dump_count(title), None) for title, _ in titles],
    }


def title_candidates(config: QueriesConfig, plan: DumpPlan, counts: PartialCounts,
                     pageviews: list[str]) -> list[tuple[str, int]]:
    """The dump's article titles at or above the popularity threshold, most popular first."""
    if pageviews:
        popularity, threshold = read_pageviews(pageviews, plan.namespaces), config.title_min_views
    else:
        popularity = titles_from_links(counts.links, plan.namespaces)
        threshold = config.title_min_links
    return popular_titles(credit_articles(popularity, counts.titles, counts.redirect_targets),
                          threshold)


def merge_sources(sources: dict[str, list[tuple]], target: int) -> list[tuple]:
    """Union in the order wordnet → unigrams → bigrams → titles until `target`; rows sorted by
    query and numbered: (query_id, query, source, count, pmi)."""
    chosen: dict[str, tuple] = {}
    for source in SOURCE_ORDER:
        for query, count, pmi in sources[source]:
            if len(chosen) >= target:
                break
            if query not in chosen:
                chosen[query] = (source, count, pmi)
    return [(number, query, *chosen[query]) for number, query in enumerate(sorted(chosen))]


def write_outputs(out: store.Location, rows: list[tuple], stats: dict) -> None:
    """queries.parquet, queries.txt and stats.json, each written atomically (locally or on the
    store)."""
    columns = list(zip(*rows)) if rows else [[] for _ in QUERIES_SCHEMA]
    table = pa.table(dict(zip(QUERIES_SCHEMA.names, map(list, columns))), schema=QUERIES_SCHEMA)
    store.makedirs(out)
    store.write_parquet(store.join(out, "queries.parquet"), table)
    store.write_text(store.join(out, "queries.txt"), "".join(f"{row[1]}\n" for row in rows))
    store.write_json(store.join(out, "stats.json"), stats)


def start_hashing(paths: list[str]) -> dict[str, threading.Thread | dict]:
    """sha256 of every input file, computed in a thread while the dump is counted."""
    results: dict = {}

    def digest_all() -> None:
        for path in paths:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
            results[path] = {"path": path, "bytes": os.path.getsize(path),
                             "sha256": digest.hexdigest()}

    thread = threading.Thread(target=digest_all, name="sha256", daemon=True)
    thread.start()
    return {"thread": thread, "results": results}


def input_descriptions(paths: list[str], hashes: dict) -> list[dict]:
    hashes["thread"].join()
    return [hashes["results"].get(path, {"path": path, "bytes": None, "sha256": None})
            for path in paths]


def run_stats(config: QueriesConfig, plan: DumpPlan, counts: PartialCounts, rows: list[tuple],
              sources: dict, hashes: dict, started: float, workers: int,
              pageviews: list[str], phases: dict) -> dict:
    """stats.json: inputs, parameters, counts per source, pages and tokens read, time, memory."""
    per_source = {source: 0 for source in SOURCE_ORDER}
    for row in rows:
        per_source[row[2]] += 1
    other_inputs = list(pageviews)
    if config.wordnet:
        other_inputs.append(str(config.path(config.wordnet)))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "inputs": {"dump": input_descriptions(plan.files, hashes), "dump_format": plan.kind,
                   "others": [describe_file(path) for path in other_inputs]},
        "parameters": {key: value for key, value in dataclasses.asdict(config).items()},
        "tokenization": TOKENIZATION,
        "queries": len(rows),
        "queries_per_source": per_source,
        "candidates_per_source": {source: len(items) for source, items in sources.items()},
        "title_ranking": "pageviews" if config.pageviews else "inbound_links",
        "pages_read": counts.pages,
        "articles_read": counts.articles,
        "redirects_skipped": counts.redirects,
        "other_namespace_pages_skipped": counts.other_namespaces,
        "tokens_read": counts.tokens,
        "distinct_words": len(counts.unigrams),
        "workers": workers,
        "seconds": round(time.monotonic() - started, 3),
        "count_seconds": round(phases["count_seconds"], 3),
        "cpu_seconds": cpu_seconds(counts.worker_cpu_seconds, phases["reduce_cpu"]),
        "peak_rss_mb": {"main": round(own / 1024, 1),
                        "worker_max": round(counts.peak_rss_kb / 1024, 1),
                        "children_max": round(children / 1024, 1)},
    }


def cpu_seconds(count_cpu: dict[int, float], reduce_cpu: dict[int, float]) -> dict:
    """CPU time of this process and of the worker processes, counting and bigram reduce (what
    throughput per core is computed from: unlike wall time, it does not depend on what else the
    machine runs). Work run in this process (one worker) is in `main` only."""
    main = time.process_time()
    count, reduce = (sum(seconds for pid, seconds in cpu.items() if pid != os.getpid())
                     for cpu in (count_cpu, reduce_cpu))
    return {"main": round(main, 3), "count_workers": round(count, 3),
            "reduce_workers": round(reduce, 3), "workers": round(count + reduce, 3),
            "total": round(main + count + reduce, 3),
            # this run's whole process tree (worker start-up and the fork server included)
            "process_tree": core_cpu.stage_seconds()}


def describe_file(path: str) -> dict:
    """Path and size of a file (a directory: its total size)."""
    target = Path(path)
    if target.is_dir():
        size = sum(item.stat().st_size for item in target.iterdir() if item.is_file())
    else:
        size = target.stat().st_size if target.exists() else None
    return {"path": path, "bytes": size}
