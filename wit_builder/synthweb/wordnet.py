"""A small lexical database in the WordNet 3.0 database format (as Debian's `wordnet-base`).

`wordnet/data.{noun,verb,adj,adv}` hold one synset per line:
`synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt [ptr...] [frames...]
| gloss`
with `synset_offset` the line's own byte offset (8 digits), `w_cnt` two hex digits, `lex_id` one
hex digit, `p_cnt` three digits and pointers `symbol offset pos source/target` (4 hex digits:
0000 between synsets, else source and target word numbers); verbs add `f_cnt + f_num w_num...`.
`wordnet/index.{noun,verb,adj,adv}` list each lemma (lower case, sorted):
`lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...`.
Both kinds begin with header lines that start with two spaces (our own text, not WordNet's).

Content: every colour, shape, count, size and background word of `concepts.py` (adjective
colours are satellites `s` of `chromatic`/`achromatic`, as in WordNet), multiword lemmas
(`red_triangle`, `polka_dot`), lemmas the dump never uses (`pentagon`, pseudo-words outside its
vocabulary) and pseudo-word synsets built from the dump's vocabulary. `wordnet_truth.json` lists
every synset's offset, type, lemmas and head lemma.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from wit_builder.core import atomic
from wit_builder.synthweb.config import SynthwebConfig
from wit_builder.synthweb import concepts
from wit_builder.synthweb.vocabulary import build_vocabulary

HEADER = (
    "witbuilder synthetic lexical database: a stand-in in the WordNet 3.0 database layout,",
    "generated for tests and demos; its words and glosses are invented and carry no license",
    "text of any other lexical database.",
)
FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
SHADES = {"red": ["reddish"], "green": ["greenish"], "blue": ["bluish"]}
INDEX_POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}  # satellites are indexed as `a`
LEXNAMES = {0: "adj.all", 2: "adv.all", 3: "noun.Tops", 6: "noun.artifact", 7: "noun.attribute",
            9: "noun.cognition", 23: "noun.quantity", 25: "noun.shape", 30: "verb.change",
            35: "verb.contact", 36: "verb.creation"}
REVERSE = {"@": "~", "~": "@", "!": "!", "&": "&", "#p": "%p", "%p": "#p", "+": "+", "=": "=",
           "$": "$"}


@dataclass
class Synset:
    key: str
    ss_type: str                    # n, v, a, s, r
    lex_filenum: int
    lemmas: list[str]
    gloss: str
    pointers: list[tuple[str, str, str]] = field(default_factory=list)  # (symbol, key, src/tgt)
    frames: list[int] = field(default_factory=list)
    lex_ids: list[int] = field(default_factory=list)
    offset: int = 0


class Lexicon:
    """Synsets by key, with pointers added in both directions where WordNet has both."""

    def __init__(self) -> None:
        self.synsets: dict[str, Synset] = {}

    def add(self, key: str, ss_type: str, lex_filenum: int, lemmas: list[str], gloss: str,
            frames: list[int] | None = None) -> Synset:
        synset = Synset(key, ss_type, lex_filenum, lemmas, gloss, frames=frames or [])
        self.synsets[key] = synset
        return synset

    def link(self, symbol: str, source: str, target: str, lexical: str = "0000") -> None:
        self.synsets[source].pointers.append((symbol, target, lexical))
        if symbol in REVERSE:
            back = lexical[2:] + lexical[:2]
            self.synsets[target].pointers.append((REVERSE[symbol], source, back))


def add_concepts(lexicon: Lexicon) -> None:
    """The demo's concepts, arranged the way WordNet arranges such words."""
    add, link = lexicon.add, lexicon.link
    add("entity", "n", 3, ["entity"], "that which exists on its own")
    add("attribute", "n", 3, ["attribute"], "a quality belonging to something")
    link("@", "attribute", "entity")
    add("shape", "n", 3, ["shape", "form"], "the outline of something")
    link("@", "shape", "attribute")
    add("plane_figure", "n", 25, ["plane_figure", "two-dimensional_figure"],
        "a flat figure bounded by lines or curves")
    link("@", "plane_figure", "shape")
    add("polygon", "n", 25, ["polygon", "polygonal_shape"], "a closed figure of straight sides")
    link("@", "polygon", "plane_figure")
    polygons = {"triangle": ["triangle", "trigon", "trilateral"],
                "square": ["square", "foursquare"],
                "pentagon": ["pentagon"], "hexagon": ["hexagon"]}
    for shape, lemmas in polygons.items():
        add(shape, "n", 25, lemmas, f"a polygon named {shape}")
        link("@", shape, "polygon")
    for shape in ("circle", "star", "cross", "ring"):
        add(shape, "n", 25, [shape], f"a plane figure in the form of a {shape}")
        link("@", shape, "plane_figure")
    add("equilateral_triangle", "n", 25, ["equilateral_triangle", "equiangular_triangle"],
        "a triangle with three equal sides")
    link("@", "equilateral_triangle", "triangle")
    add("colour", "n", 7, ["color", "colour", "coloring", "colouring"],
        "a visual attribute of things")
    link("@", "colour", "attribute")
    add("chromatic_colour", "n", 7, ["chromatic_color", "chromatic_colour", "spectral_color"],
        "a colour that has hue")
    add("achromatic_colour", "n", 7, ["achromatic_color", "achromatic_colour"],
        "a colour without hue")
    for key in ("chromatic_colour", "achromatic_colour"):
        link("@", key, "colour")
    add("chromatic", "a", 0, ["chromatic"], "having hue")
    add("achromatic", "a", 0, ["achromatic"], "having no hue")
    link("!", "chromatic", "achromatic", "0101")
    for colour in concepts.COLOURS:
        achromatic = colour in ("black", "white")
        add(f"{colour}_n", "n", 7, [colour, f"{colour}ness"], f"the colour {colour}")
        link("@", f"{colour}_n", "achromatic_colour" if achromatic else "chromatic_colour")
        lemmas = [colour] + SHADES.get(colour, [])
        add(f"{colour}_a", "s", 0, lemmas, f"having the colour {colour}")
        link("&", f"{colour}_a", "achromatic" if achromatic else "chromatic")
    add("red_triangle", "n", 25, ["red_triangle"], "a triangle coloured red")
    link("@", "red_triangle", "triangle")
    add("blue_circle", "n", 25, ["blue_circle"], "a circle coloured blue")
    link("@", "blue_circle", "circle")
    add("background", "n", 9, ["background", "backdrop", "backcloth"],
        "the part of a picture behind the main figures")
    link("@", "background", "attribute")
    add("striped_background", "n", 9, ["striped_background"], "a background of stripes")
    link("@", "striped_background", "background")
    add("pattern", "n", 9, ["pattern", "design", "figure"], "a decorative arrangement")
    link("@", "pattern", "attribute")
    add("polka_dot", "n", 9, ["polka_dot", "dot"], "one of many round spots of a pattern")
    link("@", "polka_dot", "pattern")
    add("patterned", "a", 0, ["patterned"], "having a pattern")
    add("plain", "a", 0, ["plain", "unpatterned"], "having no pattern")
    link("!", "patterned", "plain", "0101")
    for style, lemmas in (("striped", ["striped", "stripy"]), ("dotted", ["dotted", "spotted"]),
                          ("checkered", ["checkered", "chequered", "checked"])):
        add(style, "s", 0, lemmas, f"having a {style} pattern")
        link("&", style, "patterned")
    add("small", "a", 0, ["small", "little"], "limited in size")
    add("large", "a", 0, ["large", "big"], "above average in size")
    link("!", "small", "large", "0101")
    add("tiny", "s", 0, ["tiny", "bitty", "teeny"], "very small")
    link("&", "tiny", "small")
    add("number", "n", 23, ["number", "digit", "figure"], "a symbol for a quantity")
    link("@", "number", "attribute")
    add("cardinal", "a", 0, ["cardinal"], "being a number of things")
    for value, word in concepts.COUNTS.items():
        add(f"{word}_n", "n", 23, [word, str(value)], f"the number {value}")
        link("@", f"{word}_n", "number")
        add(f"{word}_a", "s", 0, [word, str(value)], f"being {value} in number")
        link("&", f"{word}_a", "cardinal")
    add("create", "v", 36, ["create", "make"], "bring into existence", frames=[8, 11])
    add("paint", "v", 36, ["paint"], "make a picture with paint", frames=[8, 2])
    add("draw", "v", 36, ["draw", "sketch"], "make a picture with lines", frames=[8])
    add("colour_v", "v", 30, ["color", "colour", "color_in", "colour_in"], "add colour to",
        frames=[8, 11])
    add("stripe", "v", 35, ["stripe"], "mark with stripes", frames=[8])
    for verb in ("paint", "draw", "colour_v"):
        link("@", verb, "create")
    link("@", "stripe", "colour_v")
    add("brightly", "r", 2, ["brightly", "bright"], "with brightness")
    add("plainly", "r", 2, ["plainly"], "in a plain way")
    link("\\", "plainly", "plain", "0101")


