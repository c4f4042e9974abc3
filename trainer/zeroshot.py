"""Zero-shot classification: classify labelled images by comparing them with sentences.

Each class becomes one text embedding: its name is put into every prompt template, the prompts
are embedded and normalised, and their mean, renormalised, is the class embedding (the paper's
ensembling in embedding space). An image's class is the one whose embedding is nearest.

A labelled set is either WebDataset shards (`*.tar` of `KEY.jpg` + `KEY.cls`, the class index as
text, beside `classnames.txt`, one name a line in index order) or an image folder with one
sub-folder per class (the sub-folder names are the class names, unless a `classnames.txt` names
them: one name a line in folder order, or `FOLDER NAME` lines). Underscores in class names become
spaces. Either may hold a `templates.txt` (one prompt a line, `{}` or `{c}` for the class name).
"""

from __future__ import annotations

import ast
import importlib.util
import io
import logging
import re
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
SYNSET = re.compile(r"n\d{8}")  # a WordNet noun id, ImageNet's class folder names
PLACEHOLDER = re.compile(r"\{(c|classname|class_name)\}")  # open_clip's {c}, as {}


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
    """Prompt templates, each with one `{}` for the class name, from:
    a text file, one template a line, with `{}` or `{c}`; a Python file in open_clip's style
    (`lambda c: f'a photo of a {c}.'` items, or plain strings with `{}`), read as syntax, never
    run; or the name of a set open_clip ships (`openai_imagenet`, `simple_imagenet`)."""
    text_path = Path(path)
    if not text_path.is_file():
        shipped = open_clip_template_sets()
        if str(path) in shipped:
            source_path, constant = shipped[str(path)]
            return python_templates(source_path.read_text(encoding="utf-8"), source_path,
                                    constant)
        named = f"; open_clip's sets: {', '.join(sorted(shipped))}" if shipped else ""
        raise WitError(f"eval: templates file '{path}' does not exist (give a file of one "
                       f"template a line with {{c}} for the class name{named})")
    source = text_path.read_text(encoding="utf-8")
    if text_path.suffix == ".py" or re.search(r"\blambda\b", source):
        templates = python_templates(source, text_path)
    else:
        templates = [PLACEHOLDER.sub("{}", line) for line in read_lines(text_path)]
    if not templates:
        raise WitError(f"eval: templates file '{path}' holds no template")
    for template in templates:
        if template.count("{}") != 1:
            raise WitError(f"eval: template '{template}' in '{path}' needs exactly one {{}} "
                           f"(or {{c}}) for the class name")
    return templates


def open_clip_template_sets() -> dict[str, tuple[Path, str]]:
    """The template sets open_clip ships in zero_shot_metadata.py, by lower-case name without
    `_templates` (found without importing open_clip); none when it is not installed."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "zero_shot_metadata.py"
    if not path.is_file():
        return {}
    names = re.findall(r"^([A-Z_]+)_TEMPLATES\s*=", path.read_text(encoding="utf-8"), re.M)
    return {name.lower(): (path, f"{name}_TEMPLATES") for name in names}


def python_templates(source: str, path: Path, constant: str = "") -> list[str]:
    """Templates of Python source in open_clip's style, from its syntax tree (nothing runs):
    every `lambda c: f'...{c}...'` (or `'...{}...'.format(c)`), else every string of a list or
    tuple; only the assignment to `constant` when one is named."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise WitError(f"eval: templates file '{path}' is neither one template a line nor "
                       f"Python (line {error.lineno}: {error.msg})") from None
    if constant:
        tree = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    and any(getattr(t, "id", "") == constant for t in node.targets))
    lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
    if lambdas:
        return [lambda_template(node, path) for node in lambdas]
    return [item.value for node in ast.walk(tree) if isinstance(node, (ast.List, ast.Tuple))
            for item in node.elts if isinstance(item, ast.Constant) and isinstance(item.value, str)]


