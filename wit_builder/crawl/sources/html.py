"""Image–text pairs of an HTML page, shared by the live crawler and the WARC reader.

A real HTML parser (selectolax/Lexbor), never regular expressions on HTML. For every `<img>`:
the URL is the largest `srcset` candidate, else a lazy-loading attribute (`data-src`, ...), else
`src`; the text is `alt`, else `title`, else the `<figcaption>` of the enclosing `<figure>`. URLs
are resolved against the page (and its `<base href>`): relative URLs are ~40% of images on the web,
and dropping them (as LAION and DataComp did) loses them.

Speed (benchmarks/bench_extract.py, on real documentation pages): `parse_page`, what the crawl
runs, hands Lexbor the page's own bytes when they are UTF-8, finds elements with `tags()` walks
(one CSS walk on large pages) and, with the compiled extension, decides the common shapes of
images and links in C (`_crawlfast.page_images`, `page_links`) on their attribute dicts; every
other image goes to `image_outcome`, the Python reference, and every other link to
`UrlResolver.resolve` (once per distinct href). Without the extension, the reference does all.
Only selectolax's public API is used.

Hostile pages: a page whose parse would cost far more than its size (a tag of thousands of
attributes, block elements nested tens of thousands deep) raises PageTooComplex before it is
parsed (`check_complexity`); an image whose attributes make extraction raise is counted as
`image_error` and the page's other images are kept.
"""

from __future__ import annotations

import logging
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
from selectolax.lexbor import LexborHTMLParser, LexborNode

from wit_builder.net.optout import META_OPT_OUTS

try:
    from wit_builder.crawl import _crawlfast
except ImportError:  # not built: the Python reference does every image (wit_builder.crawl.match warns)
    _crawlfast = None

log = logging.getLogger(__name__)

LAZY_URL_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-url")
LAZY_SRCSET_ATTRIBUTES = ("data-srcset", "data-lazy-srcset")
# Attributes that may name an image's URL besides `src`; most images have none of them. The
# compiled path looks up only attribute names of 6+ characters that start with "s" or "d".
URL_ATTRIBUTES = frozenset(("srcset", *LAZY_SRCSET_ATTRIBUTES, *LAZY_URL_ATTRIBUTES))
WEB_SCHEMES = {"http", "https"}


class ImageText(NamedTuple):
    """One image–text pair of a page (a NamedTuple: pages hold dozens and it builds ~2x faster
    than a frozen dataclass)."""

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


# Above this size a page's UTF-8 is checked by Arrow's vectorised validator (~0.1 ns a byte,
# ~2 µs a call) rather than by decoding it to a str that is thrown away (~0.5 ns a byte).
ARROW_VALIDATION_BYTES = 16 * 1024
_OFFSETS = struct.Struct("<ii")


