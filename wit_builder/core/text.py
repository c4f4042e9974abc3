"""Text normalisation and word tokenisation, shared by the query builder and caption matching.

The rules (README "Tokenisation"; both C extensions replay them on ASCII text and hand any other
text to the functions here):

- Text is NFKC-normalised and lower-cased; typographic apostrophes and hyphens fold to ASCII.
- A word is a run of Unicode letters and digits joined by internal `'` (`o'neill`) and `-`
  (`state-of-the-art`, `covid-19`); a hyphen between two digits is a range dash, not a joiner
  (`1775-1783` is two words). `.` and `,` between two digits join them: `1,000`, `3.5`.
- An abbreviation, single letters each followed by a full stop (`u.s.`, `i.e.`, `j.r.r.`), is one
  word, its final full stop included.
- A possessive `'s` (or `’s`) folds to its word: `lincoln's` is `lincoln`.
- A boundary ends adjacency: full stop, `!`, `?`, line break, comma, colon, semicolon, brackets,
  `/`, `|`, dashes that join nothing (`-`, `–`, `—`, `−`), list bullets. Bigrams never span one.

Bump TOKENIZATION whenever a rule changes: stats.json, the queries' partition markers, the match
cache and the crawl's partition markers record it, so work done under other rules is redone.
"""

from __future__ import annotations

import re
import unicodedata

# Recorded wherever an output depends on how text is cut into words (see the module docstring).
TOKENIZATION = "witbuilder-tokens-2"

LETTER = r"[^\W\d_]"
ALNUM = r"[^\W_]"  # "letter or digit" (\w without the underscore) for every Unicode script
# Single letters each followed by a full stop, at least two of them: "u.s.", "i.e", "j.r.r.".
ABBREVIATION_PATTERN = rf"{LETTER}(?:\.{LETTER}(?!{ALNUM}))+\.?"
# What joins two runs of letters and digits into one word (each alternative sees one character
# on either side, so matching stays linear).
JOINER = r"(?:'|(?<!\d)-|-(?!\d)|(?<=\d)[.,](?=\d))"
WORD_PATTERN = rf"{ABBREVIATION_PATTERN}|{ALNUM}+(?:{JOINER}{ALNUM}+)*"
WORD_RE = re.compile(WORD_PATTERN)
# Characters that end a run of adjacent words (a hyphen only where it joins nothing: a word
# consumes the joining ones first).
BOUNDARY_CHARACTERS = ".!?\n,;:()[]{}/|-\u2012\u2013\u2014\u2015\u2212\u00b7\u2022\u3001\u3002"
BOUNDARY_PATTERN = "[" + re.escape(BOUNDARY_CHARACTERS) + "]+"
TOKEN = re.compile(f"{WORD_PATTERN}|{BOUNDARY_PATTERN}")
BOUNDARY = "."  # what `tokens` gives for every run of boundary characters
POSSESSIVE = "'s"

# Typographic apostrophes and hyphens folded to ASCII so "O’Neill" and "O'Neill" are one word.
FOLDED_PUNCTUATION = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-"})
FOLDED_CHARACTERS = tuple(map(chr, FOLDED_PUNCTUATION))
YEAR = re.compile(r"[12][0-9]{3}")
NUMBER_CHARACTERS = frozenset("0123456789.,")


def normalize(text: str) -> str:
    """NFKC, lower case, typographic apostrophes and hyphens folded to ASCII."""
    if text.isascii():
        return text.lower()
    # No-break spaces (from &nbsp;) are everywhere in Wikipedia and would defeat NFKC's quick
    # check, turning a no-op into a full normalisation pass; NFKC maps them to spaces anyway.
    text = text.replace("\xa0", " ")
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if any(mark in text for mark in FOLDED_CHARACTERS):
        text = text.translate(FOLDED_PUNCTUATION)
    return text.lower()


def without_possessives(found: list[str]) -> list[str]:
    """`found` with each word's possessive 's removed ("lincoln's" -> "lincoln")."""
    return [token[:-2] if token.endswith(POSSESSIVE) else token for token in found]


def tokens(normalized: str) -> list[str]:
    """Words of already-normalised text, with BOUNDARY (".") for every run of boundaries."""
    found = TOKEN.findall(normalized)
    if POSSESSIVE in normalized:
        found = without_possessives(found)
    return [BOUNDARY if token[0] in BOUNDARY_CHARACTERS else token for token in found]


def normalized_words(normalized: str) -> list[str]:
    """The words of already-normalised text, possessives folded."""
    found = WORD_RE.findall(normalized)
    return without_possessives(found) if POSSESSIVE in normalized else found


def words(text: str) -> list[str]:
    """The normalised words of `text`, in order."""
    return normalized_words(normalize(text))


def normalize_query(text: str) -> str:
    """A query as stored and matched: its words joined by single spaces ('' if it has none)."""
    return " ".join(words(text))


def sentences(text: str) -> list[list[str]]:
    """The normalised words of `text` in runs of adjacent words (boundaries cut them)."""
    result: list[list[str]] = [[]]
    for token in tokens(normalize(text)):
        if token == BOUNDARY:
            result.append([])
        else:
            result[-1].append(token)
    return [sentence for sentence in result if sentence]


def is_number(word: str) -> bool:
    """True for a word of ASCII digits, with separators or decimals ("42", "1,000", "3.5")."""
    return word[0] in "0123456789" and NUMBER_CHARACTERS.issuperset(word)


def is_query_word(word: str, keep_numbers: bool = False) -> bool:
    """Whether a word may be a unigram query: not a single cased letter other than "a" and "i"
    (uncased scripts' single characters are words), not a number other than a four-digit year
    unless `keep_numbers`."""
    if len(word) == 1 and word not in "ai" and word.lower() != word.upper():
        return False
    if not keep_numbers and is_number(word):
        return len(word) == 4 and YEAR.fullmatch(word) is not None
    return True
