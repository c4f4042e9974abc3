"""The settings of `wit crawl` (`wit crawl --help` is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from wit_builder.core.config import PartitionedStageConfig
from wit_builder.core.options import option
from wit_builder.net.optout import HEADER_OPT_OUTS
from wit_builder.net.options import NetworkOptions

# pHash blocklists (crawl.blocklists), measured on real photographs (benchmarks/bench_blocklists.py)
DEFAULT_PHASH_BITS = 8   # every web copy but crops was within 6 bits of its listed pHash
MAX_PHASH_BITS = 16      # the closest distinct wallpaper photographs were 16 bits apart

# Pillow readers that decode nothing here: stubs wanting a handler (BUFR, GRIB, HDF5, WMF off
# Windows), MPEG and IPTC (no pixels), EPS (runs Ghostscript on the body: never on crawled bytes).
NOT_DECODED_FORMATS = frozenset({"BUFR", "GRIB", "HDF5", "WMF", "MPEG", "IPTC", "EPS"})
FORMAT_FEATURES = {"AVIF": "avif", "WEBP": "webp", "JPEG2000": "jpg_2000"}


@cache
def image_formats() -> tuple[str, ...]:
    """The image formats the crawl stores: every one the installed Pillow decodes (AVIF, WebP and
    JPEG 2000 only when Pillow was built with their libraries)."""
    from PIL import Image, features

    Image.init()
    return tuple(sorted(name for name in Image.OPEN if name not in NOT_DECODED_FORMATS
                        and (name not in FORMAT_FEATURES or features.check(FORMAT_FEATURES[name]))))


SOURCE_HELP = ("web:URL | web:@seeds.txt | warc:PATH_OR_URL | warc:LISTING.paths[.gz] | "
               "warc:@LISTING | pool:PATH")


@dataclass
class CrawlConfig(NetworkOptions, PartitionedStageConfig):
    # --allow-private, --trusted-origins, --user-agent: net/options.py (the opt-out recheck's too)
    # img2dataset's spellings of the options both tools share are accepted too (`aliases`).
    workers: int = option(0, "worker processes (0: one per core)", min=0,
                          aliases=["--processes_count"])
    source: list[str] = option([], SOURCE_HELP + " (repeatable)", metavar="SOURCE")
    warc_prefix: str = option("https://data.commoncrawl.org/", "what the relative lines of a WARC "
                              "listing (Common Crawl's warc.paths.gz, warc:@list.txt) are resolved "
                              "against: a URL or a local directory")
    queries: str = option("queries/queries.parquet", "queries to match texts against")
    per_query: int = option(20_000, "most pairs any one query keeps", min=1)
    balance: str = option("exact", "balancing rule", choices=["exact", "probabilistic"])
    download: bool = option(True, "download the selected images (--no-download stops after "
                                  "the selection)")
    downloader: str = option("native", "image downloader", choices=["native", "img2dataset"])
    max_pages: int = option(10_000, "pages the web crawler fetches at most", min=1)
    max_depth: int = option(5, "links followed from a seed at most", min=0)
    allowed_hosts: list[str] = option([], "hosts the crawler may visit (default: the seeds' hosts)",
                                      metavar="HOST")
    crawl_concurrency: int = option(16, "pages fetched at once by the web crawler", min=1)
    per_host_concurrency: int = option(2, "requests in flight to one host", min=1)
    crawl_delay: float = option(1.0, "seconds between two page requests to one host (robots.txt "
                                     "Crawl-delay may raise it)", min=0)
    max_page_bytes: int = option(5_000_000, "largest HTML page read", min=1)
    checkpoint_pages: int = option(1000, "pages between two checkpoints of a live crawl (its "
                                         "pairs so far and its frontier): a killed crawl goes on "
                                         "from the last one; at least one page per 20 URLs seen, "
                                         "so large crawls checkpoint less often (0: only at "
                                         "the end)",
                                         min=0)
    min_text_chars: int = option(5, "shorter texts are dropped", min=0)
    max_text_chars: int = option(1000, "longer texts are dropped", min=1)
    partition_rows: int = option(50_000, "rows per partition: candidates of the crawled web "
                                         "pages, rows of pool files (a pool's row group may "
                                         "be split, small files grouped)", min=1)
    memory_budget_mb: float = option(512.0, "memory the URL dedupe holds at once; past it, the "
                                            "matched rows go through hash buckets on disk", above=0)
    lang: str = option("en", "language kept")
    min_lang_prob: float = option(0.9, "least language probability kept (when not set: 0.5 "
                                       "with auto, 0.9 with langdetect, 0.3 with lingua, whose "
                                       "probabilities of short captions run lower)", min=0, max=1)
    lang_detector: str = option("auto", "language detector, run on the texts that matched a "
                                "query. auto: lingua weighed with the share of the text's words "
                                "that are query words, by length (short alt texts); lingua: "
                                "lingua alone; langdetect: langdetect, seeded (~15x slower)",
                                choices=["auto", "lingua", "langdetect"])
    url_col: str = option("url", "URL column of pool files", aliases=["--url_col"])
    text_col: str = option("caption", "caption column of pool files", aliases=["--caption_col"])
    save_additional_columns: list[str] = option(
        [], "columns of pool files (license, similarity, NSFW, ...) kept in each sample's .json "
        "and the download manifests, with the pool's types; comma-separated or repeatable; pool "
        "sources only", metavar="COLUMN", aliases=["--save_additional_columns"])
    samples_per_shard: int = option(10_000, "samples per raw download shard",
                                    min=1, aliases=["--number_sample_per_shard"])
    concurrency: int = option(128, "requests in flight per worker",
                              min=1, aliases=["--thread_count"])
    image_size: int = option(256, "longest side of stored images", min=1, aliases=["--image_size"])
    resize_mode: str = option("keep_ratio", "how images are resized. keep_ratio: the longest "
                              "side becomes --image-size (img2dataset's keep_ratio_largest; "
                              "img2dataset's keep_ratio sets the shortest side), smaller images "
                              "are not enlarged; keep_ratio_largest is the same mode. "
                              "center_crop: the shortest side becomes --image-size, then the "
                              "central square is kept. border: the longest side becomes "
                              "--image-size, padded white to a square. no: as downloaded",
                              choices=["keep_ratio", "keep_ratio_largest", "center_crop",
                                       "border", "no"])
    decode: str = option("reduced", "how large JPEGs are decoded before the resize. reduced: "
                         "at the smallest DCT scale (1/2, 1/4, 1/8) that leaves twice the "
                         "output size (PSNR against a full decode equal to img2dataset's); "
                         "fast: that leaves the output size (0.4-0.8 dB lower at 256 px, "
                         "a third less CPU in the image step); full: at full size, as "
                         "img2dataset does (slowest). Not used by --downloader img2dataset",
                         choices=["reduced", "fast", "full"])
    min_size: int = option(32, "images with a smaller side are dropped",
                           min=0, aliases=["--min_image_size"])
    max_aspect_ratio: float = option(3.0, "images more elongated than this are dropped",
                                     min=1, aliases=["--max_aspect_ratio"])
    max_bytes: int = option(20_000_000, "largest image body downloaded; images are kept in every "
                            "format the installed Pillow decodes (here: "
                            + ", ".join(image_formats()) + ") and stored as JPEG; an image over "
                            "Pillow's pixel limit is too_large", min=1)
    block_hashes: list[str] = option([], "files of MD5, SHA-1 or SHA-256 hex digests and "
                                     "64-bit pHashes as imagehash writes them (16 hex digits, "
                                     "HEX:BITS for a distance of its own; one a line, gzip "
                                     "accepted): a downloaded image whose digest is listed, or "
                                     "whose decoded picture is near a listed pHash, is dropped "
                                     "in memory, never written (status blocked_hash) "
                                     "(repeatable)", metavar="FILE")
    block_phash_distance: int = option(DEFAULT_PHASH_BITS, "bits (Hamming distance) within "
                                       "which a picture matches a listed pHash that has no "
                                       "distance of its own (every web copy but crops was "
                                       "within 6 on real photographs; distinct ones 16 or "
                                       "more apart, but for pictures of one flat tone)",
                                       min=0, max=MAX_PHASH_BITS, metavar="BITS")
    block_urls: list[str] = option([], "files of URLs and domains (one a line, gzip accepted) "
                                   "never requested, redirect hops included (status "
                                   "blocked_url) (repeatable)", metavar="FILE")
    quality: int = option(90, "JPEG quality of stored images",
                          min=1, max=100, aliases=["--encode_quality"])
    timeout: float = option(20.0, "seconds per request", above=0)
    retries: int = option(2, "retries of timeouts, resets and 5xx", min=0)
    download_per_host: int = option(16, "image requests in flight to one host, per worker", min=1)
    disallowed_header_directives: list[str] = option(
        list(HEADER_OPT_OUTS), "X-Robots-Tag directives that keep an "
        "image out (img2dataset's default list), for everyone or scoped to our --user-agent; "
        "repeatable or comma-separated; '' stores every image", metavar="DIRECTIVE")
    image_robots: bool = option(True, "check each image host's robots.txt before fetching it "
                                      "(--no-image-robots: don't)")
    blur_faces: bool = option(False, "detect faces on each resized image and blur them before "
                                     "it is encoded; the sample's .json lists the regions "
                                     "blurred (face_boxes, x0 y0 x1 y1 in [0, 1]) and the "
                                     "manifest counts them (faces). The default detector needs "
                                     "pip install 'witbuilder[safety]' (README: Dataset safety)")
    face_detector: str = option("mtcnn", "face detector of --blur-faces: mtcnn (facenet-pytorch, "
                                "the [safety] extra), haar (OpenCV's cascade: fewer faces "
                                "found) or MODULE:FACTORY, a callable returning a function from "
                                "an RGB uint8 HxWx3 array to pixel boxes (x0, y0, x1, y1)",
                                metavar="NAME")
    nsfw_threshold: float = option(0.0, "score each resized image's NSFW probability (.json and "
                                        "manifest nsfw_score) and drop those over it (status "
                                        "nsfw); 0: not scored, 1: scored, none dropped. Needs "
                                        "pip install 'witbuilder[safety]'", min=0, max=1)
    nsfw_scorer: str = option("opennsfw", "NSFW scorer of --nsfw-threshold: opennsfw (Yahoo's "
                              "open_nsfw, ONNX) or MODULE:FACTORY, a callable returning a function "
                              "from an RGB uint8 HxWx3 array to a probability", metavar="NAME")
