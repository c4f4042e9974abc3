"""Real short texts in English, German, French and Spanish, for the language filter's test and
benchmark, assembled from public packages at run time (never committed; support.realdata fetches them and
raises realdata.Unavailable without network):

- `alt_texts`: the `<img alt>` texts of the GIMP 2.10 manual, from Debian's gimp-help-en, -de,
  -fr and -es (HTML pages whose images carry alt texts, written and translated by people).
- `ui_strings`: Django's translated messages (the sdist's `locale/*/LC_MESSAGES/django.mo`):
  English msgids and their German, French and Spanish msgstrs.

A translated text is paired with its English original (same page and image, or same msgid), and
left out where it kept most of the original's words (left untranslated: "« HSL Color » filter"):
it is not a German, French or Spanish text. Texts are short like alt text: 1-8 words, with at
least one letter, no placeholders; each distinct text once.
"""

from __future__ import annotations

import gettext

from support.realdata import fetch_deb, fetch_sdist
from wit_builder.core.text import words

FOREIGN = ("de", "fr", "es")
LANGUAGES = ("en",) + FOREIGN
MAX_WORDS = 8
GIMP_HELP = "2.10.34-2"  # the Debian version of gimp-help-en, -de, -fr, -es
WORD_LIST = ("wamerican", "2020.12.07-2")
DJANGO = ("Django", "5.1.4")


def is_short_text(text: str) -> bool:
    """1-8 words, a letter among them, and no markup or format placeholders."""
    return (1 <= len(words(text)) <= MAX_WORDS and any(c.isalpha() for c in text)
            and not any(mark in text for mark in "%{}<>\n"))


def translated(original: str, translation: str) -> bool:
    """True when `translation` is a translation, not the original left (mostly) as it was."""
    theirs, ours = words(translation), set(words(original))
    return bool(theirs) and sum(word in ours for word in theirs) * 2 <= len(theirs)


def collect(pairs: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """{language: distinct short texts} from {language: [(English original, text)]}."""
    texts: dict[str, dict[str, None]] = {lang: {} for lang in pairs}
    for lang, items in pairs.items():
        for original, text in items:
            text = " ".join(text.split())
            if not is_short_text(text):
                continue
            if lang == "en" or translated(original, text):
                texts[lang][text] = None
    return {lang: list(found) for lang, found in texts.items()}


def gimp_images(lang: str) -> dict[tuple[str, str], str]:
    """{(page, image src): alt text} of the GIMP manual in `lang`."""
    from selectolax.lexbor import LexborHTMLParser

    root = fetch_deb(f"gimp-help-{lang}", GIMP_HELP) / "usr/share/gimp/2.0/help" / lang
    images = {}
    for page in sorted(root.glob("*.html")):
        for node in LexborHTMLParser(page.read_bytes()).tags("img"):
            src, alt = node.attributes.get("src"), node.attributes.get("alt")
            if src and alt:
                images[(page.name, src)] = alt
    return images


def alt_texts() -> dict[str, list[str]]:
    """Short alt texts of the GIMP manual per language (en, de, fr, es)."""
    english = gimp_images("en")
    pairs = {"en": [(alt, alt) for alt in english.values()]}
    for lang in FOREIGN:
        pairs[lang] = [(english[key], alt) for key, alt in gimp_images(lang).items()
                       if key in english]
    return collect(pairs)


def ui_strings(foreign: tuple[str, ...] = FOREIGN) -> dict[str, list[str]]:
    """Short messages of Django per language: msgids (en), msgstrs (de, fr, es, or the
    `foreign` languages: Django's locale names, such as "pt_BR")."""
    root = fetch_sdist(*DJANGO) / "django"
    pairs: dict[str, list[tuple[str, str]]] = {lang: [] for lang in ("en",) + foreign}
    for lang in foreign:
        for mo in sorted(root.glob(f"**/locale/{lang}/LC_MESSAGES/django.mo")):
            with mo.open("rb") as file:
                catalog = gettext.GNUTranslations(file)._catalog  # {msgid: msgstr}
            for msgid, msgstr in catalog.items():
                if not isinstance(msgid, str) or not msgid or not msgstr:
                    continue  # plural forms are keyed (msgid, n); "" is the header
                msgid = msgid.rpartition("\x04")[2]  # "context\x04msgid"
                pairs["en"].append((msgid, msgid))
                pairs[lang].append((msgid, msgstr))
    return collect(pairs)


def word_list_queries() -> list[str]:
    """Every lower-case word of Debian's wamerican word list, each one query (as `make realcheck`
    builds them): the English queries these texts are matched against."""
    path = fetch_deb(*WORD_LIST) / "usr/share/dict/american-english"
    lines = path.read_text("utf-8").splitlines()
    return sorted({line.strip().lower() for line in lines if line.strip().isalpha()})


def matched_texts(texts: dict[str, list[str]], queries: list[str]) -> dict[str, list[str]]:
    """The texts that contain a query: the only ones the crawl asks the language of."""
    from wit_builder.crawl.match import QueryMatcher

    matcher = QueryMatcher.from_queries(enumerate(queries))
    return {lang: [text for text in found if matcher.match(text)]
            for lang, found in texts.items()}
