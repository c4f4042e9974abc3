"""The `wit` command: one sub-command per stage, every option also a key of the TOML config.

Options are generated from the stage's settings dataclass (each stage's config.py, registered in COMMANDS below), so the TOML file
and the command line can never drift apart; the command line overrides the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from trainer.config import EvalConfig, ExportConfig, TrainConfig
from wit_builder import __version__
from wit_builder.core.config import build_config, field_types, read_toml
from wit_builder.core.options import WitError, option
from wit_builder.crawl.config import SOURCE_HELP, CrawlConfig
from wit_builder.queries.config import QueriesConfig
from wit_builder.shards.config import OptoutConfig, ShardsConfig, TakedownConfig
from wit_builder.synthweb import source as synthweb_source  # noqa: F401  (registers synthweb:)
from wit_builder.synthweb.config import DemoConfig, SynthwebConfig, SynthwebSourceOptions

log = logging.getLogger("wit_builder.cli")

DEFAULT_CONFIG = "witbuilder.toml"


@dataclasses.dataclass
class CrawlStageConfig(SynthwebSourceOptions, CrawlConfig):
    """`wit crawl`'s settings: the crawl's own, then the options of the sources plugged into it
    (the demo's `synthweb:`, a client of the crawl that its code never names)."""

    source: list[str] = option([], f"{SOURCE_HELP} | synthweb: (the demo's site, served on "
                                   f"127.0.0.1 for the crawl) (repeatable)", metavar="SOURCE")


@dataclasses.dataclass(frozen=True)
class Stage:
    summary: str
    runner: str  # "module:function" taking the stage's settings
    config: type  # the stage's settings dataclass


# The stage registry: every `wit` sub-command, its settings and what runs it (imported only when
# the stage runs, so `wit --help` stays light).
COMMANDS: dict[str, Stage] = {
    "queries": Stage("derive the query list from a Wikipedia dump, pageviews and WordNet",
                     "wit_builder.queries.build:run", QueriesConfig),
    "crawl": Stage("harvest image-text pairs, keep English, match queries, balance, download",
                   "wit_builder.crawl.run:run", CrawlStageConfig),
    "shards": Stage("dedupe, shuffle and split the raw shards into training shards",
                    "wit_builder.shards.run:run", ShardsConfig),
    "takedown": Stage("remove the samples of a takedown list's URLs from the training shards "
                      "(rewrites only the shards that hold them)",
                      "wit_builder.shards.takedown:run", TakedownConfig),
    "optout": Stage("re-check robots.txt and X-Robots-Tag opt-outs of the training shards' "
                    "images; remove the samples whose owners opted out since the crawl",
                    "wit_builder.shards.optout:run", OptoutConfig),
    "train": Stage("train a CLIP model on the training shards", "trainer.train:run", TrainConfig),
    "eval": Stage("zero-shot classification and retrieval of a checkpoint",
                  "trainer.evaluate:run", EvalConfig),
    "export": Stage("write a checkpoint as an open_clip model folder (config, weights, tokenizer)",
                    "trainer.export:run", ExportConfig),
    "synthweb": Stage("generate or serve the embedded synthetic web (the default input)",
                      "wit_builder.synthweb.cli:run", SynthwebConfig),
    "demo": Stage("every stage, on the synthetic web, in minutes on 2 CPU cores",
                  "wit_builder.synthweb.demo:run", DemoConfig),
}
STAGES: dict[str, type] = {name: stage.config for name, stage in COMMANDS.items()}


def load_config(stage: str, path: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> Any:
    """The settings of `stage` from the TOML file at `path` (if any) and CLI `overrides`."""
    file_values = read_toml(path) if path else {}
    return build_config(stage, STAGES[stage], file_values, overrides or {},
                        source=str(path or "defaults"))


def option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_field_option(parser: argparse.ArgumentParser, item: dataclasses.Field, kind: Any) -> None:
    """One command-line option for one settings field, documented from its metadata."""
    meta = item.metadata
    default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
    help_text = f"{meta.get('help', '')} (default: {default!r})"
    common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": item.name}
    if meta.get("choices"):
        common["choices"] = meta["choices"]
    if meta.get("metavar"):
        common["metavar"] = meta["metavar"]
    if meta.get("positional"):
        del common["dest"]
        common["default"] = None  # argparse checks a positional's default against its choices
        parser.add_argument(item.name, nargs="?", **common)
    elif kind is bool:
        parser.add_argument(option_flag(item.name), action=argparse.BooleanOptionalAction, **common)
    elif typing.get_origin(kind) is list:
        parser.add_argument(option_flag(item.name), *meta.get("aliases", ()), action="append",
                            type=typing.get_args(kind)[0], **common)
    else:
        parser.add_argument(option_flag(item.name), *meta.get("aliases", ()), type=kind,
                            **common)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wit", description="witbuilder: build a WIT-style image-text dataset and train CLIP "
        "on it. Every option can also be set in the TOML config (section [STAGE]).")
    parser.add_argument("--version", action="version", version=f"witbuilder {__version__}")
    add_common_options(parser, default=None)
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    parser.stage_parsers = {}  # for errors shown with the stage's own usage
    for name, stage in COMMANDS.items():
        sub = stages.add_parser(name, help=stage.summary, description=stage.summary)
        parser.stage_parsers[name] = sub
        add_common_options(sub, default=argparse.SUPPRESS)
        cls = STAGES[name]
        kinds = field_types(cls)
        for item in dataclasses.fields(cls):
            add_field_option(sub, item, kinds[item.name])
    return parser


def add_common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--config", metavar="FILE", default=default,
                        help=f"TOML config; only a file named here is read (the make targets "
                             f"name {DEFAULT_CONFIG}, the demo's)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default or False,
                        help="log debug messages")


def config_path(chosen: str | None) -> Path | None:
    """The config file to read: only the one the user names. A file lying in the current folder
    (the project's own witbuilder.toml is the demo's) is never read on its own: it could feed
    the demo's inputs into a real run, or settings the user never chose."""
    if chosen:
        return Path(chosen)
    if Path(DEFAULT_CONFIG).exists():
        log.info("./%s is not read unless named: pass --config %s to use it",
                 DEFAULT_CONFIG, DEFAULT_CONFIG)
    return None


def resolve_runner(spec: str) -> Callable[[Any], int | None]:
    module_name, function_name = spec.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def stage_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(STAGES[args.stage])}
    return {key: value for key, value in vars(args).items()
            if key in names and value is not None}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # shown with the stage's usage and options, not the top-level ones
        parser.stage_parsers[args.stage].error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    stage = COMMANDS[args.stage]
    try:
        path = config_path(args.config)
        config = load_config(args.stage, path, stage_overrides(args))
        config.config_file = str(path) if path else ""  # for stages that run other stages
        status = resolve_runner(stage.runner)(config)
    except WitError as error:
        print(f"wit {args.stage}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wit {args.stage}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
