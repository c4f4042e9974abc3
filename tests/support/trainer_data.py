"""Small WebDataset shards of coloured shapes with captions that say what they show, for the
trainer's tests and benchmark: a tiny CLIP can learn them, so its loss falls clearly."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from pathlib import Path

import webdataset as wds
from PIL import Image, ImageDraw

from wit_builder.synthweb.concepts import COLOURS

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS_USED = ("red", "green", "blue", "yellow", "purple", "black")


def draw_shape(colour: str, shape: str, size: int, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (size, size), (200 + rng.randrange(40),) * 3)
    draw = ImageDraw.Draw(image)
    side = rng.uniform(0.45, 0.7) * size
    left, top = rng.uniform(0, size - side), rng.uniform(0, size - side)
    box = (left, top, left + side, top + side)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(left, top + side), (left + side / 2, top), (left + side, top + side)],
                     fill=fill)
    else:
        bar = side / 3
        draw.rectangle((left, top + bar, left + side, top + 2 * bar), fill=fill)
        draw.rectangle((left + bar, top, left + 2 * bar, top + side), fill=fill)
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def shape_sample(index: int, size: int, rng: random.Random) -> dict:
    colour, shape = rng.choice(COLOURS_USED), rng.choice(SHAPES)
    caption = f"a {colour} {shape}"
    return {"__key__": f"{index:08d}", "jpg": jpeg_bytes(draw_shape(colour, shape, size, rng)),
            "txt": caption, "json": json.dumps({"uid": f"{index:08d}", "caption": caption})}


def synthweb_sample(index: int, size: int, rng: random.Random) -> dict:
    """A scene of the synthetic web (wit_builder.synthweb.render) and its English caption."""
    from wit_builder.synthweb.render import caption, encode, render, sample_scene

    scene = sample_scene(rng)
    text = caption(scene, rng)
    return {"__key__": f"{index:08d}", "jpg": encode(render(scene, size, rng), "jpeg"),
            "txt": text, "json": json.dumps({"uid": f"{index:08d}", **scene.as_dict()})}


def write_shape_shards(directory: Path, shards: int = 2, per_shard: int = 64, size: int = 48,
                       seed: int = 0, corrupt: tuple[int, ...] = (),
                       scenes: str = "shapes") -> list[Path]:
    """`shards` tar files of `per_shard` samples (simple `shapes`, or `synthweb` scenes); sample
    indices in `corrupt` get broken JPEGs."""
    make_sample = synthweb_sample if scenes == "synthweb" else shape_sample
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for shard in range(shards):
        path = directory / f"train-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as writer:
            for offset in range(per_shard):
                index = shard * per_shard + offset
                sample = make_sample(index, size, rng)
                if index in corrupt:
                    sample["jpg"] = sample["jpg"][:40] + b"\x00garbage" * 8
                writer.write(sample)
        paths.append(path)
    return paths


# A CLIP smaller than the `tiny` preset: a step takes milliseconds on one core.
TEST_PRESET = """\
[model]
embed_dim = 64
image_model = "vit_base_patch32_clip_224"
image_size = 32
image_kwargs = { img_size = 32, patch_size = 8, embed_dim = 64, depth = 2, num_heads = 2 }
context_length = 77
text_width = 64
text_layers = 2
text_heads = 2

[train]
vocab_size = 300
"""


def write_test_preset(directory: Path) -> Path:
    path = directory / "test-model.toml"
    path.write_text(TEST_PRESET)
    return path


def tiny_train_config(workdir: Path, **overrides):
    """A TrainConfig for the test preset: one thread, small batches, metrics every step."""
    from wit_builder.cli import load_config

    values = {"workdir": str(workdir), "model": str(write_test_preset(workdir)),
              "train": "shards/train-*.tar", "batch_size": 16, "steps": 20, "lr": 2e-3,
              "warmup": 5, "workers": 0, "shuffle": 64, "threads": 1, "log_every": 1,
              "checkpoint_every": 10, "name": "test"}
    return load_config("train", None, {**values, **overrides})


def train_options(config) -> list[str]:
    """The `wit train` command-line options that give `config` (those it was given, so that a
    preset's defaults apply to the rest exactly as they did in process)."""
    options = []
    for item in dataclasses.fields(config):
        if item.name not in config.explicit:
            continue
        name, value = item.name, getattr(config, item.name)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            options.append(flag if value else "--no-" + flag[2:])
        else:
            options += [flag, str(value)]
    return options


def build_test_clip(preset: Path):
    """The test preset's CLIP for a 300-token vocabulary whose end token is 2."""
    from trainer.model import CLIP, load_preset

    model_config, _ = load_preset(str(preset))
    model_config.vocab_size, model_config.eot_token_id = 300, 2
    return CLIP(model_config)


def ddp_update(out: Path, batch: int = 8) -> None:
    """One training step of the test model on a fixed global batch of 2 * `batch` samples, split
    over the ranks of the process group (or whole in a lone process); the loss, gradients and
    updated weights of every loss variant are saved by rank 0 to `out`. The test model's preset
    must be in out's directory (written once, before the processes start)."""
    import contextlib

    import torch

    from trainer.config import TrainConfig
    from trainer.loss import ClipLoss
    from trainer.train import (backward_scale, build_optimizer, global_mean, setup_distributed,
                               training_step)

    torch.set_num_threads(1)
    ddp = setup_distributed("cpu")
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2 * batch, 3, 32, 32), generator=generator, dtype=torch.uint8)
    tokens = torch.randint(3, 300, (2 * batch, 12), generator=generator)
    tokens[:, 0], tokens[:, 11] = 1, 2
    share = 2 * batch // ddp.world_size
    mine = slice(ddp.rank * share, (ddp.rank + 1) * share)
    results = {}
    for gather_with_grad, local_loss in ((True, True), (True, False), (False, False)):
        torch.manual_seed(0)
        clip = build_test_clip(out.parent / "test-model.toml")
        model = clip
        if ddp.world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(clip)
        # Adam's first step is lr * g / (|g| + eps), a sign function of tiny gradients under the
        # default eps; a larger eps makes the update a smooth function of the gradient, so float
        # noise in near-zero gradients cannot flip it.
        config = TrainConfig(lr=2e-3, eps=1e-3, gather_with_grad=gather_with_grad,
                             local_loss=local_loss)
        optimizer = build_optimizer(clip, config, "cpu")
        loss = training_step(model, clip, ClipLoss(local_loss, gather_with_grad), optimizer,
                             images[mine], tokens[mine], contextlib.nullcontext(),
                             config.grad_clip, backward_scale(config, ddp.world_size))
        results[f"{gather_with_grad}-{local_loss}"] = {
            "loss": global_mean(loss, ddp),
            "grads": {n: p.grad.clone() for n, p in clip.named_parameters()},
            "params": {n: p.detach().clone() for n, p in clip.named_parameters()}}
    if ddp.is_main:
        torch.save(results, out)
    if ddp.world_size > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    import sys

    ddp_update(Path(sys.argv[1]))
