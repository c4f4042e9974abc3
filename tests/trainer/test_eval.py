"""`wit eval` and the trainer's --eval-every: zero-shot accuracy with prompt ensembling, retrieval
recall@k, and the results in the run's metrics.jsonl."""

from __future__ import annotations

import json
import random

import pytest
import torch
import webdataset as wds
from PIL import Image

from trainer.evaluate import evaluate_checkpoint, load_model
from trainer.retrieval import caption_groups, recall_at_k
from trainer.train import run
from trainer.zeroshot import (DEFAULT_TEMPLATES, accuracy_table, choose_templates,
                              class_embeddings, encode_texts, ensemble, eval_pixels,
                              open_labelled_set, read_templates)
from support.trainer_data import (COLOURS_USED, SHAPES, draw_shape, jpeg_bytes, tiny_train_config,
                              write_shape_shards)
from wit_builder.cli import main
from wit_builder.core.options import WitError

STEPS, EVAL_EVERY = 60, 30


def colour_samples(count: int, seed: int) -> list[tuple[bytes, int]]:
    """Held-out renders (their own seed) labelled by colour, shapes varied."""
    rng = random.Random(seed)
    return [(jpeg_bytes(draw_shape(COLOURS_USED[i % len(COLOURS_USED)], rng.choice(SHAPES), 40,
                                   rng)), i % len(COLOURS_USED)) for i in range(count)]


def write_webdataset_set(directory, samples, templates=True):
    directory.mkdir(parents=True)
    with wds.TarWriter(str(directory / "shard-000000.tar")) as writer:
        for index, (data, label) in enumerate(samples):
            writer.write({"__key__": f"{index:04d}", "jpg": data, "cls": str(label)})
    (directory / "classnames.txt").write_text("\n".join(COLOURS_USED) + "\n")
    if templates:
        (directory / "templates.txt").write_text("".join(f"a {{}} {s}\n" for s in SHAPES))
    return directory


