"""Faces and NSFW at download (`--blur-faces`, `--nsfw-threshold`): how well the built-in detectors
do on real photographs, and what they cost per image, on the resized image the crawl stores
(256 px, what `images.process_image` hands `safety.check_image`).

Faces. Positives: photographs of people shipped in PyPI sdists (tests/support/faces.py: eight
portraits, two with half the face cut off, and a group of six), and each portrait pasted small
(a face box of known place, FACE_SIDES pixels wide in the 256 px image) into a wallpaper.
Negatives: the real photographs without people of tests/support/photos.py (Debian wallpapers and
stellarium's telescope photographs). An image counts as found when a box is found (pasted ones:
a box whose centre lies in the pasted portrait); a negative with any box is a false positive.

NSFW. No NSFW picture ships in a package registry, so recall cannot be measured here: the table
gives the false-positive rate of open_nsfw on the same safe photographs (people included) at a
few thresholds.

Speed: CPU ms per image of each detector and of the crawl's own image step (decode, resize,
encode), medians of interleaved rounds (other load on the machine falls on all of them alike).

    .venv/bin/python benchmarks/bench_safety.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from common import print_table  # noqa: E402
from support import faces, photos  # noqa: E402
from support.realdata import Unavailable  # noqa: E402
from wit_builder.crawl.download import safety  # noqa: E402
from wit_builder.crawl.download.images import (ImageSettings, decode,  # noqa: E402
                                               process_image, resize_array)

SETTINGS = ImageSettings()          # the crawl's defaults: 256 px, keep_ratio
FACE_SIDES = (96, 64, 40)           # pasted portraits' width in the stored 256 px image
THRESHOLDS = (0.2, 0.5, 0.8)
ROUNDS = 5


def stored_array(data: bytes) -> np.ndarray:
    """The BGR pixels the safety step sees: decoded and resized as the crawl does."""
    array, width, height = decode(data, SETTINGS)
    return resize_array(array, SETTINGS, width, height)


def as_bgr(picture: Image.Image) -> np.ndarray:
    return stored_array(photos.encode(picture.convert("RGB")))


def pasted(portrait: Image.Image, background: Image.Image, side: int) -> tuple[np.ndarray, tuple]:
    """`portrait` `side` px wide pasted into `background` (256 px): the image and the pixel
    rectangle it covers."""
    scene = background.convert("RGB").copy()
    scene.thumbnail((256, 256), Image.Resampling.LANCZOS)
    small = portrait.convert("RGB")
    small = small.resize((side, max(1, round(side * small.height / small.width))),
                         Image.Resampling.LANCZOS)
    left, top = (scene.width - small.width) // 3, (scene.height - small.height) // 3
    scene.paste(small, (left, top))
    return np.asarray(scene)[:, :, ::-1].copy(), (left, top, left + small.width,
                                                  top + small.height)


def centre_inside(box, rectangle) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return rectangle[0] <= x <= rectangle[2] and rectangle[1] <= y <= rectangle[3]


def load_material() -> tuple[dict, dict, dict, list[bytes]]:
    files = {**faces.people_photos(), **faces.people_photos(table=faces.GROUP)}
    people = {name: (as_bgr(Image.open(path)), count) for name, (path, count) in files.items()}
    pictures = photos.photographs(photos.WALLPAPERS + photos.ASTRO)
    safe = {name: as_bgr(picture) for name, picture in pictures.items()}
    downloads = [photos.encode(picture) for picture in list(pictures.values())[:30]]
    downloads += [path.read_bytes() for path, _ in files.values()]
    backgrounds = list(photos.photographs(("mate-backgrounds",)).values())[:2]
    portraits = {name: Image.open(path) for name, (path, _) in faces.people_photos().items()}
    small = {(name, side, number): pasted(portrait, background, side)
             for name, portrait in portraits.items() for side in FACE_SIDES
             for number, background in enumerate(backgrounds)}
    return people, safe, small, downloads


def face_rows(people: dict, safe: dict, small: dict) -> tuple[list, list]:
    quality, group = [], []
    for name in safety.FACE_DETECTORS:
        detect = safety.loaded(name, "face")[0]
        found = {image: len(detect(bgr[:, :, ::-1])) for image, (bgr, _) in people.items()}
        portraits = [image for image, (_, count) in people.items() if count == 1]
        hits = sum(found[image] > 0 for image in portraits)
        false = sum(len(detect(bgr[:, :, ::-1])) > 0 for bgr in safe.values())
        pasted_hits = {side: sum(any(centre_inside(box, rectangle)
                                     for box in detect(bgr[:, :, ::-1]))
                                 for (_, size, _), (bgr, rectangle) in small.items()
                                 if size == side) for side in FACE_SIDES}
        per_side = len(small) // len(FACE_SIDES)
        positives = len(portraits) + len(small)
        true_positives = hits + sum(pasted_hits.values())
        precision = true_positives / max(true_positives + false, 1)
        quality.append([name, f"{hits}/{len(portraits)}",
                        *(f"{pasted_hits[side]}/{per_side}" for side in FACE_SIDES),
                        f"{false}/{len(safe)}", f"{precision:.3f}",
                        f"{true_positives / positives:.3f}"])
        group.append([name, *(found[image] for image, (_, count) in people.items()
                              if count > 1)])
    return quality, group


def nsfw_rows(people: dict, safe: dict) -> list:
    score = safety.loaded("opennsfw", "nsfw")[0]
    scores = [score(bgr[:, :, ::-1]) for bgr in safe.values()]
    scores += [score(bgr[:, :, ::-1]) for bgr, _ in people.values()]
    return [[f"> {threshold}", f"{sum(s > threshold for s in scores)}/{len(scores)}",
             f"{max(scores):.3f}", f"{statistics.median(scores):.4f}"]
            for threshold in THRESHOLDS]


def timing_rows(downloads: list[bytes]) -> list:
    """CPU ms per image, medians of ROUNDS interleaved rounds over `downloads` (the crawl's image
    step from the downloaded bytes; the detectors on its resized pixels)."""
    images = [stored_array(data)[:, :, ::-1] for data in downloads]
    base_label = "crawl image step (decode, resize, encode)"
    steps = {base_label: lambda data: process_image(data, SETTINGS)}
    for name in safety.FACE_DETECTORS:
        steps[f"face detector {name}"] = safety.loaded(name, "face")[0]
    steps["NSFW scorer opennsfw"] = safety.loaded("opennsfw", "nsfw")[0]
    timings: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(ROUNDS):
        for label, step in steps.items():
            started = time.process_time()
            for item in (downloads if label == base_label else images):
                step(item)
            timings[label].append((time.process_time() - started) / len(images) * 1e3)
    base = statistics.median(timings[base_label])
    return [[label, f"{statistics.median(values):.1f}", f"{statistics.median(values) / base:.1f}"]
            for label, values in timings.items()]


def main() -> int:
    try:
        people, safe, small, downloads = load_material()
    except Unavailable as error:
        print(f"bench_safety: {error}", file=sys.stderr)
        return 1
    for name, builtins, kind in (("mtcnn", safety.FACE_DETECTORS, "face"),
                                 ("opennsfw", safety.NSFW_SCORERS, "nsfw")):
        safety.resolve(name, builtins, f"--{kind}")   # one line naming what to install
    quality, group = face_rows(people, safe, small)
    print_table(f"Faces found on the stored 256 px image ({len(safe)} photographs without "
                f"people as negatives)",
                ["detector", "portraits", *(f"pasted {side} px" for side in FACE_SIDES),
                 "negatives with a box", "precision", "recall"], quality)
    print_table("Faces found in the group photograph (6 people)", ["detector", "boxes"], group)
    print_table(f"open_nsfw on {len(safe) + len(people)} safe photographs (false positives; "
                f"recall not measurable: no NSFW material in the package registries)",
                ["dropped when score", "false positives", "highest score", "median score"],
                nsfw_rows(people, safe))
    print_table(f"CPU ms per image ({len(downloads)} downloads, median of {ROUNDS} interleaved "
                f"rounds; one thread each)", ["step", "ms / image", "x image step"],
                timing_rows(downloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
