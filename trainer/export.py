"""`wit export`: a `wit train` checkpoint as an open_clip model folder.

    wit export --checkpoint runs/tiny/checkpoints/latest.pt --out exported/tiny

writes, in the layout open_clip reads from a folder (`local-dir:`) or the Hugging Face Hub:

    open_clip_config.json          {"model_cfg": ..., "preprocess_cfg": ...}
    open_clip_model.safetensors    the weights, under open_clip's names
    NAME.json                      the model config alone, for open_clip.add_model_config
    tokenizer.json, tokenizer_config.json   our BPE, when the run trained one (open_clip reads
                                   it through transformers); a run on CLIP's BPE needs none

    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:exported/tiny")
    tokenizer = open_clip.get_tokenizer("local-dir:exported/tiny")

The text tower maps one to one onto open_clip's TextTransformer. The image tower maps onto
open_clip's own VisionTransformer when it is a CLIP-style timm ViT (class token, pre-norm, exact
GELU; the `tiny` and `vit-b-32` presets), else onto open_clip's timm adapter when timm can build
it from its name alone (`tiny-cnn`); any other tower is refused, naming the preset. When
open_clip is installed the export is checked: open_clip's model must give our embeddings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from trainer.config import ExportConfig
from trainer.data import MEAN, STD
from trainer.model import CLIP
from trainer.tokenizer import END, PAD, START, TextTokenizer
from wit_builder.core import atomic
from wit_builder.core.options import WitError

logger = logging.getLogger(__name__)

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
TOLERANCE = 1e-5  # largest difference allowed between our embeddings and open_clip's


class NotExportable(WitError):
    """The model has a part open_clip cannot rebuild exactly."""


def text_config(clip: CLIP, tokenizer: TextTokenizer, tokenizer_dir: str) -> dict[str, Any]:
    config = clip.config
    text: dict[str, Any] = {
        "context_length": config.context_length, "vocab_size": config.vocab_size,
        "width": config.text_width, "heads": config.text_heads, "layers": config.text_layers,
        "mlp_ratio": config.mlp_ratio, "pad_id": tokenizer.pad_id}
    if tokenizer.source == "clip":
        text["pool_type"] = "argmax"  # CLIP's end token has the highest id, as open_clip expects
    else:
        # Our BPE: features are read at the first end token, whatever its id.
        text.update(pool_type="eos", eos_id=config.eot_token_id, hf_tokenizer_name=tokenizer_dir)
    return text


def vit_config(visual: nn.Module, preset: str) -> dict[str, Any] | None:
    """open_clip's VisionTransformer settings equal to a timm ViT, or None when it is no ViT;
    NotExportable when it is one open_clip's cannot reproduce."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer):
        return None
    block = visual.blocks[0]
    patch = visual.patch_embed
    checks = {
        "pools the class token": visual.global_pool == "token" and visual.has_class_token,
        "has no register tokens": visual.num_prefix_tokens == 1 and not visual.no_embed_class,
        "has no final norm after pooling": isinstance(visual.fc_norm, nn.Identity)
        and visual.attn_pool is None,
        "has a bias-free patch embedding": patch.proj.bias is None
        and isinstance(patch.norm, nn.Identity)
        and patch.proj.kernel_size == patch.proj.stride,
        "uses exact GELU": all(type(b.mlp.act) is nn.GELU and b.mlp.act.approximate == "none"
                               for b in visual.blocks),
        "has no layer scale or qk-norm": all(
            isinstance(b.ls1, nn.Identity) and isinstance(b.ls2, nn.Identity)
            and isinstance(b.attn.q_norm, nn.Identity) for b in visual.blocks),
        "uses LayerNorm with eps 1e-5": all(
            getattr(norm, "eps", None) == 1e-5 for b in visual.blocks
            for norm in (b.norm1, b.norm2)) and getattr(visual.norm, "eps", None) == 1e-5,
        "has a square input": patch.img_size[0] == patch.img_size[1],
    }
    failed = [what for what, ok in checks.items() if not ok]
    if failed:
        raise NotExportable(f"export: preset '{preset}': its ViT image tower has no exact "
                            f"open_clip equivalent (open_clip's ViT {failed[0]}; this one does "
                            f"not)")
    width = visual.embed_dim
    return {"image_size": patch.img_size[0], "patch_size": patch.proj.kernel_size[0],
            "width": width, "layers": len(visual.blocks),
            "head_width": width // block.attn.num_heads,
            "mlp_ratio": block.mlp.fc1.out_features / width,
            "no_ln_pre": isinstance(visual.norm_pre, nn.Identity)}


