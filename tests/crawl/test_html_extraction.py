"""Image–text extraction from HTML: every markup form a crawler meets, and every decoy dropped.

The compiled side is always `parse_page`, what the crawl runs; `extract_images(compiled=False)` is
the Python reference it must equal."""

from __future__ import annotations

import html as html_module
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wit_builder.crawl.sources import html as extraction
from wit_builder.crawl.sources.html import (ImageText, UrlResolver, extract_images, parse_page,
                                      parse_srcset, resolve_url)

PAGE = "http://site.test/articles/shapes/page.html"


def crawled(html: str | bytes, page: str = PAGE) -> extraction.PageImages:
    """The images of a page as the crawl gets them."""
    return parse_page(html, page)[0]


def pairs(html: str | bytes, page: str = PAGE) -> list[tuple[str, str, str]]:
    return [(p.url, p.text, p.text_from) for p in crawled(html, page).pairs]


def test_relative_urls_are_resolved_against_the_page():
    html = ('<img src="red.jpg" alt="a red circle"><img src="../img/b.png" alt="blue">'
            '<img src="/root.jpg" alt="root"><img src="//cdn.test/x.jpg" alt="cdn">')
    assert [url for url, _, _ in pairs(html)] == [
        "http://site.test/articles/shapes/red.jpg", "http://site.test/articles/img/b.png",
        "http://site.test/root.jpg", "http://cdn.test/x.jpg"]


def test_base_href_changes_resolution():
    html = '<head><base href="http://other.test/media/"></head><img src="a.jpg" alt="a cat">'
    assert pairs(html)[0][0] == "http://other.test/media/a.jpg"


def test_largest_srcset_candidate_is_taken():
    html = '<img src="s.jpg" srcset="s.jpg 200w, l.jpg 800w, m.jpg 400w" alt="big">'
    assert pairs(html)[0][0] == "http://site.test/articles/shapes/l.jpg"
    assert parse_srcset("a.jpg, b.jpg 2x") == [("a.jpg", 1.0), ("b.jpg", 2.0)]


def test_lazy_data_src_wins_over_placeholder_src():
    html = ('<img src="data:image/gif;base64,R0lGOD" data-src="/real.jpg" alt="a green star">')
    assert pairs(html) == [("http://site.test/real.jpg", "a green star", "alt")]


def test_title_then_figcaption_when_alt_is_missing():
    html = ('<img src="t.jpg" title="titled image">'
            '<figure><div><img src="f.jpg"></div><figcaption> two <b>blue</b>\n squares'
            '</figcaption></figure>')
    assert pairs(html) == [
        ("http://site.test/articles/shapes/t.jpg", "titled image", "title"),
        ("http://site.test/articles/shapes/f.jpg", "two blue squares", "figcaption")]


def test_decoys_are_dropped_and_counted_by_reason():
    html = ('<img src="data:image/png;base64,iVBOR" alt="inline">'
            '<img src="pixel.gif" width="1" height="1" alt="tracker">'
            '<img src="javascript:void(0)" alt="script">'
            '<img src="mailto:a@b.test" alt="mail">'
            '<img src="noalt.jpg">'
            '<img alt="no source">'
            '<img src="ok.jpg" alt="  entities &amp; spaces  ">')
    result = crawled(html)
    assert [(p.url, p.text) for p in result.pairs] == [
        ("http://site.test/articles/shapes/ok.jpg", "entities & spaces")]
    assert result.dropped == {"data_uri": 1, "tracking_pixel": 1, "not_http": 2, "no_text": 1,
                              "no_url": 1}


def test_fragment_removed_and_scheme_lowercased():
    assert pairs('<img src="HTTP://Site.test/a.jpg#frag" alt="x">')[0][0] == \
        "http://Site.test/a.jpg"


def test_malformed_and_non_utf8_html_never_crash():
    broken = b"<html><body><img src='a.jpg' alt='caf\xe9 cr\xe8me'><div><p><img src=b.jpg alt=x><p"
    assert pairs(broken) == [("http://site.test/articles/shapes/a.jpg", "café crème", "alt"),
                             ("http://site.test/articles/shapes/b.jpg", "x", "alt")]
    assert pairs(b"\x00\xff\xfe binary \x89PNG\r\n") == []


URL_PIECES = ["http://", "https://", "HTTP://", "//", "/", "./", "../", "?", "#", "a", "b.jpg",
              "img", "x.test", ":", "@", " ", "%20", "..", ".", "\\", "mailto:", "data:", "~",
              "[", "]", "[::1]", "\uff03", "../../"]


