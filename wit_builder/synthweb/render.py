"""Scenes of the synthetic web: sampling, procedural rendering with Pillow, and caption wording.

A scene is what a picture shows (colour, shape, count, size, background pattern and colour). The
picture is drawn from the scene and the caption is worded from the same scene, so every caption is
true of its picture, in English and in the French, German and Spanish of the foreign pages.
Everything is drawn from a `random.Random` the caller seeds, so the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw

from wit_builder.synthweb.concepts import BACKGROUNDS, COLOURS, COUNTS, SHAPES, SIZES

SUPERSAMPLE = 4  # drawn 4x larger then downscaled: smooth edges that stay recognisable at 64 px
WHITE = (255, 255, 255)
# Background colours are light tints; black would tint to a grey no one would call black.
BACKGROUND_COLOURS = tuple(name for name in COLOURS if name != "black")
MIN_CONTRAST = 110  # least RGB distance between an object and its background tint

# Object radius as a share of the side, by size and count (several objects must fit side by side).
RADIUS = {"large": {1: 0.30, 2: 0.22, 3: 0.19}, "small": {1: 0.14, 2: 0.12, 3: 0.11}}


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    count: int
    size: str
    background: str
    background_colour: str

    def as_dict(self) -> dict:
        return asdict(self)


def mix(colour: tuple[int, int, int], other: tuple[int, int, int], share: float) -> tuple:
    """`colour` moved `share` of the way towards `other`."""
    return tuple(round(a + (b - a) * share) for a, b in zip(colour, other))


def background_tints(name: str) -> tuple[tuple, tuple]:
    """The light base and the slightly stronger pattern tint of a background colour (for white,
    whose tints are all white, a pale grey pattern, so a striped white background shows stripes)."""
    base, pattern = mix(COLOURS[name], WHITE, 0.72), mix(COLOURS[name], WHITE, 0.5)
    if math.dist(base, pattern) < 20:
        pattern = mix(base, (0, 0, 0), 0.12)
    return base, pattern


def contrasting_backgrounds(colour: str) -> list[str]:
    """Background colours whose tints stand out from an object of `colour` (for white, which no
    light tint contrasts with, the three that contrast best; its dark rim does the rest)."""
    def contrast(name: str) -> float:
        return min(math.dist(COLOURS[colour], tint) for tint in background_tints(name))

    others = [name for name in BACKGROUND_COLOURS if name != colour]
    ranked = sorted(others, key=contrast, reverse=True)
    return [name for name in ranked if contrast(name) >= MIN_CONTRAST] or ranked[:3]


def sample_scene(rng: random.Random, colour: str | None = None, shape: str | None = None) -> Scene:
    """A random scene; `colour` or `shape` fixed when given (the zero-shot sets use that)."""
    colour = colour or rng.choice(list(COLOURS))
    return Scene(colour=colour, shape=shape or rng.choice(list(SHAPES)),
                 count=rng.choice(list(COUNTS)), size=rng.choice(SIZES),
                 background=rng.choice(BACKGROUNDS),
                 background_colour=rng.choice(contrasting_backgrounds(colour)))


# --- drawing -----------------------------------------------------------------------------------

def draw_background(draw: ImageDraw.ImageDraw, side: int, scene: Scene, rng: random.Random) -> None:
    base, pattern = background_tints(scene.background_colour)
    draw.rectangle((0, 0, side, side), fill=base)
    step = side // rng.choice((6, 8, 10))
    if scene.background == "striped":
        if rng.random() < 0.5:  # horizontal or vertical stripes
            for y in range(0, side, 2 * step):
                draw.rectangle((0, y, side, y + step - 1), fill=pattern)
        else:
            for x in range(0, side, 2 * step):
                draw.rectangle((x, 0, x + step - 1, side), fill=pattern)
    elif scene.background == "dotted":
        radius = step // 4
        for y in range(step // 2, side, step):
            for x in range(step // 2, side, step):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=pattern)
    elif scene.background == "checkered":
        for row, y in enumerate(range(0, side, step)):
            for column, x in enumerate(range(0, side, step)):
                if (row + column) % 2:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=pattern)


def regular_points(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple]:
    """Polygon corners around (cx, cy), alternating between `radii`, starting at `angle`."""
    corners = len(radii)
    return [(cx + radii[i] * math.cos(angle + 2 * math.pi * i / corners),
             cy + radii[i] * math.sin(angle + 2 * math.pi * i / corners)) for i in range(corners)]


def shape_outline(shape: str, cx: float, cy: float, r: float, turn: float) -> list[tuple]:
    """The polygon of a shape of radius `r` (squares, triangles, stars and crosses)."""
    up = -math.pi / 2 + turn
    if shape == "square":
        return regular_points(cx, cy, [r * 0.95] * 4, up + math.pi / 4)
    if shape == "triangle":
        return regular_points(cx, cy + r * 0.15, [r * 1.1] * 3, up)
    if shape == "star":
        return regular_points(cx, cy + r * 0.05, [r * 1.1, r * 0.45] * 5, up)
    if shape == "cross":
        arm = r * 0.36
        points = [(-arm, -r), (arm, -r), (arm, -arm), (r, -arm), (r, arm), (arm, arm), (arm, r),
                  (-arm, r), (-arm, arm), (-r, arm), (-r, -arm), (-arm, -arm)]
        cos, sin = math.cos(turn), math.sin(turn)
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]
    raise ValueError(f"no polygon for shape '{shape}'")


def draw_object(draw: ImageDraw.ImageDraw, shape: str, colour: tuple, cx: float, cy: float,
                r: float, turn: float) -> None:
    """One object, with a darker rim of its own colour so light objects stand out."""
    rim, edge = mix(colour, (0, 0, 0), 0.4), max(2.0, r * 0.08)
    if shape in ("circle", "ring"):
        outer = (cx - r - edge, cy - r - edge, cx + r + edge, cy + r + edge)
        inner = (cx - r, cy - r, cx + r, cy + r)
        if shape == "circle":
            draw.ellipse(outer, fill=rim)
            draw.ellipse(inner, fill=colour)
        else:
            band = r * 0.38
            draw.ellipse(outer, outline=rim, width=round(band + 2 * edge))
            draw.ellipse(inner, outline=colour, width=round(band))
        return
    draw.polygon(shape_outline(shape, cx, cy, r + edge, turn), fill=rim)
    draw.polygon(shape_outline(shape, cx, cy, r, turn), fill=colour)


def place_objects(count: int, radius: float, rng: random.Random) -> list[tuple[float, float]]:
    """Centres (as shares of the side) of `count` non-overlapping objects inside the picture."""
    margin = radius * 1.15
    for _ in range(200):
        centres = [(rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin))
                   for _ in range(count)]
        pairs = [(a, b) for i, a in enumerate(centres) for b in centres[i + 1:]]
        if all(math.dist(a, b) >= 2.2 * radius for a, b in pairs):
            return centres
    # Fixed layouts that always fit the radii of RADIUS.
    return {1: [(0.5, 0.5)], 2: [(0.27, 0.5), (0.73, 0.5)],
            3: [(0.25, 0.7), (0.75, 0.7), (0.5, 0.28)]}[count]


def render(scene: Scene, side: int, rng: random.Random) -> Image.Image:
    """The picture of `scene`, `side` pixels square (RGB)."""
    big = side * SUPERSAMPLE
    image = Image.new("RGB", (big, big))
    draw = ImageDraw.Draw(image)
    draw_background(draw, big, scene, rng)
    radius = RADIUS[scene.size][scene.count]
    for x, y in place_objects(scene.count, radius, rng):
        turn = math.radians(rng.uniform(-20, 20))
        draw_object(draw, scene.shape, COLOURS[scene.colour], x * big, y * big, radius * big, turn)
    return image.reduce(SUPERSAMPLE)  # a box filter over 4x4 samples: smooth edges, fast


def encode(image: Image.Image, image_format: str) -> bytes:
    """JPEG or PNG bytes of `image` (fixed settings, so the bytes are reproducible)."""
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=90, optimize=False)
    else:
        image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --- captions ----------------------------------------------------------------------------------

def english_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def english_noun_phrase(scene: Scene, rng: random.Random) -> str:
    """'a large green circle', 'two small red triangles', 'three pink stars', ..."""
    words = [scene.size] if rng.random() < 0.6 else []
    words += [scene.colour, scene.shape if scene.count == 1 else SHAPES[scene.shape]]
    phrase = " ".join(words)
    if scene.count == 1:
        return "one " + phrase if rng.random() < 0.2 else english_article(phrase)
    return f"{COUNTS[scene.count]} {phrase}"


def english_background(scene: Scene, rng: random.Random) -> str:
    pattern = "" if scene.background == "plain" and rng.random() < 0.6 else scene.background + " "
    preposition = rng.choice(("on", "on", "against"))
    return f"{preposition} {english_article(pattern + scene.background_colour)} background"


ENGLISH_TEMPLATES = (
    "{np}", "{np} {bg}", "photo of {np}", "a picture of {np} {bg}",
    "{np} {bg}, digital illustration", "close-up of {np}", "clip art: {np} {bg}",
    "stock image of {np}", "{np} drawn {bg}", "simple drawing of {np}",
)

# Foreign wording: colour adjective forms (masc. sg, fem. sg, masc. pl, fem. pl), shape nouns with
# gender and plural, size adjectives, background patterns.
FRENCH = {
    "colours": {"red": "rouge rouge rouges rouges", "orange": "orange orange orange orange",
                "yellow": "jaune jaune jaunes jaunes", "green": "vert verte verts vertes",
                "blue": "bleu bleue bleus bleues", "purple": "violet violette violets violettes",
                "pink": "rose rose roses roses", "brown": "marron marron marron marron",
                "black": "noir noire noirs noires", "white": "blanc blanche blancs blanches"},
    "shapes": {"circle": ("m", "cercle", "cercles"), "square": ("m", "carré", "carrés"),
               "triangle": ("m", "triangle", "triangles"), "star": ("f", "étoile", "étoiles"),
               "cross": ("f", "croix", "croix"), "ring": ("m", "anneau", "anneaux")},
    "sizes": {"small": "petit petite petits petites", "large": "grand grande grands grandes"},
    "patterns": {"plain": "uni", "striped": "rayé", "dotted": "à pois", "checkered": "à carreaux"},
    "counts": {2: "deux", 3: "trois"},
    "templates": ("{np}", "{np} {bg}", "Photo : {np}", "Illustration : {np} {bg}", "{np}, dessin"),
}
SPANISH = {
    "colours": {"red": "rojo roja rojos rojas", "orange": "naranja naranja naranjas naranjas",
                "yellow": "amarillo amarilla amarillos amarillas",
                "green": "verde verde verdes verdes",
                "blue": "azul azul azules azules", "purple": "morado morada morados moradas",
                "pink": "rosa rosa rosas rosas", "brown": "marrón marrón marrones marrones",
                "black": "negro negra negros negras", "white": "blanco blanca blancos blancas"},
    "shapes": {"circle": ("m", "círculo", "círculos"), "square": ("m", "cuadrado", "cuadrados"),
               "triangle": ("m", "triángulo", "triángulos"), "star": ("f", "estrella", "estrellas"),
               "cross": ("f", "cruz", "cruces"), "ring": ("m", "anillo", "anillos")},
    "sizes": {"small": "pequeño pequeña pequeños pequeñas",
              "large": "grande grande grandes grandes"},
    "patterns": {"plain": "liso", "striped": "a rayas", "dotted": "de lunares",
                 "checkered": "a cuadros"},
    "counts": {2: "dos", 3: "tres"},
    "templates": ("{np}", "{np} {bg}", "Foto: {np}", "Ilustración de {np} {bg}", "{np}, dibujo"),
}
# German needs only the adjective stem: every shape noun is masculine or neuter.
GERMAN = {
    "colours": {"red": "rot", "orange": "orangefarben", "yellow": "gelb", "green": "grün",
                "blue": "blau", "purple": "violett", "pink": "rosafarben", "brown": "braun",
                "black": "schwarz", "white": "weiß"},
    "shapes": {"circle": ("m", "Kreis", "Kreise"), "square": ("n", "Quadrat", "Quadrate"),
               "triangle": ("n", "Dreieck", "Dreiecke"), "star": ("m", "Stern", "Sterne"),
               "cross": ("n", "Kreuz", "Kreuze"), "ring": ("m", "Ring", "Ringe")},
    "sizes": {"small": "klein", "large": "groß"},
    "patterns": {"plain": "einfarbig", "striped": "gestreift", "dotted": "gepunktet",
                 "checkered": "kariert"},
    "counts": {2: "zwei", 3: "drei"},
    "templates": ("{np}", "{np} {bg}", "Foto: {np}", "Illustration: {np} {bg}", "{np}, Zeichnung"),
}


def agreement(forms: str, gender: str, count: int) -> str:
    """The form of a French or Spanish adjective that agrees with its noun."""
    return forms.split()[(gender == "f") + 2 * (count > 1)]


def romance_noun_phrase(scene: Scene, words: dict, lang: str, with_size: bool) -> str:
    gender, singular, plural = words["shapes"][scene.shape]
    count = scene.count
    colour = agreement(words["colours"][scene.colour], gender, count)
    size = agreement(words["sizes"][scene.size], gender, count) if with_size else ""
    noun = singular if count == 1 else plural
    feminine = "une" if lang == "fr" else "una"
    determiner = (feminine if gender == "f" else "un") if count == 1 else words["counts"][count]
    if lang == "fr":  # petit and grand come before the noun in French
        return " ".join(filter(None, [determiner, size, noun, colour]))
    return " ".join(filter(None, [determiner, noun, colour, size]))


def romance_background(scene: Scene, words: dict, lang: str) -> str:
    colour = agreement(words["colours"][scene.background_colour], "m", 1)
    preposition = "sur un fond" if lang == "fr" else "sobre un fondo"
    return f"{preposition} {colour} {words['patterns'][scene.background]}"


def german_noun_phrase(scene: Scene, with_size: bool) -> str:
    gender, singular, plural = GERMAN["shapes"][scene.shape]
    stems = ([GERMAN["sizes"][scene.size]] if with_size else []) + [GERMAN["colours"][scene.colour]]
    if scene.count == 1:  # 'ein' + mixed declension, nominative
        ending = "er" if gender == "m" else "es"
        return " ".join(["ein"] + [stem + ending for stem in stems] + [singular])
    return " ".join([GERMAN["counts"][scene.count]] + [stem + "e" for stem in stems] + [plural])


def german_background(scene: Scene) -> str:
    stems = [GERMAN["colours"][scene.background_colour]]
    if scene.background != "plain":
        stems.insert(0, GERMAN["patterns"][scene.background])
    return "auf " + " ".join(stem + "em" for stem in stems) + " Hintergrund"


def caption(scene: Scene, rng: random.Random, lang: str = "en") -> str:
    """A caption of `scene` in `lang` (en, fr, de, es) that names its colour and its shape."""
    if lang == "en":
        template = rng.choice(ENGLISH_TEMPLATES)
        np, bg = english_noun_phrase(scene, rng), english_background(scene, rng)
    else:
        words = {"fr": FRENCH, "es": SPANISH, "de": GERMAN}[lang]
        template, with_size = rng.choice(words["templates"]), rng.random() < 0.6
        if lang == "de":
            np, bg = german_noun_phrase(scene, with_size), german_background(scene)
        else:
            np = romance_noun_phrase(scene, words, lang, with_size)
            bg = romance_background(scene, words, lang)
    text = template.format(np=np, bg=bg)
    return text[0].upper() + text[1:] if rng.random() < 0.5 or lang != "en" else text


def colour_and_shape_words(scene: Scene, lang: str) -> tuple[set[str], set[str]]:
    """The words a caption in `lang` may use for the scene's colour and for its shape."""
    if lang == "en":
        return {scene.colour}, {scene.shape, SHAPES[scene.shape]}
    words = {"fr": FRENCH, "es": SPANISH, "de": GERMAN}[lang]
    _, singular, plural = words["shapes"][scene.shape]
    if lang == "de":
        stem = GERMAN["colours"][scene.colour]
        return {stem + ending for ending in ("er", "es", "e")}, {singular, plural}
    return set(words["colours"][scene.colour].split()), {singular, plural}
