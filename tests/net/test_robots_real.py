"""net.robots on real robots.txt files: the 4,231 files of real sites that Protego 0.3.1 ships in
its source distribution (tests/test_data, one file per host), fetched from PyPI at test time
(tests/support/realdata.py; skipped without network)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from protego import Protego

from support.realdata import sdist
from wit_builder.crawl.config import CrawlConfig
from wit_builder.net.robots import MAX_CRAWL_DELAY, rules_from_answer

AGENT = next(field.default for field in dataclasses.fields(CrawlConfig)
             if field.name == "user_agent")
PATHS = ("/", "/search", "/admin/", "/private/x", "/images/a.jpg", "/wp-admin/x.php?a=1")

# Measured on Protego 0.3.1's corpus with the crawl's default user agent.
FILES = 4231
NOT_UTF8 = 12        # files that are not valid UTF-8 (robots.py decodes them with replacement)
WITH_DELAY = 532     # files whose rules give our agent a Crawl-delay
CAPPED = 10          # of them, a Crawl-delay above MAX_CRAWL_DELAY (capped to it)


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, bytes]]:
    root = sdist("Protego", "0.3.1") / "tests" / "test_data"
    return [(path.name, path.read_bytes()) for path in sorted(root.iterdir()) if path.is_file()]


def test_every_real_robots_txt_answers_as_protego_itself(corpus):
    """Our wrapper adds nothing wrong: for each real file, our allow/deny answer equals Protego's
    own, and every Crawl-delay we report is within the cap (larger ones capped)."""
    assert AGENT.startswith("witbuilder/")
    assert len(corpus) == FILES
    not_utf8 = with_delay = capped = denials = 0
    logging.disable(logging.WARNING)  # every capped delay logs a warning
    try:
        for host, body in corpus:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                not_utf8 += 1
            rules = rules_from_answer(200, body, f"https://{host}/robots.txt")
            reference = Protego.parse(body.decode("utf-8", errors="replace"))
            for path in PATHS:
                url = f"https://{host}{path}"
                ours = rules.allowed(url, AGENT)
                assert ours == reference.can_fetch(url, AGENT), (host, path)
                denials += not ours
            delay = rules.delay(AGENT)
            asked = reference.crawl_delay(AGENT)
            assert 0.0 <= delay <= MAX_CRAWL_DELAY, host
            if asked:
                with_delay += 1
                assert delay == min(max(float(asked), 0.0), MAX_CRAWL_DELAY), host
            else:
                assert delay == 0.0, host
            if asked and asked > MAX_CRAWL_DELAY:
                capped += 1
    finally:
        logging.disable(logging.NOTSET)
    assert (not_utf8, with_delay, capped) == (NOT_UTF8, WITH_DELAY, CAPPED)
    assert denials > 0  # real files do deny some of these paths
    # the empty files take the short path (every URL allowed without asking Protego), and the
    # answers above include theirs
    empty = [host for host, body in corpus if not body.strip()]
    assert empty and all(rules_from_answer(200, body).allows_everything
                         for host, body in corpus if not body.strip())
    assert sum(rules_from_answer(200, body).allows_everything for _, body in corpus) == len(empty)


def test_a_real_file_denying_everyone_denies_our_agent(corpus):
    """The agent token: every real file whose rules deny `/` to any agent (`*`) deny it to our
    full user-agent string too."""
    whole_site = [host for host, body in corpus
                  if not rules_from_answer(200, body).allowed(f"https://{host}/", AGENT)]
    everyone = [host for host, body in corpus
                if not Protego.parse(body.decode("utf-8", errors="replace"))
                .can_fetch(f"https://{host}/", "*")]
    assert set(everyone) <= set(whole_site)
    assert everyone
