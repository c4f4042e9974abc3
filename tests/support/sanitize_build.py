"""The C extensions under AddressSanitizer and UndefinedBehaviorSanitizer (for
tests/core/test_sanitize.py).

`build(folder)` compiles the C extensions (EXTENSIONS: the hot loop, the crawl's parser and
matcher, the image step's area resize) with -fsanitize=address,undefined into `folder` (never in
place: the normal build stays as it is) and writes there a sitecustomize.py that makes every
Python started with `environment(folder)` import those modules from `folder` (a sys.meta_path
finder), and log each load to a file, so the caller can check that the sanitized code is what
ran. `environment` preloads libasan (Python itself is not instrumented) and makes the first
sanitizer report abort the process.

`python tests/support/sanitize_build.py fuzz` (under that environment) runs a short fuzz: random
bytes with NUL, invalid UTF-8 and deep nesting through the hot loop and the HTML page parser, and
hostile text through the matcher (each checked against its Python path), damaged caches through
the matcher's loader (an error, never a crash), and random pixels of random sizes through the
area resize, by each of its code paths the CPU runs (checked against OpenCV's bytes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTENSIONS = {"wit_builder.queries._hotloop": ROOT / "wit_builder" / "queries" / "_hotloop.c",
              "wit_builder.crawl._crawlfast": ROOT / "wit_builder" / "crawl" / "_crawlfast.c",
              "wit_builder.crawl.download._area":
                  ROOT / "wit_builder" / "crawl" / "download" / "_area.c"}
FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
         "-g", "-O1", "-shared", "-fPIC", "-ffp-contract=off"]  # as setup.py builds _area.c
LOG_VARIABLE = "WIT_SANITIZED_LOG"

SITECUSTOMIZE = '''"""Written by tests/support/sanitize_build.py: the sanitized extensions are imported from here."""
import importlib.abc
import importlib.util
import os
import sys

SANITIZED = {sanitized!r}


class SanitizedExtensions(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        file = SANITIZED.get(name)
        if file is None:
            return None
        log = os.environ.get({log!r})
        if log:
            with open(log, "a") as handle:
                handle.write(f"{{os.getpid()}} {{name}} {{file}}\\n")
        return importlib.util.spec_from_file_location(name, file)


sys.meta_path.insert(0, SanitizedExtensions())
'''


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def library(cc: str, name: str) -> Path | None:
    """The compiler's shared library `name` (e.g. libasan.so), or None when it has none."""
    try:
        found = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(found)
    # Without the library, gcc prints the bare name back.
    return path.resolve() if path.is_absolute() and path.exists() else None


def runtime_library(cc: str) -> Path | None:
    """libasan's shared library (to preload into Python), or None when the compiler has none."""
    return library(cc, "libasan.so")


def preloaded(cc: str) -> str:
    """LD_PRELOAD: libasan first (it must come before every other library), then libstdc++: ASan
    finds the real __cxa_throw when it starts, so C++ extensions that throw (indexed_bzip2) need
    libstdc++ loaded by then."""
    return " ".join(str(path) for path in (runtime_library(cc), library(cc, "libstdc++.so"))
                    if path)


def missing() -> str | None:
    """Why the sanitized build cannot run here, or None when it can."""
    cc = compiler()
    if cc is None:
        return "no C compiler (gcc or $CC)"
    if runtime_library(cc) is None:
        return f"{cc} has no AddressSanitizer runtime (`{cc} -print-file-name=libasan.so` " \
               f"names no file): install the compiler's libasan (Debian: libgcc-12-dev)"
    return None


def build(folder: Path) -> dict[str, Path]:
    """The extensions, sanitized, in `folder`; {module name: shared object}."""
    cc = compiler()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    built = {}
    for name, source in EXTENSIONS.items():
        target = folder / (name.rsplit(".", 1)[1] + suffix)
        subprocess.run([cc, *FLAGS, f"-I{include}", str(source), "-o", str(target)], check=True)
        built[name] = target
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(
        sanitized={name: str(path) for name, path in built.items()}, log=LOG_VARIABLE))
    return built


