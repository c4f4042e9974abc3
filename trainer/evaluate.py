"""`wit eval`: zero-shot accuracy and retrieval recall@k of a checkpoint, printed as a table and
appended to the run's metrics.jsonl.

    wit eval --checkpoint runs/tiny/checkpoints/latest.pt \\
        --zeroshot data/synthweb/zeroshot/shape --zeroshot data/synthweb/zeroshot/colour \\
        --retrieval 'data/shards/val-*.tar'

The model preset and the tokenizer come from the checkpoint and its run directory; images are
resized and center-cropped to the model's image size and normalised as in training.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from trainer.checkpoint import load_checkpoint
from trainer.config import EvalConfig, require_local_workdir
from trainer.data import expand_shards, relative_note
from trainer.model import CLIP, ModelConfig
from trainer.retrieval import evaluate_retrieval
from trainer.tokenizer import TextTokenizer, clip_tokenizer, load_bpe
from trainer.device import pick_device
from trainer.zeroshot import choose_templates, evaluate_zeroshot, open_labelled_set
from wit_builder.core.options import WitError

logger = logging.getLogger(__name__)


def resolve_checkpoint(path: str | Path, stage: str = "eval") -> Path:
    """The checkpoint file meant by `path`: a file, a run directory, or `runs/NAME/latest.pt`
    standing for `runs/NAME/checkpoints/latest.pt` (errors begin with `stage`)."""
    path = Path(path)
    candidates = [path, path / "checkpoints" / "latest.pt",
                  path.parent / "checkpoints" / path.name]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise WitError(f"{stage}: checkpoint '{path}' does not exist; train one with `wit train` "
                       f"or pass --checkpoint runs/NAME/checkpoints/latest.pt (or runs/NAME)")
    return found


def run_directory(checkpoint: Path) -> Path:
    """runs/NAME of runs/NAME/checkpoints/FILE (else the checkpoint's own folder)."""
    folder = checkpoint.parent
    return folder.parent if folder.name == "checkpoints" else folder


def run_tokenizer(state: dict[str, Any], run_dir: Path, context_length: int) -> TextTokenizer:
    """The tokenizer the run trained with: CLIP's BPE, or the run's (or given) tokenizer.json."""
    source = state.get("tokenizer", "")
    if source == "clip":
        return clip_tokenizer(context_length)
    for path in (run_dir / "tokenizer.json", Path(source) if source else None):
        if path is not None and path.is_file():
            return load_bpe(path, context_length)
    raise WitError(f"eval: no tokenizer for the run in '{run_dir}' (no tokenizer.json there, "
                   f"and the checkpoint's '{source}' does not exist)")


def model_from_state(state: dict[str, Any], path: Path) -> tuple[CLIP, TextTokenizer]:
    """The model (on the CPU) and tokenizer of a loaded checkpoint `state` read from `path`."""
    if "model" not in state or "model_config" not in state:
        raise WitError(f"eval: '{path}' is not a `wit train` checkpoint (no model or "
                       f"model_config)")
    model = CLIP(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model, run_tokenizer(state, run_directory(path), model.config.context_length)


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[CLIP, TextTokenizer, int]:
    """(model in eval mode on `device`, its tokenizer, the step it was saved at)."""
    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    model, tokenizer = model_from_state(state, path)
    return model.to(device).eval(), tokenizer, int(state.get("step", 0))


def evaluate_model(model: CLIP, tokenizer: TextTokenizer, zeroshot_dirs: Sequence[str | Path],
                   retrieval_spec: str = "", workdir: str | Path = ".", templates: str = "",
                   retrieval_samples: int = 0, batch_size: int = 128, device: str = "cpu"
                   ) -> dict[str, Any]:
    """Zero-shot results per set (by directory name) and retrieval recall@k (when a spec is
    given); paths are relative to `workdir`. The model is left in the mode it came in."""
    sets = [open_labelled_set(Path(workdir) / directory) for directory in zeroshot_dirs]
    names = [labelled.name for labelled in sets]
    for index, labelled in enumerate(sets):
        if names.count(labelled.name) > 1:  # two sets both called 'val': keep both
            labelled.name = f"{labelled.name}-{index}"
    if not sets and not retrieval_spec:
        raise WitError("eval: nothing to evaluate: pass --zeroshot DIR and/or --retrieval "
                       "SHARDS")
    was_training = model.training
    model.eval()
    try:
        results: dict[str, Any] = {"zeroshot": {}}
        for labelled in sets:
            results["zeroshot"][labelled.name] = evaluate_zeroshot(
                model, tokenizer, labelled, choose_templates(labelled, templates or None),
                batch_size, device)
        if retrieval_spec:
            results["retrieval"] = evaluate_retrieval(model, tokenizer, retrieval_spec,
                                                      str(workdir), retrieval_samples,
                                                      batch_size, device)
    finally:
        model.train(was_training)
    return results


def evaluate_checkpoint(checkpoint: str | Path, zeroshot_dirs: Sequence[str | Path] = (),
                        retrieval_spec: str = "", workdir: str | Path = ".",
                        templates: str = "", retrieval_samples: int = 0, batch_size: int = 128,
                        device: str = "cpu") -> dict[str, Any]:
    """Everything `wit eval` measures, as a dict: `step`, `checkpoint`, `zeroshot` (per set:
    `top1`, `top5` with >= 5 classes, `chance` = 1/classes, `per_class`, ...) and `retrieval`
    (`image_to_text` and `text_to_image`, each `recall@1/5/10`). Paths relative to `workdir`."""
    started = time.perf_counter()
    path = resolve_checkpoint(Path(workdir) / checkpoint)
    model, tokenizer, step = load_model(path, device)
    results = evaluate_model(model, tokenizer, zeroshot_dirs, retrieval_spec, workdir,
                             templates, retrieval_samples, batch_size, device)
    return {"step": step, "checkpoint": str(path), **results,
            "seconds": round(time.perf_counter() - started, 3)}


def metrics_record(step: int, results: dict[str, Any]) -> dict[str, Any]:
    """The metrics.jsonl line of one evaluation: `step` and, under `eval`, the results."""
    return {"step": step, "eval": {key: value for key, value in results.items() if key != "step"}}


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Add one line to metrics.jsonl.

    Appended, not rewritten through a temporary file: a training run may hold the same file open
    in append mode, and a rename would cut its handle off from the file (its later lines lost).
    One write of one whole line to a file opened with O_APPEND cannot interleave with the
    trainer's lines, and a crash can at worst leave a last line cut short, which readers skip.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table: sets, per-class accuracy, retrieval."""
    lines = [f"checkpoint {results.get('checkpoint', '?')} (step {results.get('step', '?')})"]
    zeroshot = results.get("zeroshot", {})
    if zeroshot:
        lines += ["", f"{'zero-shot set':<16}{'classes':>8}{'images':>8}{'top-1':>8}"
                      f"{'top-5':>8}{'chance':>8}{'x chance':>10}"]
        for name, item in zeroshot.items():
            top5 = f"{item['top5']:.3f}" if "top5" in item else "-"
            lines.append(f"{name:<16}{item['classes']:>8}{item['samples']:>8}"
                         f"{item['top1']:>8.3f}{top5:>8}{item['chance']:>8.3f}"
                         f"{item['top1'] / item['chance']:>9.2f}x")
        for name, item in zeroshot.items():
            lines += ["", f"{name}: per class{'images':>18}{'top-1':>8}"]
            for label, row in item["per_class"].items():
                top1 = "-" if row["top1"] is None else f"{row['top1']:.3f}"
                lines.append(f"  {label:<24}{row['samples']:>9}{top1:>8}")
    retrieval = results.get("retrieval")
    if retrieval:
        lines += ["", f"retrieval ({retrieval['samples']} pairs){'R@1':>9}{'R@5':>8}"
                      f"{'R@10':>8}"]
        for direction in ("image_to_text", "text_to_image"):
            recalls = retrieval[direction]
            lines.append(f"  {direction.replace('_to_', '->'):<22}{recalls['recall@1']:>7.3f}"
                         f"{recalls['recall@5']:>8.3f}{recalls['recall@10']:>8.3f}")
    return "\n".join(lines)


def templates_option(config: EvalConfig) -> str:
    """--templates: a file relative to the workdir when there is one, else as given (a path, or
    the name of a template set open_clip ships)."""
    if not config.templates:
        return ""
    in_workdir = Path(config.path(config.templates))
    return str(in_workdir) if in_workdir.exists() else config.templates


def run(config: EvalConfig) -> int:
    """Entry point of `wit eval`: evaluate, print the table, append to metrics.jsonl."""
    require_local_workdir(config, "eval")
    device = pick_device(config.device)
    results = evaluate_checkpoint(config.checkpoint, config.zeroshot, config.retrieval,
                                  config.workdir, templates_option(config),
                                  config.retrieval_samples,
                                  config.batch_size, device)
    print(format_table(results))
    if config.metrics:
        path = run_directory(Path(results["checkpoint"])) / "metrics.jsonl"
        append_metrics(path, metrics_record(results["step"], results))
        logger.info("appended the results to %s", path)
    return 0


def training_eval_sets(zeroshot: Sequence[str], retrieval: str, workdir: str | Path
                       ) -> tuple[list[str], str]:
    """What `wit train --eval-every` evaluates on: its own options, else EvalConfig's defaults
    (the run's config cannot see the file's [eval] table); checked before training starts, not
    at the first evaluation, many steps later."""
    defaults = EvalConfig()
    zeroshot = list(zeroshot) or list(defaults.zeroshot)
    retrieval = retrieval or defaults.retrieval
    for directory in zeroshot:
        open_labelled_set(Path(workdir) / directory)
    if retrieval:
        try:
            expand_shards(retrieval, workdir, split="val")
        except WitError:
            raise WitError(f"train: --eval-every needs retrieval shards, and none matches "
                           f"'{retrieval}'{relative_note(retrieval, workdir)}; set "
                           f"--eval-retrieval") from None
    return zeroshot, retrieval


def evaluate_during_training(model: CLIP, tokenizer: TextTokenizer, sets: tuple[list[str], str],
                             workdir: str | Path, step: int, device: str,
                             retrieval_samples: int = 0) -> dict[str, Any]:
    """The metrics.jsonl line of an evaluation of the model being trained (retrieval on the
    first `retrieval_samples` pairs; 0: all)."""
    started = time.perf_counter()
    zeroshot, retrieval = sets
    results = evaluate_model(model, tokenizer, zeroshot, retrieval, workdir,
                             retrieval_samples=retrieval_samples, device=device)
    results["seconds"] = round(time.perf_counter() - started, 3)
    return metrics_record(step, results)
