"""The Python API: load a trained model and embed images and texts (re-exported by `witbuilder`).

    import witbuilder
    loaded = witbuilder.load_model("runs/tiny")          # a run folder or a checkpoint file
    image_features = loaded.encode_image([Image.open("cat.jpg")])   # (1, D), unit length
    text_features = loaded.encode_text(["a photo of a cat", "a photo of a dog"])
    probabilities = (100 * image_features @ text_features.T).softmax(dim=-1)
    classes = loaded.classifier(["cat", "dog"], ["a photo of a {c}."])  # prompt ensembles
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from trainer.data import normalize
from trainer.model import CLIP, ModelConfig
from trainer.tokenizer import TextTokenizer, trim_padding
from trainer.zeroshot import (DEFAULT_TEMPLATES, PLACEHOLDER, class_embeddings, read_templates,
                              square_pixels)


@dataclass
class LoadedModel:
    """A trained CLIP and what it needs: `preprocess` turns a PIL image into the model's input,
    `tokenizer` a list of captions into token ids; `config` is the architecture, `train_config`
    the run's settings."""

    model: CLIP
    tokenizer: TextTokenizer
    preprocess: Callable[[Image.Image], torch.Tensor]
    config: ModelConfig
    step: int
    path: Path                               # the checkpoint file
    train_config: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        from trainer.evaluate import run_directory

        return run_directory(self.path)

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    @torch.no_grad()
    def encode_image(self, images: list[Image.Image] | torch.Tensor) -> torch.Tensor:
        """Unit-length features (N, D) of PIL images, or of a batch `preprocess` already made."""
        if not isinstance(images, torch.Tensor):
            images = torch.stack([self.preprocess(image) for image in images])
        return self.model.encode_image(images.to(self.device))

    @torch.no_grad()
    def encode_text(self, texts: list[str] | str) -> torch.Tensor:
        """Unit-length features (N, D) of captions or prompts."""
        tokens = trim_padding(self.tokenizer(texts), self.tokenizer.end_id)
        return self.model.encode_text(tokens.to(self.device))

    def classifier(self, classnames: list[str], templates: list[str] | str | None = None
                   ) -> torch.Tensor:
        """Unit-length class embeddings (C, D) for zero-shot classification: each class name in
        every template (`{}` or `{c}`; a templates file or open_clip set name, as `wit eval
        --templates`; default: ours), the prompt embeddings averaged, as `wit eval` does."""
        if templates is None:
            templates = list(DEFAULT_TEMPLATES)
        elif isinstance(templates, str):
            templates = read_templates(templates)
        templates = [PLACEHOLDER.sub("{}", template) for template in templates]
        return class_embeddings(self.model, self.tokenizer, list(classnames), templates, 256,
                                str(self.device)).to(self.device)


class Preprocess:
    """PIL image -> normalised float (3, size, size): the center square, resized (bicubic), as
    `wit eval` does. A class, not a closure, so that data-loader workers can pickle it."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return normalize(square_pixels(image.convert("RGB"), self.size)[None])[0]

    def __repr__(self) -> str:
        return f"Preprocess(size={self.size})"


def load_model(path: str | Path, device: str = "cpu", stage: str = "load_model") -> LoadedModel:
    """The model of a checkpoint file or a run folder (`runs/NAME`: its latest checkpoint), in
    eval mode on `device`, with its tokenizer and preprocessing."""
    from trainer.checkpoint import load_checkpoint
    from trainer.evaluate import model_from_state, resolve_checkpoint

    checkpoint = resolve_checkpoint(path, stage)
    state = load_checkpoint(checkpoint)
    model, tokenizer = model_from_state(state, checkpoint)
    model = model.to(device).eval()
    return LoadedModel(model, tokenizer, Preprocess(model.config.image_size), model.config,
                       int(state.get("step", 0)), checkpoint, dict(state.get("config", {})))