def write_folder_set(directory, samples):
    for index, (data, label) in enumerate(samples):
        folder = directory / COLOURS_USED[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:04d}.jpg").write_bytes(data)
    (directory / "templates.txt").write_text("".join(f"a {{}} {s}\n" for s in SHAPES))
    return directory


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A test-preset CLIP trained briefly on captioned shapes, evaluating itself every 30 steps
    on a held-out colour set."""
    workdir = tmp_path_factory.mktemp("eval")
    write_shape_shards(workdir / "shards", shards=2, per_shard=64, size=40)
    write_webdataset_set(workdir / "colour", colour_samples(60, seed=99))
    config = tiny_train_config(workdir, steps=STEPS, batch_size=32, warmup=5, log_every=10,
                               checkpoint_every=STEPS, eval_every=EVAL_EVERY,
                               eval_zeroshot=["colour"], eval_retrieval="shards/train-000001.tar",
                               eval_retrieval_samples=40)
    assert run(config) == 0
    return workdir


def metrics_lines(workdir):
    path = workdir / "runs" / "test" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_zeroshot_of_a_briefly_trained_model_beats_chance_clearly_on_colour(workdir):
    results = evaluate_checkpoint("runs/test/checkpoints/latest.pt", ["colour"], workdir=workdir)
    colour = results["zeroshot"]["colour"]
    assert results["step"] == STEPS and colour["classes"] == 6 and colour["samples"] == 60
    assert colour["chance"] == pytest.approx(1 / 6)
    assert colour["top1"] >= 3 * colour["chance"], colour
    assert colour["top5"] >= colour["top1"] and colour["templates"] == len(SHAPES)
    assert set(colour["per_class"]) == set(COLOURS_USED)
    assert all(row["samples"] == 10 for row in colour["per_class"].values())


def test_ensembling_is_the_renormalised_mean_of_normalised_prompt_embeddings():
    prompts = torch.tensor([[[3.0, 0.0], [0.0, 4.0]],     # class 0: two prompts
                            [[-1.0, 0.0], [-10.0, 0.0]]])  # class 1
    expected = torch.tensor([[0.5 ** 0.5, 0.5 ** 0.5], [-1.0, 0.0]])
    torch.testing.assert_close(ensemble(prompts), expected)
    # A plain mean of the raw embeddings would lean towards the longer one: (0.6, 0.8).
    assert not torch.allclose(ensemble(prompts)[0], torch.tensor([0.6, 0.8]))


def test_class_embeddings_average_every_template_of_each_class_by_hand(workdir):
    model, tokenizer, _ = load_model(workdir / "runs/test/checkpoints/latest.pt")
    classes, templates = ["red", "blue", "green"], ["a {} circle", "a {} cross", "{}"]
    computed = class_embeddings(model, tokenizer, classes, templates, batch_size=4, device="cpu")
    for row, name in enumerate(classes):
        single = [encode_texts(model, tokenizer, [t.format(name)], 1, "cpu")[0]
                  for t in templates]
        mean = torch.stack([s / s.norm() for s in single]).mean(dim=0)
        torch.testing.assert_close(computed[row], mean / mean.norm(), atol=1e-5, rtol=1e-5)


def test_image_folder_and_webdataset_inputs_give_the_same_numbers(workdir, tmp_path):
    samples = colour_samples(24, seed=5)
    write_webdataset_set(tmp_path / "tars", samples)
    write_folder_set(tmp_path / "folder", samples)
    folder = open_labelled_set(tmp_path / "folder")
    assert folder.classnames == sorted(COLOURS_USED) and not folder.shards
    checkpoint = workdir / "runs/test/checkpoints/latest.pt"
    # The folder orders classes by name; give the shards the same order to compare per class.
    sorted_samples = [(data, sorted(COLOURS_USED).index(COLOURS_USED[label]))
                      for data, label in samples]
    write_webdataset_set(tmp_path / "sorted", sorted_samples)
    (tmp_path / "sorted" / "classnames.txt").write_text("\n".join(sorted(COLOURS_USED)) + "\n")
    results = evaluate_checkpoint(checkpoint, [tmp_path / "folder", tmp_path / "sorted"])
    from_folder, from_tars = results["zeroshot"]["folder"], results["zeroshot"]["sorted"]
    assert from_folder == from_tars
    unsorted = evaluate_checkpoint(checkpoint, [tmp_path / "tars"])["zeroshot"]["tars"]
    assert unsorted["top1"] == from_folder["top1"] and unsorted["top5"] == from_folder["top5"]


def test_top5_only_with_five_classes_and_per_class_accuracy_by_hand():
    classes = torch.eye(3)
    images = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0.9, 0.1], [1.0, 0, 0]])
    labels = torch.tensor([0, 1, 2, 2])
    table = accuracy_table(images, labels, classes, ["a", "b", "c"])
    assert table["top1"] == 0.5 and "top5" not in table and table["chance"] == 1 / 3
    assert table["per_class"] == {"a": {"samples": 1, "top1": 1.0},
                                  "b": {"samples": 1, "top1": 1.0},
                                  "c": {"samples": 2, "top1": 0.0}}
    five = accuracy_table(torch.eye(5)[[1, 2]], torch.tensor([1, 0]), torch.eye(5), list("abcde"))
    assert five["top1"] == 0.5 and five["top5"] == 1.0  # five classes: all are in the top 5


def test_recall_at_k_matches_a_hand_made_similarity_matrix():
    # Queries (rows) against targets (columns); the right target of row i is column i.
    similarity = torch.tensor([[0.9, 0.1, 0.2, 0.3],    # rank 0
                               [0.8, 0.5, 0.1, 0.0],    # rank 1
                               [0.4, 0.5, 0.1, 0.6],    # rank 3
                               [0.0, 0.1, 0.2, 0.3]])   # rank 0
    groups = torch.arange(4)
    recalls = recall_at_k(similarity, torch.eye(4), groups, groups, ks=(1, 2, 4))
    assert recalls == {"recall@1": 0.5, "recall@2": 0.75, "recall@4": 1.0}
    # Built a row at a time, the same.
    assert recall_at_k(similarity, torch.eye(4), groups, groups, ks=(1, 2, 4), chunk=1) == recalls
    # Rows 1 and 2 share a caption: column 1 answers row 2 as well (its rank falls to 1).
    shared = caption_groups(["a", "b", "b", "c"])
    assert shared.tolist() == [0, 1, 1, 2]
    assert recall_at_k(similarity, torch.eye(4), shared, shared, ks=(1, 2)) == \
        {"recall@1": 0.5, "recall@2": 1.0}


def test_eval_crops_the_center_square_of_a_wide_image():
    image = Image.new("RGB", (90, 30), (255, 0, 0))
    image.paste((0, 255, 0), (30, 0, 60, 30))  # the middle third is green
    image.paste((0, 0, 255), (60, 0, 90, 30))
    buffer = __import__("io").BytesIO()
    image.save(buffer, format="PNG")
    pixels = eval_pixels(buffer.getvalue(), 16)
    assert pixels.shape == (3, 16, 16) and pixels.dtype == torch.uint8
    assert pixels[1].float().mean() > 240 and pixels[0].float().mean() < 15


def test_templates_come_from_the_file_option_then_the_set_then_our_defaults(tmp_path):
    own = open_labelled_set(write_webdataset_set(tmp_path / "own", colour_samples(6, 1)))
    bare = open_labelled_set(write_webdataset_set(tmp_path / "bare", colour_samples(6, 1),
                                                  templates=False))
    given = tmp_path / "prompts.txt"
    given.write_text("a photo of {}\n\n{} things\n")
    assert choose_templates(own, given) == ["a photo of {}", "{} things"]
    assert choose_templates(own, None) == [f"a {{}} {shape}" for shape in SHAPES]
    assert choose_templates(bare, None) == list(DEFAULT_TEMPLATES)
    given.write_text("no placeholder\n")
    with pytest.raises(WitError, match="needs exactly one"):
        choose_templates(own, given)


def test_wit_eval_prints_a_table_and_appends_one_line_per_evaluation(workdir, capsys):
    before = metrics_lines(workdir)
    options = ["eval", "--workdir", str(workdir), "--checkpoint", "runs/test/latest.pt",
               "--zeroshot", "colour", "--retrieval", "shards/train-*.tar"]
    assert main(options) == 0
    assert main(options + ["--retrieval", ""]) == 0
    lines = metrics_lines(workdir)
    assert lines[:len(before)] == before and len(lines) == len(before) + 2
    first, second = lines[-2]["eval"], lines[-1]["eval"]
    assert lines[-1]["step"] == STEPS and "loss" not in lines[-1]
    assert first["zeroshot"]["colour"]["top1"] == second["zeroshot"]["colour"]["top1"]
    assert first["retrieval"]["samples"] == 128 and "retrieval" not in second
    for direction in ("image_to_text", "text_to_image"):
        recalls = first["retrieval"][direction]
        assert 0 < recalls["recall@1"] <= recalls["recall@5"] <= recalls["recall@10"] <= 1
    printed = capsys.readouterr().out
    assert "colour" in printed and "image->text" in printed and "x chance" in printed


def test_trainer_evaluates_every_n_steps_into_metrics(workdir):
    evals = [line for line in metrics_lines(workdir)[:STEPS // 10 + 2] if "eval" in line]
    assert [line["step"] for line in evals] == [EVAL_EVERY, 2 * EVAL_EVERY]
    assert all(set(line["eval"]) >= {"zeroshot", "retrieval"} for line in evals)
    assert evals[-1]["eval"]["zeroshot"]["colour"]["top1"] >= 3 / 6
    # The shard holds 64 pairs; --eval-retrieval-samples 40 bounds what rank 0 reads.
    assert evals[-1]["eval"]["retrieval"]["samples"] == 40


def test_retrieval_reads_exactly_the_sample_limit_and_zero_reads_all(workdir):
    from trainer.config import EvalConfig, TrainConfig

    assert EvalConfig().retrieval_samples == 5000 and TrainConfig().eval_retrieval_samples == 5000
    options = ["eval", "--workdir", str(workdir), "--checkpoint", "runs/test/latest.pt",
               "--zeroshot", "colour", "--retrieval", "shards/train-*.tar"]
    assert main(options + ["--retrieval-samples", "100"]) == 0
    assert main(options + ["--retrieval-samples", "0"]) == 0
    bounded, everything = (line["eval"]["retrieval"] for line in metrics_lines(workdir)[-2:])
    assert bounded["samples"] == 100 and everything["samples"] == 128


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "--workdir", str(tmp_path), "--checkpoint", "runs/x/latest.pt",
                 "--retrieval", ""]) == 2
    assert "checkpoint 'runs/x/latest.pt' does not exist" in capsys.readouterr().err.replace(
        str(tmp_path) + "/", "")


def test_empty_or_unlabelled_sets_are_clear_errors(workdir, tmp_path):
    checkpoint = workdir / "runs/test/checkpoints/latest.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(WitError, match="holds no shard .* and no image"):
        evaluate_checkpoint(checkpoint, [tmp_path / "empty"])
    no_samples = write_webdataset_set(tmp_path / "no-samples", [])
    with pytest.raises(WitError, match="holds no sample"):
        evaluate_checkpoint(checkpoint, [no_samples])
    unnamed = write_webdataset_set(tmp_path / "unnamed", colour_samples(3, 1))
    (unnamed / "classnames.txt").unlink()
    with pytest.raises(WitError, match="no classnames.txt"):
        evaluate_checkpoint(checkpoint, [unnamed])
    with pytest.raises(WitError, match="no retrieval shard matches"):
        evaluate_checkpoint(checkpoint, [], str(tmp_path / "none-*.tar"))
    with pytest.raises(WitError, match="nothing to evaluate"):
        evaluate_checkpoint(checkpoint)


def write_synset_folder_set(directory, samples, classnames=None):
    """ImageNet's layout: one WordNet-id folder per class (ids in sorted colour order)."""
    order = sorted(COLOURS_USED)
    for index, (data, label) in enumerate(samples):
        folder = directory / f"n{order.index(COLOURS_USED[label]):08d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:04d}.jpg").write_bytes(data)
    (directory / "templates.txt").write_text("".join(f"a {{}} {s}\n" for s in SHAPES))
    if classnames is not None:
        (directory / "classnames.txt").write_text(classnames)
    return directory


