"""The synthetic dump's vocabulary: words and fixed phrases ranked on a Zipf law.

A *unit* is what one draw puts into a sentence: a word, or a phrase of two words (`red triangle`,
a pseudo-word collocation) so that chosen bigrams are frequent enough to pass a PMI + count
threshold. Each unit has the wikitext it is written as (`surface`) and the normalised words a
stripper must find in it (`words`); they differ only on purpose (`caf&#233;` -> `café`,
`ﬁligree` -> `filigree`, `O'Neill` -> `o'neill`): such words have one unit per spelling.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy

from wit_builder.core.options import WitError
from wit_builder.synthweb import concepts

FUNCTION_WORDS = (
    "the of and in a to was is for on as with by he at from his an were are which this also be "
    "had it has or first new after its their who but not they her she have been all during other "
    "into more most between under known time later years where over while when both there many "
    "some such near city used called made part may only about through since until against well "
    "would can each however then than"
).split()

# Normalised word -> the wikitext spellings it is written as (each spelling is a unit of its own).
SPECIAL_WORDS: dict[str, tuple[str, ...]] = {
    "café": ("café", "caf&#233;"),
    "filigree": ("ﬁligree", "filigree"),
    "naïve": ("naïve",),
    "éclair": ("éclair", "Éclair"),
    "state-of-the-art": ("state-of-the-art",),
    "well-known": ("well-known",),
    "o'neill": ("O'Neill",),
    "1987": ("1987",),
    "2004": ("2004",),
    "12": ("12",),
}

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "b", "d", "k",
          "l", "m", "n", "r", "s", "t", "br", "dr", "gl", "kr", "pl", "st", "tr", "sh", "th", "ch")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "ai", "ou", "ea", "y")
CODAS = ("", "", "", "", "", "", "n", "r", "s", "l", "m", "k", "st", "nd")

ZIPF_EXPONENT = 1.0
ZIPF_OFFSET = 2.7  # Zipf–Mandelbrot offset: flattens the very top like real text
MIN_VOCABULARY = 400


@dataclass(frozen=True)
class Unit:
    """One draw: the wikitext written (`surface`) and the words a reader must count."""
    surface: str
    words: tuple[str, ...]


@dataclass
class Vocabulary:
    units: list[Unit]            # by Zipf rank, most frequent first
    cum_weights: list[float]
    words: list[str]             # every distinct single word, by rank of first appearance
    title_words: list[str]       # pseudo-words that appear only in titles (never drawn)
    absent_words: list[str]      # pseudo-words that appear nowhere in the dump (for WordNet)
    cdf: numpy.ndarray = None    # cum_weights / total, for vectorised draws

    def __post_init__(self) -> None:
        weights = numpy.asarray(self.cum_weights)
        self.cdf = weights / weights[-1]

    def stream(self, rng: random.Random) -> "UnitStream":
        return UnitStream(self, rng)

    def text(self, units: list[Unit]) -> str:
        return " ".join(unit.surface for unit in units)


class UnitStream:
    """Zipf draws for one page, made in vectorised batches (the generator's hottest loop)."""

    BATCH = 1024

    def __init__(self, vocabulary: Vocabulary, rng: random.Random):
        self.units = vocabulary.units
        self.cdf = vocabulary.cdf
        self.generator = numpy.random.default_rng(rng.getrandbits(64))
        self.buffer: list[Unit] = []

    def draw(self, count: int) -> list[Unit]:
        while len(self.buffer) < count:
            picks = numpy.searchsorted(self.cdf, self.generator.random(self.BATCH), side="right")
            units = self.units
            self.buffer.extend([units[index] for index in picks.clip(0, len(units) - 1).tolist()])
        drawn = self.buffer[-count:] if count else []
        del self.buffer[len(self.buffer) - count:]
        return drawn


def pseudo_words(rng: random.Random, taken: set[str]) -> Iterator[str]:
    """An endless stream of new pronounceable pseudo-words, none of them in `taken`."""
    while True:
        syllables = rng.choice((1, 2, 2, 2, 2, 3, 3))
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(syllables))
        if len(word) >= 3 and word not in taken:
            taken.add(word)
            yield word


