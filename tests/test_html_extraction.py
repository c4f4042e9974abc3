"""Image–text extraction from HTML: every markup form a crawler meets, and every decoy dropped."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wit_builder.sources.html import UrlResolver, extract_images, parse_srcset, resolve_url

PAGE = "http://site.test/articles/shapes/page.html"


def pairs(html: str | bytes, page: str = PAGE) -> list[tuple[str, str, str]]:
    return [(p.url, p.text, p.text_from) for p in extract_images(html, page).pairs]


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
    result = extract_images(html, PAGE)
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
              "img", "x.test", ":", "@", " ", "%20", "..", ".", "\\", "mailto:", "data:", "~"]


@given(st.lists(st.sampled_from(URL_PIECES), max_size=8).map("".join),
       st.sampled_from(["http://site.test/articles/shapes/page.html", "https://s.test",
                        "http://s.test/a/b/", "http://s.test/x/../y/p.html", "http://s.test/?q=1"]))
@settings(max_examples=400, deadline=None)
def test_fast_url_resolution_equals_urljoin(url, base):
    assert UrlResolver(base).resolve(url) == resolve_url(base, url)


def test_one_walk_finds_base_and_robots_meta_anywhere_in_the_page():
    html = ('<img src="a.jpg" alt="first"><base href="http://cdn.test/m/">'
            '<img src="b.jpg" alt="second"><meta name="robots" content="noimageindex">')
    result = extract_images(html, PAGE)
    assert result.pairs == [] and result.dropped == {"opted_out": 2}
    kept = extract_images(html.replace("noimageindex", "nofollow"), PAGE)
    assert [p.url for p in kept.pairs] == ["http://cdn.test/m/a.jpg", "http://cdn.test/m/b.jpg"]