def pseudo_lemmas(rng: random.Random, words: list[str], present: list[str]) -> list[str]:
    """One to three lemmas, sometimes a multiword one (`word_word`)."""
    lemmas = [rng.choice(words)]
    if rng.random() < 0.3:
        lemmas.append(f"{rng.choice(words)}_{rng.choice(present)}")
    if rng.random() < 0.2:
        lemmas.append(rng.choice(words))
    return list(dict.fromkeys(lemmas))


def add_pseudo_synsets(lexicon: Lexicon, config: SynthwebConfig) -> None:
    """Synsets of the dump's pseudo-words (present) and of words the dump never uses (absent).

    Each new synset hangs under a random earlier one of its kind, so the hierarchy is a random
    tree whose fan-out (p_cnt, three digits) stays small at any vocabulary size."""
    vocabulary = build_vocabulary(config.vocab_size, config.seed)
    rng = random.Random(f"witbuilder-wordnet/{config.seed}")
    present = [word for word in vocabulary.words[150:] if word.isascii() and word.isalpha()]
    absent = vocabulary.absent_words
    parents = {"n": ["shape", "pattern", "background"], "v": ["create", "paint", "draw"],
               "a": ["chromatic", "patterned", "small", "large"]}
    for index in range(max(40, config.vocab_size // 20)):
        key = f"pseudo{index}"
        lemmas = pseudo_lemmas(rng, absent if index % 3 == 0 else present, present)
        gloss = " ".join(rng.choice(present) for _ in range(rng.randrange(3, 9)))
        kind = rng.random()
        if kind < 0.7:
            lexicon.add(key, "n", rng.choice((6, 9, 25)), lemmas, gloss)
            lexicon.link("@", key, rng.choice(parents["n"]))
            parents["n"].append(key)
        elif kind < 0.75:
            lexicon.add(key, "a", 0, lemmas, gloss)
            parents["a"].append(key)
        elif kind < 0.85:
            lexicon.add(key, "s", 0, lemmas, gloss)
            lexicon.link("&", key, rng.choice(parents["a"]))
        else:
            lexicon.add(key, "v", 36, lemmas, gloss, frames=[8])
            lexicon.link("@", key, rng.choice(parents["v"]))
            parents["v"].append(key)


# --- the files --------------------------------------------------------------------------------
def header_text() -> str:
    return "".join(f"  {number} {line}\n" for number, line in enumerate(HEADER, start=1))


def data_line(synset: Synset, synsets: dict[str, Synset]) -> str:
    """One line of a data file; its length does not depend on the offsets it holds."""
    words = " ".join(f"{lemma} {lex_id:x}" for lemma, lex_id in lex_ids(synset))
    pointers = "".join(f" {symbol} {synsets[target].offset:08d} {synsets[target].ss_type} {lexical}"
                       for symbol, target, lexical in synset.pointers)
    frames = ""
    if synset.ss_type == "v":
        frames = f" {len(synset.frames):02d}" + "".join(f" + {frame:02d} 00"
                                                         for frame in synset.frames)
    return (f"{synset.offset:08d} {synset.lex_filenum:02d} {synset.ss_type} "
            f"{len(synset.lemmas):02x} {words} {len(synset.pointers):03d}{pointers}{frames} "
            f"| {synset.gloss}  \n")


def lex_ids(synset: Synset) -> list[tuple[str, int]]:
    return list(zip(synset.lemmas, synset.lex_ids))


def assign_lex_ids(lexicon: Lexicon) -> None:
    """A lemma's senses within one lexicographer file are told apart by lex_id 0, 1, 2..."""
    seen: dict[tuple[int, str], int] = defaultdict(int)
    for synset in lexicon.synsets.values():
        synset.lex_ids = []
        for lemma in synset.lemmas:
            key = (synset.lex_filenum, lemma.lower())
            synset.lex_ids.append(min(seen[key], 15))
            seen[key] += 1


def assign_offsets(lexicon: Lexicon) -> dict[str, list[Synset]]:
    """Synsets per data file, each given the byte offset its line will have."""
    by_file: dict[str, list[Synset]] = defaultdict(list)
    for synset in lexicon.synsets.values():
        by_file[FILES[synset.ss_type]].append(synset)
    for synsets in by_file.values():
        offset = len(header_text().encode("utf-8"))
        for synset in synsets:
            synset.offset = offset
            offset += len(data_line(synset, lexicon.synsets).encode("utf-8"))
    return by_file


def index_lines(synsets: list[Synset], pos: str) -> list[str]:
    senses: dict[str, list[Synset]] = defaultdict(list)
    for synset in synsets:
        for lemma in synset.lemmas:
            senses[lemma.lower()].append(synset)
    lines = []
    for lemma in sorted(senses):
        found = senses[lemma]
        symbols = sorted({symbol for synset in found for symbol, _, _ in synset.pointers})
        offsets = " ".join(f"{synset.offset:08d}" for synset in found)
        lines.append(f"{lemma} {pos} {len(found)} {len(symbols)} "
                     f"{''.join(symbol + ' ' for symbol in symbols)}{len(found)} 0 {offsets}  \n")
    return lines


def write_wordnet(out: Path, config: SynthwebConfig) -> dict:
    """Write `out/wordnet/` (data.*, index.*, lexnames) and `wordnet_truth.json`; return the
    manifest."""
    out = Path(out)
    lexicon = Lexicon()
    add_concepts(lexicon)
    add_pseudo_synsets(lexicon, config)
    assign_lex_ids(lexicon)
    by_file = assign_offsets(lexicon)
    files = {}
    for name, synsets in sorted(by_file.items()):
        text = header_text() + "".join(data_line(synset, lexicon.synsets) for synset in synsets)
        atomic.write_text(out / "wordnet" / f"data.{name}", text)
        index = header_text() + "".join(index_lines(synsets, INDEX_POS[name]))
        atomic.write_text(out / "wordnet" / f"index.{name}", index)
        files[f"wordnet/data.{name}"] = len(text.encode("utf-8"))
        files[f"wordnet/index.{name}"] = len(index.encode("utf-8"))
    lexnames = "".join(f"{number:02d}\t{name}\t{pos}\n" for number, name, pos in
                       ((n, name, {"adj": 3, "adv": 4, "noun": 1, "verb": 2}[name.split(".")[0]])
                        for n, name in sorted(LEXNAMES.items())))
    atomic.write_text(out / "wordnet" / "lexnames", lexnames)
    truth = wordnet_truth(lexicon, config)
    atomic.write_json(out / "wordnet_truth.json", truth)
    return {"files": files, "synsets": len(lexicon.synsets), "lemmas": len(truth["lemmas"])}


def wordnet_truth(lexicon: Lexicon, config: SynthwebConfig) -> dict:
    vocabulary = set(build_vocabulary(config.vocab_size, config.seed).words)
    synsets = [{"offset": synset.offset, "ss_type": synset.ss_type,
                "file": f"data.{FILES[synset.ss_type]}",
                "lemmas": synset.lemmas, "head": synset.lemmas[0],
                "head_words_in_vocabulary": all(word in vocabulary for word in
                                                synset.lemmas[0].lower().split("_"))}
               for synset in lexicon.synsets.values()]
    return {"synsets": synsets,
            "head_lemmas": sorted({synset["head"] for synset in synsets}),
            "lemmas": sorted({lemma for synset in synsets for lemma in synset["lemmas"]}),
            "per_type": {t: sum(s["ss_type"] == t for s in synsets) for t in "nvasr"}}
