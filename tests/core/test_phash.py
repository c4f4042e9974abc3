"""core/phash.py: the pHash index finds exactly what comparing every listed pHash finds, with one
distance for all or one each, on lists large enough to use its band tables (imagehash agreement
on real photographs: tests/crawl/test_download_blocklists_phash.py)."""

from __future__ import annotations

import numpy as np
import pytest

from wit_builder.core import phash


def flipped(value: int, bits: np.ndarray) -> int:
    for bit in bits:
        value ^= 1 << int(bit)
    return value


@pytest.mark.parametrize("largest", [0, 3, 8, 15, 16])
def test_the_index_finds_what_a_whole_comparison_finds(largest):
    rng = np.random.default_rng(largest)
    listed = rng.integers(0, 2**64, phash.BRUTE_FORCE_BELOW + 1000, dtype=np.uint64,
                          endpoint=False)
    bits = rng.integers(0, largest + 1, listed.size).astype(np.uint8)
    index = phash.PhashIndex(listed, bits)
    assert bool(index.bands) == (largest < 16)   # 16 bits: every entry compared
    queries = [flipped(int(listed[n]), rng.choice(64, int(rng.integers(0, 20)), replace=False))
               for n in rng.integers(0, listed.size, 300)]
    queries += [int(value) for value in rng.integers(0, 2**64, 100, dtype=np.uint64,
                                                     endpoint=False)]
    found = [index.near(query) for query in queries]
    assert found == [phash.within(listed, query, bits) for query in queries]
    assert any(found) and not all(found)


def test_a_listed_phash_matches_up_to_its_distance_and_no_further():
    rng = np.random.default_rng(1)
    listed = rng.integers(0, 2**64, phash.BRUTE_FORCE_BELOW, dtype=np.uint64, endpoint=False)
    index = phash.PhashIndex(listed, np.full(listed.size, 6, np.uint8))
    target = int(listed[123])
    for distance in range(0, 12):
        query = flipped(target, np.arange(distance) * 5)
        expected = phash.within(listed, query, 6)
        assert index.near(query) == expected
        if distance <= 6:
            assert expected
