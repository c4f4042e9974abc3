"""Extraction on hostile pages: every attribute is hostile text, one bad `<img>` never loses the
page's other images, and a page whose parse would cost far more than its size is refused
(PageTooComplex) before it is parsed. Real pages (Python's HTML documentation, fetched from
Debian at test time) are never refused."""

from __future__ import annotations

import random

import pytest

from wit_builder.crawl.sources import html as extraction
from wit_builder.crawl.sources.html import (ImageText, PageTooComplex, extract_images,
                                            parse_page)

PAGE = "http://site.test/gallery/page.html"
PYTHON_DOC = ("python3.11-doc", "3.11.2-6+deb12u8")


def good_image(number: int) -> tuple[str, ImageText]:
    """A plain image and the pair it must give."""
    return (f'<img src="/good/{number}.jpg" alt="good image {number}">',
            ImageText(f"http://site.test/good/{number}.jpg", f"good image {number}", "alt"))


# Hostile images and what each must give: a pair, or the reason it gives none.
HOSTILE = [
    ('<img src="a.jpg" width="²" height="²" alt="superscript">',
     ImageText("http://site.test/gallery/a.jpg", "superscript", "alt")),
    ('<img src="b.jpg" width="١" height="١" alt="arabic-indic">',
     ImageText("http://site.test/gallery/b.jpg", "arabic-indic", "alt")),
    ('<img src="c.jpg" width="１" height="１" alt="full width">',
     ImageText("http://site.test/gallery/c.jpg", "full width", "alt")),
    ('<img src="d.jpg" width="%s" height="1" alt="5,000 digits">' % ("9" * 5000),
     ImageText("http://site.test/gallery/d.jpg", "5,000 digits", "alt")),
    ('<img src="e.jpg" width="%s1" height="1px" alt="a 1 under 5,000 zeros">' % ("0" * 5000),
     "tracking_pixel"),
    ('<img src="" width="" height="" alt="" title="" srcset="" data-src="">', "no_url"),
    ('<img src="f.jpg" alt="" title="">', "no_text"),
    ('<img src="g\x00.jpg" alt="nul\x00byte">',
     ImageText("http://site.test/gallery/g\ufffd.jpg", "nul\ufffdbyte", "alt")),
    ('<img srcset="h.jpg 9e999w, i.jpg nanx, ,,, j.jpg -1w, k.jpg 1e308x" alt="srcset">',
     ImageText("http://site.test/gallery/h.jpg", "srcset", "alt")),
    ('<img srcset=",,, , ," src="l.jpg" alt="only commas">',
     ImageText("http://site.test/gallery/l.jpg", "only commas", "alt")),
    ('<img src="m.jpg" alt="%s">' % ("two megabytes " * 150_000),
     ImageText("http://site.test/gallery/m.jpg", ("two megabytes " * 150_000).strip(), "alt")),
    ('<img src="javascript:alert(1)" alt="script">', "not_http"),
    ('<img src="http://[::1/x.jpg" alt="broken host">', "not_http"),
    ('<img data-src="  " src="n.jpg" alt="blank lazy">',
     ImageText("http://site.test/gallery/n.jpg", "blank lazy", "alt")),
]


def hostile_page(rng: random.Random) -> tuple[str, list[ImageText], dict[str, int]]:
    """Good and hostile images shuffled: the page and exactly the pairs and drops it gives."""
    images = [good_image(number) for number in range(rng.randint(1, 6))]
    images += rng.sample(HOSTILE, rng.randint(1, len(HOSTILE)))
    rng.shuffle(images)
    pairs = [outcome for _, outcome in images if isinstance(outcome, ImageText)]
    dropped: dict[str, int] = {}
    for _, outcome in images:
        if isinstance(outcome, str):
            dropped[outcome] = dropped.get(outcome, 0) + 1
    return f"<html><body>{''.join(markup for markup, _ in images)}</body></html>", pairs, dropped


@pytest.mark.parametrize("encode", [False, True], ids=["str", "utf-8 bytes"])
def test_hostile_attributes_give_exactly_the_expected_pairs(encode):
    rng = random.Random(3)
    for _ in range(25):
        page, pairs, dropped = hostile_page(rng)
        body = page.encode("utf-8") if encode else page
        for result in (parse_page(body, PAGE)[0], extract_images(body, PAGE, compiled=False)):
            assert result.pairs == pairs
            assert dict(result.dropped) == dropped


def test_invalid_utf8_and_nul_bytes_keep_every_image():
    body = (b"<img src='caf\xe9.jpg' alt='caf\xe9 \x00 cr\xe8me'><img src=x.jpg alt='\xff\xfe'>"
            b"<img src=ok.jpg alt=fine>")
    assert [(pair.url, pair.text) for pair in parse_page(body, PAGE)[0].pairs] == [
        ("http://site.test/gallery/café.jpg", "café \ufffd crème"),
        ("http://site.test/gallery/x.jpg", "ÿþ"),
        ("http://site.test/gallery/ok.jpg", "fine")]


def test_a_page_declaring_utf8_keeps_its_text_around_a_stray_byte():
    """As a browser reads it: the stray byte is U+FFFD, the rest stays UTF-8 (not Windows-1252
    for the whole page, which would make every é 'Ã©')."""
    body = ('<meta charset="utf-8"><img src=a.jpg alt="café \xff crème">'.encode("utf-8")
            .replace("\xff".encode("utf-8"), b"\xff"))
    assert parse_page(body, PAGE)[0].pairs[0].text == "café \ufffd crème"
    undeclared = body.replace(b'<meta charset="utf-8">', b"")
    assert parse_page(undeclared, PAGE)[0].pairs[0].text == "cafÃ© ÿ crÃ¨me"


