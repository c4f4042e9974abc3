"""Seeded 64-bit keys shared by the stages: the crawl's balancing and the shards' val split and
summary hash uids the same way."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MASK64 = (1 << 64) - 1


def splitmix64(values: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit hash of each value (vectorised SplitMix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


HEX_VALUES = np.full(256, 255, dtype=np.uint8)
HEX_VALUES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
HEX_VALUES[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def uid_keys(uids: pa.Array, seed: int) -> np.ndarray:
    """A seeded 64-bit key per uid. Uids are sha1 hex by contract, so the key is read straight
    from their first 16 hex digits (vectorised); any other uid is hashed with blake2b."""
    uids = pa.array(uids, pa.string()) if not isinstance(uids, pa.Array) else uids
    seed_mix = splitmix64(np.array([seed & MASK64], dtype=np.uint64))[0]
    lengths = pc.utf8_length(uids).to_numpy(zero_copy_only=False)
    if len(uids) and (lengths >= 16).all():
        heads = pc.utf8_slice_codeunits(uids, 0, 16).cast(pa.binary())
        digits = HEX_VALUES[np.frombuffer(heads.buffers()[2], np.uint8)[:16 * len(uids)]]
        if (digits < 16).all():
            nibbles = digits.reshape(-1, 16).astype(np.uint64)
            shifts = np.arange(60, -4, -4, dtype=np.uint64)
            return splitmix64(np.bitwise_or.reduce(nibbles << shifts, axis=1) ^ seed_mix)
    salt = seed.to_bytes(8, "little", signed=True)
    return np.fromiter((int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8, salt=salt)
                                       .digest(), "little") for uid in uids.to_pylist()),
                       dtype=np.uint64, count=len(uids))