@given(st.lists(st.sampled_from(URL_PIECES), max_size=8).map("".join),
       st.sampled_from(["http://site.test/articles/shapes/page.html", "https://s.test",
                        "http://s.test/a/b/", "http://s.test/x/../y/p.html", "http://s.test/?q=1",
                        "http://s.test/a//b/p.html", "http://s.test/a/b/c/d/e/f.html",
                        "http://s.test/a/b?q#f"]))
@settings(max_examples=1500, deadline=None)
def test_fast_url_resolution_equals_urljoin(url, base):
    assert UrlResolver(base).resolve(url) == resolve_url(base, url)


def test_base_and_robots_meta_count_anywhere_in_the_page():
    html = ('<img src="a.jpg" alt="first"><base href="http://cdn.test/m/">'
            '<img src="b.jpg" alt="second"><meta name="robots" content="noimageindex">')
    result = crawled(html)
    assert result.pairs == [] and result.dropped == {"opted_out": 2}
    kept = crawled(html.replace("noimageindex", "nofollow"))
    assert [p.url for p in kept.pairs] == ["http://cdn.test/m/a.jpg", "http://cdn.test/m/b.jpg"]


# Every attribute shape the compiled per-image path must decide exactly like the reference.
SOURCES = ["http://img.test/a.jpg", "https://img.test/b/c.png?x=1", "HTTP://Img.test/d.jpg",
           "http://img.test", "//cdn.test/e.jpg", "/root/f.jpg", "g.jpg", "sub/h.jpg",
           "../up.jpg", "./here.jpg", "?q=1", "#only-fragment", "i.jpg#frag", "  spaced.jpg  ",
           "\tj.jpg\n", "a b.jpg", "/a//b.jpg", "k//l.jpg", "x:y.jpg", "back\\slash.jpg",
           "data:image/png;base64,iVBOR", "  DATA:image/gif;base64,R0", "javascript:void(0)",
           "mailto:a@b.test", "ftp://img.test/m.jpg", "http://user@img.test/n.jpg",
           "http://img.test?o", "/p.jpg?", "/bilder/größe.jpg", "http://例え.jp/q.jpg", "",
           "&amp;r.jpg", "http://img.test/s.jpg#", "/.hidden.jpg", "t.jpg?a=1&amp;b=2",
           "https://img.test:8443/u.jpg", "\x0cv.jpg"]
SRCSETS = ["a.jpg 1x, b.jpg 2x", "s.jpg 300w, l.jpg 900w", "x.jpg 1.5e1w, y.jpg 2w", ", ,",
           "bad.jpg 2y", "c.jpg nanw, d.jpg 3w", "e.jpg 1_0w, f.jpg 2w", "data:x 2x", ""]
LAZY = ["data-src", "data-lazy-src", "data-original", "data-url", "data-srcset",
        "data-lazy-srcset"]
SIZES = ["1", "1px", " 1 ", "0", "2", "1PX", "", "abc", "01", "00001", "１", "1.0", "99999999999",
         "px", "-1"]
TEXTS = ["", "  ", "a red circle", "Hello   world", "a\nb\tc ", "&amp; entity", "&nbsp;x&nbsp;",
         "x\u2003y", "Ünïcödé  text", "日本語 の 写真", "tab\tend", " lead", "trail ",
         "x\x1cy", "\u3000ideographic\u3000space", "x\x85y", "a\xa0\xa0b", "\x0bv", "a\x1f b",
         "é  è", "caf\xe9 cr\xe8me"]


def generated_image(rng: random.Random) -> str:
    """One <img> (sometimes in a <figure> with a caption) with random attribute shapes."""
    attributes = []
    if rng.random() < 0.85:
        attributes.append(("src", rng.choice(SOURCES)))
    if rng.random() < 0.15:
        attributes.append(("srcset", rng.choice(SRCSETS)))
    if rng.random() < 0.15:
        name = rng.choice(LAZY)
        attributes.append((name, rng.choice(SRCSETS if "srcset" in name else SOURCES)))
    for name in ("width", "height"):
        if rng.random() < 0.4:
            attributes.append((name, rng.choice(SIZES)))
    for name in ("alt", "title"):
        if rng.random() < 0.7:
            attributes.append((name, rng.choice(TEXTS)))
    markup = "".join(f' {name}="{html_module.escape(value, quote=True)}"'
                     if rng.random() < 0.9 else f" {name}" for name, value in attributes)
    if rng.random() < 0.05:  # a repeated name: the parser keeps the first
        markup += f' src="{html_module.escape(rng.choice(SOURCES), quote=True)}"'
    image = f"<{rng.choice(['img', 'img', 'img', 'IMG', 'image'])}{markup}>"
    if rng.random() < 0.3:
        image = f"<figure><div>{image}</div><figcaption> {rng.choice(TEXTS)} </figcaption></figure>"
    return rng.choice(CONTAINERS).format(image)