def test_synset_folders_are_named_by_classnames_txt_in_either_layout(workdir, tmp_path):
    samples = colour_samples(24, seed=5)
    order = sorted(COLOURS_USED)
    write_folder_set(tmp_path / "named", samples)
    # One name a line in folder order (open_clip's IMAGENET_CLASSNAMES), or ImageNet's
    # LOC_synset_mapping.txt: 'ID name, synonym' lines in any order.
    write_synset_folder_set(tmp_path / "ordered", samples, "".join(f"{c}\n" for c in order))
    mapping = "".join(f"n{i:08d} {c}, {c}dish hue\n" for i, c in enumerate(order))
    write_synset_folder_set(tmp_path / "mapped", samples, "\n".join(
        reversed(mapping.splitlines())))
    assert open_labelled_set(tmp_path / "mapped").classnames == order
    checkpoint = workdir / "runs/test/checkpoints/latest.pt"
    results = evaluate_checkpoint(checkpoint, [tmp_path / name
                                               for name in ("named", "ordered", "mapped")])
    named = results["zeroshot"]["named"]
    assert named["top1"] > 2 * named["chance"]
    assert results["zeroshot"]["ordered"] == named == results["zeroshot"]["mapped"]


def test_synset_folders_without_classnames_are_refused_saying_what_to_add(tmp_path):
    write_synset_folder_set(tmp_path / "ids", colour_samples(6, seed=1))
    with pytest.raises(WitError, match="WordNet-id class folders .*add one"):
        open_labelled_set(tmp_path / "ids")
    write_synset_folder_set(tmp_path / "short", colour_samples(6, seed=1), "red\ngreen\n")
    with pytest.raises(WitError, match="lists 2 names for 6 class folders"):
        open_labelled_set(tmp_path / "short")