def is_utf8(body: bytes) -> bool:
    """True when `body` is valid UTF-8 (what bytes.decode accepts)."""
    if len(body) < ARROW_VALIDATION_BYTES:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    try:
        pa.StringArray.from_buffers(1, pa.py_buffer(_OFFSETS.pack(0, len(body))),
                                    pa.py_buffer(body)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


# A declaration of UTF-8 where the HTML standard's prescan reads one: the first 1024 bytes.
DECLARED_UTF8 = re.compile(rb"""charset\s*=\s*["']?\s*utf-?8(?![\w-])""")


def declares_utf8(body: bytes) -> bool:
    """True when the page's first 1024 bytes declare UTF-8 (`<meta charset="utf-8">` or an
    http-equiv Content-Type with charset=utf-8)."""
    return DECLARED_UTF8.search(body[:1024].lower()) is not None


def parser_input(body: bytes | str) -> bytes | str:
    """What Lexbor parses: the page's own bytes when they are UTF-8 or say they are (Lexbor
    reads UTF-8, a browser too when the page declares it, invalid bytes becoming U+FFFD; a str
    would only be encoded back), else the Windows-1252 text (decode_html)."""
    if isinstance(body, str) or body.isascii() or declares_utf8(body) or is_utf8(body):
        return body
    return decode_html(body)


class PageTooComplex(ValueError):
    """A page whose parse would cost far more than its size (found before parsing it)."""


# Lexbor parses in time linear in the page but for two shapes, both quadratic, that a crawler of
# the open web meets (generated or hostile pages); a page over either budget is refused before
# it is parsed. The checks cost nothing below a page size at which the shape cannot get costly.
#
# Distinct attributes of one tag: Lexbor compares each with every one before it (one tag of
# 5,000: ~0.1 s; 8,000: 0.2 s; 100,000: minutes). A tag of more than 5,000 spans more than 15 KB
# (3 bytes an attribute: beyond ~90 one-byte names, a name of 2 and a separator), and such
# tags are found by probing windows of half that length for a '>' (memchr speed, a few calls a
# page). A '>' hidden in a quoted value of every attribute evades this check.
MAX_TAG_ATTRIBUTES = 5_000
LONG_TAG_BYTES = 15 * 1024
# Nested block elements (<div>, <ul>, <section>...): each start tag of one scans the stack of
# open elements (10,000 nested <div>: ~0.1 s; 20,000: ~0.45 s; it grows with the square; inline
# elements such as <span> or <b> cost no such scan). A block start tag takes at least 4 bytes, so
# only pages over 4 * MAX_DEPTH bytes with more '<' than MAX_DEPTH are estimated (numpy, over
# the page's '<': start tags of such elements less their end tags; end tags written inside
# scripts or comments lower the estimate).
MAX_DEPTH = 20_000
DEPTH_CHECK_BYTES = 4 * MAX_DEPTH
# The first two letters of every element whose start tag scans the stack (and of a few that
# share them: the estimate errs high).
BLOCK_PREFIXES = (b"ad", b"ar", b"as", b"bl", b"ce", b"de", b"di", b"dl", b"fi", b"fo", b"he",
                  b"hg", b"h1", b"h2", b"h3", b"h4", b"h5", b"h6", b"ma", b"me", b"na",
                  b"ol", b"pr", b"se", b"su", b"ul", b"xm")
TAG_START = re.compile(rb"<[A-Za-z]")
QUOTED = re.compile(rb""""[^"]*"|'[^']*'""")


def check_complexity(data: bytes | str) -> None:
    """Raises PageTooComplex when the page holds a tag with more than MAX_TAG_ATTRIBUTES
    attributes or nests more than MAX_DEPTH block elements deep, before any parse."""
    if len(data) <= LONG_TAG_BYTES:
        return
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    for start, end in long_gaps(data, LONG_TAG_BYTES):
        attributes = tag_attributes(data[start:end])
        if attributes > MAX_TAG_ATTRIBUTES:
            raise PageTooComplex(f"a tag with ~{attributes:,} attributes "
                                 f"(budget {MAX_TAG_ATTRIBUTES:,})")
    if len(data) > DEPTH_CHECK_BYTES:
        depth = nesting_estimate(data)
        if depth > MAX_DEPTH:
            raise PageTooComplex(f"elements nested ~{depth:,} deep (budget {MAX_DEPTH:,})")


def long_gaps(data: bytes, length: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of more than `length` bytes without a '>': each holds a whole
    window of length // 2 bytes, so only windows are probed."""
    step = length // 2
    position = 0
    while position + step <= len(data):
        if data.find(b">", position, position + step) >= 0:
            position += step
            continue
        start = data.rfind(b">", 0, position) + 1
        end = data.find(b">", position)
        end = len(data) if end < 0 else end
        if end - start > length:
            yield start, end
        position = end + 1


def tag_attributes(run: bytes) -> int:
    """About how many distinct attribute names the tag that `run` ends in holds (the names
    after its first '<' and a letter, quoted values left out)."""
    found = TAG_START.search(run)
    if found is None:
        return 0
    tokens = QUOTED.sub(b" ", run[found.start():]).replace(b"/", b" ").split()[1:]
    return len({token.split(b"=", 1)[0] for token in tokens})


BLOCK_KEYS = np.array(sorted(int.from_bytes(prefix, "little") for prefix in BLOCK_PREFIXES),
                      np.uint16)


def nesting_estimate(data: bytes) -> int:
    """How deep the page's block elements nest, from its '<' bytes (an estimate: see
    MAX_DEPTH); at most the page's count of '<' when that is no more than MAX_DEPTH."""
    page = np.frombuffer(data, np.uint8)
    tags = np.count_nonzero(page == ord("<"))
    if tags <= MAX_DEPTH:  # each element needs one
        return tags
    padded = np.frombuffer(data + bytes(4), np.uint8)
    # the 3 bytes after each '<' (lower-cased): "/" and a name, or a name
    following = np.ndarray((len(data),), "<u4", padded, 1, (1,))
    keys = following[np.flatnonzero(page == ord("<"))] | np.uint32(0x202020)
    closing = (keys & np.uint32(0xFF)) == ord("/")
    names = np.where(closing, keys >> np.uint32(8), keys).astype(np.uint16)
    block = np.isin(names, BLOCK_KEYS)
    running = np.cumsum((block & ~closing).astype(np.int64) - (block & closing))
    # an end tag with nothing open to close is ignored: the depth never goes below 0
    return int((running - np.minimum.accumulate(np.minimum(running, 0))).max())


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
    if URL_ATTRIBUTES.isdisjoint(attributes):
        return attributes.get("src")
    for name in ("srcset", *LAZY_SRCSET_ATTRIBUTES):
        url = largest_srcset_url(attributes.get(name))
        if url:
            return url
    for name in LAZY_URL_ATTRIBUTES:
        if (attributes.get(name) or "").strip():  # a blank one is no URL (it would be the page)
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
        # urljoin drops the empty segments of a base path ("/a//b/"): such bases take urljoin
        self.simple_base = parts.scheme in WEB_SCHEMES and bool(parts.netloc) \
            and "/." not in parts.path and "\\" not in base and "//" not in parts.path
        self.scheme = parts.scheme
        self.origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path or "/"
        self.directory = self.origin + path[:path.rfind("/") + 1]
        self.path = path
        self.parents: dict[int, str] = {}  # the directory `ups` levels above the base's
        self.itself: str | None = None  # the page's own URL, what "#fragment" resolves to

    def resolve(self, url: str) -> str | None:
        stripped = url.strip()
        if "#" in stripped:
            if stripped[0] == "#":  # the page itself, the commonest link of documentation
                return self.page_itself()
            stripped = stripped[:stripped.index("#")]
        if stripped.startswith("../"):
            candidate = self.parent_path(stripped)
        else:
            candidate = self.fast_path(stripped)
        return candidate if candidate is not None else resolve_url(self.base, url)

    def page_itself(self) -> str | None:
        """What a fragment alone ("#section") resolves to."""
        if self.itself is None:
            self.itself = resolve_url(self.base, "#")
        return self.itself

    def parent_path(self, url: str) -> str | None:
        """A plain relative URL below leading "../" segments, resolved; else None."""
        rest = url.lstrip("./")
        prefix = len(url) - len(rest)
        ups = prefix // 3
        if not self.simple_base or prefix % 3 or url[:prefix] != "../" * ups:
            return None
        # what fast_path refuses in a plain relative URL (a ':' cannot make "../x" a scheme)
        if rest and (rest[0] == "?" or rest[-1] == "?" or " " in rest or "/." in rest or
                     "//" in rest or "\\" in rest or not rest.isprintable()):
            return None
        parent = self.parents.get(ups)
        if parent is None:
            directories = self.path[1:self.path.rfind("/")]
            segments = directories.split("/") if directories else []
            kept = segments[:max(0, len(segments) - ups)]
            parent = self.parents[ups] = "".join((self.origin, "/", *(s + "/" for s in kept)))
        return parent + rest

    def fast_path(self, url: str) -> str | None:
        """The resolved URL when it needs no general RFC 3986 work, else None."""
        # Whitespace other than " " is not printable; a control character merely takes urljoin.
        if not url or " " in url or "/." in url or "\\" in url or url[-1] == "?" \
                or not url.isprintable():
            return None
        if url[0] == "/" and url[1:2] != "/":  # root-relative, the commonest shape
            return self.origin + url if self.simple_base and "//" not in url else None
        if url.startswith(("http://", "https://")):
            slash = url.find("/", url.index("//") + 2)
            host_end = len(url) if slash < 0 else slash
            netloc = url[url.index("//") + 2:host_end]
            # urlsplit refuses some hosts: unbalanced or invalid [IPv6], NFKC look-alikes
            if not netloc or "?" in netloc or "@" in netloc or "[" in netloc \
                    or "]" in netloc or not netloc.isascii():
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
    """`text` with runs of whitespace made one space and none at the ends."""
    return " ".join(text.split()) if text else ""


# How far above an `<img>` its `<figure>` may be: real figures hold their image a few elements
# down, and a page nested thousands deep must not cost a walk to the root for each image.
MAX_FIGURE_DEPTH = 32
# Lexbor's ids of <figure> and of the elements a search for it stops at.
FIGURE, BODY, HTML = (LexborHTMLParser("<figure>").css_first(name).tag_id
                      for name in ("figure", "body", "html"))
FIGURE_STOPS = (FIGURE, BODY, HTML)


def enclosing_figcaption(node: LexborNode, captions: dict | None = None) -> str:
    """Text of the `<figcaption>` of the nearest `<figure>` at most MAX_FIGURE_DEPTH elements
    around `node`, if any (`captions`: the page's figures already read)."""
    parent = node.parent
    for _ in range(MAX_FIGURE_DEPTH - 1):  # the parent and MAX_FIGURE_DEPTH - 1 above it
        if parent is None or parent.tag_id in FIGURE_STOPS:
            break
        parent = parent.parent
    if parent is None or parent.tag_id != FIGURE:
        return ""
    if captions is not None and parent in captions:  # a figure of many images: read once
        return captions[parent]
    caption = parent.css_first("figcaption")
    text = collapse_whitespace(caption.text(deep=True, separator=" ")) if caption else ""
    if captions is not None:
        captions[parent] = text
    return text


def image_text(node: LexborNode, attributes: dict[str, str | None],
               captions: dict | None = None) -> tuple[str, str]:
    """(text, where it came from) of an `<img>`: alt, else title, else the figure's caption."""
    text = collapse_whitespace(attributes.get("alt"))
    if text:
        return text, "alt"
    text = collapse_whitespace(attributes.get("title"))
    if text:
        return text, "title"
    return enclosing_figcaption(node, captions), "figcaption"


def is_tracking_pixel(attributes: dict[str, str | None]) -> bool:
    """Declared 1×1 (or smaller) images: counters and beacons, never content."""
    if "height" not in attributes or "width" not in attributes:
        return False

    def at_most_one(name: str) -> bool | None:
        """Whether the declared size is <= 1; None when it declares no number."""
        value = (attributes.get(name) or "").strip().lower().removesuffix("px")
        # ASCII digits only: "²" and other Unicode digits pass str.isdigit() but not int();
        # and no int(): a value of 5,000 digits is over Python's int() limit.
        if not (value.isascii() and value.isdigit()):
            return None
        return value.lstrip("0") in ("", "1")

    width, height = at_most_one("width"), at_most_one("height")
    return width is not None and height is not None and width and height


@dataclass
class PageElements:
    """The elements extraction reads, from one walk of a parsed page."""

    images: list[LexborNode] = field(default_factory=list)
    anchors: list[LexborNode] = field(default_factory=list)
    base_href: str | None = None
    directives: set[str] = field(default_factory=set)  # of <meta name="robots">, lower case


# Lexbor's ids of these elements (read from a parse: selectolax names none).
IMG, A, BASE = (LexborHTMLParser(f"<{name}>").tags(name)[0].tag_id
                 for name in ("img", "a", "base"))
# Large pages are walked once by the CSS engine for every element extraction reads; smaller
# ones once per element name by tags(), whose walk costs less than the CSS engine's while the
# tree fits the caches (measured on Python's and GIMP's HTML documentation: up to ~90 KB).
# Only `<a>`, `<base>` and `<meta>` with the attribute that is read: fewer nodes to build.
CSS_WALK_BYTES = 96 * 1024
WITH_LINKS = "img, a[href], base[href], meta[name]"
IMAGES_ONLY = "img, base[href], meta[name]"


def page_elements(tree: LexborHTMLParser, with_links: bool, css: bool = False) -> PageElements:
    """`<img>`, `<a>` (when `with_links`), the first `<base href>` and the directives of
    `<meta name="robots">` (nofollow, noimageindex, noai, ...); `css`: in one walk."""
    found = PageElements()
    if css:
        others = []
        images, anchors = found.images, found.anchors
        for node in tree.css(WITH_LINKS if with_links else IMAGES_ONLY):
            tag = node.tag_id
            if tag == A:
                anchors.append(node)
            elif tag == IMG:
                images.append(node)
            else:
                others.append(node)
    else:
        found.images = tree.tags("img")
        found.anchors = tree.tags("a") if with_links else []
        others = tree.tags("base") + tree.tags("meta")
    for node in others:  # <base> and <meta>: a handful a page
        attributes = node.attributes
        if node.tag_id == BASE:
            if found.base_href is None and "href" in attributes:
                found.base_href = attributes["href"]
        elif attributes.get("name"):
            add_robots_directives(found.directives, attributes["name"], attributes.get("content"))
    return found


def parsed_elements(body: bytes | str, with_links: bool) -> PageElements:
    """The page checked (PageTooComplex), parsed, and the elements extraction reads."""
    data = parser_input(body)
    check_complexity(data)
    return page_elements(LexborHTMLParser(data), with_links, css=len(data) >= CSS_WALK_BYTES)


def add_robots_directives(directives: set[str], name: str | None, content: str | None) -> None:
    """Adds the directives of a `<meta name="robots" content="...">` (lower case)."""
    if (name or "").strip().lower() in ("robots", "witbuilder"):
        directives.update(part.strip().lower() for part in (content or "").split(","))


def page_resolver(elements: PageElements, page_url: str) -> UrlResolver:
    """Resolution against the page's `<base href>`, else the page's own URL."""
    href = elements.base_href
    return UrlResolver(urljoin(page_url, href.strip()) if href else page_url)


def image_outcome(node: LexborNode, attributes: dict[str, str | None],
                  resolve: Callable[[str], str | None],
                  captions: dict | None = None) -> ImageText | str:
    """The pair of one `<img>`, or the reason it yields none (the reference of page_images)."""
    raw_url = raw_image_url(attributes)
    if not raw_url:
        return "no_url"
    if ":" in raw_url and raw_url.lstrip()[:5].lower() == "data:":
        return "data_uri"
    if is_tracking_pixel(attributes):
        return "tracking_pixel"
    url = resolve(raw_url)
    if url is None:
        return "not_http"
    text, source = image_text(node, attributes, captions)
    if not text:
        return "no_text"
    return ImageText(url, text, source)


def bracketed(url: str) -> bool:
    """True when `url` holds a '[' or ']': the compiled fast path takes an absolute URL's host as
    written, and only urlsplit tells whether such a host is valid."""
    return "[" in url or "]" in url


def splits(url: str) -> bool:
    """True when urlsplit accepts `url` (as resolve_url requires)."""
    try:
        urlsplit(url)
    except ValueError:
        return False
    return True


def images_of(elements: PageElements, resolver: UrlResolver, compiled: bool = True) -> PageImages:
    """Every (image URL, text) pair of a parsed page, with the reasons the others were dropped;
    `compiled=False` takes the Python reference for every image. An image whose attributes
    raise anywhere is dropped as `image_error`, never the page."""
    result = PageImages()
    if elements.directives & META_OPT_OUTS:
        result.dropped["opted_out"] += len(elements.images)
        return result
    decide = partial(image_outcome, captions={})
    if compiled and _crawlfast is not None:
        try:
            _crawlfast.page_images(elements.images, URL_ATTRIBUTES, resolver.origin,
                                   resolver.directory, resolver.simple_base, resolver.resolve,
                                   decide, ImageText, result.pairs, result.dropped)
            if any(bracketed(pair.url) for pair in result.pairs):
                kept = [pair for pair in result.pairs if splits(pair.url)]
                result.dropped["not_http"] += len(result.pairs) - len(kept)
                result.pairs = kept
            return result
        except Exception:  # noqa: BLE001 - the reference below finds and counts the image
            result = PageImages()
    for node in elements.images:
        try:
            outcome = decide(node, node.attributes, resolver.resolve)
        except Exception as error:  # noqa: BLE001 - hostile markup: one image, not the page
            log.debug("html: image_error: %s: %s", type(error).__name__, error)
            outcome = "image_error"
        if isinstance(outcome, str):
            result.dropped[outcome] += 1
        else:
            result.pairs.append(outcome)
    return result


class ResolvedUrls(dict):
    """`resolver.resolve` of each URL looked up, computed on the first lookup; a fragment alone
    (each one different: a page's table of contents) is the page itself, never stored."""

    __slots__ = ("resolver", "itself")

    def __init__(self, resolver: UrlResolver):
        super().__init__()
        self.resolver = resolver
        self.itself = resolver  # not computed yet (the page itself may resolve to None)

    def __missing__(self, url: str) -> str | None:
        if url[:1] == "#":
            if self.itself is self.resolver:
                self.itself = self.resolver.page_itself()
            return self.itself
        resolved = self[url] = self.resolver.resolve(url)
        return resolved


def rel_nofollow(rel: str | None) -> bool:
    """True when an `<a rel>` value says nofollow."""
    return "nofollow" in (rel or "").lower().split()


def links_of(elements: PageElements, resolver: UrlResolver, compiled: bool = True) -> list[str]:
    """Absolute http(s) targets of the page's `<a href>` (none when the page says nofollow);
    `compiled=False` takes the Python reference for every link."""
    if elements.directives & {"nofollow", "none"}:
        return []
    links: list[str] = []
    if compiled and _crawlfast is not None:
        # Pages repeat their links (a documentation page: each ~1.6 times): each distinct href
        # that the compiled fast path leaves over is resolved once.
        _crawlfast.page_links(elements.anchors, resolver.origin, resolver.directory,
                              resolver.simple_base, ResolvedUrls(resolver).__getitem__,
                              rel_nofollow, links)
        if any(bracketed(link) for link in links):
            links = [link for link in links if splits(link)]
        return links
    for node in elements.anchors:
        attributes = node.attributes
        if "href" not in attributes:
            continue
        if rel_nofollow(attributes.get("rel")):
            continue
        url = resolver.resolve(attributes.get("href") or "")
        if url is not None:
            links.append(url)
    return links


def parse_page(body: bytes | str, page_url: str,
               with_links: bool = True) -> tuple[PageImages, list[str]]:
    """A page parsed and walked once: its image–text pairs and its outgoing links (none when
    not `with_links`: the crawl's last depth follows no link)."""
    elements = parsed_elements(body, with_links)
    resolver = page_resolver(elements, page_url)
    return images_of(elements, resolver), links_of(elements, resolver) if with_links else []


def extract_images(body: bytes | str, page_url: str, compiled: bool = True) -> PageImages:
    """Every (image URL, text) pair of a page, with the reasons the other images were dropped
    (`compiled=False`: by the Python reference only)."""
    elements = parsed_elements(body, with_links=False)
    return images_of(elements, page_resolver(elements, page_url), compiled)
