"""Untrusted wikitext costs what a plain page of its size costs: no pattern of the stripper or the
tokeniser rescans text after a failed match (issue 17: "<ref " x 16,000 took 17.5 s, 16,000
nested "{{" 25 s, 16,000 spaces after "[[" minutes).

Each crafted page is timed against a plain page of the same length in the same process, as the
best of three runs; the bound (25x) is generous next to what linear code measures (under 10x, on
a loaded machine) and far below what the quadratic passes took (over 1,000x)."""

from __future__ import annotations

import time

import pytest

from wit_builder.core.text import normalize, tokens
from wit_builder.queries import counts
from wit_builder.queries.wikipedia.wikitext import strip_wikitext

REPEATS = 16_000
RATIO = 25
CRAFTED = {
    "unclosed ref openings": "<ref " * REPEATS,
    "nested templates": "{{" * REPEATS + "x" + "}}" * REPEATS,
    "unclosed templates": "{{x " * REPEATS,
    "spaces after a link opening": "[[" + " " * (4 * REPEATS) + "x",
    "unclosed math openings": "<math " * REPEATS,
    "ref closings without '>'": "<ref>" + "</ref " * REPEATS,
    "self-closing candidates": "<ref name=x" + " /" * REPEATS,
    "closing name then spaces": "<ref>x</ref" + " " * (4 * REPEATS),
    "unclosed file links": "[[File:" * REPEATS,
    "piped link openings": "[[a|" * REPEATS,
    "anchored link openings": "[[a#" * REPEATS,
    "external links without labels": "[//x " * REPEATS,
    "an external label never closed": "[http://x " + "a " * REPEATS,
    "table openings": "{|\n" * REPEATS,
    "tag openings": "<a " * REPEATS,
    "line break openings": "<br " * REPEATS,
    "joiners and separators": "a-" * REPEATS + "1.2," * REPEATS + "a." * REPEATS,
}


def plain_page(length: int) -> str:
    return ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (length // 56 + 1))[:length]


def best_of_three(work, text: str) -> float:
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        work(text)
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def python_path(text: str) -> None:
    tokens(normalize(strip_wikitext(text, [])))


def compiled_path(text: str) -> None:
    counter = counts._hotloop.FragmentCounter(
        counts.segment_tokens, counts.decoded_segment_tokens, counts.xml_unescape,
        counts.strip_with_links, count_links=True, stand_ins=counts.ascii_stand_ins())
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    counter.count(f"<mediawiki><page>\n<title>P</title>\n<ns>0</ns>\n<revision><text>{escaped}"
                  f"</text></revision>\n</page>\n</mediawiki>".encode())


PATHS = [pytest.param(python_path, id="python"),
         pytest.param(compiled_path, id="compiled", marks=pytest.mark.skipif(
             not counts.compiled_available(), reason="the compiled hot loop is not built"))]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_wikitext_costs_what_a_plain_page_of_its_size_costs(name: str, path):
    text = CRAFTED[name]
    plain = plain_page(len(text))
    ratio = best_of_three(path, text) / best_of_three(path, plain)
    assert ratio < RATIO, f"{name}: {ratio:.0f}x a plain page of {len(text)} characters"
