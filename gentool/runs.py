"""The run directory: what ``train`` writes and every other command reads.

A run is built in a temporary sibling directory and renamed into place only when
complete, so a run killed at any moment leaves either no run (or the previous one, with
``--force``) or a complete one. Single files are written to a temporary name and
renamed, so a reader never sees half a file. gentool.json records a sha256 of every
file, checked on load, so a truncated or corrupted model is reported, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gentool import __version__
from gentool.errors import RunError

FORMAT_VERSION = 1
META_FILE = "gentool.json"
METRICS_FILE = "metrics.jsonl"


# -- atomic files -----------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """Strict, readable JSON. A number that is infinite or NaN (a perplexity with an
    impossible token, say) becomes null: JSON has no such numbers."""
    return json.dumps(_finite(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, dumps_json(obj) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path) -> dict[str, Any]:
    """Identify a data file: its path as given, size and sha256."""
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries this process has loaded."""
    versions = {"gentool": __version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "transformers", "accelerate", "safetensors", "tokenizers"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


# -- writing a run --------------------------------------------------------------------------


def check_new_run(out: Path, force: bool) -> None:
    """Fail before any work if ``out`` exists and may not be replaced."""
    if out.exists() and not force:
        raise RunError(
            f"run directory '{out}' already exists; pass --force to replace it, "
            "or choose another with --out"
        )
    if out.exists() and not (out / META_FILE).is_file():
        raise RunError(
            f"'{out}' exists and is not a gentool run; --force replaces only run "
            "directories: choose another --out"
        )


def create_run(out: Path, force: bool, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Build a run in a temporary directory with ``fill(tmpdir) -> meta`` and move it to ``out``.

    ``fill`` writes the model files; its return value becomes gentool.json, to which the
    file fingerprints, versions and creation time are added. If ``fill`` raises, nothing
    is left behind and an existing run at ``out`` is untouched.
    """
    check_new_run(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        meta = fill(tmp)
        meta = {
            "format_version": FORMAT_VERSION,
            **meta,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "files": {
                p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                for p in sorted(tmp.iterdir())
                if p.is_file()
            },
        }
        write_json(tmp / META_FILE, meta)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    # --force: swap, so that a crash in between leaves the old run or the new one.
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / "run")
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


# -- reading a run --------------------------------------------------------------------------


class RunDirectory:
    """A complete run directory, read and verified."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not self.path.is_dir():
            raise RunError(
                f"run directory '{self.path}' does not exist; train one with 'gentool train'"
            )
        if not meta_path.is_file():
            raise RunError(
                f"'{self.path}' is not a gentool run directory (no {META_FILE}); "
                "give a directory written by 'gentool train'"
            )
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise RunError(f"'{meta_path}' is corrupt ({err}); retrain the run") from None
        if not isinstance(self.meta, dict) or "family" not in self.meta:
            raise RunError(f"'{meta_path}' has no 'family'; retrain the run")

    @property
    def family(self) -> str:
        return str(self.meta["family"])

    @property
    def recipe(self) -> dict[str, Any]:
        return dict(self.meta.get("recipe", {}))

    def verify(self) -> None:
        """Check every recorded file's size and sha256; raise RunError naming the first bad one."""
        for name, expected in self.meta.get("files", {}).items():
            path = self.path / name
            if not path.is_file():
                raise RunError(f"run '{self.path}' is missing '{name}'; retrain the run")
            size = path.stat().st_size
            if size != expected["bytes"]:
                raise RunError(
                    f"'{path}' is truncated or corrupt ({size} bytes, expected "
                    f"{expected['bytes']}); retrain the run or restore the file"
                )
            if sha256_file(path) != expected["sha256"]:
                raise RunError(
                    f"'{path}' is corrupt (its sha256 differs from {META_FILE}); retrain the "
                    "run or restore the file"
                )


# -- tensors ------------------------------------------------------------------------------

TENSOR_FILE = "model.safetensors"


def save_tensors(path: Path, tensors: dict[str, Any], family: str) -> None:
    """Write numpy arrays as safetensors, tagged with the family and format version."""
    from safetensors.numpy import save_file

    metadata = {"gentool.family": family, "gentool.format": str(FORMAT_VERSION)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_tensors(path: Path, family: str) -> dict[str, Any]:
    """Read numpy arrays from safetensors written by ``save_tensors`` for ``family``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            found = (f.metadata() or {}).get("gentool.family")
            if found != family:
                raise RunError(
                    f"'{path}' holds a '{found}' model, not '{family}'; give a {family} run"
                )
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except FileNotFoundError:
        raise RunError(f"'{path}' is missing; retrain the run") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(
            f"'{path}' is truncated or corrupt ({err}); retrain the run or restore the file"
        ) from None