# Where an image may sit: the tree walk must find exactly the <img> elements tags() finds.
CONTAINERS = ["{}"] * 12 + ["<template>{}</template>", "<svg>{}</svg>", "<noscript>{}</noscript>",
                            "<table><tr><td>{}</td></tr></table>", "<table>{}</table>",
                            "<select>{}</select>", "<math><mi>{}</mi></math>", "<p>{}",
                            "<!-- {} -->", "<textarea>{}</textarea>", "<object>{}</object>"]
HEADS = ['<base href="http://other.test/m/">', '<base href="/root/">', '<base href="rel/">',
         '<base href="https://x.test/a/./b/">', '<base href="">', "<base href>", "<base>",
         '<base href="/first/"><base href="/second/">', '<meta name="robots" content="noai">',
         '<meta name=" ROBOTS " content="index, NoImageAI ">',
         '<meta name="witbuilder" content="none">', '<meta name="robots" content="index, follow">',
         '<meta name="robots">', '<meta name="robotś" content="noai">', '<meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width">',
         '<META NAME="Robots" CONTENT="noimageindex">']


def generated_page(rng: random.Random) -> str:
    head = "".join(rng.choice(HEADS) for _ in range(rng.choice([0, 0, 0, 1, 1, 2])))
    images = "".join(generated_image(rng) for _ in range(rng.randint(0, 12)))
    late = rng.choice(["", "", "", "", '<base href="/late/">',
                       '<meta name="robots" content="noai">'])
    return (f"<html><head>{head}</head><body><p>text</p>{images}{late}<a href='/next'>n</a>"
            f"</body></html>")


PAGE_URLS = ["http://site.test/a/b.html", "https://site.test/", "http://site.test",
             "http://site.test/a/./b/c.html", "http://site.test/dir/?q#f", "http://Site.Test/x/"]


def test_compiled_images_equal_the_python_reference_on_generated_pages():
    rng = random.Random(11)
    compared = 0
    for _ in range(800):
        page, page_url = generated_page(rng), rng.choice(PAGE_URLS)
        compiled = crawled(page, page_url)
        reference = extract_images(page, page_url, compiled=False)
        assert compiled.pairs == reference.pairs, page
        assert compiled.dropped == reference.dropped, page
        assert all(type(pair) is ImageText for pair in compiled.pairs)
        compared += len(compiled.pairs) + sum(compiled.dropped.values())
    assert compared > 2000


def test_compiled_path_decides_plain_images_and_defers_the_rest(monkeypatch):
    deferred = []

    def counting_reference(node, attributes, resolve, **page):
        deferred.append(dict(attributes))
        return reference(node, attributes, resolve, **page)

    reference = extraction.image_outcome
    monkeypatch.setattr(extraction, "image_outcome", counting_reference)
    plain = ('<img src="/a.jpg" alt="one"><img src="http://x.test/b.jpg" title="two">'
             '<img src="c.jpg" alt="three" width="1" height="1"><img src="data:x" alt="d">')
    result = crawled(plain)
    assert deferred == []
    assert [p.text for p in result.pairs] == ["one", "two"]
    assert result.dropped == {"tracking_pixel": 1, "data_uri": 1}
    odd = ('<img src="s.jpg" srcset="l.jpg 2x" alt="srcset"><figure><img src="f.jpg">'
           '<figcaption>caption</figcaption></figure><img src="/größe.jpg" alt="unicode">')
    assert [p.text_from for p in crawled(odd).pairs] == ["alt", "figcaption", "alt"]
    assert len(deferred) == 3


def test_parse_page_images_and_links_equal_the_reference():
    rng = random.Random(5)
    for _ in range(100):
        page = generated_page(rng)
        images, links = parse_page(page, PAGE)
        assert images == extract_images(page, PAGE, compiled=False)
        assert len(links) <= 1 and all(link.endswith("/next") for link in links)


def test_url_attributes_keep_the_shape_the_compiled_path_screens_for():
    assert all(len(name) >= 6 and name[0] in "sd" for name in extraction.URL_ATTRIBUTES)


@given(st.lists(st.sampled_from(URL_PIECES), max_size=8).map("".join),
       st.sampled_from(PAGE_URLS))
@settings(max_examples=300, deadline=None)
def test_compiled_url_resolution_equals_the_reference(url, page_url):
    page = f'<img src="{html_module.escape(url, quote=True)}" alt="x" width="2" height="1">'
    assert crawled(page, page_url) == extract_images(page, page_url, compiled=False)


RELS = [None, "", "nofollow", "NoFollow", "noopener nofollow", "nofollow\tnoreferrer",
        "\x0cnofollow ", "nofollowed", "no follow", "nofollow\u2003", "\u2003nofollow",
        "nofollow\xa0x", "ｎofollow", "external", "\x1cnofollow"]