def vit_weights(state: dict[str, torch.Tensor], projection: torch.Tensor
                ) -> dict[str, torch.Tensor]:
    """timm ViT weights (`visual.` stripped) under open_clip's VisionTransformer names."""
    out = {"visual.class_embedding": state["cls_token"].reshape(-1),
           "visual.positional_embedding": state["pos_embed"][0],
           "visual.conv1.weight": state["patch_embed.proj.weight"],
           "visual.ln_post.weight": state["norm.weight"], "visual.ln_post.bias": state["norm.bias"],
           "visual.proj": projection.T}
    if "norm_pre.weight" in state:
        out["visual.ln_pre.weight"], out["visual.ln_pre.bias"] = (state["norm_pre.weight"],
                                                                  state["norm_pre.bias"])
    names = {"norm1": "ln_1", "norm2": "ln_2", "attn.qkv.weight": "attn.in_proj_weight",
             "attn.qkv.bias": "attn.in_proj_bias", "attn.proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    for key, value in state.items():
        if key.startswith("blocks."):
            out[f"visual.{resblock_name(key, names)}"] = value
    return out


def text_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our text tower (`text.` and `text_projection`) under open_clip's CLIP names."""
    out = {"text_projection": state["text_projection.weight"].T}
    names = {"attn.qkv.weight": "attn.in_proj_weight", "attn.qkv.bias": "attn.in_proj_bias",
             "attn.proj": "attn.out_proj", "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
    for key, value in state.items():
        if key.startswith("text."):
            key = key.removeprefix("text.")
            out[resblock_name(key, names) if key.startswith("blocks.") else key] = value
    return out


def resblock_name(key: str, names: dict[str, str]) -> str:
    """`blocks.I.REST` as open_clip's `transformer.resblocks.I.REST'`, the first prefix of REST
    found in `names` replaced by its open_clip name."""
    _, index, rest = key.split(".", 2)
    for ours, theirs in names.items():
        if rest.startswith(ours):
            rest = theirs + rest[len(ours):]
            break
    return f"transformer.resblocks.{index}.{rest}"


def open_clip_model(clip: CLIP, tokenizer: TextTokenizer, preset: str, tokenizer_dir: str = ""
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(open_clip model config, state dict under open_clip's names) of `clip`."""
    config = clip.config
    state = {key: value.detach().cpu().contiguous() for key, value in clip.state_dict().items()}
    visual = {key.removeprefix("visual."): value for key, value in state.items()
              if key.startswith("visual.")}
    vision = vit_config(clip.visual, preset)
    if vision is not None:
        weights = vit_weights(visual, state["image_projection.weight"])
    elif not config.image_kwargs:
        # open_clip's timm adapter builds the tower from its name; '' keeps timm's own pooling.
        vision = {"image_size": config.image_size, "timm_model_name": config.image_model,
                  "timm_pool": "", "timm_proj": "linear"}
        weights = {f"visual.trunk.{key}": value for key, value in visual.items()}
        weights["visual.head.proj.weight"] = state["image_projection.weight"]
    else:
        raise NotExportable(f"export: preset '{preset}': open_clip's timm adapter cannot pass "
                            f"image_kwargs {config.image_kwargs} to '{config.image_model}'; only "
                            f"ViT towers and timm models built from their name export")
    weights.update(text_weights(state))
    weights["logit_scale"] = state["logit_scale"]
    weights = {key: value.contiguous() for key, value in weights.items()}  # safetensors needs it
    model_cfg = {"embed_dim": config.embed_dim, "vision_cfg": vision,
                 "text_cfg": text_config(clip, tokenizer, tokenizer_dir)}
    return model_cfg, weights


def preprocess_config(clip: CLIP) -> dict[str, Any]:
    """Evaluation preprocessing as ours: shortest side to the image size, center crop, CLIP's
    mean and std."""
    return {"size": clip.config.image_size, "mean": list(MEAN), "std": list(STD),
            "interpolation": "bicubic", "resize_mode": "shortest"}


def export_tokenizer(tokenizer: TextTokenizer, out: Path) -> None:
    """Our BPE as a transformers fast tokenizer folder: tokenizer.json with the start and end
    tokens added around each caption, and tokenizer_config.json naming the special tokens."""
    from tokenizers import processors

    backend = tokenizer.backend.__class__.from_str(tokenizer.backend.to_str())  # a copy
    backend.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}",
        special_tokens=[(START, tokenizer.start_id), (END, tokenizer.end_id)])
    backend.no_padding()
    backend.no_truncation()
    atomic.write_text(out / "tokenizer.json", backend.to_str())
    atomic.write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": START, "eos_token": END,
        "pad_token": PAD, "model_max_length": tokenizer.context_length})


