"""The C extensions checked like C code: both built with -fsanitize=address,undefined (into a
temporary folder, the normal build untouched), then their tests and a short fuzz run in a Python
that loads those builds, where the first sanitizer report aborts the process (see
tests/support/sanitize_build.py). Skipped, saying why, where the compiler has no sanitizer runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import sanitize_build as sanitize

ROOT = sanitize.ROOT
# The tests of the extensions' code paths (test_match_cache.py: the matcher's cache loader).
TEST_FILES = ["tests/queries/test_queries_hotloop.py", "tests/queries/test_wikitext.py",
              "tests/crawl/test_match_compiled.py", "tests/crawl/test_html_extraction.py",
              "tests/crawl/test_match_cache.py", "tests/crawl/test_area_resize.py"]
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

CANARY = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *overflow(PyObject *self, PyObject *arg) {
    Py_ssize_t at = PyLong_AsSsize_t(arg);
    /* PyMem_RawMalloc is malloc here (PYTHONMALLOC=malloc), opaque to UBSan's object-size
     * check: the report is AddressSanitizer's */
    char *block = PyMem_RawMalloc(8);
    memset(block, 0, 8);
    int value = block[at];  /* at = 8: one byte past the block */
    PyMem_RawFree(block);
    return PyLong_FromLong(value);
}

static PyObject *shift(PyObject *self, PyObject *arg) {
    int by = (int)PyLong_AsLong(arg);
    return PyLong_FromLong(1 << by);  /* by = 40: undefined */
}

static PyMethodDef methods[] = {{"overflow", overflow, METH_O, NULL},
                                {"shift", shift, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_canary", NULL, -1, methods};
PyMODINIT_FUNC PyInit__canary(void) { return PyModule_Create(&module); }
"""


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = sanitize.missing()
    if reason:
        pytest.skip(f"sanitizers unavailable: {reason}")
    folder = tmp_path_factory.mktemp("sanitized")
    built = sanitize.build(folder)
    for path in built.values():  # instrumented: calls into the ASan runtime
        assert b"__asan_report" in path.read_bytes()
    return folder


def run_sanitized(folder: Path, tmp_path: Path, *args: str, timeout: int = 240) \
        -> subprocess.CompletedProcess:
    """`python ARGS` with the sanitized extensions; its sanitizer reports land in
    tmp_path/reports/sanitizer.PID, its extension imports in tmp_path/loads.log."""
    (tmp_path / "reports").mkdir(exist_ok=True)
    env = sanitize.environment(folder, tmp_path / "loads.log", tmp_path / "reports" / "sanitizer")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def loaded_modules(tmp_path: Path, folder: Path) -> set[str]:
    """The extension modules the sanitized runs imported, each checked to come from `folder`."""
    log = tmp_path / "loads.log"
    names = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        _, name, file = line.split(" ", 2)
        assert Path(file).parent == folder, line
        names.add(name)
    return names


def clean(result: subprocess.CompletedProcess, tmp_path: Path) -> str:
    """'' when the run passed without a sanitizer report, else what to show: the reports and the
    output's end."""
    reports = "".join(path.read_text(errors="replace")
                      for path in sorted((tmp_path / "reports").glob("sanitizer*")))
    output = result.stdout + result.stderr
    if result.returncode == 0 and not reports and not any(r in output for r in REPORTS):
        return ""
    return f"exit {result.returncode}:\n{reports[:6000]}\n...\n{output[-3000:]}"


def test_a_sanitizer_report_fails_the_run(sanitized: Path, tmp_path: Path):
    """The environment catches what it is for: an out-of-bounds read and undefined behaviour in
    a compiled module each abort the Python that runs it, with the sanitizer's report."""
    source = tmp_path / "canary.c"
    source.write_text(CANARY)
    include = sanitize.sysconfig.get_paths()["include"]
    subprocess.run([sanitize.compiler(), *sanitize.FLAGS, f"-I{include}", str(source), "-o",
                    str(tmp_path / f"_canary{sanitize.sysconfig.get_config_var('EXT_SUFFIX')}")],
                   check=True)
    for call, report in (("overflow(8)", "heap-buffer-overflow"), ("shift(40)", "shift exponent")):
        script = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import _canary; " \
                 f"_canary.{call}; print('survived')"
        runs = tmp_path / call[:5]
        runs.mkdir()
        result = run_sanitized(sanitized, runs, "-c", script, timeout=60)
        assert result.returncode != 0 and "survived" not in result.stdout, result.stdout
        assert report in clean(result, runs), clean(result, runs)
    # within bounds, the same module runs clean
    script = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import _canary; " \
             f"print(_canary.overflow(7), _canary.shift(3))"
    result = run_sanitized(sanitized, tmp_path, "-c", script, timeout=60)
    assert not clean(result, tmp_path) and result.stdout.split() == ["0", "8"]


def test_the_extensions_tests_pass_under_the_sanitizers(sanitized: Path, tmp_path: Path):
    files = [name for name in TEST_FILES if (ROOT / name).exists()]
    result = run_sanitized(sanitized, tmp_path, "-m", "pytest", "-q", "-x", "-p",
                           "no:cacheprovider", "-o", "addopts=", *files)
    assert not clean(result, tmp_path), clean(result, tmp_path)
    assert " passed" in result.stdout
    assert loaded_modules(tmp_path, sanitized) == set(sanitize.EXTENSIONS)


def test_a_short_fuzz_runs_clean_under_the_sanitizers(sanitized: Path, tmp_path: Path):
    """Random bytes with NUL, invalid UTF-8 and deep nesting through the hot loop (compiled ==
    Python), the HTML page parser and the matcher (hostile text, damaged caches)."""
    result = run_sanitized(sanitized, tmp_path, str(ROOT / "tests" / "support" / "sanitize_build.py"), "fuzz")
    assert not clean(result, tmp_path), clean(result, tmp_path)
    assert "fuzz: done" in result.stdout
    assert loaded_modules(tmp_path, sanitized) == set(sanitize.EXTENSIONS)