def concept_phrases() -> list[tuple[str, str]]:
    """Two-word phrases naming what the synthetic site's pictures show, most important first."""
    backgrounds = [(style, "background") for style in concepts.BACKGROUNDS]
    colours, shapes = list(concepts.COLOURS), list(concepts.SHAPES)
    # A diagonal first (red triangle, orange star, ...), so that each colour and each shape has
    # a phrase frequent enough for the small test dump; the other pairs follow.
    diagonal = [(colour, shapes[(index + 2) % len(shapes)]) for index, colour in enumerate(colours)]
    colour_shapes = diagonal + [(colour, shape) for shape in shapes for colour in colours
                                if (colour, shape) not in diagonal]
    counted = [(word, concepts.SHAPES[shape]) for number, word in concepts.COUNTS.items()
               if number > 1 for shape in concepts.SHAPES]
    sized = [(size, shape) for size in concepts.SIZES for shape in concepts.SHAPES]
    coloured_backgrounds = [(colour, "background") for colour in concepts.COLOURS]
    return backgrounds + colour_shapes + counted + sized + coloured_backgrounds


def place(slots: list, position: int, unit: Unit) -> None:
    """Put `unit` at the first free slot at or after `position` (growing the list if needed)."""
    while position < len(slots) and slots[position] is not None:
        position += 1
    if position >= len(slots):
        slots.extend([None] * (position - len(slots) + 1))
    slots[position] = unit


def word_unit(word: str) -> Unit:
    return Unit(word, (word,))


def build_vocabulary(vocab_size: int, seed: int) -> Vocabulary:
    """The ranked units of a dump with `vocab_size` distinct words, deterministic from `seed`."""
    fixed = list(dict.fromkeys(FUNCTION_WORDS + concepts.concept_words() + list(SPECIAL_WORDS)))
    if vocab_size < max(MIN_VOCABULARY, len(fixed) + 100):
        raise WitError(f"synthweb: vocab_size {vocab_size} is too small "
                       f"(at least {max(MIN_VOCABULARY, len(fixed) + 100)})")
    rng = random.Random(f"witbuilder-vocabulary/{seed}")
    new_words = pseudo_words(rng, set(fixed))
    pseudo = [next(new_words) for _ in range(vocab_size - len(fixed))]
    slots: list = [None] * vocab_size
    # Concept words sit among the function words so that they pass a count threshold of 100
    # even in the small test dump; concept phrases follow, then a few special spellings.
    for index, word in enumerate(concepts.concept_words()):
        place(slots, 10 + 3 * index, word_unit(word))
    for index, (first, second) in enumerate(concept_phrases()):
        place(slots, 40 + 9 * index, Unit(f"{first} {second}", (first, second)))
    for index, (word, spellings) in enumerate(SPECIAL_WORDS.items()):
        for spelling in spellings:
            place(slots, 120 + 23 * index, Unit(spelling, (word,)))
    for index in range(max(1, len(pseudo) // 60)):
        first, second = pseudo[2 * index + 1], pseudo[3 * index + 7]
        place(slots, 200 + 37 * index, Unit(f"{first} {second}", (first, second)))
    fillers = iter([word_unit(word) for word in FUNCTION_WORDS + pseudo])
    slots = [slot if slot is not None else next(fillers, None) for slot in slots]
    units = [unit for unit in slots if unit is not None] + list(fillers)
    cum_weights = list(itertools.accumulate(
        1.0 / (rank + ZIPF_OFFSET) ** ZIPF_EXPONENT for rank in range(len(units))))
    words = list(dict.fromkeys(word for unit in units for word in unit.words))
    title_words = [next(new_words) for _ in range(max(50, vocab_size // 20))]
    absent_words = [next(new_words) for _ in range(max(50, vocab_size // 20))]
    return Vocabulary(units, cum_weights, words, title_words, absent_words)


def sample_index(cum_weights: list[float], rng: random.Random) -> int:
    """An index drawn with the probabilities that `cum_weights` accumulate."""
    return bisect.bisect(cum_weights, rng.random() * cum_weights[-1])
