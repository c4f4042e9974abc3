"""The CLIP model: a timm image tower, our own text Transformer, and the learned temperature.

Architectures come from presets (trainer/configs/*.toml), not from code branches: `load_preset`
reads one into a `ModelConfig`, and `CLIP(config)` builds it from scratch.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from wit_builder.core.options import WitError

PRESETS = Path(__file__).parent / "configs"
MAX_LOGIT_SCALE = math.log(100)  # the paper: logits are scaled by at most 100


@dataclass
class ModelConfig:
    embed_dim: int = 512                       # width of the shared image-text space
    image_model: str = "vit_base_patch32_clip_224"  # any timm model name
    image_size: int = 224                      # side of the square crops fed to the image tower
    image_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model
    context_length: int = 77                   # tokens per caption, start and end included
    vocab_size: int = 49_408                   # set from the tokenizer
    eot_token_id: int = 49_407                 # set from the tokenizer: features are read here
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    mlp_ratio: float = 4.0


def load_preset(name_or_path: str) -> tuple[ModelConfig, dict[str, Any]]:
    """The preset's `[model]` table as a ModelConfig, and its `[train]` defaults as a dict."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PRESETS / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
        raise WitError(f"model: no preset '{name_or_path}' (known: {known}, or a path to a .toml)")
    with path.open("rb") as handle:
        table = tomllib.load(handle)
    known_keys = set(ModelConfig.__dataclass_fields__)
    unknown = set(table.get("model", {})) - known_keys
    if unknown:
        raise WitError(f"model: unknown key(s) {', '.join(sorted(unknown))} in [model] of '{path}'")
    return ModelConfig(**table.get("model", {})), table.get("train", {})


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, width: int, ratio: float):
        super().__init__()
        hidden = int(width * ratio)
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    """Causal Transformer over BPE tokens; a caption's features are read at its end token."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.eot_token_id = config.eot_token_id
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length,
                                                             config.text_width))
        self.blocks = nn.ModuleList(Block(config.text_width, config.text_heads, config.mlp_ratio)
                                    for _ in range(config.text_layers))
        self.ln_final = nn.LayerNorm(config.text_width)
        self.grad_checkpointing = False

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, T = tokens.shape  # T may be shorter than the context: the loader trims the padding
        x = self.token_embedding(tokens) + self.positional_embedding[:T]  # (B, T, C)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.ln_final(x)
        # The first end-of-text token: the causal mask means it has seen the whole caption.
        eot = (tokens == self.eot_token_id).int().argmax(dim=1)
        return x[torch.arange(B, device=x.device), eot]  # (B, C)


class CLIP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        try:
            self.visual = timm.create_model(config.image_model, pretrained=False, num_classes=0,
                                            **config.image_kwargs)
        except (RuntimeError, TypeError) as error:
            raise WitError(f"model: timm cannot build image model '{config.image_model}' with "
                           f"{config.image_kwargs}: {error}") from None
        self.image_projection = nn.Linear(self.visual.num_features, config.embed_dim, bias=False)
        self.text = TextTransformer(config)
        self.text_projection = nn.Linear(config.text_width, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.init_text_weights()

    def init_text_weights(self) -> None:
        """Small normal weights for the text side (the image tower keeps timm's own init)."""
        width, layers = self.config.text_width, self.config.text_layers
        nn.init.normal_(self.text.token_embedding.weight, std=0.02)
        nn.init.normal_(self.text.positional_embedding, std=0.01)
        for name, parameter in self.text.blocks.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(parameter)
            elif parameter.ndim == 2:
                # Residual projections shrink with depth so the stream's variance stays put.
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(parameter, std=std)
        nn.init.normal_(self.text_projection.weight, std=width ** -0.5)
        nn.init.normal_(self.image_projection.weight, std=self.visual.num_features ** -0.5)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.visual.set_grad_checkpointing(enabled)
        self.text.grad_checkpointing = enabled

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_projection(self.visual(images)), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text(tokens)), dim=-1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image and text features and the exponentiated logit scale."""
        return self.encode_image(images), self.encode_text(tokens), self.logit_scale.exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