def generated_links_page(rng: random.Random) -> str:
    anchors = []
    for _ in range(rng.randint(0, 15)):
        attributes = []
        if rng.random() < 0.9:
            href = rng.choice(SOURCES) if rng.random() < 0.5 else \
                "".join(rng.choices(URL_PIECES, k=rng.randint(0, 6)))
            attributes.append(f' href="{html_module.escape(href, quote=True)}"'
                              if rng.random() < 0.9 else " href")
        rel = rng.choice(RELS)
        if rel is not None:
            attributes.append(f' rel="{html_module.escape(rel, quote=True)}"')
        rng.shuffle(attributes)
        anchors.append(f"<{rng.choice(['a', 'A', 'a', 'area'])}{''.join(attributes)}>x</a>")
    head = "".join(rng.choice(HEADS) for _ in range(rng.choice([0, 0, 1])))
    return f"<html><head>{head}</head><body>{''.join(anchors)}</body></html>"


def test_compiled_links_equal_the_python_reference():
    rng = random.Random(19)
    compared = 0
    for _ in range(600):
        page, page_url = generated_links_page(rng), rng.choice(PAGE_URLS)
        try:
            elements = extraction.page_elements(extraction.LexborHTMLParser(page), True)
            resolver = extraction.page_resolver(elements, page_url)
            expected = extraction.links_of(elements, resolver, compiled=False)
        except ValueError:  # urlsplit refuses the page URL: so must parse_page
            with pytest.raises(ValueError):
                parse_page(page, page_url)
            continue
        assert parse_page(page, page_url)[1] == expected, page
        compared += len(expected)
    assert compared > 800


PAGE_URL_PIECES = ["http://", "https://", "HTTP://", "host.test", "Host.Test", ":8080", "/", "a",
                   "b.html", "./", "../", "?", "q=1", "#", "f", "//", "[::1]", "@", "\\", " ",
                   "é", ";", "%2F"]


@given(st.lists(st.sampled_from(PAGE_URL_PIECES), min_size=1, max_size=7).map("".join))
@settings(max_examples=300, deadline=None)
def test_compiled_page_url_handling_equals_the_reference(page_url):
    page = ('<img src="rel.jpg" alt="r"><img src="/root.jpg" alt="o">'
            '<img src="http://x.test/abs.jpg" alt="a"><img src="?q" alt="q">')
    try:
        expected = extract_images(page, page_url, compiled=False)
    except ValueError:  # urlsplit refuses some (unbalanced brackets): so must the fast path
        with pytest.raises(ValueError):
            crawled(page, page_url)
        return
    assert crawled(page, page_url) == expected


def test_one_css_walk_finds_what_the_tags_walks_find():
    """Large pages are walked by the CSS engine, others by tags(): the same elements either way."""
    rng = random.Random(23)
    for _ in range(400):
        page = generated_page(rng) if rng.random() < 0.5 else generated_links_page(rng)
        page_url = rng.choice(PAGE_URLS)
        tree = extraction.LexborHTMLParser(page)
        outcomes = []
        for css in (False, True):
            elements = extraction.page_elements(tree, True, css=css)
            resolver = extraction.page_resolver(elements, page_url)
            outcomes.append((extraction.images_of(elements, resolver),
                             extraction.links_of(elements, resolver)))
        assert outcomes[0] == outcomes[1], page


def test_links_resolve_like_urljoin_on_documentation_shapes():
    """Fragment-only, '../' and repeated hrefs (a documentation page's commonest links) through
    the compiled links path equal the Python reference."""
    hrefs = ["#intro", "#", " #x ", "../index.html", "../../a/b.html#s", "../", "../..",
             "..//x.html", "../.hidden", "../x?q", "../x?", "page.html#frag", "#intro"]
    page = "".join(f'<a href="{href}">x</a>' for href in hrefs)
    for page_url in ("http://docs.test/3/library/os.html", "http://docs.test/os.html",
                     "http://docs.test/a//b/c.html", "http://docs.test/a/b/?q=1#top"):
        elements = extraction.page_elements(extraction.LexborHTMLParser(page), True)
        resolver = extraction.page_resolver(elements, page_url)
        assert parse_page(page, page_url)[1] == \
            [resolve_url(page_url, href) for href in hrefs] == \
            extraction.links_of(elements, resolver, compiled=False)


def test_with_links_false_gives_the_same_images_and_no_link():
    rng = random.Random(29)
    for _ in range(100):
        page = generated_page(rng)
        images, links = parse_page(page, PAGE, with_links=False)
        assert links == [] and images == parse_page(page, PAGE)[0]
