"""Language detection: auto (lingua weighed with the query words, the default), lingua and
langdetect behind one API; the detectors through the crawl."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.crawl.language import (DEFAULT_MIN_PROB, LanguageDetector,
                                        vocabulary_evidence)
from wit_builder.cli import load_config
from wit_builder.crawl.run import select
from wit_builder.synthweb.render import caption, sample_scene

# The threshold the crawl pairs with lingua when none is set (its confidences are relative).
LINGUA_MIN_PROB = DEFAULT_MIN_PROB["lingua"]


@pytest.fixture(scope="module")
def lingua() -> LanguageDetector:
    return LanguageDetector("lingua")


def generated_captions(lang: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [caption(sample_scene(rng), rng, lang) for _ in range(count)]


def kept_as_english(detector: LanguageDetector, texts: list[str]) -> int:
    kept = 0
    for text in texts:
        lang, prob = detector.detect(text)
        kept += lang == "en" and prob >= LINGUA_MIN_PROB
    return kept


def test_lingua_keeps_english_captions_and_drops_french_german_spanish(lingua):
    assert kept_as_english(lingua, generated_captions("en", 60, seed=1)) >= 57
    for lang in ("fr", "de", "es"):
        texts = generated_captions(lang, 60, seed=2)
        # "Photo : un grand triangle orange" is as English as it is French: allow one such caption.
        assert kept_as_english(lingua, texts) <= 1, lang
        assert sum(lingua.detect(text)[0] == lang for text in texts) >= 57, lang


@pytest.mark.parametrize("backend", ["langdetect", "lingua"])
def test_both_detectors_give_an_iso_code_and_a_probability(backend, request):
    if backend == "lingua":
        detector = request.getfixturevalue("lingua")
    else:
        detector = LanguageDetector(backend, seed=0)
    lang, prob = detector.detect("A photo of a large red circle on a striped blue background")
    assert lang == "en" and isinstance(prob, float) and LINGUA_MIN_PROB <= prob <= 1.0
    lang, prob = detector.detect("Ein Foto von drei kleinen grünen Dreiecken auf weißem Grund")
    assert lang == "de" and 0.0 < prob <= 1.0
    assert detector.detect("") == ("unknown", 0.0)
    assert detector.detect("1234 5678") == ("unknown", 0.0)


def test_unknown_detector_name_is_refused():
    with pytest.raises(ValueError, match="unknown language detector 'cld9'"):
        LanguageDetector("cld9")


def test_crawl_with_lingua_keeps_only_english_matches(tmp_path, lingua):
    queries = tmp_path / "queries" / "queries.parquet"
    queries.parent.mkdir()
    pq.write_table(pa.table({"query_id": pa.array([0, 1, 2], pa.int32()),
                             "query": ["circle", "triangle", "star"]}), queries)
    english = ["A large red circle on a plain white background",
               "a small blue triangle on a grey background",
               "a green star drawn on a dotted yellow background"]
    foreign = ["Une grande star du cinéma devant un fond rouge",  # each names a query
               "Ein großes rotes Triangle auf einem weißen Hintergrund",
               "Una estrella verde, la star de la noche, sobre un fondo amarillo"]
    texts = english + foreign
    pq.write_table(pa.table({"url": [f"http://img.test/{i}.jpg" for i in range(len(texts))],
                             "caption": texts}), tmp_path / "pool.parquet")
    config = load_config("crawl", None, {
        "workdir": str(tmp_path), "download": False, "workers": 1, "lang_detector": "lingua",
        "source": [f"pool:{tmp_path / 'pool.parquet'}"]})
    stats = select(config)
    matched = pq.read_table(tmp_path / "data" / "matched" / "part-00000.parquet").to_pylist()
    assert [row["text"] for row in matched] == english
    assert all(row["lang"] == "en" and row["lang_prob"] >= LINGUA_MIN_PROB for row in matched)
    assert stats["dropped"]["not_en"] == 3


# The words of the queries these alt texts matched (a queries file holds them normalised).
ALT_TEXT_QUERIES = frozenset("python logo original image gradient usage dodge tool example layer "
                             "mode merge hue tab more opaque de la le el".split())


@pytest.fixture(scope="module")
def auto() -> LanguageDetector:
    return LanguageDetector("auto", lexicon=ALT_TEXT_QUERIES)


@pytest.mark.parametrize("text", ["python logo", "Original image", "Gradient usage", "Dodge tool",
                                  "Example for layer mode Merge", "Hue tab", "More opaque"])
def test_auto_keeps_short_english_alt_texts(auto, text):
    # langdetect: "python logo" -> cy, "Original image" -> tl; lingua: "Gradient usage" -> fr
    lang, prob = auto.detect(text)
    assert lang == "en" and prob >= DEFAULT_MIN_PROB["auto"], (text, lang, prob)


@pytest.mark.parametrize("text", ["Imagen original", "Image originale", "Bild drehen",
                                  "Das Dialogfenster Ebenen", "Le mode de fusion",
                                  "Exemple de dégradé", "Ejemplo de la herramienta",
                                  "Ebenenmodus Zusammenführen"])
def test_auto_drops_short_german_french_spanish_texts(auto, text):
    lang, _ = auto.detect(text)
    assert lang in ("de", "fr", "es"), (text, lang)


def test_auto_leans_on_the_query_words_more_the_shorter_the_text():
    lexicon = frozenset(["image"])
    assert vocabulary_evidence("image", lexicon) > vocabulary_evidence("image image", lexicon)
    assert vocabulary_evidence("options", frozenset(["option"])) > 0  # English plural
    assert vocabulary_evidence("1234 5678", lexicon) == 0.0
    without_words = LanguageDetector("auto")  # no query words: lingua, stricter
    assert without_words.detect("Gradient usage")[0] != "en"


def test_auto_keeps_what_lingua_ranks_english_first_whatever_the_query_words(lingua):
    few_queries = LanguageDetector("auto", lexicon=frozenset(["star"]))
    text = "a red star on white"  # lingua: English first, but with little confidence
    assert lingua.detect(text)[0] == "en"
    lang, prob = few_queries.detect(text)
    assert lang == "en" and prob >= DEFAULT_MIN_PROB["auto"]


def test_crawl_records_the_language_filter_in_its_stats(tmp_path):
    queries = tmp_path / "queries" / "queries.parquet"
    queries.parent.mkdir()
    pq.write_table(pa.table({"query_id": pa.array([0, 1, 2], pa.int32()),
                             "query": ["python", "image", "original"]}), queries)
    texts = ["python logo", "Original image", "Imagen original", "Image originale"]
    pq.write_table(pa.table({"url": [f"http://img.test/{i}.jpg" for i in range(len(texts))],
                             "caption": texts}), tmp_path / "pool.parquet")
    config = load_config("crawl", None, {
        "workdir": str(tmp_path), "download": False, "workers": 1,
        "source": [f"pool:{tmp_path / 'pool.parquet'}"]})
    stats = select(config)
    matched = pq.read_table(tmp_path / "data" / "matched" / "part-00000.parquet").to_pylist()
    assert [row["text"] for row in matched] == texts[:2]
    assert stats["dropped"]["not_en"] == 2
    language = stats["language"]
    assert language["detector"] == "auto" and language["min_lang_prob"] == 0.5
    assert language["threshold"] > 0 and "en" in language["lingua_languages"]


def test_a_repeated_caption_is_detected_once_with_the_same_answer():
    """Captions repeat on the web: the second time, the answer comes from the detector's memory,
    the same as lingua's own."""
    asked = []
    detector = LanguageDetector("auto", lexicon=frozenset({"red", "circle"}))
    models = detector.lingua

    class Counting:
        def compute_language_confidence_values(self, text):
            asked.append(text)
            return models.compute_language_confidence_values(text)

    detector.lingua = Counting()
    texts = ["A red circle", "Ein roter Kreis", "A red circle", "A red circle", "Ein roter Kreis"]
    answers = [detector.detect(text) for text in texts]
    assert asked == ["A red circle", "Ein roter Kreis"]
    detector.lingua = models
    # lingua's own confidences may move in the last bit from one call to the next
    for text, (lang, prob) in zip(texts, answers):
        fresh_lang, fresh_prob = detector.detect_uncached(text)
        assert lang == fresh_lang and prob == pytest.approx(fresh_prob, rel=1e-12)
    assert answers[0][0] == "en" and answers[1][0] == "de"
