"""Download the selection into raw WebDataset shards (`data/raw/NNNNN.tar` + one manifest per
shard), with the native downloader or img2dataset; both give the same contract (DESIGN.md).

run.py        download_selection: checks, shards, then the downloader chosen
plan.py       the selection cut into shards: each shard's rows, inputs, done rule, worker settings
native.py     the native downloader (fetch.py: the network; images.py: decode and resize)
img2dataset_backend.py   img2dataset, guarded, its output converted sample by sample
writer.py     the raw-sample contract (raw_sample: key, .json, .txt, manifest row) and the files
stats.py      the counts both downloaders return, and the final table of statuses
"""

from wit_builder.crawl.download.run import download_selection
from wit_builder.crawl.download.stats import status_table

__all__ = ["download_selection", "status_table"]
