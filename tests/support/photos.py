"""Real photographs for the near-duplicate test and benchmark, from Debian packages fetched at run
time by support.realdata (never committed), and the transformations the web applies to a
photograph (copies) against the edits that make another picture.

- WALLPAPERS: the 37 photographs (PHOTOS; the drawings and renders left out) of Debian 12's
  plasma-workspace-wallpapers (one file per wallpaper, its largest), mate-backgrounds and
  lomiri-wallpapers-16.04 and -20.04;
- ASTRO: every 3rd telescope photograph of stellarium-data's nebula textures (179 of at least
  200 px; a 246 MB package: the benchmark only).

A picture is decoded once, made RGB and brought to at most ORIGINAL_SIDE pixels: the original
as published. Its copies and edits are encoded as a web server would send them; the test and
benchmark store every one through the crawl's image step (resize to 256, JPEG) before hashing,
as `wit crawl` does.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from support.realdata import fetch_deb

ORIGINAL_SIDE = 1024
# The photographs among each package's pictures (the others are drawings and renders).
PHOTOS = {
    "plasma-workspace-wallpapers": ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour",
                                    "EveningGlow", "FallenLeaf", "Grey", "Kite", "OneStandsOut",
                                    "Path", "summer_1am"),
    "mate-backgrounds": ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
                         "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower"),
    "lomiri-wallpapers-16.04": ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly",
                                "Picture_0B_by_freespace", "Picture_1A_by_freespace",
                                "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
                                "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich",
                                "friends_by_Aitzol_Berasategi", "life_by_Aitzol_Berasategi",
                                "picosdeeuropa_by_Aitzol_Berasategi",
                                "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi"),
    "lomiri-wallpapers-20.04": ("Kleiber_by_Lukas_Baubkus",),
}
VERSIONS = {"plasma-workspace-wallpapers": "4:5.27.5-2", "mate-backgrounds": "1.26.0-1",
            "lomiri-wallpapers-16.04": "20.04.0-2", "lomiri-wallpapers-20.04": "20.04.0-2",
            "stellarium-data": "0.22.2-1"}  # Debian 12 (bookworm)
WALLPAPERS = tuple(PHOTOS)
ASTRO = ("stellarium-data",)


def picture_files(package: str, root: Path) -> dict[str, Path]:
    """{name: file} of the photographs of one package, one file per picture."""
    if package == "stellarium-data":
        nebulae = sorted((root / "usr/share/stellarium/nebulae/default").glob("*.png"))
        return {path.stem: path for path in nebulae[::3]}
    if package == "plasma-workspace-wallpapers":
        folders = root / "usr/share/wallpapers"
        return {name: max((folders / name / "contents" / "images").glob("*.jpg"),
                          key=lambda path: path.stat().st_size) for name in PHOTOS[package]}
    files = {path.stem: path for path in (root / "usr/share/backgrounds").rglob("*.jpg")}
    return {name: files[name] for name in PHOTOS[package]}


def original(path: Path) -> Image.Image:
    """The picture as published: RGB, at most ORIGINAL_SIDE pixels on its longest side."""
    with Image.open(path) as image:
        image.draft("RGB", (ORIGINAL_SIDE, ORIGINAL_SIDE))
        picture = ImageOps.exif_transpose(image).convert("RGB")
    picture.thumbnail((ORIGINAL_SIDE, ORIGINAL_SIDE), Image.Resampling.LANCZOS)
    return picture


def photographs(packages: tuple[str, ...] = WALLPAPERS, min_side: int = 200
                ) -> dict[str, Image.Image]:
    """{package/name: original} of every photograph at least `min_side` on each side
    (realdata.Unavailable when a package cannot be fetched)."""
    found = {}
    for package in packages:
        for name, path in picture_files(package, fetch_deb(package, VERSIONS[package])).items():
            picture = original(path)
            if min(picture.size) >= min_side:
                found[f"{package}/{name}"] = picture
    return found


# ---- what the web does to a photograph, and edits that make another picture ------------------

def encode(picture: Image.Image, format: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, format, **options)
    return out.getvalue()


def scaled(picture: Image.Image, factor: float) -> Image.Image:
    width, height = picture.size
    return picture.resize((max(1, round(width * factor)), max(1, round(height * factor))),
                          Image.Resampling.LANCZOS)


def cropped(picture: Image.Image, left: float, top: float, right: float, bottom: float
            ) -> Image.Image:
    """The picture less the given shares of its width and height on each side."""
    width, height = picture.size
    return picture.crop((round(left * width), round(top * height),
                         round(width * (1 - right)), round(height * (1 - bottom))))


def exif_rotated(picture: Image.Image) -> bytes:
    """The pixels stored turned a quarter, with the EXIF orientation (6) that turns them back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(picture.transpose(Image.Transpose.ROTATE_90), exif=exif, quality=90)


