"""Zero-shot classification: classify labelled images by comparing them with sentences.

Each class becomes one text embedding: its name is put into every prompt template, the prompts
are embedded and normalised, and their mean, renormalised, is the class embedding (the paper's
ensembling in embedding space). An image's class is the one whose embedding is nearest.

A labelled set is either WebDataset shards (`*.tar` of `KEY.jpg` + `KEY.cls`, the class index as
text, beside `classnames.txt`, one name a line in index order) or an image folder with one
sub-folder per class (the sub-folder names are the class names). Either may hold a
`templates.txt` (one prompt a line, `{}` for the class name).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from trainer.data import IMAGE_KEYS, normalize, tar_samples
from trainer.model import CLIP
from trainer.tokenizer import TextTokenizer, trim_padding
from wit_builder.core.options import WitError

logger = logging.getLogger(__name__)

# Our own general-purpose prompts, used when neither --templates nor the set gives any.
DEFAULT_TEMPLATES = (
    "a picture of a {}.",
    "an image that shows a {}.",
    "a {} in the picture.",
    "a snapshot of a {}.",
    "a {}, seen up close.",
    "a sketch of a {}.",
    "there is a {} in this image.",
    "{}",
)
IMAGE_SUFFIXES = {f".{key}" for key in IMAGE_KEYS}


@dataclass
class LabelledSet:
    """A zero-shot set: its class names, its own templates (maybe none), and where images are."""

    name: str
    path: Path
    classnames: list[str]
    templates: list[str]
    shards: list[Path]                      # WebDataset form
    files: list[tuple[Path, int]]           # image-folder form: (image, class index)

    def samples(self) -> Iterator[tuple[bytes, int]]:
        """(encoded image, class index) of every sample, in a fixed order."""
        if not self.shards:
            for file, label in self.files:
                yield file.read_bytes(), label
            return
        for sample in tar_samples(iter(str(s) for s in self.shards), len(self.shards)):
            yield labelled_sample(sample, len(self.classnames))


def labelled_sample(sample: dict[str, Any], classes: int) -> tuple[bytes, int]:
    key = next((k for k in IMAGE_KEYS if k in sample), None)
    where = f"sample '{sample.get('__key__')}' of '{sample.get('__url__')}'"
    if key is None or "cls" not in sample:
        raise WitError(f"eval: {where} lacks an image or a .cls label")
    try:
        label = int(sample["cls"].decode("utf-8").strip())
    except ValueError:
        raise WitError(f"eval: {where} has a .cls that is not a class index") from None
    if not 0 <= label < classes:
        raise WitError(f"eval: {where} has class {label}, but classnames.txt lists {classes}")
    return sample[key], label


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_templates(path: str | Path) -> list[str]:
    """Prompt templates of a file: one a line, each with a `{}` for the class name."""
    path = Path(path)
    if not path.is_file():
        raise WitError(f"eval: templates file '{path}' does not exist")
    templates = read_lines(path)
    if not templates:
        raise WitError(f"eval: templates file '{path}' holds no template")
    for template in templates:
        if template.count("{}") != 1:
            raise WitError(f"eval: template '{template}' in '{path}' needs exactly one {{}} "
                           f"for the class name")
    return templates


def open_labelled_set(path: str | Path, name: str | None = None) -> LabelledSet:
    """The set at `path`: WebDataset shards with classnames.txt, or one sub-folder per class."""
    path = Path(path)
    if not path.is_dir():
        raise WitError(f"eval: zero-shot set '{path}' is not a directory")
    own = path / "templates.txt"
    templates = read_templates(own) if own.is_file() else []
    shards = sorted(path.glob("*.tar"))
    if shards:
        names = path / "classnames.txt"
        if not names.is_file():
            raise WitError(f"eval: zero-shot set '{path}' has shards but no classnames.txt")
        classnames, files = read_lines(names), []
    else:
        folders = sorted(p for p in path.iterdir() if p.is_dir())
        classnames = [folder.name for folder in folders]
        files = [(file, label) for label, folder in enumerate(folders)
                 for file in sorted(folder.iterdir()) if file.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise WitError(f"eval: zero-shot set '{path}' holds no shard (*.tar) and no image "
                           f"in class sub-folders")
    if len(classnames) < 2:
        raise WitError(f"eval: zero-shot set '{path}' has {len(classnames)} class(es); "
                       f"classification needs at least 2")
    return LabelledSet(name or path.name, path, classnames, templates, shards, files)


def choose_templates(labelled: LabelledSet, templates_file: str | Path | None) -> list[str]:
    """--templates FILE first, else the set's own templates.txt, else our default prompts."""
    if templates_file:
        return read_templates(templates_file)
    return labelled.templates or list(DEFAULT_TEMPLATES)


