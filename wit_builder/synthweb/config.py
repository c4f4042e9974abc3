"""The settings of `wit synthweb` and `wit demo`, and the options the `synthweb:` crawl source
adds to `wit crawl` (the crawl's own settings know nothing of the synthetic web)."""

from __future__ import annotations

from dataclasses import dataclass

from wit_builder.core.options import StageConfig, option


@dataclass
class SynthwebConfig(StageConfig):
    action: str = option("generate", "generate the files, or serve the website",
                         choices=["generate", "serve"], positional=True)
    out: str = option("data/synthweb", "directory the synthetic web is generated into")
    articles: int = option(3000, "Wikipedia articles in the synthetic dump", min=1)
    vocab_size: int = option(20000, "distinct words of the dump's Zipf vocabulary", min=1)
    words_per_article: int = option(400, "mean words of article text", min=1)
    site_pages: int = option(400, "HTML pages of the website", min=11)
    images_per_page: int = option(8, "images per page (decoys included)", min=1)
    image_size: int = option(96, "side in pixels of the rendered images", min=8)
    zeroshot_per_class: int = option(20, "held-out renders per zero-shot class", min=1)
    recorded_origin: str = option("http://127.0.0.1:8731", "origin (scheme://host:port) of the "
                                  "URLs written into site.warc.gz and pool.parquet")
    host: str = option("127.0.0.1", "address the website is served on")
    port: int = option(0, "port of the website (0: any free port)", min=0, max=65535)


@dataclass
class DemoConfig(StageConfig):
    size: str = option("demo", "sizes of the synthetic web", choices=["demo", "test"])
    port: int = option(8765, "port the demo serves its site on; image URLs, hence the uids that "
                       "balancing and the val split hash, contain it (0: any free port)",
                       min=0, max=65535)


@dataclass
class SynthwebSourceOptions:
    """What `wit crawl --source synthweb:` needs: the generated site and the port it is served on."""

    synthweb_dir: str = option("data/synthweb", "the generated synthetic web that source "
                                                "synthweb: serves")
    synthweb_port: int = option(8765, "port source synthweb: serves the site on; image URLs, "
                                "hence uids, contain it, so a resumed crawl needs the same port "
                                "(0: any free port, which a resumed crawl does not reuse)",
                                min=0, max=65535)
