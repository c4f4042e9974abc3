"""Evaluation-set decontamination (issue 20): `wit shards --exclude DIR ...` removes every training
sample that is an exact or near duplicate of an image of the given evaluation sets.

An evaluation set is a folder of images (ImageNet-style class folders or flat) and/or WebDataset
tars (their image members), read recursively. Each image is hashed like a training sample: the
sha256 of its bytes (equal to the sha256 of the bytes a sample was downloaded as: an exact copy)
and its pHash and look signature (phash.image_hashes). A sample is contaminated when its sha256
equals an evaluation image's, or its pHash is within `--exclude-bits` of one and (with
`--near-dup-check`) they look alike: the same rule as the near-duplicate removal, with its own
threshold. Removals go to `manifests/dedup.parquet` as kind `eval`, naming the evaluation file
(`SET/relative/path`, or `SET/shard.tar:key.ext`), and are counted per set in dataset.json.

The evaluation hashes are held in memory (tens of bytes an image: millions of evaluation images
fit); the training index is read one piece at a time, matched band by band (pigeonhole, as in
dedup.py), so memory stays flat in the dataset's size.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.core.spill import order_keys
from wit_builder.core.tarsamples import read_samples
from wit_builder.shards.dedup import REMOVAL, removal_table
from wit_builder.shards.phash import bands, image_hashes, same_look

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class EvalHashes:
    """The hashes of every image of the evaluation sets, and their names."""

    names: list[str]            # SET/relative/path
    sets: list[str]
    sha256: dict[str, int]      # hex digest -> index of the first image with it
    phash: np.ndarray           # uint64
    signature: np.ndarray       # uint64


def set_images(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(name within the set, bytes) of every image file and every image member of a tar below
    `folder`, in sorted order."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(folder).as_posix()
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield relative, path.read_bytes()
        elif path.suffix.lower() == ".tar":
            problems: Counter = Counter()
            with open(path, "rb") as stream:
                for key, members in read_samples(stream, problems, str(path)):
                    for extension, data in sorted(members.items()):
                        if f".{extension.lower()}" in IMAGE_SUFFIXES:
                            yield f"{relative}:{key}.{extension}", data


def hash_sets(directories: list[str]) -> EvalHashes:
    """Hash every image of the evaluation sets (folders: `wit shards` checks they exist before
    any work); a set without an image is an error."""
    names, sets, sha256, phashes, signatures = [], [], {}, [], []
    for directory in directories:
        folder = Path(directory)
        label = folder.name or str(folder)
        count = skipped = 0
        for name, data in set_images(folder):
            try:
                phash, signature = image_hashes(data)
            except Exception as error:  # one bad file costs itself, said in the log
                skipped += 1
                log.warning("shards: --exclude: %s/%s unreadable as an image (%s): skipped",
                            label, name, type(error).__name__)
                continue
            sha256.setdefault(hashlib.sha256(data).hexdigest(), len(names))
            names.append(f"{label}/{name}")
            sets.append(label)
            phashes.append(phash)
            signatures.append(signature)
            count += 1
        if not count:
            raise WitError(f"--exclude: '{directory}' holds no image (files "
                           f"{', '.join(IMAGE_SUFFIXES)} or WebDataset tars of them)")
        log.info("shards: --exclude: %d images of evaluation set %s hashed (%d skipped)", count,
                 label, skipped)
    return EvalHashes(names, sets, sha256, np.array(phashes, dtype=np.uint64),
                      np.array(signatures, dtype=np.uint64))


def near_matches(phash: np.ndarray, signature: np.ndarray, evals: EvalHashes, bits: int,
                 check: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample index, evaluation index, distance) of every sample within `bits` of an evaluation
    image (and alike, with `check`), the closest evaluation image for each."""
    best: dict[int, tuple[int, int]] = {}
    for shift, mask in bands(bits):
        keys = (evals.phash >> np.uint64(shift)) & np.uint64(mask)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        mine = (phash >> np.uint64(shift)) & np.uint64(mask)
        low = np.searchsorted(sorted_keys, mine, "left")
        high = np.searchsorted(sorted_keys, mine, "right")
        for sample in np.nonzero(high > low)[0]:
            candidates = order[low[sample]:high[sample]]
            distance = np.bitwise_count(evals.phash[candidates] ^ phash[sample])
            good = distance <= bits
            if check:
                good &= same_look(np.full(len(candidates), signature[sample], np.uint64),
                                  evals.signature[candidates])
            for candidate, value in zip(candidates[good], distance[good]):
                if sample not in best or (value, candidate) < best[sample]:
                    best[sample] = (int(value), int(candidate))
    samples = np.array(sorted(best), dtype=np.int64)
    return (samples, np.array([best[s][1] for s in samples], dtype=np.int64),
            np.array([best[s][0] for s in samples], dtype=np.int32))


def contaminated(pieces: list[tuple[str, int]], evals: EvalHashes, bits: int, check: bool
                 ) -> pa.Table:
    """The removals (schema REMOVAL, kind `eval`) of the training samples in the index `pieces`
    that copy an evaluation image, in order."""
    tables = []
    for path, _ in pieces:
        index = store.read_parquet(path, columns=["uid", "sha256", "phash", "signature",
                                                  "raw_shard", "position"])
        if not index.num_rows:
            continue
        orders = order_keys(index["raw_shard"].to_numpy(), index["position"].to_numpy())
        uids = index["uid"].to_pylist()
        found: dict[int, tuple[str, int]] = {}
        for row, digest in enumerate(index["sha256"].to_pylist()):
            if digest in evals.sha256:
                found[row] = (evals.names[evals.sha256[digest]], 0)
        samples, matches, distances = near_matches(
            index["phash"].to_numpy().astype(np.uint64),
            index["signature"].to_numpy().astype(np.uint64), evals, bits, check)
        for row, match, distance in zip(samples, matches, distances):
            found.setdefault(int(row), (evals.names[match], int(distance)))
        rows = sorted(found)
        tables.append(removal_table(np.array([orders[r] for r in rows], np.int64),
                                    [uids[r] for r in rows], [found[r][0] for r in rows], "eval",
                                    np.array([found[r][1] for r in rows], np.int32)))
    table = pa.concat_tables(tables) if tables else REMOVAL.empty_table()
    return table.sort_by("order")


def per_set(removals: pa.Table) -> dict[str, int]:
    """Removals per evaluation set (the first part of the matched file's name)."""
    return dict(sorted(Counter(name.split("/", 1)[0]
                               for name in removals["duplicate_of"].to_pylist()).items()))