def test_underscores_in_class_names_become_spaces(tmp_path):
    for folder in ("light_pink", "dark_blue"):
        (tmp_path / "folders" / folder).mkdir(parents=True)
        draw_shape("red", "circle", 16, random.Random(0)).save(tmp_path / "folders" / folder /
                                                               "a.png")
    assert open_labelled_set(tmp_path / "folders").classnames == ["dark blue", "light pink"]
    shards = write_webdataset_set(tmp_path / "shards", colour_samples(6, 1))
    (shards / "classnames.txt").write_text("sky_blue\nlight_pink\n" + "x\n" * 4)
    assert open_labelled_set(shards).classnames[:2] == ["sky blue", "light pink"]


def test_templates_in_open_clips_styles_read_without_running_them(tmp_path):
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    as_lambdas = tmp_path / "templates.py"
    as_lambdas.write_text("TEMPLATES = (\n    lambda c: f'a photo of a {c}.',\n"
                          "    lambda c: f'itap of {{my}} {c}.',\n"
                          "    lambda c: 'a drawing of a {}.'.format(c),\n)\n")
    as_text = tmp_path / "templates.txt"
    as_text.write_text("a photo of a {c}.\nitap of {{my}} {}.\na drawing of a {c}.\n")
    as_list = tmp_path / "clip_notebook.py"
    as_list.write_text("templates = [\n    'a photo of a {}.',\n    'itap of {{my}} {}.',\n"
                       "    'a drawing of a {}.',\n]\n")
    expected = ["a photo of a {}.", "itap of {{my}} {}.", "a drawing of a {}."]
    for path in (as_lambdas, as_text, as_list):
        assert read_templates(path) == expected
    assert read_templates("openai_imagenet") == [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    assert len(read_templates("openai_imagenet")) == 80
    assert read_templates("simple_imagenet") == [t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]
    marker = tmp_path / "ran"
    for body in (f"__import__('os').system('touch {marker}') or c",
                 f"f'{{open(\"{marker}\", \"w\").write(c)}}'", "f'a {c!r}'"):
        hostile = tmp_path / "hostile.py"
        hostile.write_text(f"T = [lambda c: {body}]\n")
        with pytest.raises(WitError, match="only `lambda c: f'...{c}...'` templates are read"):
            read_templates(hostile)
    assert not marker.exists()
    with pytest.raises(WitError, match="open_clip's sets: openai_imagenet, simple_imagenet"):
        read_templates("imagenet_templates")


def test_wit_eval_takes_an_open_clip_template_set_by_name(workdir, capsys):
    options = ["eval", "--workdir", str(workdir), "--checkpoint", "runs/test",
               "--zeroshot", "colour", "--retrieval", "", "--templates", "simple_imagenet",
               "--no-metrics"]
    assert main(options) == 0
    assert "colour" in capsys.readouterr().out