def environment(folder: Path, log: Path, reports: Path) -> dict[str, str]:
    """os.environ for a Python that imports the sanitized extensions of `folder` (see build),
    logs those imports to `log`, and writes any sanitizer report to a file `reports`.PID (not to
    stderr, which pytest's capture would swallow when the report aborts the process)."""
    env = dict(os.environ)
    env.update({
        "LD_PRELOAD": preloaded(compiler()),
        # Python's own allocations are not tracked (it is not instrumented): leaks are not ours.
        "ASAN_OPTIONS": f"detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path={reports}",
        "UBSAN_OPTIONS": f"halt_on_error=1:print_stacktrace=1:log_path={reports}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), str(ROOT),
                                                     env.get("PYTHONPATH")])),
        "PYTHONMALLOC": "malloc",  # every allocation through ASan's malloc: overflows seen
        LOG_VARIABLE: str(log),
    })
    return env


# ---- the fuzz ------------------------------------------------------------------------------

def fuzz(seed: int = 1, rounds: int = 600) -> None:
    import random
    import tempfile

    sys.path[:0] = [str(ROOT / "tests" / "queries"), str(ROOT / "tests")]
    from test_queries_hotloop import INVALID_UTF8, MARKUP, RAW_MARKUP, counted_both_ways

    from wit_builder.crawl import match
    from wit_builder.queries import counts
    from wit_builder.crawl.sources import html
    from wit_builder.queries.wikipedia.reader import XmlChunk

    assert counts.compiled_available() and match.compiled_available()
    rng = random.Random(seed)
    noise = [b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"&#0;", b"&#x0;",
             b"<", b">", b"&", b"[[", b"]]", b"{{", b"}}", b"\n", b" ", b"'", b"http://"]
    pieces = [piece.encode("utf-8", "surrogatepass") for piece in MARKUP] + RAW_MARKUP + \
        INVALID_UTF8 + noise

    def random_bytes(size: int) -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(size))

    # The hot loop: pages of markup, noise and deep nesting, compiled == Python.
    with tempfile.TemporaryDirectory() as folder:
        pages = []
        for number in range(rounds):
            kind = number % 4
            if kind == 0:
                text = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 200)))
            elif kind == 1:
                text = random_bytes(rng.randint(0, 400))
            elif kind == 2:
                depth = rng.randint(1, 3000)
                opener, closer = rng.choice([(b"{{", b"}}"), (b"[[", b"]]"), (b"<ref>", b"</ref>"),
                                             (b"\n{|", b"\n|}"), (b"<!--", b"-->")])
                text = opener * depth + rng.choice(pieces) + closer * rng.randint(0, depth)
            else:
                text = b"word " * rng.randint(0, 50) + random_bytes(rng.randint(0, 40))
            pages.append(b"<page><title>T%d%s</title><ns>0</ns><revision><text>%s</text>"
                         b"</revision></page>" % (number, random_bytes(3), text))
        # truncated pages and fragments that are not XML at all
        xml = b"<mediawiki>" + b"".join(pages) + b"<page><title>cut" + random_bytes(50)
        python, compiled = counted_both_ways(XmlChunk("fuzz", 0, xml), Path(folder), True)
        assert python == compiled, "hot loop: compiled and Python counts differ"
        counter = counts._hotloop.FragmentCounter(
            counts.segment_tokens, counts.decoded_segment_tokens, counts.xml_unescape,
            counts.strip_with_links, count_links=True, stand_ins=counts.ascii_stand_ins())
        for _ in range(rounds):
            counter.count(random_bytes(rng.randint(0, 300)) + b"<page>" +
                          b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) +
                          b"</page>")
        counter.take_pairs()
        counter.word_buffers()
        counter.link_buffers()

    # The page parser (the compiled per-image decisions) on hostile HTML, compiled ==
    # Python.
    tags = [b"<img src=", b"<img alt=", b" srcset=", b" data-src=", b" width=", b" height=",
            b"<figure>", b"<figcaption>", b"</figure>", b"<base href=", b"<a href=",
            b"<meta name=robots content=", b'"', b"'", b">", b"/>", b"x.jpg", b"//h/y.png",
            b"data:image/gif;base64,", b"http://a.test/\x00b.jpg", b"\x00", b"\xff", b"\xc3",
            b"&#0;", b"&#x0;", b"<div>" * 50, b"</div>", b"<script>", b"<!--", b"1x", b"400w"]
    for number in range(rounds):
        body = b"".join(rng.choice(tags) for _ in range(rng.randint(0, 120)))
        if number % 10 == 0:
            body = b"<div>" * rng.randint(500, 3000) + body
        elif number % 10 == 1:
            body = random_bytes(rng.randint(0, 500))
        page = "http://site.test/dir/page.html"
        assert html.parse_page(body, page)[0] == html.extract_images(body, page, compiled=False), \
            f"page parser: compiled and Python differ on {body[:300]!r}"
        html.parse_page(body.decode("utf-8", "replace"), "http://site.test/")

    # The matcher: hostile text (compiled == the pyahocorasick reference), and damaged caches
    # (an error, never a crash).
    queries = ["cat", "dog", "big cat", "a\x00b", "\u00e9t\u00e9", "x" * 300, "red dog cat",
               "\ud800", "cat cat cat"]
    compiled = match.CompiledMatcher.from_keys(match.query_keys(enumerate(queries)))
    reference = match.AutomatonMatcher.from_keys(match.query_keys(enumerate(queries)))
    cache = compiled.to_bytes()
    for _ in range(rounds):
        text = b"".join(rng.choice(noise + [b"cat ", b"dog ", b"big ", b"x" * 300])
                        for _ in range(rng.randint(0, 60))).decode("utf-8", "surrogateescape")
        assert compiled.match(text) == reference.match(text), f"matcher differs on {text!r}"
        damaged = bytearray(cache)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.getrandbits(8)
        for candidate in (bytes(damaged), cache[:rng.randrange(len(cache))],
                          random_bytes(rng.randint(0, 200))):
            try:
                loaded = match.CompiledMatcher.from_bytes(candidate)
            except ValueError:
                continue
            loaded.match(text)

    # The area resize: random pixels, random shrinks (1-pixel sides, near-whole factors,
    # one whole axis), byte for byte OpenCV's; bad sizes and buffers an error, never a crash.
    import cv2
    import numpy as np

    from wit_builder.crawl.download import area
    assert area._area is not None
    for _ in range(rounds // 3):
        width, height = rng.randint(1, 300), rng.randint(1, 300)
        pixels = np.frombuffer(random_bytes(width * height * 3), np.uint8).reshape(height, width, 3)
        target = (rng.randint(1, width), rng.choice([height, rng.randint(1, height)]))
        if area.shrink_like_opencv(pixels, *target) is not None:
            expected = cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
            for path in area._area.paths():  # SSE2, and AVX2 / AVX-512 where the CPU has them
                shrunk = np.empty((target[1], target[0], 3), np.uint8)
                area._area.resize(pixels, width, height, shrunk, *target, path)
                assert np.array_equal(shrunk, expected.reshape(shrunk.shape)), \
                    f"area resize ({path}) differs from OpenCV at {width}x{height} -> {target}"
        sizes = [rng.randint(-2, 310) for _ in range(4)]
        buffers = (random_bytes(rng.randint(0, 600)), bytearray(rng.randint(0, 600)))
        try:
            area._area.resize(buffers[0], sizes[0], sizes[1], buffers[1], sizes[2], sizes[3],
                              rng.choice([*area._area.paths(), "avx9"]))
        except (ValueError, OverflowError):
            pass
    print("fuzz: done")


if __name__ == "__main__":
    if sys.argv[1:2] != ["fuzz"]:
        sys.exit("usage: python tests/support/sanitize_build.py fuzz [ROUNDS] (in the environment of "
                 "environment(); tests/core/test_sanitize.py runs it)")
    fuzz(rounds=int(sys.argv[2]) if len(sys.argv) > 2 else 600)
