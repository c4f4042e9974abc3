"""Which torch device a stage runs on (shared by training and evaluation)."""

from __future__ import annotations

import torch

from wit_builder.core.options import WitError


def pick_device(choice: str) -> str:
    """'cuda' or 'cpu' for --device auto|cuda|cpu; asking for CUDA without one is an error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise WitError("train: --device cuda but torch sees no CUDA device")
    return "cuda" if choice in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
