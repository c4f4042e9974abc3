"""Image<->text retrieval recall@k on shards of (`.jpg`, `.txt`) pairs.

Every image is a query over all the captions (image->text) and every caption a query over all the
images (text->image). A query scores a hit at k when a right answer ranks among the k nearest.
Identical captions are interchangeable (a synthetic or web set repeats "a red circle"), so the
right answers of a query are all the items whose caption equals its own; a query's rank is the
number of wrong answers strictly more similar than its best right one (ties count in its favour).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch

from trainer.data import IMAGE_KEYS, expand_shards, relative_note, tar_samples
from trainer.model import CLIP
from trainer.tokenizer import TextTokenizer
from trainer.zeroshot import encode_images, encode_texts
from wit_builder.core.options import WitError

logger = logging.getLogger(__name__)

KS = (1, 5, 10)


def caption_groups(captions: list[str]) -> torch.Tensor:
    """One id per distinct caption: items with the same id answer each other's queries."""
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(caption, len(ids)) for caption in captions])


def ranks_of_best_answer(similarity: torch.Tensor, query_groups: torch.Tensor,
                         target_groups: torch.Tensor) -> torch.Tensor:
    """(Q,) number of wrong targets more similar to each query than its best right target."""
    right = query_groups[:, None] == target_groups[None, :]  # (Q, N)
    best = similarity.masked_fill(~right, float("-inf")).max(dim=1).values
    return (similarity > best[:, None]).sum(dim=1)


def recall_at_k(queries: torch.Tensor, targets: torch.Tensor, query_groups: torch.Tensor,
                target_groups: torch.Tensor, ks: tuple[int, ...] = KS, chunk: int = 1024
                ) -> dict[str, float]:
    """Share of queries whose best right target ranks within k, for each k; the similarity
    matrix is built `chunk` query rows at a time, so memory stays flat as the set grows."""
    ranks = torch.cat([ranks_of_best_answer(queries[start:start + chunk] @ targets.T,
                                            query_groups[start:start + chunk], target_groups)
                       for start in range(0, len(queries), chunk)])
    return {f"recall@{k}": float((ranks < k).double().mean()) for k in ks}


def retrieval_pairs(urls: list[str], limit: int = 0) -> Iterator[tuple[bytes, str]]:
    """(image bytes, caption) of the shards' samples in order; samples lacking either are
    logged and skipped."""
    count = 0
    for sample in tar_samples(iter(urls), len(urls)):
        key = next((k for k in IMAGE_KEYS if k in sample), None)
        if key is None or "txt" not in sample:
            logger.warning("retrieval: skipped sample %s of %s (no image or no .txt)",
                           sample.get("__key__"), sample.get("__url__"))
            continue
        yield sample[key], sample["txt"].decode("utf-8", errors="replace").strip()
        count += 1
        if limit and count >= limit:
            return


def evaluate_retrieval(model: CLIP, tokenizer: TextTokenizer, spec: str, workdir: str = ".",
                       limit: int = 0, batch_size: int = 128, device: str = "cpu"
                       ) -> dict[str, Any]:
    """Recall@1/5/10 both ways on the shards of `spec` (first `limit` pairs; 0: all)."""
    try:
        urls = expand_shards(spec, workdir, split="val")
    except WitError:
        raise WitError(f"eval: no retrieval shard matches '{spec}'{relative_note(spec, workdir)}; "
                       f"pass --retrieval '' to skip retrieval") from None
    image_features, captions = encode_images(model, retrieval_pairs(urls, limit), batch_size,
                                             device, desc="retrieval")
    if not captions:
        raise WitError(f"eval: retrieval shards '{spec}' hold no (.jpg, .txt) pair")
    text_features = encode_texts(model, tokenizer, captions, batch_size, device)
    groups = caption_groups(captions)
    result = {"samples": len(captions), "distinct_captions": int(groups.max()) + 1,
              "image_to_text": recall_at_k(image_features, text_features, groups, groups),
              "text_to_image": recall_at_k(text_features, image_features, groups, groups)}
    logger.info("retrieval on %d pairs: image->text R@5 %.3f, text->image R@5 %.3f",
                len(captions), result["image_to_text"]["recall@5"],
                result["text_to_image"]["recall@5"])
    return result
