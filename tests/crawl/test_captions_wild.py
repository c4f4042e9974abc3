"""Captions from the wild: file paths, camera names and URLs stored as alt text are dropped with a
reason; real captions that merely hold a dot or a slash are kept."""

from __future__ import annotations

import pytest

from wit_builder.crawl.captions import CaptionLimits, caption_problem


@pytest.mark.parametrize("text, reason", [
    ("../_images/pathlib-inheritance.png", "text_is_path"),  # Sphinx's default alt
    ("images/photo.jpg", "text_is_path"),
    ("/static/img/banner.png", "text_is_path"),
    ("assets\\img\\hero.webp", "text_is_path"),
    ("IMG_20190101_123456", "text_is_filename"),
    ("DSC_0042", "text_is_filename"),
    ("PXL_20230405_101010", "text_is_filename"),
    ("photo.jpg?w=300", "text_is_filename"),
    ("banner.avif", "text_is_filename"),
    ("https://example.org/a b", None),  # a space: not one URL token, left to the other filters
    ("https://example.org/img/a.jpg", "text_is_url"),
    ("//cdn.example.org/a.png", "text_is_url"),
    ("example.org/img/a.jpg", "text_is_url"),
])
def test_paths_camera_names_and_urls_are_dropped_with_a_reason(text, reason):
    assert caption_problem(text, CaptionLimits()) == reason


@pytest.mark.parametrize("text", [
    "Dodge tool", "AC/DC live in 1980", "version 2.0 released", "Speed in km/h on the A1",
    "A photo of Route 66", "Figure 1.2: the png and jpeg pipelines", "Input/output diagram",
    "St. Paul's Cathedral at dusk",
])
def test_real_captions_with_a_dot_or_a_slash_are_kept(text):
    assert caption_problem(text, CaptionLimits()) is None
