"""The parquet contracts between stages (DESIGN.md), declared once and reused by writers, readers
and tests."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

CANDIDATES = pa.schema([
    ("uid", pa.string()),        # sha1 of url + "\t" + text
    ("url", pa.string()),
    ("text", pa.string()),
    ("page_url", pa.string()),
    ("source", pa.string()),     # web | warc | pool
    ("lang", pa.string()),
    ("lang_prob", pa.float32()),
])

MATCHES = CANDIDATES.append(pa.field("query_ids", pa.list_(pa.int32())))

SELECTION = MATCHES.append(pa.field("selected_by", pa.list_(pa.int32())))

BALANCE = pa.schema([
    ("query_id", pa.int32()),
    ("matched", pa.int64()),
    ("selected", pa.int64()),
])

CRAWL_STATUSES = ("ok", "http_error", "timeout", "too_large", "not_image", "decode_error",
                  "too_small", "bad_aspect_ratio", "blocked_address", "opted_out", "robots",
                  "redirect_loop", "connection_error", "blocked_url", "blocked_hash", "nsfw")

CRAWL_MANIFEST = pa.schema([
    ("uid", pa.string()),
    ("url", pa.string()),
    ("status", pa.string()),
    ("http_status", pa.int32()),
    ("error", pa.string()),
    ("bytes", pa.int64()),
    ("sha256", pa.string()),
    ("shard", pa.int32()),
    ("key", pa.string()),
    ("seconds", pa.float32()),
    ("nsfw_score", pa.float32()),   # --nsfw-threshold's score (null when not scored)
    # --blur-faces: the face boxes blurred in a stored image (null when off, when not stored,
    # and in manifests written before the column: read_manifest gives null)
    ("faces", pa.int32()),
])

BLUR_COUNTS = ("faces_blurred", "images_blurred")   # what the `faces` column sums to


def blur_counts(faces: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """The counts of a crawl manifest's `faces` column (`BLUR_COUNTS`): face boxes blurred, and
    stored images with at least one; empty when it holds no value (--blur-faces was off)."""
    if faces.null_count == len(faces):
        return {}
    return {"faces_blurred": pc.sum(faces).as_py() or 0,
            "images_blurred": pc.sum(pc.greater(faces, 0)).as_py() or 0}


SHARDS = pa.schema([
    ("shard", pa.string()),
    ("split", pa.string()),      # train | val
    ("samples", pa.int64()),
    ("bytes", pa.int64()),
    ("sha256", pa.string()),
])

DEDUP = pa.schema([
    ("uid", pa.string()),           # the sample removed
    ("duplicate_of", pa.string()),  # the uid kept in its place (first in raw shard order)
    ("kind", pa.string()),          # exact | near
    ("distance", pa.int32()),       # Hamming distance of the perceptual hashes (0 for exact)
])

# manifests/takedown.parquet: samples removed from the training shards after they were written
# (wit takedown, wit optout, or wit shards --takedown / --recheck-optout); kept across rebuilds.
REMOVALS = pa.schema([
    ("uid", pa.string()),
    ("url", pa.string()),           # the image URL (canonical form, as the crawl stored it)
    ("shard", pa.string()),         # the training shard it was removed from
    ("reason", pa.string()),        # REMOVAL_REASONS
])
REMOVAL_REASONS = ("takedown", "takedown_page", "robots", "opted_out")

# A pool's additional columns (`wit crawl --save-additional-columns`, img2dataset's
# save_additional_columns) ride at the end of the candidates, matches, selection and download
# manifests, with the Arrow types the pool gave them, and become keys of each sample's `.json`.
SAMPLE_JSON = ("uid", "url", "page_url", "query_ids", "width", "height", "original_width",
               "original_height", "sha256")   # the keys a raw sample's `.json` holds
# Names an additional column cannot take: ours (the contracts above, the `.json` keys, those
# --blur-faces and --nsfw-threshold add) and those img2dataset keeps for itself, so that both
# downloaders accept the same columns.
RESERVED_COLUMNS = frozenset(SELECTION.names) | frozenset(CRAWL_MANIFEST.names) | \
    frozenset(SAMPLE_JSON) | frozenset({"face_boxes", "nsfw_score"}) | \
    frozenset({"caption", "error_message", "exif", "md5", "sha512"})


def additional_fields(schema: pa.Schema, contract: pa.Schema) -> pa.Schema:
    """The fields of `schema` (a file of `contract`) past the contract's own: a pool's
    additional columns, in their order."""
    return pa.schema([field for field in schema if field.name not in contract.names])


def with_additional(contract: pa.Schema, additional: pa.Schema | None) -> pa.Schema:
    """`contract` followed by a pool's additional columns (none: the contract itself)."""
    return pa.schema([*contract, *additional]) if additional else contract