def check_with_open_clip(out: Path, clip: CLIP, tokenizer: TextTokenizer) -> float | None:
    """Largest difference between open_clip's embeddings of the exported folder and ours, on
    random images and a few captions (None when open_clip is not installed)."""
    try:
        import open_clip
    except ImportError:
        logger.warning("export: open_clip is not installed: the export was not checked")
        return None
    if not hasattr(open_clip.factory, "parse_model_name"):  # local-dir: came in open_clip 2.32
        logger.warning("export: open_clip %s cannot load model folders: the export was not "
                       "checked", getattr(open_clip, "__version__", "?"))
        return None
    try:
        theirs = open_clip.create_model(f"local-dir:{out}").eval()
    except (RuntimeError, ValueError, KeyError) as error:  # e.g. weights open_clip has no place for
        raise NotExportable(f"export: open_clip cannot load the exported model: "
                            f"{str(error).splitlines()[0]}") from None
    generator = torch.Generator().manual_seed(0)
    size = clip.config.image_size
    images = torch.randn(2, 3, size, size, generator=generator)
    tokens = tokenizer(["a red circle", "two dogs on a beach, seen from above"])
    with torch.no_grad():
        difference = max(
            float((theirs.encode_image(images, normalize=True)
                   - clip.encode_image(images)).abs().max()),
            float((theirs.encode_text(tokens, normalize=True)
                   - clip.encode_text(tokens)).abs().max()),
            float((theirs.logit_scale - clip.logit_scale).abs()))
    return difference


def export(checkpoint: str | Path, out: str | Path, name: str = "", check: bool = True
           ) -> dict[str, Any]:
    """Write the open_clip folder of `checkpoint` (a file or a run folder) to `out`; returns
    what was written: `name`, `files`, `difference` (None unchecked)."""
    from trainer.api import load_model
    from safetensors.torch import save_file

    loaded = load_model(checkpoint, stage="export")
    clip, tokenizer = loaded.model, loaded.tokenizer
    preset = str(loaded.train_config.get("model", "") or loaded.run_dir.name)
    name = name or f"witbuilder-{loaded.run_dir.name}"
    out = Path(out)
    tokenizer_dir = str(out.resolve())
    model_cfg, weights = open_clip_model(clip, tokenizer, preset, tokenizer_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / WEIGHTS_FILE) as temporary:
        save_file(weights, str(temporary), metadata={"format": "pt"})
    atomic.write_json(out / CONFIG_FILE, {"model_cfg": model_cfg,
                                          "preprocess_cfg": preprocess_config(clip)})
    atomic.write_json(out / f"{name}.json", model_cfg)
    files = [WEIGHTS_FILE, CONFIG_FILE, f"{name}.json"]
    if tokenizer.source != "clip":
        export_tokenizer(tokenizer, out)
        files += ["tokenizer.json", "tokenizer_config.json"]
    else:  # an earlier export of another run left its tokenizer: not this model's
        for stale in ("tokenizer.json", "tokenizer_config.json"):
            (out / stale).unlink(missing_ok=True)
    try:
        difference = check_with_open_clip(out, clip, tokenizer) if check else None
    except NotExportable:
        (out / WEIGHTS_FILE).unlink(missing_ok=True)
        raise
    if difference is not None and difference > TOLERANCE:
        (out / WEIGHTS_FILE).unlink(missing_ok=True)
        raise NotExportable(f"export: preset '{preset}': open_clip's rebuild of this model differs "
                            f"from it by {difference:.2e} (> {TOLERANCE}); not exported")
    return {"name": name, "out": str(out), "files": files, "difference": difference,
            "step": loaded.step}


def run(config: ExportConfig) -> int:
    """Entry point of `wit export`."""
    if not config.out:
        raise WitError("export: --out DIR is required (the folder open_clip will load)")
    result = export(config.path(config.checkpoint), config.path(config.out), config.name,
                    config.check)
    checked = ("not checked against open_clip" if result["difference"] is None
               else f"open_clip gives the same embeddings (max difference "
                    f"{result['difference']:.1e})")
    print(f"exported step {result['step']} to {result['out']}: {', '.join(result['files'])}; "
          f"{checked}\n  open_clip.create_model_and_transforms('local-dir:{result['out']}')")
    return 0
