"""Resumable checkpoints (``RUN/checkpoints/step-N``): written whole or not at all, checked
complete before a resume reads them.

A checkpoint is accelerate's ``save_state`` (model, optimizer, RNG states), the task's
carried state when it has one (``carry.safetensors``: an RNN's hidden state, rows of the
global batch), and ``trainer.json``: the step, the training time so far, and the size of
every file, which a resume checks before it loads anything.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gentool import runs
from gentool.errors import TrainingError
from gentool.output import files
from gentool.runs import CHECKPOINTS

CARRY_FILE = "carry.safetensors"
TRAINER_FILE = "trainer.json"


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = runs.checkpoints(run_dir)
    return found[-1][1] if found else None


def display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


@contextlib.contextmanager
def quiet_shared_tensors() -> Iterator[None]:
    """accelerate warns on every checkpoint of a model with tied weights that it "removed
    shared tensor" lm_head.weight: expected (the tie is restored on load), and noise here."""
    import logging

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Removed shared tensor" not in record.getMessage()

    logger = logging.getLogger("accelerate.utils.other")
    drop = Drop()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def save_checkpoint(
    accelerator: Any, run_dir: Path, step: int, carry: dict[str, Any] | None, seconds: float
) -> Path:
    """Write ``checkpoints/step-N`` as a whole: into a temporary name, renamed when complete.

    If a write fails (a full disk), the partial checkpoint is removed and the failure is
    raised as the OSError it is, naming the checkpoint; the ones before it stay.
    """
    root = run_dir / CHECKPOINTS
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    try:
        if accelerator.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        with quiet_shared_tensors():
            accelerator.save_state(str(tmp))
        gathered = None
        if carry is not None:
            gathered = {k: accelerator.gather(v.contiguous()) for k, v in carry.items()}
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if gathered is not None:
                from safetensors.torch import save_file

                save_file({k: v.cpu() for k, v in gathered.items()}, str(tmp / CARRY_FILE))
            state = {"step": step, "seconds": seconds, "processes": accelerator.num_processes}
            state["files"] = checkpoint_files(tmp)  # what a resume checks is there
            (tmp / TRAINER_FILE).write_text(json.dumps(state) + "\n")
            files.share_like_new_files(tmp)  # save_state's safetensors files are 0600
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
    except Exception as err:
        # Judged before the partial files go: torch's writer says only "unexpected pos",
        # and the disk it filled tells why.
        failure = files.as_os_error(err, root)
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        if failure is None:
            raise
        raise OSError(failure.errno, failure.strerror, str(final)) from None
    accelerator.wait_for_everyone()
    return final


def load_carry(checkpoint: Path, rows: slice, device: Any, run_dir: Path) -> dict[str, Any] | None:
    path = checkpoint / CARRY_FILE
    if not path.is_file():
        return None  # (a checkpoint that listed one was refused by read_checkpoint)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        carry = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise damaged_checkpoint(
            checkpoint, run_dir, f"{CARRY_FILE} does not load ({err})"
        ) from None
    sizes = {v.shape[0] if v.dim() else 0 for v in carry.values()}
    if len(sizes) != 1:
        raise damaged_checkpoint(checkpoint, run_dir, f"{CARRY_FILE} holds no state of rows")
    total = sizes.pop()
    if rows.stop > total:
        raise TrainingError(
            f"checkpoint {checkpoint} holds state for {total} rows, not {rows.stop}: resume it "
            "with the same train.batch_size and number of processes"
        )
    return {k: v[rows].to(device) for k, v in carry.items()}


def checkpoint_files(directory: Path) -> dict[str, int]:
    """Every file of a checkpoint being written (path inside it -> bytes), for its
    trainer.json: a resume checks that they are all there, whole (``read_checkpoint``).
    Sizes, not checksums: cheap, and what a truncated or missing file changes."""
    return {
        path.relative_to(directory).as_posix(): path.stat().st_size
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != TRAINER_FILE
    }


def read_checkpoint(checkpoint: Path, run_dir: Path) -> dict[str, Any]:
    """The trainer.json of ``checkpoint`` (``step``, ``seconds``), once the checkpoint is known
    to be complete: every file its trainer.json lists is there, with its size. Otherwise a
    TrainingError says which checkpoint is damaged and how to fall back to an earlier one.
    (A checkpoint written before trainer.json listed its files is taken as it is.)"""

    def damaged(what: str) -> TrainingError:
        return damaged_checkpoint(checkpoint, run_dir, what)

    try:
        state = json.loads((checkpoint / TRAINER_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise damaged(f"{TRAINER_FILE} is not valid JSON ({err})") from None
    except OSError as err:
        raise damaged(f"{TRAINER_FILE} cannot be read ({err.strerror})") from None
    if not isinstance(state, dict):
        raise damaged(f"{TRAINER_FILE} does not hold a JSON object")
    step, seconds, files = state.get("step"), state.get("seconds"), state.get("files", {})
    if not (isinstance(step, int) and not isinstance(step, bool)) or checkpoint.name != (
        f"step-{step}"
    ):
        raise damaged(f"{TRAINER_FILE} 'step' is {step!r}, not the step in its name")
    if not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise damaged(f"{TRAINER_FILE} 'seconds' is {seconds!r}, not a time")
    if not isinstance(files, dict) or not all(
        isinstance(size, int) and not isinstance(size, bool) for size in files.values()
    ):
        raise damaged(f"{TRAINER_FILE} 'files' is not {{path: bytes}}")
    for name, size in files.items():
        path = checkpoint / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise damaged(f"{TRAINER_FILE} lists {name!r}, a path outside the checkpoint")
        if not path.is_file():
            raise damaged(f"'{name}' is missing")
        if path.stat().st_size != size:
            raise damaged(f"'{name}' is truncated or corrupt ({path.stat().st_size} bytes, "
                          f"expected {size})")  # fmt: skip
    return state


def damaged_checkpoint(checkpoint: Path, run_dir: Path, what: str) -> TrainingError:
    """The error for a checkpoint that cannot be resumed: what is wrong, and the fix."""
    earlier = [path for _, path in runs.checkpoints(run_dir) if path != checkpoint]
    fix = (
        f"delete {display(checkpoint)} to resume from {display(earlier[-1])}"
        if earlier
        else "it is the only one: train the run again with --force"
    )
    return TrainingError(f"checkpoint {display(checkpoint)} is damaged: {what}; {fix}")


def load_state(accelerator: Any, checkpoint: Path, run_dir: Path) -> None:
    """accelerate's ``load_state`` of a checkpoint, its failures as one TrainingError: a file
    that does not load is damaged; tensors that do not fit belong to other model settings."""
    import pickle

    from safetensors import SafetensorError

    try:
        accelerator.load_state(str(checkpoint))
    except (SafetensorError, OSError, EOFError, pickle.UnpicklingError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if isinstance(err, pickle.UnpicklingError):
            # not torch's own words: they advise weights_only=False, which runs the pickle
            first = "a file of it is not a pickle of tensors that torch loads safely"
        raise damaged_checkpoint(checkpoint, run_dir, f"it does not load ({first})") from None
    except (RuntimeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise TrainingError(
            f"checkpoint {display(checkpoint)} does not fit this model ({first}); resume "
            "with the model settings it was trained with"
        ) from None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for _, path in runs.checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
