"""dedup.py: the partitioned, on-disk duplicate search against small in-memory references, on
generated index files (no images): exact copies, near copies, identical-hash copies and chains."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.shards import dedup
from wit_builder.shards.phash import bands

PIECE = pa.schema([("uid", pa.string()), ("sha256", pa.string()), ("phash", pa.uint64()),
                   ("signature", pa.uint64()), ("raw_shard", pa.int32()),
                   ("position", pa.int32())])


def flip_bits(rng: random.Random, value: int, count: int) -> int:
    for bit in rng.sample(range(64), count):
        value ^= 1 << bit
    return value


def write_fake_index(folder: Path, samples: int, max_bits: int, seed: int = 0,
                     per_shard: int = 500) -> list[tuple[str, int]]:
    """Index files of `samples` fake samples in crawl order: ~10% exact copies (same sha256 and
    pHash), ~20% near copies (0 to max_bits + 2 flipped bits, a new sha256; 0 flips is an
    identical-hash copy), and copies of copies (chains); positions have gaps, as skipped samples
    leave them."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seen: list[tuple[str, int]] = []
    pieces = []
    for shard in range(-(-samples // per_shard)):
        rows = []
        for position in range(min(per_shard, samples - shard * per_shard)):
            draw = rng.random()
            if seen and draw < 0.1:
                sha256, value = rng.choice(seen)
            elif seen and draw < 0.3:
                value = flip_bits(rng, rng.choice(seen)[1], rng.randint(0, max_bits + 2))
                sha256 = hashlib.sha256(rng.randbytes(16)).hexdigest()
            else:
                sha256, value = hashlib.sha256(rng.randbytes(16)).hexdigest(), rng.getrandbits(64)
            seen.append((sha256, value))
            rows.append({"uid": f"uid-{shard}-{position}", "sha256": sha256, "phash": value,
                         "signature": 0, "raw_shard": shard, "position": 3 * position})
        path = folder / f"{shard:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=PIECE), path)
        pieces.append((str(path), len(rows)))
    return pieces


def in_memory_near_duplicates(hashes, max_bits, earliest=False):
    """The in-memory search `wit shards` used before dedup.py (banded, one process): (index,
    named index, distance) of every hash within `max_bits` of an earlier kept hash, naming the
    closest kept hash (then the earliest), or the earliest when `earliest`."""
    ranges = bands(max_bits)
    tables: list[dict[int, list[int]]] = [{} for _ in ranges]
    kept: dict[int, int] = {}
    found = []
    for index, value in enumerate(hashes):
        keys = [(value >> shift) & mask for shift, mask in ranges]
        best = None
        for table, key in zip(tables, keys):
            for other in table.get(key, ()):
                distance = (value ^ kept[other]).bit_count()
                rank = (other, distance) if earliest else (distance, other)
                if distance <= max_bits and (best is None or rank < best):
                    best = rank
        if best is not None:
            other, distance = best if earliest else best[::-1]
            found.append((index, other, distance))
            continue
        kept[index] = value
        for table, key in zip(tables, keys):
            table.setdefault(key, []).append(index)
    return found


def in_memory_removals(pieces, max_bits, earliest=True) -> list[tuple]:
    """(order, uid, duplicate_of, kind, distance) of the whole index held in memory."""
    index = pa.concat_tables([pq.read_table(path) for path, _ in pieces])
    uids, digests, hashes = (index[name].to_pylist() for name in ("uid", "sha256", "phash"))
    orders = [shard << 32 | position for shard, position in
              zip(index["raw_shard"].to_pylist(), index["position"].to_pylist())]
    first_of: dict[str, int] = {}
    removals, survivors = [], []
    for row, digest in enumerate(digests):
        if digest in first_of:
            removals.append((orders[row], uids[row], uids[first_of[digest]], "exact", 0))
        else:
            first_of[digest] = row
            survivors.append(row)
    found = in_memory_near_duplicates([hashes[r] for r in survivors], max_bits, earliest)
    for position, named, distance in found:
        row = survivors[position]
        removals.append((orders[row], uids[row], uids[survivors[named]], "near", distance))
    return sorted(removals)


def partitioned_removals(tmp_path: Path, pieces, max_bits: int, budget_mb: float):
    plan = dedup.plan_dedup(tmp_path / f"work-{budget_mb}",
                            {int(Path(path).stem): rows for path, rows in pieces}, max_bits,
                            budget_mb)
    stats = dedup.deduplicate(plan, pieces, progress=False)
    rows = [tuple(row.values()) for table in dedup.removals(plan) for row in table.to_pylist()]
    return rows, stats


def brute_force_near_duplicates(hashes, max_bits):
    kept, found = [], []
    for index, value in enumerate(hashes):
        close = [((value ^ hashes[k]).bit_count(), k) for k in kept]
        close = [pair for pair in close if pair[0] <= max_bits]
        if close:
            distance, other = min(close)
            found.append((index, other, distance))
        else:
            kept.append(index)
    return found


@pytest.mark.parametrize("max_bits", [1, 4, 7])
def test_in_memory_reference_equals_all_pairs(max_bits):
    rng = random.Random(max_bits)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    for _ in range(200):  # copies with up to max_bits + 2 flipped bits
        hashes.append(flip_bits(rng, rng.choice(hashes), rng.randint(0, max_bits + 2)))
    rng.shuffle(hashes)
    found = in_memory_near_duplicates(hashes, max_bits)
    assert found == brute_force_near_duplicates(hashes, max_bits)
    assert len(found) > 50


@pytest.mark.parametrize("max_bits", [3, 4, 10])
def test_partitioned_search_equals_the_in_memory_reference(tmp_path, max_bits):
    pieces = write_fake_index(tmp_path / "index", 2500, max_bits, seed=max_bits, per_shard=250)
    removals, stats = partitioned_removals(tmp_path, pieces, max_bits, budget_mb=0.2)
    assert stats.exact_partitions > 1 and stats.band_partitions > 1 and stats.ranges > 1
    assert removals == in_memory_removals(pieces, max_bits)
    kinds = {kind for _, _, _, kind, _ in removals}
    assert kinds == {"exact", "near"} and len(removals) > 500


def test_same_samples_are_removed_as_by_the_closest_first_rule(tmp_path):
    """The survivors (so the shards) are those of the earlier in-memory search; a removed sample
    names the earliest surviving neighbour where that search named the closest one."""
    pieces = write_fake_index(tmp_path / "index", 4000, 4, seed=9)
    removals, _ = partitioned_removals(tmp_path, pieces, 4, budget_mb=0.2)
    closest = in_memory_removals(pieces, 4, earliest=False)
    assert [row[:2] for row in removals] == [row[:2] for row in closest]
    renamed = [(new, old) for new, old in zip(removals, closest) if new != old]
    assert len(renamed) < 0.01 * len(removals)
    for new, old in renamed:
        assert new[3] == old[3] == "near" and new[4] >= old[4]


def test_chains_keep_a_copy_whose_only_near_neighbour_was_removed(tmp_path):
    """a, b within 4 bits of a, c within 4 of b but 8 from a: b goes, c stays (b did not survive);
    d, an identical-hash copy of b, names what b names."""
    a = 0
    b = a ^ 0b1111
    c = b ^ (0b1111 << 20)
    rows = [{"uid": uid, "sha256": hashlib.sha256(uid.encode()).hexdigest(), "phash": value,
             "signature": 0, "raw_shard": 0, "position": position}
            for position, (uid, value) in enumerate([("a", a), ("b", b), ("c", c), ("d", b)])]
    path = tmp_path / "00000.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=PIECE), path)
    removals, _ = partitioned_removals(tmp_path, [(str(path), 4)], 4, budget_mb=1)
    assert [(uid, named, distance) for _, uid, named, _, distance in removals] == \
        [("b", "a", 4), ("d", "a", 4)]


def test_tiny_budget_grows_partitions_and_keeps_results(tmp_path):
    pieces = write_fake_index(tmp_path / "index", 3000, 4, seed=3, per_shard=100)
    whole, one = partitioned_removals(tmp_path, pieces, 4, budget_mb=64)
    small, many = partitioned_removals(tmp_path, pieces, 4, budget_mb=0.1)
    assert (one.exact_partitions, one.band_partitions, one.ranges) == (1, 1, 1)
    assert many.exact_partitions >= 7 and many.band_partitions >= 35 and many.ranges >= 7
    assert many.largest_partition_rows < one.largest_partition_rows / 4
    assert small == whole


def dedup_peak(tmp_path: Path, samples: int, budget_mb: float) -> tuple[int, int]:
    """(peak bytes of Python, numpy and Arrow allocations, most rows held) for one search."""
    pieces = write_fake_index(tmp_path / f"index-{samples}", samples, 4, seed=1)
    plan = dedup.plan_dedup(tmp_path / "work",
                            {int(Path(path).stem): rows for path, rows in pieces}, 4, budget_mb)
    arrow = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(arrow)
    tracemalloc.start()
    try:
        stats = dedup.deduplicate(plan, pieces, progress=False)
        removed = sum(table.num_rows for table in dedup.removals(plan))
        python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    assert removed > samples // 5
    return python_peak + arrow.max_memory(), stats.largest_partition_rows


def test_dedup_peak_memory_does_not_grow_with_samples(tmp_path):
    dedup_peak(tmp_path, 1_000, budget_mb=1)  # first-use allocations (imports, caches)
    small_peak, small_rows = dedup_peak(tmp_path, 8_000, budget_mb=1)
    large_peak, large_rows = dedup_peak(tmp_path, 32_000, budget_mb=1)
    # Four times the samples, the same partition sizes, about the same peak, within the budget.
    # (Held in one partition, the peak grows with the samples: 7.8 MB for 10k, 26.9 MB for 40k.)
    # What grows here is a few kB per spill file read, as there are more partitions.
    assert large_rows < 1.3 * small_rows
    assert large_peak < 1.3 * small_peak, (small_peak, large_peak)
    assert large_peak < 1.5 * 2**20


def test_vectorised_digest_prefixes_equal_the_per_digest_rule_on_hex_and_garbage():
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(300)]
    digests += ["ABCDEF0123" + "0" * 54, "abc", "", "ab cd ef 01 23", "é1234567890",
                "12345678", "1234567g99", "0x12345678", "ÀBCDEF01", "FFFFFFFF"]
    random.Random(3).shuffle(digests)
    chunked = pa.chunked_array([pa.array(digests[:7]), pa.array(digests[7:])])
    assert dedup.digest_prefixes(chunked).tolist() == \
        [dedup.digest_prefix(digest) for digest in digests]
    assert dedup.digest_prefix("FFFFFFFF") == 2**32 - 1 and dedup.digest_prefix("abc") != 0xabc
