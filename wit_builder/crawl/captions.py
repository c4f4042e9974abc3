"""Caption cleaning and the cheap text filters of the crawl (language detection, the costly one,
is in language.py and runs only on the texts that matched a query)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import ftfy

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