def sepia(picture: Image.Image) -> Image.Image:
    grey = np.asarray(picture.convert("L"), dtype=np.float64)
    tone = np.stack([grey * 1.07, grey * 0.74, grey * 0.43], axis=-1)
    return Image.fromarray(np.clip(tone + 20, 0, 255).astype(np.uint8))


def channel_filter(picture: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float64) * np.array(gains)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def blurred(picture: Image.Image, share: float) -> Image.Image:
    return picture.filter(ImageFilter.GaussianBlur(share * max(picture.size)))


# name -> picture -> encoded bytes. Copies: what the web does to one photograph on its way to
# another page (must be removed as duplicates).
COPIES: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q90": lambda p: encode(p, quality=90),
    "jpeg q75": lambda p: encode(p, quality=75),
    "jpeg q50": lambda p: encode(p, quality=50),
    "jpeg q30": lambda p: encode(p, quality=30),
    "rescale 75%": lambda p: encode(scaled(p, 0.75), quality=85),
    "rescale 50%": lambda p: encode(scaled(p, 0.5), quality=85),
    "thumbnail 25%": lambda p: encode(scaled(p, 0.25), quality=80),
    "rescale 50% + q40": lambda p: encode(scaled(p, 0.5), quality=40),
    "crop 2% each side": lambda p: encode(cropped(p, .02, .02, .02, .02), quality=85),
    "crop 5% one side": lambda p: encode(cropped(p, 0, 0, .05, 0), quality=85),
    "crop 3% top and left": lambda p: encode(cropped(p, .03, .03, 0, 0), quality=85),
    "png": lambda p: encode(p, "PNG"),
    "webp q80": lambda p: encode(p, "WEBP", quality=80),
    "exif rotation": exif_rotated,
}
# Edits: another picture made from the photograph (must be kept).
EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "blur 0.5%": lambda p: encode(blurred(p, 0.005), quality=90),
    "blur 1%": lambda p: encode(blurred(p, 0.01), quality=90),
    "blur 2%": lambda p: encode(blurred(p, 0.02), quality=90),
    "sharpen": lambda p: encode(p.filter(ImageFilter.UnsharpMask(4, 200, 2)), quality=90),
    "greyscale": lambda p: encode(p.convert("L").convert("RGB"), quality=90),
    "sepia": lambda p: encode(sepia(p), quality=90),
    "warm filter": lambda p: encode(channel_filter(p, (1.15, 1.0, 0.75)), quality=90),
    "cool filter": lambda p: encode(channel_filter(p, (0.8, 0.95, 1.2)), quality=90),
    "saturation +80%": lambda p: encode(ImageEnhance.Color(p).enhance(1.8), quality=90),
    "brighter 30%": lambda p: encode(ImageEnhance.Brightness(p).enhance(1.3), quality=90),
    "darker 30%": lambda p: encode(ImageEnhance.Brightness(p).enhance(0.7), quality=90),
    "contrast +50%": lambda p: encode(ImageEnhance.Contrast(p).enhance(1.5), quality=90),
}
# Bursts: two neighbouring frames of one scene (windows of the photograph 20% apart); each
# pair must be kept.
BURSTS: dict[str, tuple[tuple[float, float, float, float], tuple[float, float, float, float]]] = {
    "pan 20%": ((0, .1, .2, .1), (.2, .1, 0, .1)),
    "tilt 20%": ((.1, 0, .1, .2), (.1, .2, .1, 0)),
    "zoom 25%": ((0, 0, 0, 0), (.125, .125, .125, .125)),
}


def burst(picture: Image.Image, name: str) -> tuple[bytes, bytes]:
    first, second = BURSTS[name]
    return (encode(cropped(picture, *first), quality=90),
            encode(cropped(picture, *second), quality=90))
