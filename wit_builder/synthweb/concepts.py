"""The visual concepts of the synthetic web, shared by its Wikipedia dump, WordNet, site and
zero-shot sets, so that captions use words the queries contain and pictures show what captions say."""

from __future__ import annotations

# Colours far apart in RGB, so a small model can tell them apart at low resolution.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "purple": (130, 40, 170),
    "pink": (250, 130, 190),
    "brown": (120, 70, 30),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}

# Shape noun -> its plural.
SHAPES: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "cross": "crosses",
    "ring": "rings",
}

COUNTS: dict[int, str] = {1: "one", 2: "two", 3: "three"}

SIZES: tuple[str, ...] = ("small", "large")

BACKGROUNDS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")


def concept_words() -> list[str]:
    """Every word a caption of the synthetic site can use to name what the picture shows."""
    words = list(COLOURS) + list(SHAPES) + list(SHAPES.values()) + list(COUNTS.values())
    return words + list(SIZES) + list(BACKGROUNDS) + ["background"]
