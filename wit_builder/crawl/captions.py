"""Caption cleaning, the text filters of the crawl, and English detection.

Cheap filters come first; language detection (langdetect, ~400 texts/s per core) runs only on the
texts that matched a query, since the filters commute and matching is ~150× faster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ftfy

from wit_builder.core.options import WitError

IMAGE_EXTENSIONS = r"(jpe?g|jfif|png|apng|gif|webp|avif|bmp|tiff?|svg|heic|heif|ico)"
# A file name, optionally with the query or fragment a CMS appends ("photo.jpg?w=300").
IMAGE_FILE = re.compile(r"^[\w\-. ()]+\." + IMAGE_EXTENSIONS + r"([?#]\S*)?$", re.IGNORECASE)
# A relative or absolute path to an image file: one token with a slash, ending in an image
# extension ("../_images/pathlib-inheritance.png", Sphinx's default alt; "/static/img/a.png").
IMAGE_PATH = re.compile(r"^[^\s/]*(/[^\s/]*)*[/\\][^\s/\\]+\." + IMAGE_EXTENSIONS
                        + r"([?#]\S*)?$", re.IGNORECASE)
# Names cameras and phones give their files: IMG_1234, DSC_0042, IMG_20190101_123456, PXL_...
CAMERA_NAME = re.compile(r"^(img|dsc[nf]?|dcim|pict|photo|image|screenshot|pxl|gopr|mvimg|vid|p)"
                         r"[\s_\-]*\d+([_\-]\d+)*(\s*\(\d+\))?$", re.IGNORECASE)
URL_LIKE = re.compile(r"^(https?://|www\.|//)\S+$|^[\w\-]+(\.[\w\-]+)+/\S*$", re.IGNORECASE)


@dataclass(frozen=True)
class CaptionLimits:
    min_chars: int = 5
    max_chars: int = 1000
    min_words: int = 1


def clean_caption(text: str) -> str:
    """Mojibake fixed, HTML entities decoded, whitespace collapsed."""
    return " ".join(ftfy.fix_text(text).split())


def caption_problem(text: str, limits: CaptionLimits) -> str | None:
    """Why a cleaned caption is dropped (a counted reason), or None when it is kept."""
    if not text:
        return "empty_text"
    if len(text) < limits.min_chars or len(text.split()) < limits.min_words:
        return "text_too_short"
    if len(text) > limits.max_chars:
        return "text_too_long"
    if URL_LIKE.match(text):
        return "text_is_url"
    if IMAGE_PATH.match(text):
        return "text_is_path"
    if IMAGE_FILE.match(text) or CAMERA_NAME.match(text):
        return "text_is_filename"
    return None


# The languages lingua chooses among (ISO 639-1): the 20 most used on the web. Restricted so, lingua
# is ~9-11x faster than langdetect per text (it loads its models on the first text, ~6 s); a text
# in a language outside the set goes to the closest one.
LINGUA_LANGUAGES = ("en", "es", "de", "ja", "fr", "ru", "pt", "it", "fa", "nl", "pl", "tr", "zh",
                    "vi", "id", "cs", "ko", "uk", "ar", "sv")
# The least probability that keeps a text, when the user sets none. lingua spreads its probability
# over close languages on short captions: at 0.9 it kept 127 of 300 generated English captions,
# at 0.3 it kept 296 and let through none of 900 French, German and Spanish ones.
DEFAULT_MIN_PROB = {"langdetect": 0.9, "lingua": 0.3}


class LanguageDetector:
    """langdetect with a fixed seed (it is random otherwise), or lingua when asked for.

    Both give (ISO 639-1 code, probability). lingua's probability is its relative confidence over
    LINGUA_LANGUAGES, spread wider than langdetect's: short English captions score 0.25-0.99
    where langdetect says 0.99+, so pair lingua with a lower --min-lang-prob: 0.3 keeps ~99% of
    generated English captions and under 1% of French, German and Spanish ones."""

    def __init__(self, backend: str = "langdetect", seed: int = 0):
        self.backend = backend
        if backend == "langdetect":
            from langdetect import DetectorFactory

            DetectorFactory.seed = seed
        elif backend == "lingua":
            self.lingua = lingua_detector(LINGUA_LANGUAGES)
        else:
            raise ValueError(f"unknown language detector '{backend}'")

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code, probability); ("unknown", 0.0) when the text has no language."""
        if self.backend == "lingua":
            return self.detect_lingua(text)
        from langdetect import detect_langs
        from langdetect.lang_detect_exception import LangDetectException

        try:
            best = detect_langs(text)[0]
        except LangDetectException:
            return "unknown", 0.0
        return best.lang, float(best.prob)

    def detect_lingua(self, text: str) -> tuple[str, float]:
        values = self.lingua.compute_language_confidence_values(text)
        if not values or values[0].value <= 0.0:  # lingua gives every language 0 for "" or "123"
            return "unknown", 0.0
        best = values[0]
        return best.language.iso_code_639_1.name.lower(), float(best.value)


def lingua_detector(codes: tuple[str, ...]):
    """A lingua detector over the languages of `codes`; a clear error when lingua is missing."""
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:
        raise WitError("--lang-detector lingua needs the lingua-language-detector "
                       "package: pip install lingua-language-detector") from None
    languages = [getattr(IsoCode639_1, code.upper()) for code in codes]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*languages).build()
