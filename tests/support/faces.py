"""Real photographs of people for the face-blurring and NSFW test and benchmark, from PyPI source
distributions fetched at run time by support.realdata (never committed), with the faces each
shows (counted by eye):

- face_recognition 1.3.0's test images (MIT package): official portraits of Barack Obama and Joe
  Biden (works of the US government), two of them with half the face cut off;
- Pillow 11.0.0's `hopper.png` (Grace Hopper, a US Navy photograph);
- insightface 2.1's `t1.jpg`: a group of six people around a table (a film still: the picture's
  rights are its owner's; read at run time only, for the benchmark's count of faces in a group).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.realdata import fetch_sdist

# name -> (package, version, file in its sdist, faces in the picture)
PEOPLE = {
    "obama": ("face_recognition", "1.3.0", "tests/test_images/obama.jpg", 1),
    "obama2": ("face_recognition", "1.3.0", "tests/test_images/obama2.jpg", 1),
    "obama3": ("face_recognition", "1.3.0", "tests/test_images/obama3.jpg", 1),
    "biden": ("face_recognition", "1.3.0", "tests/test_images/biden.jpg", 1),
    "obama_32bit": ("face_recognition", "1.3.0", "tests/test_images/32bit.png", 1),
    "obama_half_face": ("face_recognition", "1.3.0", "tests/test_images/obama_partial_face.jpg",
                        1),
    "obama_half_face2": ("face_recognition", "1.3.0",
                         "tests/test_images/obama_partial_face2.jpg", 1),
    "hopper": ("pillow", "11.0.0", "Tests/images/hopper.png", 1),
}
GROUP = {"group_of_six": ("insightface", "2.1", "insightface/data/images/t1.jpg", 6)}


def people_photos(names: tuple[str, ...] | None = None, fetch: Callable = fetch_sdist,
                  table: dict = PEOPLE) -> dict[str, tuple[Path, int]]:
    """{name: (file, faces)} of the photographs `names` (all of `table` when None)."""
    photos = {}
    for name in names or tuple(table):
        package, version, relative, faces = table[name]
        photos[name] = (fetch(package, version) / relative, faces)
    return photos


def central_box_detector():
    """A plug-in face detector (`--face-detector support.faces:central_box_detector`): one box,
    the central half of the picture in each direction, whatever it shows."""
    def detect(rgb):
        height, width = rgb.shape[:2]
        return [(width / 4, height / 4, 3 * width / 4, 3 * height / 4)]
    return detect


def brightness_scorer():
    """A plug-in NSFW scorer (`--nsfw-scorer support.faces:brightness_scorer`) whose scores a
    test can predict: the picture's mean brightness in [0, 1]."""
    return lambda rgb: float(rgb.mean()) / 255
