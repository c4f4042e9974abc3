"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically.

A checkpoint holds only tensors and plain Python values, so it loads with `weights_only=True`
(no code runs when a checkpoint is opened).
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from wit_builder.core.atomic import atomic_path
from wit_builder.core.options import WitError

logger = logging.getLogger(__name__)


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": list(random.getstate()[1]), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    python = random.getstate()
    random.setstate((python[0], tuple(states["python"]), None))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}.pt"


def step_files(directory: Path) -> list[Path]:
    """The `step-N.pt` files of `directory`, oldest step first (by number: names outgrow the
    zero padding past step 9,999,999)."""
    steps = [(int(path.stem[5:]), path) for path in directory.glob("step-*.pt")
             if path.stem[5:].isdigit()]
    return [path for _, path in sorted(steps)]


def save_checkpoint(directory: Path, state: dict[str, Any], keep: int = 0) -> Path:
    """Write `step-NNNNNNN.pt` and then `latest.pt`, each under a temporary name first; then
    delete the step files older than the newest `keep` (0: keep all)."""
    path = directory / checkpoint_name(state["step"])
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    with atomic_path(directory / "latest.pt") as temporary:
        shutil.copyfile(path, temporary)
    if keep:
        prune_checkpoints(directory, keep, path)
    return path


def prune_checkpoints(directory: Path, keep: int, current: Path) -> list[Path]:
    """Delete all but the newest `keep` step files, never `current` (the one `latest.pt` copies);
    returns the deleted paths. Only called once `latest.pt` is complete, so a kill at any point
    leaves a checkpoint to resume from."""
    steps = step_files(directory)
    doomed = [path for path in steps[:-keep] if path != current]
    for path in doomed:
        path.unlink(missing_ok=True)  # another rank or a rerun may have removed it already
    if doomed:
        logger.info("deleted %d old checkpoints (--keep-checkpoints %d)", len(doomed), keep)
    return doomed


def newest_checkpoint(directory: Path) -> Path | None:
    """The step file of the highest step: each is complete (atomic), whereas a kill between
    writing it and refreshing `latest.pt` leaves `latest.pt` one checkpoint behind or absent."""
    steps = step_files(directory)
    return steps[-1] if steps else None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WitError(f"checkpoint: '{path}' does not exist (nothing to resume; drop --resume "
                       f"to start a new run)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # unpickling raises many types; all mean "not a usable checkpoint"
        raise WitError(f"checkpoint: '{path}' cannot be loaded: {error}") from None
