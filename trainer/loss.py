"""The contrastive loss of CLIP: symmetric cross-entropy over the image-text similarity matrix.

Under DDP every rank gathers the features of all ranks, so the loss is that of the global batch.
Drop-in for open_clip's: `ClipLoss(local_loss, gather_with_grad)(image_features, text_features,
logit_scale)` with normalised features and the exponentiated scale returns the scalar loss.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn as nn
import torch.nn.functional as F


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_features(features: torch.Tensor, rank: int, world_size: int,
                    with_grad: bool) -> torch.Tensor:
    """Features of every rank, concatenated in rank order: (world_size * B, D).

    Without `with_grad` only this rank's slice carries gradients; with it, gradients flow back to
    the rank that produced each slice (the all-gather's backward is a reduce-scatter).
    """
    if with_grad:
        return torch.cat(dist_nn.all_gather(features), dim=0)
    gathered = [torch.empty_like(features) for _ in range(world_size)]
    dist.all_gather(gathered, features.detach())
    gathered[rank] = features
    return torch.cat(gathered, dim=0)


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over the N x N logits, averaged over image->text and text->image."""

    def __init__(self, local_loss: bool = False, gather_with_grad: bool = False):
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        rank, world_size = world()
        batch = image_features.shape[0]
        if world_size == 1:
            all_images, all_texts = image_features, text_features
        else:
            all_images = gather_features(image_features, rank, world_size, self.gather_with_grad)
            all_texts = gather_features(text_features, rank, world_size, self.gather_with_grad)
        if self.local_loss:
            # This rank's rows only: (B, N) logits; its samples sit at offset rank * B.
            logits_per_image = logit_scale * image_features @ all_texts.T
            logits_per_text = logit_scale * text_features @ all_images.T
            labels = torch.arange(batch, device=image_features.device) + rank * batch
        else:
            logits_per_image = logit_scale * all_images @ all_texts.T  # (N, N)
            logits_per_text = logits_per_image.T
            labels = torch.arange(all_images.shape[0], device=image_features.device)
        return (F.cross_entropy(logits_per_image, labels)
                + F.cross_entropy(logits_per_text, labels)) / 2
