"""Which captions are in the crawl's language: the last filter of a partition, run in its worker
on the texts that matched a query only (the filters commute, and matching is far cheaper).

Three detectors, each giving (ISO 639-1 code, probability):

- `auto` (the default): lingua weighed with the queries' own vocabulary. Alt texts are short
  ("Original image", "python logo"): a character model alone spreads them over close languages
  (lingua says French, langdetect Tagalog), while the text has already matched queries built
  from the language kept, so the share of its words that are query words is evidence too. The
  score is log(P(lang) / P(best other language)) from lingua plus that share times a weight
  calibrated by length, LEXICON_WEIGHT + SHORT_TEXT_WEIGHT / words; a text is the crawl's
  language when the score reaches THRESHOLD, or when lingua ranks it first (a crawl with a
  few queries has little vocabulary to go on). Short texts lean on the vocabulary, where lingua
  is least sure; long ones on lingua, whose log ratio grows with the length. Foreign function
  words that are also query words ("de", "la", "der" are English Wikipedia and WordNet
  entries) are why the vocabulary alone is not enough. A one-word text that is a query word is
  kept unless lingua is all but sure (below 6% for English against the best other): lingua
  cannot tell one word's language (at any threshold that keeps 97% of English words, it keeps
  ~95% of foreign ones). lingua chooses among AUTO_LANGUAGES.
- `lingua`: lingua-language-detector over LINGUA_LANGUAGES, its relative confidence.
- `langdetect`: seeded (it is random otherwise); 10-15x slower than `auto` on alt texts.

lingua loads its models on the first text of each process, once per worker (later detectors
reuse them): 2-3 s and ~360 MB on a quiet core, 8-33 s under loads of 7-17 on 2 cores. A
detector remembers its last RESULTS_KEPT answers: web captions repeat ("logo", a product's name),
and each detector is a pure function of the text (langdetect's seeded too), so a repeated caption
costs a dictionary look-up instead of ~0.2 ms of lingua. The
figures behind the constants are in BENCHMARKS.md (benchmarks/bench_langid.py: real alt texts of
the GIMP manual in four languages, Django's messages in 33).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pyarrow.parquet as pq

from wit_builder.core.options import WitError
from wit_builder.core.text import words

DETECTORS = ("auto", "lingua", "langdetect")
# The languages lingua chooses among (ISO 639-1): the 20 most used on the web (the crawl's own
# language is added when it is not among them). A text in another language goes to the closest.
LINGUA_LANGUAGES = ("en", "es", "de", "ja", "fr", "ru", "pt", "it", "fa", "nl", "pl", "tr", "zh",
                    "vi", "id", "cs", "ko", "uk", "ar", "sv")
# auto's languages: the same but Turkish, Vietnamese and Czech, whose letters of their own (ı ş ğ,
# ơ ư đ, ě ř ů) lingua's rules give to no other language here. Three fewer Latin-script models make
# it ~1.5x faster; their messages are still dropped at 82-92% where 84-95% with all 20 (many one
# word long: see BENCHMARKS.md), and English, German, French and Spanish alt texts alike.
AUTO_LANGUAGES = tuple(code for code in LINGUA_LANGUAGES if code not in ("tr", "vi", "cs"))
# The least probability that keeps a text, when the user sets none. lingua spreads its probability
# over close languages on short captions, so its own threshold is low; `auto` gives 0.5 exactly
# where its score meets THRESHOLD.
DEFAULT_MIN_PROB = {"auto": 0.5, "lingua": 0.3, "langdetect": 0.9}
# `auto`'s calibration, chosen on half of the GIMP manual's alt texts (en, de, fr, es) with WordNet
# 3.0's lemmas as the queries, and checked on the other half and with another word list as the
# queries (the figures in BENCHMARKS.md).
LEXICON_WEIGHT = 0.75
SHORT_TEXT_WEIGHT = 3.0
THRESHOLD = 0.9
SMOOTHING = 1e-3  # added to both confidences: lingua gives exact zeros
RESULTS_KEPT = 1 << 16  # answers a detector remembers (least recently used dropped; ~10 MB)
# English inflections the queries (often lemmas: WordNet's) may lack: "options" -> "option".
ENGLISH_SUFFIXES = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                    ("ing", "e"), ("'s", ""))


def query_lexicon(queries: str | Path) -> frozenset[str]:
    """The words of a queries.parquet's queries (stored normalised: words joined by spaces)."""
    column = pq.read_table(queries, columns=["query"]).column("query")
    return frozenset(word for query in column.to_pylist() if query for word in query.split())


def in_lexicon(word: str, lexicon: frozenset[str], lang: str) -> bool:
    if word in lexicon:
        return True
    if lang != "en":
        return False
    return any(word.endswith(suffix) and len(word) > len(suffix) + 2
               and word[:-len(suffix)] + stem in lexicon for suffix, stem in ENGLISH_SUFFIXES)


def vocabulary_evidence(text: str, lexicon: frozenset[str], lang: str = "en") -> float:
    """The share of the text's words (numbers aside) that are words of `lexicon`, weighed by
    the text's length (LEXICON_WEIGHT + SHORT_TEXT_WEIGHT / words)."""
    found = words(text)
    counted = [word for word in found if not word.isdigit()]
    if not counted:
        return 0.0
    share = sum(in_lexicon(word, lexicon, lang) for word in counted) / len(counted)
    return (LEXICON_WEIGHT + SHORT_TEXT_WEIGHT / len(found)) * share


