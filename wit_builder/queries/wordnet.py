"""WordNet synsets as queries: the head lemma of every synset (or all its lemmas), read from the
WordNet 3.0 database files (`data.noun`, `data.verb`, `data.adj`, `data.adv`, as Debian's
wordnet-base installs them in /usr/share/wordnet) or from a WN-LMF XML file (Open English WordNet).
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import BinaryIO

from wit_builder.core.options import WitError
from wit_builder.core.text import normalize_query

DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
ADJECTIVE_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # syntactic markers such as "galore(ip)"


def read_wordnet(path: str, all_lemmas: bool = False) -> list[str]:
    """Normalised lemmas, one per synset (or every lemma), in file order, duplicates removed."""
    source = Path(path)
    if source.is_dir():
        lemmas = database_lemmas(source, all_lemmas)
    elif source.is_file():
        lemmas = lmf_lemmas(source, all_lemmas)
    else:
        raise WitError(f"wordnet '{path}' does not exist")
    return list(dict.fromkeys(query for query in map(normalize_query, lemmas) if query))


def database_lemmas(directory: Path, all_lemmas: bool) -> list[str]:
    """Lemmas from the `data.*` files of a WordNet 3.0 database directory."""
    files = [directory / name for name in DATA_FILES if (directory / name).is_file()]
    if not files:
        raise WitError(f"wordnet '{directory}' holds no WordNet database files "
                       f"({', '.join(DATA_FILES)})")
    lemmas: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, 1):
                    if line.startswith(" ") or not line.strip():
                        continue  # the licence header lines start with two spaces
                    lemmas.extend(synset_lemmas(line, path, number, all_lemmas))
        except OSError as error:
            raise WitError(f"wordnet '{path}' cannot be read: {error.strerror}") from None
    return lemmas


def synset_lemmas(line: str, path: Path, number: int, all_lemmas: bool) -> list[str]:
    """`offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] ...` → its words."""
    fields = line.split()
    try:
        word_count = int(fields[3], 16)
        words = fields[4:4 + 2 * word_count:2]
    except (IndexError, ValueError):
        raise WitError(f"wordnet '{path}' line {number} is not a WordNet data line") from None
    if len(words) != word_count or not words:
        raise WitError(f"wordnet '{path}' line {number} is not a WordNet data line")
    chosen = words if all_lemmas else words[:1]
    return [ADJECTIVE_MARKER.sub("", word).replace("_", " ") for word in chosen]


def lmf_lemmas(path: Path, all_lemmas: bool) -> list[str]:
    """Lemmas from a WN-LMF XML file: per synset, its members in order (the first is the head)."""
    written: dict[str, str] = {}  # lexical entry id → written form
    try:
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"  # OEWN ships english-wordnet-YYYY.xml.gz
        source = gzip.open(path, "rb") if gzipped else open(path, "rb")
        with source:
            members_by_synset = lmf_synset_members(source, written)
    except ElementTree.ParseError as error:
        raise WitError(f"wordnet '{path}' is not WN-LMF XML: {error}") from None
    except (OSError, EOFError) as error:
        raise WitError(f"wordnet '{path}' cannot be read: {error}") from None
    if not written:
        raise WitError(f"wordnet '{path}' holds no <LexicalEntry> (not a WN-LMF file)")
    lemmas: list[str] = []
    for members in members_by_synset.values():
        forms = [written[member] for member in members if member in written]
        lemmas.extend(forms if all_lemmas else forms[:1])
    return lemmas


def lmf_synset_members(source: BinaryIO, written: dict[str, str]) -> dict[str, list[str]]:
    """Synset id → its members' lexical entry ids; fills `written` (entry id → written form)."""
    members_by_synset: dict[str, list[str]] = {}
    for _, element in ElementTree.iterparse(source, events=("end",)):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "LexicalEntry":
            lemma = element.find("{*}Lemma")
            if lemma is not None:
                written[element.get("id", "")] = lemma.get("writtenForm", "")
                for sense in element.iterfind("{*}Sense"):
                    members_by_synset.setdefault(sense.get("synset", ""), []).append(
                        element.get("id", ""))
            element.clear()
        elif tag == "Synset":
            members = element.get("members")
            if members:
                members_by_synset[element.get("id", "")] = members.split()
            else:
                members_by_synset.setdefault(element.get("id", ""), [])
            element.clear()
    return members_by_synset
