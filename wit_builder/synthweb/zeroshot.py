"""Held-out zero-shot sets: `zeroshot/shape/` and `zeroshot/colour/`.

Renders that are not on the site (their own random stream, and a test proves by sha256 that none
equals a site picture), labelled by shape (varied colours and backgrounds) or by colour (varied
shapes). Each set is WebDataset shards `shard-NNNNNN.tar` of samples `KEY.jpg` + `KEY.cls` (the
class index as text) and `classnames.txt` (one class name per line, in index order). Tar members
carry fixed times and owners, so the same seed gives the same bytes.

`templates.txt` (one prompt a line, `{}` for the class name) suits each task, for CLIP's prompt
ensembling: a bare colour makes a poor prompt ("a photo of a red."), so the colour prompts name
each shape ("red stars.") and the shape prompts each colour; averaged in embedding space they
leave the class as what the prompts have in common.
"""

from __future__ import annotations

import io
import logging
import random
import tarfile
from pathlib import Path

from wit_builder.core import atomic
from wit_builder.synthweb import render
from wit_builder.synthweb.concepts import COLOURS, SHAPES

log = logging.getLogger(__name__)

SAMPLES_PER_SHARD = 10_000
TASKS = {"shape": list(SHAPES), "colour": list(COLOURS)}


def prompt_templates(task: str) -> list[str]:
    """Zero-shot prompts of `task` worded like the site's captions, which end without a full stop:
    a final "." is a token the text tower never saw just before the end token its features are
    read at (on the reduced demo, shape top-1 32.3% with it, 34.3% without)."""
    if task == "shape":
        return ["a photo of a {}", "a drawing of a {}", "a large {}", "a small {}"] + \
            [render.english_article(colour) + " {}" for colour in COLOURS]
    # Plurals: "a {} circle" would give "a orange circle".
    return ["a photo of {} shapes", "{} shapes on a background"] + \
        [f"{{}} {plural}" for plural in SHAPES.values()]


def labelled_samples(task: str, per_class: int, image_size: int,
                     seed: int) -> list[tuple[bytes, int]]:
    """(JPEG bytes, class index) of every held-out render of `task`, classes interleaved."""
    samples = []
    for label, name in enumerate(TASKS[task]):
        for number in range(per_class):
            rng = random.Random(f"{seed}:zeroshot:{task}:{name}:{number}")
            scene = render.sample_scene(rng, **{task: name})
            picture = render.render(scene, image_size, rng)
            samples.append((render.encode(picture, "jpeg"), label))
    random.Random(f"{seed}:zeroshot:{task}:order").shuffle(samples)
    return samples


def tar_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uname = info.gname = "synthweb"
    return info, io.BytesIO(data)


def write_shard(path: Path, samples: list[tuple[str, bytes, int]]) -> None:
    with atomic.atomic_path(path) as temporary, \
            tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, data, label in samples:
            tar.addfile(*tar_member(f"{key}.jpg", data))
            tar.addfile(*tar_member(f"{key}.cls", str(label).encode()))


def write_task(directory: Path, task: str, per_class: int, image_size: int, seed: int) -> dict:
    samples = labelled_samples(task, per_class, image_size, seed)
    keyed = [(f"{task}{number:06d}", data, label) for number, (data, label) in enumerate(samples)]
    shards = [keyed[start:start + SAMPLES_PER_SHARD]
              for start in range(0, len(keyed), SAMPLES_PER_SHARD)]
    for number, shard in enumerate(shards):
        write_shard(directory / f"shard-{number:06d}.tar", shard)
    atomic.write_text(directory / "classnames.txt", "\n".join(TASKS[task]) + "\n")
    atomic.write_text(directory / "templates.txt", "\n".join(prompt_templates(task)) + "\n")
    return {"path": f"zeroshot/{task}", "classes": len(TASKS[task]), "samples": len(samples),
            "shards": len(shards)}


def write_zeroshot(out: Path, config) -> dict:
    """Write the shape and colour zero-shot sets under `out/zeroshot/`."""
    result = {task: write_task(Path(out) / "zeroshot" / task, task, config.zeroshot_per_class,
                               config.image_size, config.seed) for task in TASKS}
    log.info("synthweb: zero-shot sets %s", ", ".join(f"{task} ({item['samples']} samples)"
                                                      for task, item in result.items()))
    return result
