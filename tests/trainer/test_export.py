"""`wit export` and the Python API: open_clip rebuilds our trained models with the same image and
text embeddings (1e-5), through `local-dir:` and `add_model_config`, with their tokenizers; what
it cannot rebuild is refused by name; the README's zero-shot example runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

import witbuilder
from support.trainer_data import draw_shape, tiny_train_config, write_shape_shards
from trainer.train import run
from trainer.zeroshot import class_embeddings
from wit_builder.cli import main

open_clip = pytest.importorskip("open_clip")

README = Path(__file__).resolve().parents[2] / "README.md"
TEXTS = ["a red circle", "  Two  BLUE squares,\tside by side ", "émoji 🐶 on a beach",
         "a very long caption " * 30]
CNN_PRESET = """\
[model]
embed_dim = 32
image_model = "resnet10t"
image_size = 32
context_length = 77
text_width = 32
text_layers = 1
text_heads = 2

[train]
vocab_size = 300
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Three briefly trained runs: the test ViT with its own BPE (`tiny`), the same with CLIP's
    BPE (`clip`), and a small timm ResNet (`cnn`)."""
    workdir = tmp_path_factory.mktemp("export")
    write_shape_shards(workdir / "shards", shards=1, per_shard=32, size=32)
    (workdir / "cnn.toml").write_text(CNN_PRESET)
    for name, extra in (("tiny", {}), ("clip", {"tokenizer": "clip"}),
                        ("cnn", {"model": str(workdir / "cnn.toml"), "batch_size": 8})):
        assert run(tiny_train_config(workdir, steps=2, checkpoint_every=2, name=name,
                                     **extra)) == 0
    return workdir


def photo(path: Path, size: int = 48) -> Path:
    """A square PNG (square: open_clip's resize-then-crop and our crop-then-resize agree)."""
    import random

    draw_shape("red", "circle", size, random.Random(1)).save(path)
    return path


def test_open_clip_loads_the_export_and_gives_our_embeddings(workdir, tmp_path, capsys):
    assert main(["export", "--workdir", str(workdir), "--checkpoint", "runs/tiny",
                 "--out", "exported/tiny"]) == 0
    assert "same embeddings" in capsys.readouterr().out
    out = workdir / "exported" / "tiny"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    model.eval()
    ours = witbuilder.load_model(workdir / "runs" / "tiny")
    image = Image.open(photo(tmp_path / "photo.png"))
    torch.testing.assert_close(preprocess(image), ours.preprocess(image), atol=1e-5, rtol=0)
    with torch.no_grad():
        theirs_image = model.encode_image(preprocess(image)[None], normalize=True)
        theirs_text = model.encode_text(ours.tokenizer(TEXTS), normalize=True)
    torch.testing.assert_close(theirs_image, ours.encode_image([image]), atol=1e-5, rtol=0)
    torch.testing.assert_close(theirs_text, ours.encode_text(TEXTS), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.logit_scale.detach(), ours.model.logit_scale.detach())
    config = json.loads((out / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["patch_size"] == 8  # open_clip's own ViT
    assert config["model_cfg"]["text_cfg"]["pool_type"] == "eos"


def test_exported_bpe_tokenizer_gives_our_token_ids_in_open_clip(workdir):
    pytest.importorskip("transformers")
    out = workdir / "exported" / "tiny-tokenizer"
    witbuilder.export_open_clip(workdir / "runs" / "tiny", out)
    theirs = open_clip.get_tokenizer(f"local-dir:{out}")
    ours = witbuilder.load_model(workdir / "runs" / "tiny").tokenizer
    assert torch.equal(theirs(TEXTS), ours(TEXTS))


def test_clip_tokenizer_run_loads_by_name_with_add_model_config(workdir):
    out = workdir / "exported" / "clip"
    result = witbuilder.export_open_clip(workdir / "runs" / "clip", out, name="wit-test-clip")
    assert "tokenizer.json" not in result["files"]  # open_clip's own tokenizer is CLIP's BPE
    open_clip.add_model_config(out / "wit-test-clip.json")
    model, _, _ = open_clip.create_model_and_transforms(
        "wit-test-clip", pretrained=str(out / "open_clip_model.safetensors"))
    tokenizer = open_clip.get_tokenizer("wit-test-clip")
    ours = witbuilder.load_model(workdir / "runs" / "clip" / "checkpoints" / "latest.pt")
    assert torch.equal(tokenizer(TEXTS), ours.tokenizer(TEXTS))
    with torch.no_grad():
        theirs = model.eval().encode_text(tokenizer(TEXTS), normalize=True)
    torch.testing.assert_close(theirs, ours.encode_text(TEXTS), atol=1e-5, rtol=0)


def test_a_timm_cnn_tower_exports_through_open_clips_timm_adapter(workdir, tmp_path):
    out = tmp_path / "cnn"
    result = witbuilder.export_open_clip(workdir / "runs" / "cnn", out)
    assert result["difference"] is not None and result["difference"] <= 1e-5
    vision = json.loads((out / "open_clip_config.json").read_text())["model_cfg"]["vision_cfg"]
    assert vision["timm_model_name"] == "resnet10t"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    ours = witbuilder.load_model(workdir / "runs" / "cnn")
    image = Image.open(photo(tmp_path / "photo.png"))
    with torch.no_grad():
        theirs = model.eval().encode_image(preprocess(image)[None], normalize=True)
    torch.testing.assert_close(theirs, ours.encode_image([image]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("model, said", [
    ('image_model = "vit_base_patch32_clip_224"\nimage_kwargs = { img_size = 32, patch_size = 8, '
     'embed_dim = 32, depth = 1, num_heads = 2, global_pool = "avg" }', "pools the class token"),
    ('image_model = "resnet10t"\nimage_kwargs = { stem_width = 16 }', "image_kwargs"),
])
def test_a_tower_open_clip_cannot_rebuild_is_refused_naming_the_preset(tmp_path, capsys, model,
                                                                       said):
    write_shape_shards(tmp_path / "shards", shards=1, per_shard=8, size=32)
    preset = tmp_path / "odd.toml"
    preset.write_text(f"[model]\nembed_dim = 32\n{model}\nimage_size = 32\ntext_width = 32\n"
                      f"text_layers = 1\ntext_heads = 2\n\n[train]\nvocab_size = 300\n")
    assert run(tiny_train_config(tmp_path, model=str(preset), steps=1, batch_size=4,
                                 name="odd")) == 0
    status = main(["export", "--workdir", str(tmp_path), "--checkpoint", "runs/odd",
                   "--out", "exported"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert status != 0 and "odd.toml" in error and said in error
    assert not (tmp_path / "exported" / "open_clip_model.safetensors").exists()


def test_load_model_takes_a_run_folder_or_a_checkpoint_and_names_its_parts(workdir, tmp_path):
    by_run = witbuilder.load_model(workdir / "runs" / "tiny")
    by_file = witbuilder.load_model(workdir / "runs" / "tiny" / "checkpoints" / "latest.pt")
    assert by_run.path == by_file.path and by_run.step == 2
    assert by_run.config.image_size == 32 and by_run.train_config["name"] == "tiny"
    image = Image.open(photo(tmp_path / "photo.png"))
    batch = torch.stack([by_run.preprocess(image)] * 2)
    assert batch.shape == (2, 3, 32, 32)
    torch.testing.assert_close(by_run.encode_image(batch)[0], by_file.encode_image([image])[0])
    features = by_run.encode_text(["a red circle", "a blue square"])
    assert features.shape == (2, by_run.config.embed_dim)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(2))
    weights = by_run.classifier(["red circle", "blue square"], ["a {c}.", "the {c} here"])
    expected = class_embeddings(by_run.model, by_run.tokenizer, ["red circle", "blue square"],
                                ["a {}.", "the {} here"], 8, "cpu")
    torch.testing.assert_close(weights, expected)


def readme_zero_shot_example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("Zero-shot in ten lines")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_the_readme_zero_shot_example_runs_as_written(workdir, tmp_path, monkeypatch):
    code = readme_zero_shot_example()
    assert len(code.strip().splitlines()) <= 10
    (tmp_path / "runs").symlink_to(workdir / "runs")
    draw_shape("red", "circle", 64, __import__("random").Random(3)).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["red circle", "blue square",
                                                      "green triangle"]
    assert sum(float(line.split(": ")[1]) for line in lines) == pytest.approx(1, abs=0.02)


def test_export_without_out_or_checkpoint_says_what_to_pass(tmp_path, capsys):
    assert main(["export", "--workdir", str(tmp_path), "--checkpoint", "runs/none"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    assert main(["export", "--workdir", str(tmp_path), "--checkpoint", "runs/none",
                 "--out", "x"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("wit export: export: checkpoint") and "runs/none" in error

