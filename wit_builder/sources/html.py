"""Image–text pairs of an HTML page, shared by the live crawler and the WARC reader.

A real HTML parser (selectolax/Lexbor), never regular expressions on HTML. For every `<img>`:
the URL is the largest `srcset` candidate, else a lazy-loading attribute (`data-src`, ...), else
`src`; the text is `alt`, else `title`, else the `<figcaption>` of the enclosing `<figure>`. URLs
are resolved against the page (and its `<base href>`): relative URLs are ~40% of images on the web,
and dropping them (as LAION and DataComp did) loses them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

LAZY_URL_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-url")
LAZY_SRCSET_ATTRIBUTES = ("data-srcset", "data-lazy-srcset")
WEB_SCHEMES = {"http", "https"}


@dataclass(frozen=True)
class ImageText:
    url: str
    text: str
    text_from: str  # alt | title | figcaption


@dataclass
class PageImages:
    """What one page yielded, and every image it did not yield with the reason."""

    pairs: list[ImageText] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)


HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_html_type(content_type: str | None) -> bool:
    """True for an HTML Content-Type header value (parameters such as charset ignored)."""
    return (content_type or "").split(";")[0].strip().lower() in HTML_TYPES


def decode_html(body: bytes | str) -> str:
    """Page bytes as text: UTF-8 when valid, else Windows-1252 (what browsers assume for Latin-1)."""
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def parse_srcset(srcset: str) -> list[tuple[str, float]]:
    """`srcset` candidates as (url, size), size the `w` width or the `x` density (1 by default)."""
    candidates = []
    for part in srcset.split(","):
        tokens = part.split()
        if not tokens:
            continue
        size = 1.0
        for descriptor in tokens[1:]:
            unit, number = descriptor[-1:].lower(), descriptor[:-1]
            try:
                if unit in ("w", "x"):
                    size = float(number)
            except ValueError:
                continue
        candidates.append((tokens[0], size))
    return candidates


def largest_srcset_url(srcset: str | None) -> str | None:
    candidates = parse_srcset(srcset or "")
    if not candidates:
        return None
    # max() keeps the first of equal sizes, so ties go to the author's order.
    return max(candidates, key=lambda candidate: candidate[1])[0]


def raw_image_url(attributes: dict[str, str | None]) -> str | None:
    """The URL a browser would finally show for an `<img>`, before resolution."""
    for name in ("srcset", *LAZY_SRCSET_ATTRIBUTES):
        url = largest_srcset_url(attributes.get(name))
        if url:
            return url
    for name in LAZY_URL_ATTRIBUTES:
        if attributes.get(name):
            return attributes[name]
    return attributes.get("src")


def resolve_url(base: str, url: str) -> str | None:
    """`url` made absolute against `base`, without its fragment; None unless http(s)."""
    try:
        absolute = urljoin(base, url.strip())
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.netloc:
        return None
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path or "/", parts.query, ""))


class UrlResolver:
    """`resolve_url` against one page, with fast paths for the common shapes of URLs (absolute,
    root-relative, plain relative): urljoin costs ~20 µs and pages hold dozens of URLs."""

    def __init__(self, base: str):
        self.base = base
        parts = urlsplit(base)
        self.simple_base = parts.scheme in WEB_SCHEMES and bool(parts.netloc) \
            and "/." not in parts.path and "\\" not in base
        self.scheme = parts.scheme
        self.origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path or "/"
        self.directory = self.origin + path[:path.rfind("/") + 1]

    def resolve(self, url: str) -> str | None:
        candidate = self.fast_path(url.strip().split("#", 1)[0])
        return candidate if candidate is not None else resolve_url(self.base, url)

    def fast_path(self, url: str) -> str | None:
        """The resolved URL when it needs no general RFC 3986 work, else None."""
        if not url or "/." in url or "\\" in url or url.endswith("?") \
                or any(c.isspace() for c in url):
            return None
        if url.startswith(("http://", "https://")):
            slash = url.find("/", url.index("//") + 2)
            host_end = len(url) if slash < 0 else slash
            netloc = url[url.index("//") + 2:host_end]
            if not netloc or "?" in netloc or "@" in netloc:
                return None
            return url if slash >= 0 else url + "/"
        if not self.simple_base or url.startswith(("//", "?")):
            return None
        if "//" in url:  # urljoin folds empty segments of relative paths
            return None
        if url.startswith("/"):
            return self.origin + url
        first_segment = url.split("/", 1)[0]
        if ":" in first_segment or url.startswith("."):
            return None
        return self.directory + url


def collapse_whitespace(text: str | None) -> str:
    return " ".join((text or "").split())


def enclosing_figcaption(node: LexborNode) -> str:
    """Text of the `<figcaption>` of the nearest `<figure>` around `node`, if any."""
    parent = node.parent
    while parent is not None and parent.tag not in ("figure", "body", "html"):
        parent = parent.parent
    if parent is None or parent.tag != "figure":
        return ""
    caption = parent.css_first("figcaption")
    return collapse_whitespace(caption.text(deep=True, separator=" ")) if caption else ""


def image_text(node: LexborNode) -> tuple[str, str]:
    """(text, where it came from) of an `<img>`: alt, else title, else the figure's caption."""
    for name in ("alt", "title"):
        text = collapse_whitespace(node.attributes.get(name))
        if text:
            return text, name
    return enclosing_figcaption(node), "figcaption"