def languages(backend: str, lang: str) -> tuple[str, ...]:
    """The languages lingua chooses among for `backend`, the crawl's own among them."""
    codes = AUTO_LANGUAGES if backend == "auto" else LINGUA_LANGUAGES
    return codes + ((lang,) if lang not in codes else ())


def lingua_detector(codes: tuple[str, ...]):
    """A lingua detector over the languages of `codes`; a clear error when lingua is missing."""
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:
        raise WitError("--lang-detector lingua or auto needs the lingua-language-detector "
                       "package: pip install lingua-language-detector") from None
    languages = []
    for code in codes:
        try:
            languages.append(getattr(IsoCode639_1, code.upper()))
        except AttributeError:
            raise WitError(f"language '{code}' is not one lingua knows; give --lang as an "
                           "ISO 639-1 code (en, de, fr...)") from None
    return LanguageDetectorBuilder.from_iso_codes_639_1(*languages).build()


class LanguageDetector:
    """One of DETECTORS, for texts that should be in `lang`. `lexicon`: the query words (`auto`
    only; without them `auto` is lingua with a stricter threshold)."""

    def __init__(self, backend: str = "auto", seed: int = 0,
                 lexicon: frozenset[str] = frozenset(), lang: str = "en"):
        if backend not in DETECTORS:
            raise ValueError(f"unknown language detector '{backend}'")
        self.backend, self.lang, self.lexicon = backend, lang, lexicon
        if backend == "langdetect":
            from langdetect import DetectorFactory

            DetectorFactory.seed = seed
        else:
            codes = languages(backend, lang)
            self.lingua = lingua_detector(codes)
            from lingua import IsoCode639_1, Language

            self.own_language = Language.from_iso_code_639_1(getattr(IsoCode639_1, lang.upper()))
        # detect(text): detect_uncached behind a cache of this detector's last answers
        self.detect = functools.lru_cache(maxsize=RESULTS_KEPT)(self.detect_uncached)

    def detect_uncached(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code, probability); ("unknown", 0.0) when the text has no language."""
        if self.backend == "auto":
            return self.detect_auto(text)
        if self.backend == "lingua":
            return self.detect_lingua(text)
        return detect_langdetect(text)

    def detect_lingua(self, text: str) -> tuple[str, float]:
        values = self.lingua.compute_language_confidence_values(text)
        if not values or values[0].value <= 0.0:  # lingua gives every language 0 for "" or "123"
            return "unknown", 0.0
        best = values[0]
        return best.language.iso_code_639_1.name.lower(), float(best.value)

    def detect_auto(self, text: str) -> tuple[str, float]:
        """`lang` with the probability of the score (0.5 at THRESHOLD) when the score reaches
        THRESHOLD or lingua ranks `lang` first, else lingua's best other language with the
        complement."""
        values = self.lingua.compute_language_confidence_values(text)
        if not values or values[0].value <= 0.0:
            return "unknown", 0.0
        own, other, other_language = 0.0, 0.0, None
        for value in values:  # sorted by confidence, highest first
            if value.language == self.own_language:
                own = value.value
                if other_language is not None:
                    break
            elif other_language is None:
                other, other_language = value.value, value.language
                if own:
                    break
        other_code = other_language.iso_code_639_1.name.lower() if other_language else "unknown"
        score = (math.log((own + SMOOTHING) / (other + SMOOTHING))
                 + vocabulary_evidence(text, self.lexicon, self.lang) - THRESHOLD)
        probability = 1.0 / (1.0 + math.exp(-score))
        if own >= other:  # never stricter than lingua: a short query list is little evidence
            probability = max(probability, 0.5)
        if probability >= 0.5:
            return self.lang, probability
        return other_code, 1.0 - probability


def detect_langdetect(text: str) -> tuple[str, float]:
    from langdetect import detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return "unknown", 0.0
    return best.lang, float(best.prob)


@functools.lru_cache(maxsize=4)
def cached_detector(backend: str, lang: str, seed: int, queries: str = "",
                    queries_sha256: str = "") -> LanguageDetector:
    """One detector per worker process and queries file (`auto` reads the query words once;
    lingua's models load on the first text); keyed by the file's digest too, so a process that
    outlives one crawl never uses the words of the one before."""
    lexicon = query_lexicon(queries) if backend == "auto" and queries else frozenset()
    return LanguageDetector(backend, seed, lexicon, lang)


def detector_settings(backend: str, lang: str, min_prob: float) -> dict:
    """What crawl_stats.json records of the language filter."""
    settings = {"detector": backend, "lang": lang, "min_lang_prob": min_prob}
    if backend != "langdetect":
        settings["lingua_languages"] = list(languages(backend, lang))
    if backend == "auto":
        settings.update(lexicon="the words of the queries", lexicon_weight=LEXICON_WEIGHT,
                        short_text_weight=SHORT_TEXT_WEIGHT, threshold=THRESHOLD,
                        english_suffixes=list(dict.fromkeys(
                            suffix for suffix, _ in ENGLISH_SUFFIXES)) if lang == "en" else [])
    return settings