def lambda_template(node: ast.Lambda, path: Path) -> str:
    """`lambda c: f'a photo of a {c}.'` -> 'a photo of a {}.'; anything else is refused."""
    refused = WitError(f"eval: templates file '{path}' line {node.lineno}: only "
                       f"`lambda c: f'...{{c}}...'` templates are read (found "
                       f"`{ast.unparse(node)}`)")
    if len(node.args.args) != 1:
        raise refused
    argument, body = node.args.args[0].arg, node.body
    if isinstance(body, ast.JoinedStr):
        parts = []
        for value in body.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value).replace("{", "{{").replace("}", "}}"))
            elif (isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name)
                  and value.value.id == argument and value.conversion == -1
                  and value.format_spec is None):
                parts.append("{}")
            else:
                raise refused
        return "".join(parts)
    if (isinstance(body, ast.Call) and isinstance(body.func, ast.Attribute)
            and body.func.attr == "format" and isinstance(body.func.value, ast.Constant)
            and [getattr(a, "id", None) for a in body.args] == [argument] and not body.keywords):
        return str(body.func.value.value)
    raise refused


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
        classnames, files = [prompt_name(name) for name in read_lines(names)], []
    else:
        folders = sorted(p for p in path.iterdir() if p.is_dir())
        classnames = folder_classnames(path, [folder.name for folder in folders])
        files = [(file, label) for label, folder in enumerate(folders)
                 for file in sorted(folder.iterdir()) if file.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise WitError(f"eval: zero-shot set '{path}' holds no shard (*.tar) and no image "
                           f"in class sub-folders")
    if len(classnames) < 2:
        raise WitError(f"eval: zero-shot set '{path}' has {len(classnames)} class(es); "
                       f"classification needs at least 2")
    return LabelledSet(name or path.name, path, classnames, templates, shards, files)


def prompt_name(name: str) -> str:
    """A class name as it goes into a prompt: `light_pink` -> `light pink`."""
    return " ".join(name.replace("_", " ").split())


def folder_classnames(path: Path, folders: list[str]) -> list[str]:
    """The class names of an image-folder set, in (sorted) folder order: from its
    classnames.txt when there is one, else the folder names; WordNet-id folders (ImageNet's
    `n01440764`) need a classnames.txt, since the id in a prompt means nothing to the model."""
    names_file = path / "classnames.txt"
    if names_file.is_file():
        return [prompt_name(name) for name in classnames_of_folders(names_file, folders)]
    if any(SYNSET.fullmatch(folder) for folder in folders):
        example = next(folder for folder in folders if SYNSET.fullmatch(folder))
        raise WitError(f"eval: zero-shot set '{path}' has WordNet-id class folders ('{example}') "
                       f"and no classnames.txt; add one: a name a line in folder order, or "
                       f"'{example} NAME' lines (ImageNet's LOC_synset_mapping.txt)")
    return [prompt_name(folder) for folder in folders]


def classnames_of_folders(names_file: Path, folders: list[str]) -> list[str]:
    """classnames.txt of an image folder: `FOLDER NAME[, synonym...]` lines (the first name is
    kept), or one name a line in the sorted order of the folders."""
    lines = read_lines(names_file)
    keyed = {}
    for line in lines:
        key, _, rest = line.replace("\t", " ").partition(" ")
        keyed[key.rstrip(":,")] = rest.split(",")[0].strip()
    if all(keyed.get(folder) for folder in folders):
        return [keyed[folder] for folder in folders]
    if len(lines) != len(folders):
        raise WitError(f"eval: '{names_file}' lists {len(lines)} names for {len(folders)} class "
                       f"folders; give one name a line in folder order, or 'FOLDER NAME' lines")
    return lines


def choose_templates(labelled: LabelledSet, templates_file: str | Path | None) -> list[str]:
    """--templates FILE first, else the set's own templates.txt, else our default prompts."""
    if templates_file:
        return read_templates(templates_file)
    return labelled.templates or list(DEFAULT_TEMPLATES)


def eval_pixels(data: bytes, size: int) -> torch.Tensor:
    """uint8 (3, size, size): the image resized and center-cropped to a square of `size`."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (size, size))  # JPEG decodes at a reduced scale for free
    return square_pixels(image.convert("RGB"), size)


def square_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """uint8 (3, size, size) of an RGB image: its center square resized (bicubic) to `size`."""
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
    names = [name if classnames.count(name) == 1 else f"{name} ({index})"  # ImageNet's 2 cranes
             for index, name in enumerate(classnames)]
    result["per_class"] = {
        name: {"samples": int((labels == index).sum()),
               "top1": float(top1[labels == index].double().mean())
               if (labels == index).any() else None}
        for index, name in enumerate(names)}
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