def is_tracking_pixel(attributes: dict[str, str | None]) -> bool:
    """Declared 1×1 (or smaller) images: counters and beacons, never content."""
    def declared(name: str) -> int | None:
        value = (attributes.get(name) or "").strip().lower().removesuffix("px")
        return int(value) if value.isdigit() else None

    width, height = declared("width"), declared("height")
    return width is not None and height is not None and width <= 1 and height <= 1


def page_base_url(tree: LexborHTMLParser, page_url: str) -> str:
    base = tree.css_first("base[href]")
    href = base.attributes.get("href") if base else None
    return urljoin(page_url, href.strip()) if href else page_url


def meta_robots(tree: LexborHTMLParser) -> set[str]:
    """Directives of `<meta name="robots">` (nofollow, noimageindex, noai, ...), lower case."""
    directives: set[str] = set()
    for node in tree.css("meta[name]"):
        if (node.attributes.get("name") or "").strip().lower() in ("robots", "witbuilder"):
            content = node.attributes.get("content") or ""
            directives.update(part.strip().lower() for part in content.split(","))
    return directives


def images_of(tree: LexborHTMLParser, resolver: UrlResolver, directives: set[str]) -> PageImages:
    """Every (image URL, text) pair of a parsed page, with the reasons the others were dropped."""
    result = PageImages()
    opted_out = directives & {"noimageindex", "noai", "noimageai", "none"}
    for node in tree.css("img"):
        attributes = node.attributes
        raw_url = raw_image_url(attributes)
        if opted_out:
            result.dropped["opted_out"] += 1
            continue
        if not raw_url or raw_url.strip().lower().startswith("data:"):
            result.dropped["no_url" if not raw_url else "data_uri"] += 1
            continue
        if is_tracking_pixel(attributes):
            result.dropped["tracking_pixel"] += 1
            continue
        url = resolver.resolve(raw_url)
        if url is None:
            result.dropped["not_http"] += 1
            continue
        text, source = image_text(node)
        if not text:
            result.dropped["no_text"] += 1
            continue
        result.pairs.append(ImageText(url=url, text=text, text_from=source))
    return result


def links_of(tree: LexborHTMLParser, resolver: UrlResolver, directives: set[str]) -> list[str]:
    """Absolute http(s) targets of the page's `<a href>` (none when the page says nofollow)."""
    if directives & {"nofollow", "none"}:
        return []
    links = []
    for node in tree.css("a[href]"):
        if "nofollow" in (node.attributes.get("rel") or "").lower().split():
            continue
        url = resolver.resolve(node.attributes.get("href") or "")
        if url is not None:
            links.append(url)
    return links


def parse_page(body: bytes | str, page_url: str) -> tuple[PageImages, list[str]]:
    """A page parsed once: its image–text pairs and its outgoing links."""
    tree = LexborHTMLParser(decode_html(body))
    resolver = UrlResolver(page_base_url(tree, page_url))
    directives = meta_robots(tree)
    return images_of(tree, resolver, directives), links_of(tree, resolver, directives)


def extract_images(body: bytes | str, page_url: str) -> PageImages:
    """Every (image URL, text) pair of a page, with the reasons the other images were dropped."""
    tree = LexborHTMLParser(decode_html(body))
    resolver = UrlResolver(page_base_url(tree, page_url))
    return images_of(tree, resolver, meta_robots(tree))
