"""Stage 3, `wit shards`: scan, dedup, shuffle, split, report."""
