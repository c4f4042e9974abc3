"""Text normalisation and word tokenisation, shared by the query builder and caption matching.

A word is a run of Unicode letters and digits, with internal hyphens and apostrophes kept
(`state-of-the-art`, `o'neill`), after NFKC normalisation and lower-casing. Sentences end at
`.`, `!`, `?` and line breaks; bigrams never cross a sentence end.
"""

from __future__ import annotations

import re
import unicodedata

# [^\W_] is "letter or digit" (\w without the underscore) for every Unicode script.
WORD_PATTERN = r"[^\W_]+(?:['\-][^\W_]+)*"
WORD = re.compile(WORD_PATTERN)
SENTENCE_END = "."
# Words and sentence ends in one pass: sentence ends come back as the single token ".".
WORD_OR_SENTENCE_END = re.compile(WORD_PATTERN + r"|[.!?\n]+")

# Typographic apostrophes and hyphens folded to ASCII so "O’Neill" and "O'Neill" are one word.
FOLDED_PUNCTUATION = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-"})
FOLDED_CHARACTERS = tuple(map(chr, FOLDED_PUNCTUATION))


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


def words(text: str) -> list[str]:
    """The normalised words of `text`, in order."""
    return WORD.findall(normalize(text))


def normalize_query(text: str) -> str:
    """A query as stored and matched: its words joined by single spaces ('' if it has none)."""
    return " ".join(words(text))


def word_and_sentence_tokens(normalized: str) -> list[str]:
    """Words of already-normalised text, with "." marking every sentence end (runs collapsed)."""
    tokens = WORD_OR_SENTENCE_END.findall(normalized)
    return [SENTENCE_END if token[0] in ".!?\n" else token for token in tokens]


def sentences(text: str) -> list[list[str]]:
    """The normalised words of `text` grouped by sentence (empty sentences dropped)."""
    result: list[list[str]] = [[]]
    for token in word_and_sentence_tokens(normalize(text)):
        if token == SENTENCE_END:
            result.append([])
        else:
            result[-1].append(token)
    return [sentence for sentence in result if sentence]
