"""The CLIP loss: equal to a plain reference and to open_clip's ClipLoss, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.loss import ClipLoss


def reference_clip_loss(images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor
                        ) -> torch.Tensor:
    """The paper's pseudo-code, written out: row-wise and column-wise cross-entropy, averaged."""
    logits = scale * images @ texts.T
    n = logits.shape[0]
    image_to_text = -sum(F.log_softmax(logits[i], dim=0)[i] for i in range(n)) / n
    text_to_image = -sum(F.log_softmax(logits[:, j], dim=0)[j] for j in range(n)) / n
    return (image_to_text + text_to_image) / 2


def features(batch: int = 12, width: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(batch, width, generator=generator, dtype=torch.float64), dim=1)
    texts = F.normalize(torch.randn(batch, width, generator=generator, dtype=torch.float64), dim=1)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    return images.requires_grad_(), texts.requires_grad_(), scale.requires_grad_()


def loss_and_grads(loss_fn, seed: int = 0):
    images, texts, scale = features(seed=seed)
    loss = loss_fn(images, texts, scale)
    loss.backward()
    return loss.detach(), images.grad, texts.grad, scale.grad


@pytest.mark.parametrize("local_loss", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_gradients_equal_plain_reference(local_loss, seed):
    ours = loss_and_grads(ClipLoss(local_loss=local_loss), seed)
    reference = loss_and_grads(reference_clip_loss, seed)
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("local_loss", [False, True])
def test_loss_and_gradients_equal_open_clip(local_loss):
    from open_clip.loss import ClipLoss as OpenClipLoss

    ours = loss_and_grads(ClipLoss(local_loss=local_loss))
    theirs = loss_and_grads(OpenClipLoss(local_loss=local_loss))
    for mine, peer in zip(ours, theirs):
        torch.testing.assert_close(mine, peer, rtol=0, atol=1e-6)


def test_matching_pairs_give_lower_loss_than_shuffled_pairs():
    images, _, scale = features()
    loss_fn = ClipLoss()
    assert loss_fn(images, images, scale) < loss_fn(images, images.flip(0), scale) - 1