def test_one_image_that_raises_is_counted_and_the_others_kept(monkeypatch):
    real = extraction.parse_srcset

    def failing(srcset):
        if "boom" in srcset:
            raise RuntimeError("a bug in one image's srcset")
        return real(srcset)

    monkeypatch.setattr(extraction, "parse_srcset", failing)
    page = ('<img src=a.jpg alt=first><img srcset="boom.jpg 2x" alt=bad>'
            '<img srcset="c.jpg 2x" alt=third>')
    for result in (parse_page(page, PAGE)[0], extract_images(page, PAGE, compiled=False)):
        assert [pair.text for pair in result.pairs] == ["first", "third"]
        assert dict(result.dropped) == {"image_error": 1}


@pytest.fixture
def parses(monkeypatch):
    """The documents Lexbor is asked to parse, while a test runs."""
    calls = []
    real = extraction.LexborHTMLParser

    def counting(html, *args, **kwargs):
        calls.append(len(html))
        return real(html, *args, **kwargs)

    monkeypatch.setattr(extraction, "LexborHTMLParser", counting)
    return calls


ATTRIBUTES_100K = ("<html><body><img src=a.jpg alt=x " +
                   " ".join(f"a{number}" for number in range(100_000)) + "></body></html>")
PATHOLOGICAL = {
    "100,000 attributes": ATTRIBUTES_100K,
    "6,000 attributes, quoted values": "<p><img src=a.jpg " +
    " ".join(f'data-{number}="x y z"' for number in range(6_000)) + ">",
    "20,001 nested div": "<div>" * 20_001 + "<img src=a.jpg alt=x>",
    "nested div, section, ul mixed": "<DIV class=x>" * 7_000 + "<section>" * 7_000 +
    "<ul>" * 7_000,
    "nested div after stray end tags": "</div>" * 30_000 + "<div>" * 25_000,
}


@pytest.mark.parametrize("name", PATHOLOGICAL)
@pytest.mark.parametrize("encode", [False, True], ids=["str", "utf-8 bytes"])
def test_pathological_pages_are_refused_before_parsing(name, encode, parses):
    page = PATHOLOGICAL[name]
    body = page.encode("utf-8") if encode else page
    with pytest.raises(PageTooComplex):
        parse_page(body, PAGE)
    with pytest.raises(PageTooComplex):
        extract_images(body, PAGE)
    with pytest.raises(PageTooComplex):
        parse_page(body, PAGE, with_links=False)
    assert parses == []
    assert issubclass(PageTooComplex, ValueError)


# Under the budgets, and shapes that only look alike: parsed, every image found.
ALLOWED = {
    "4,000 attributes": "<img src=a.jpg alt=x " +
    " ".join(f"a{number}" for number in range(4_000)) + ">",
    "100,000 repeats of one attribute": "<img src=a.jpg alt=x" + " a" * 100_000 + ">",
    "a 2 MB quoted alt": '<img src=a.jpg alt="%s">' % ("word " * 400_000),
    "15,000 nested div": "<div>" * 15_000 + "<img src=a.jpg alt=x>",
    "30,000 <br> and unclosed <li>": "<ul>" + "<li><br>" * 30_000 + "</ul><img src=a.jpg alt=x>",
    "30,000 closed div": "<div><img src=a.jpg alt=x></div>" * 30_000,
    "40,000 nested span": "<span>" * 40_000 + "<img src=a.jpg alt=x>",
}


@pytest.mark.parametrize("name", ALLOWED)
def test_large_but_linear_pages_are_parsed(name, parses):
    images, _ = parse_page(ALLOWED[name].encode("utf-8"), PAGE)
    assert len(parses) == 1
    assert images.pairs[0].url == "http://site.test/gallery/a.jpg"


def test_deep_pages_cost_no_walk_to_the_root_per_image():
    """An image's <figure> counts within MAX_FIGURE_DEPTH elements: deeper, no caption."""
    depth = extraction.MAX_FIGURE_DEPTH
    near = "<figure>" + "<span>" * (depth - 1) + "<img src=a.jpg>" + "<figcaption>near"
    far = "<figure>" + "<span>" * depth + "<img src=b.jpg>" + "<figcaption>far"
    assert [pair.text for pair in parse_page(near, PAGE)[0].pairs] == ["near"]
    assert parse_page(far, PAGE)[0].dropped == {"no_text": 1}


def test_a_figure_of_many_images_reads_its_caption_once(monkeypatch):
    reads = []
    real = extraction.collapse_whitespace
    monkeypatch.setattr(extraction, "collapse_whitespace",
                        lambda text: reads.append(text) or real(text))
    page = "<figure>" + "<img src=a.jpg>" * 500 + "<figcaption>one caption</figcaption></figure>"
    images = parse_page(page, PAGE)[0]
    assert len(images.pairs) == 500 and {pair.text for pair in images.pairs} == {"one caption"}
    assert reads.count("one caption") == 1


def test_real_documentation_pages_are_never_refused(real_deb, parses):
    """Python's whole HTML documentation (530 pages, up to 2.5 MB and 34,000 tags): every page
    parsed, the compiled and Python paths equal."""
    root = real_deb(*PYTHON_DOC) / "usr/share/doc/python3.11/html"
    pages = sorted(root.rglob("*.html"))
    assert len(pages) > 500
    pairs = 0
    for path in pages:
        body = path.read_bytes()
        url = "https://docs.python.org/3.11/" + path.relative_to(root).as_posix()
        images, links = parse_page(body, url)
        assert (images.pairs, images.dropped) == (lambda r: (r.pairs, r.dropped))(
            extract_images(body, url, compiled=False))
        pairs += len(images.pairs)
        assert links
    assert len(parses) == 2 * len(pages)
    assert pairs > 1000
