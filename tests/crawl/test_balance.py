"""Balancing: the cap is never exceeded, decisions are deterministic and partition-independent,
and the probabilistic rule keeps what MetaCLIP's formula predicts."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.core import schemas
from wit_builder.crawl.balance import BalanceSettings, balance_by_query


def matched_rows(count: int, query_count: int, seed: int = 1) -> pa.Table:
    """Rows matching 1-4 queries drawn from a Zipf law, so a few head queries pass the cap."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=count)
    drawn = np.minimum(rng.zipf(1.3, size=int(sizes.sum())) - 1, query_count - 1)
    # A text's query_ids is a set: drop the repeats, keep rows ordered.
    pairs = np.unique(np.repeat(np.arange(count), sizes) * query_count + drawn)
    parents, flat = pairs // query_count, (pairs % query_count).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=count))]).astype(np.int32)
    query_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.int32()))
    uids = [hashlib.sha1(f"row {i}".encode()).hexdigest() for i in range(count)]
    return pa.table({
        "uid": uids, "url": [f"http://img.test/{i}.jpg" for i in range(count)],
        "text": [f"text {i}" for i in range(count)], "page_url": [""] * count,
        "source": ["pool"] * count, "lang": ["en"] * count,
        "lang_prob": pa.array(np.ones(count), pa.float32()), "query_ids": query_ids,
    }).cast(schemas.MATCHES)


def write_partitions(table: pa.Table, directory, parts: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    paths = []
    for i in range(parts):
        path = directory / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), path)
        paths.append(str(path))
    return paths


def run_balance(tmp_path, table, name, parts=3, query_count=200, **settings):
    paths = write_partitions(table, tmp_path / name / "matched", parts)
    manifests = tmp_path / name / "manifests"
    summary = balance_by_query(paths, query_count, manifests, tmp_path / name / "scratch",
                               BalanceSettings(**settings))
    return summary, manifests


def test_exact_keeps_min_of_matches_and_cap_for_every_query(tmp_path):
    table = matched_rows(6000, 200)
    summary, manifests = run_balance(tmp_path, table, "a", per_query=150)
    balance = pq.read_table(manifests / "balance.parquet").to_pandas()
    assert (balance["selected"] == np.minimum(balance["matched"], 150)).all()
    assert summary["queries_over_cap"] > 5  # the test means something only if the cap bites
    selection = pq.read_table(manifests / "selection.parquet")
    assert selection.schema.equals(schemas.SELECTION)
    per_query = np.bincount(selection.column("selected_by").combine_chunks().flatten()
                            .to_numpy(), minlength=200)
    assert per_query.max() <= 150
    assert (per_query == balance["selected"].to_numpy()).all()
    for matched, selected_by in zip(selection.column("query_ids").to_pylist(),
                                    selection.column("selected_by").to_pylist()):
        assert selected_by and set(selected_by) <= set(matched)


def test_exact_is_byte_identical_across_runs_workers_and_partitionings(tmp_path):
    table = matched_rows(3000, 200)
    _, first = run_balance(tmp_path, table, "one", parts=3, per_query=80, workers=1)
    _, second = run_balance(tmp_path, table, "two", parts=3, per_query=80, workers=2)
    _, other = run_balance(tmp_path, table, "five", parts=5, per_query=80, workers=1)
    for name in ("selection.parquet", "balance.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    uids = lambda m: sorted(pq.read_table(m / "selection.parquet").column("uid").to_pylist())
    assert uids(first) == uids(other)


def test_another_seed_selects_other_pairs(tmp_path):
    table = matched_rows(3000, 200)
    _, a = run_balance(tmp_path, table, "s0", per_query=50, seed=0)
    _, b = run_balance(tmp_path, table, "s1", per_query=50, seed=1)
    uids = lambda m: set(pq.read_table(m / "selection.parquet").column("uid").to_pylist())
    assert uids(a) != uids(b)


def test_no_matches_writes_empty_outputs(tmp_path):
    summary, manifests = run_balance(tmp_path, matched_rows(0, 10), "empty", parts=1,
                                     query_count=10, per_query=5)
    assert summary["selected_pairs"] == 0
    assert pq.read_table(manifests / "selection.parquet").num_rows == 0
    assert pq.read_table(manifests / "balance.parquet").column("matched").to_pylist() == [0] * 10


@pytest.mark.slow
def test_probabilistic_kept_count_per_query_agrees_with_formula(tmp_path):
    rows, query_count, cap = 1_000_000, 60, 20_000
    table = matched_rows(rows, query_count, seed=3)
    _, manifests = run_balance(tmp_path, table, "p", parts=4, query_count=query_count,
                               per_query=cap, mode="probabilistic", workers=2)
    lists = table.column("query_ids").combine_chunks()
    flat = lists.flatten().to_numpy()
    parents = np.asarray(lists.value_parent_indices())
    counts = np.bincount(flat, minlength=query_count)
    p_query = np.minimum(1.0, cap / np.maximum(counts, 1))
    # P(row kept) = 1 - prod over its distinct queries of (1 - p_q)
    log_miss = np.zeros(rows)
    np.add.at(log_miss, parents, np.log1p(-np.minimum(p_query[flat], 1 - 1e-12)))
    p_row = 1.0 - np.exp(log_miss)
    expected = np.bincount(flat, weights=p_row[parents], minlength=query_count)
    variance = np.bincount(flat, weights=(p_row * (1 - p_row))[parents], minlength=query_count)
    kept_uids = set(pq.read_table(manifests / "selection.parquet").column("uid").to_pylist())
    kept_rows = np.array([uid in kept_uids for uid in table.column("uid").to_pylist()])
    observed = np.bincount(flat, weights=kept_rows[parents].astype(float), minlength=query_count)
    heavy = counts > cap
    assert heavy.sum() >= 5
    deviation = np.abs(observed - expected) / np.sqrt(np.maximum(variance, 1e-9))
    assert (deviation[variance > 0] <= 3).all(), deviation[variance > 0].max()