def eval_pixels(data: bytes, size: int) -> torch.Tensor:
    """uint8 (3, size, size): the image resized and center-cropped to a square of `size`."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (size, size))  # JPEG decodes at a reduced scale for free
    image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    image = image.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side))
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return pixels.view(size, size, 3).permute(2, 0, 1)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.no_grad()
def encode_images(model: CLIP, items: Iterable[tuple[bytes, Any]], batch_size: int, device: str,
                  desc: str = "images") -> tuple[torch.Tensor, list[Any]]:
    """Normalised features (N, D) on the CPU of (encoded image, tag) items, preprocessed as at
    eval, and the tags (labels, captions) in the same order."""
    size = model.config.image_size
    features, tags = [], []
    for batch in batched(tqdm(items, desc=desc, unit="img", leave=False), batch_size):
        pixels = torch.stack([eval_pixels(data, size) for data, _ in batch]).to(device)
        features.append(model.encode_image(normalize(pixels)).float().cpu())
        tags += [tag for _, tag in batch]
    if not features:
        return torch.empty(0, model.config.embed_dim), tags
    return torch.cat(features), tags


@torch.no_grad()
def encode_texts(model: CLIP, tokenizer: TextTokenizer, texts: list[str], batch_size: int,
                 device: str) -> torch.Tensor:
    """Normalised text features (N, D) on the CPU."""
    features = [model.encode_text(trim_padding(tokenizer(batch), tokenizer.end_id).to(device))
                .float().cpu() for batch in batched(texts, batch_size)]
    return torch.cat(features) if features else torch.empty(0, model.config.embed_dim)


def ensemble(prompt_features: torch.Tensor) -> torch.Tensor:
    """(C, T, D) prompt embeddings -> (C, D): the mean of the normalised embeddings of each
    class's T prompts, renormalised."""
    return F.normalize(F.normalize(prompt_features, dim=-1).mean(dim=1), dim=-1)


def class_embeddings(model: CLIP, tokenizer: TextTokenizer, classnames: list[str],
                     templates: list[str], batch_size: int, device: str) -> torch.Tensor:
    """(C, D) class embeddings: every class name in every template, ensembled."""
    prompts = [template.format(name) for name in classnames for template in templates]
    features = encode_texts(model, tokenizer, prompts, batch_size, device)
    return ensemble(features.view(len(classnames), len(templates), -1))


def accuracy_table(image_features: torch.Tensor, labels: torch.Tensor,
                   class_features: torch.Tensor, classnames: list[str]) -> dict[str, Any]:
    """Top-1 (and top-5 when there are at least 5 classes) accuracy, overall and per class."""
    scores = image_features @ class_features.T  # (N, C)
    classes = len(classnames)
    ranked = scores.topk(min(5, classes), dim=1).indices
    top1 = ranked[:, 0] == labels
    result: dict[str, Any] = {"samples": len(labels), "classes": classes, "chance": 1 / classes,
                              "top1": float(top1.double().mean())}
    if classes >= 5:
        result["top5"] = float((ranked == labels[:, None]).any(dim=1).double().mean())
    result["per_class"] = {
        name: {"samples": int((labels == index).sum()),
               "top1": float(top1[labels == index].double().mean())
               if (labels == index).any() else None}
        for index, name in enumerate(classnames)}
    return result


def evaluate_zeroshot(model: CLIP, tokenizer: TextTokenizer, labelled: LabelledSet,
                      templates: list[str], batch_size: int = 128, device: str = "cpu"
                      ) -> dict[str, Any]:
    """Zero-shot accuracy of `model` on one labelled set."""
    image_features, labels = encode_images(model, labelled.samples(), batch_size, device,
                                           desc=f"zero-shot {labelled.name}")
    if not labels:
        raise WitError(f"eval: zero-shot set '{labelled.path}' holds no sample")
    class_features = class_embeddings(model, tokenizer, labelled.classnames, templates,
                                      batch_size, device)
    result = accuracy_table(image_features, torch.tensor(labels), class_features,
                            labelled.classnames)
    result["templates"] = len(templates)
    logger.info("zero-shot %s: top-1 %.3f (chance %.3f) over %d images, %d classes x %d "
                "templates", labelled.name, result["top1"], result["chance"], len(labels),
                len(labelled.classnames), len(templates))
    return result
