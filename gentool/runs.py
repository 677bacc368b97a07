"""The run directory: what ``train`` writes and every other command reads.

A new run is built in place and is not a run until its gentool.json appears; one that
replaces a run (``--force``) is built in a hidden sibling and swapped in when complete. A
run killed at any moment leaves no run (or the previous one), a complete one, or, once it
has a checkpoint, an unfinished run to resume. Single files are written to a temporary name and
renamed, so a reader never sees half a file. gentool.json records a sha256 of every
file, checked on load, so a truncated or corrupted model is reported, never used.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gentool import __version__
from gentool.errors import OutputError, RunError
from gentool.output import files

FORMAT_VERSION = 2  # 2: gentool.json and the recipe name the kind of model
META_FILE = "gentool.json"
METRICS_FILE = "metrics.jsonl"
TRAINING_FILE = "training.json"  # present while a run trains: its recipe, for --resume
EXPORT_FILE = "gentool-export.json"  # in a folder gentool export wrote: format, kind, run
CHECKPOINTS = "checkpoints"

# -- atomic files -----------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The file gets the mode of any new file (the user's umask: 0644 under umask 022). That is
    set after the block: mkstemp makes the temporary private, and a writer may replace it
    with its own private file (safetensors renames a 0600 temporary of its own into place).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, files.new_file_mode())
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


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to a JSON-lines file as one line, whole or not at all: a write cut
    short (a full disk) is cut off again, so no reader meets half a line."""
    data = (dumps_json(record, indent=None) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Data files' sha256 this process computed, by (path, inode, size, mtime, ctime): the run's
# record and the token cache's key both need the digest of a (possibly large) corpus.
_data_digests: dict[tuple[str, int, int, int, int], str] = {}


def _data_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _data_digests:
        _data_digests[key] = sha256_file(path)
    return _data_digests[key]


def fingerprint(path: Path) -> dict[str, Any]:
    """Identify a data file: its path as given, size and sha256. A folder (of images) is
    identified by every file under it: the sha256 of their relative names and contents.
    A Hugging Face dataset (``hf:NAME``) by its own fingerprint and revision.
    A stream (a FIFO, /dev/zero) is refused: hashing it would read it forever, or use it up."""
    from gentool.data import sources

    if sources.is_hf(path):
        return sources.fingerprint(path)
    if not path.is_dir():
        from gentool.data.files import check_regular

        check_regular(path)
        return {"path": str(path), "bytes": path.stat().st_size, "sha256": _data_sha256(path)}
    digest, size, count = hashlib.sha256(), 0, 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
        size += file.stat().st_size
        count += 1
    return {"path": str(path), "bytes": size, "files": count, "sha256": digest.hexdigest()}


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
    """Fail before any work if ``out`` exists and may not be replaced, or cannot be written:
    a path through a file, a read-only folder, /proc, a folder inside another run."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out '{out}' is a file, not a run directory; choose another --out")
    if out.exists() and not force:
        step = unfinished_step(out)
        if step is not None:
            raise RunError(f"'{out}' holds an unfinished training run ({step}); {_resume(out)}")
        raise RunError(
            f"run directory '{out}' already exists; pass --force to replace it, "
            "or choose another with --out"
        )
    if out.exists() and not is_run_directory(out):
        raise RunError(
            f"'{out}' exists and is not a gentool run; --force replaces only run "
            "directories: choose another --out"
        )
    inside = enclosing_run(out.parent)
    if inside is not None:
        raise OutputError(
            f"--out '{out}' is inside the run directory '{files.shown(inside)}'; a run cannot hold "
            "another: choose an --out outside it"
        )
    files.check_can_create(out, "--out")  # where the run (or its replacement) is built
    if out.exists():
        _check_removable(out)


def _check_removable(run: Path) -> None:
    """--force removes the old run once the new one is complete: fail now, not then, if it
    cannot (a read-only folder in it; root may remove anything but on a read-only disk)."""
    for folder, subfolders, _ in os.walk(run):  # (os.walk does not enter linked folders)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(
                f"'{folder}' is read-only, so --force cannot replace the run '{run}'; make "
                f"it writable (chmod -R u+w '{run}') or choose another --out"
            )
        subfolders[:] = [d for d in subfolders if not os.path.islink(os.path.join(folder, d))]


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """The complete training checkpoints of a run (``checkpoints/step-N``), oldest first.
    A checkpoint is written under a temporary name and renamed when complete."""
    found = []
    for path in (run / CHECKPOINTS).glob("step-*"):
        step = path.name.removeprefix("step-")
        if step.isdigit() and (path / "trainer.json").is_file():
            found.append((int(step), path))
    return sorted(found)


def has_checkpoint(run: Path) -> bool:
    return bool(checkpoints(run))


def unfinished_step(run: Path) -> str | None:
    """For a run whose training has not finished: its latest checkpoint, in words."""
    if (run / META_FILE).is_file() or not (run / TRAINING_FILE).is_file():
        return None
    found = checkpoints(run)
    return f"latest checkpoint: step {found[-1][0]}" if found else "no checkpoint"


def _resume(run: Path) -> str:
    """What to do with an unfinished run: resume its checkpoint, or, with none (it stopped
    before the first; ngram writes none), train it again."""
    if has_checkpoint(run):
        return f"continue it with 'gentool train --resume --out {run}', or replace it with --force"
    return (
        "it stopped before writing a checkpoint (ngram runs write none), so --resume cannot "
        "continue it: train it again, with --force to replace it"
    )


def is_main_process() -> bool:
    """True unless a launcher (torchrun, accelerate launch) made this a non-zero rank."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def building_run(out: Path, force: bool = False, resume: bool = False) -> Iterator[Path]:
    """Yield the directory to build the run ``out`` in; ``finish_run`` completes it there.

    A new run is built in ``out`` itself (it is not a run until gentool.json appears);
    one that replaces an existing run (``force``) is built in a hidden sibling and swapped
    in at the end, so the old run stays until the new one is complete; ``resume`` goes on
    in ``out``. If the block raises, what it built is removed, unless it holds a training
    checkpoint: then the unfinished run stays at ``out``, to be resumed. A failed write (a
    full disk, a read-only folder) becomes one RunError that says what was kept. Under
    several processes only the main one creates, moves or removes anything.
    """
    main = is_main_process()
    staged = False
    partial = out.parent / f".{out.name}.partial"
    created = [p for p in [out, *out.parents] if not p.exists()]  # to remove on failure
    work = out
    if main and not resume:
        if partial.is_symlink() or partial.is_file():
            partial.unlink()  # (never followed: rmtree would refuse a link anyway)
        shutil.rmtree(partial, ignore_errors=True)  # left by a killed run
        try:
            if out.exists():
                check_new_run(out, force)
                partial.mkdir()
                work, staged = partial, True
            else:
                out.mkdir(parents=True)
        except OSError as err:
            _remove_empty(created)
            raise OutputError(
                f"--out '{out}': cannot create it ({files.reason(err)}); "
                f"{files.remedy(err, '--out')}"
            ) from None
    _barrier()  # the other processes look only once the main one has decided
    if not main and not resume and partial.is_dir():
        work = partial
    try:
        yield work
    except BaseException as err:
        failure = _failed_write(err, work)  # first: torch's partial file shows a full disk
        kept = resume
        if main and not resume:
            if has_checkpoint(work):
                kept = True
                if staged:
                    _move_into_place(work, out)
            else:
                shutil.rmtree(work, ignore_errors=True)
                _remove_empty(created[1:])  # parent folders this run made
        if failure is not None:
            raise RunError(_failed_run(out, work, failure, kept, staged)) from None
        raise
    if main and staged:
        _move_into_place(work, out)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty


def _failed_write(err: BaseException, work: Path) -> OSError | None:
    """The write failure that ``err`` is, while building the run in ``work``; None for any
    other error (a bug, an interruption). A full disk is one wherever it strikes; a denied
    permission only on a file of the run (not, say, a data file another user owns)."""
    found = files.as_os_error(err, work)
    if found is None or found.errno not in files.WRITE_FAILURES:
        return None
    if found.errno in (errno.EACCES, errno.EPERM):
        name = found.filename
        if not (isinstance(name, str) and _is_within(Path(name), work)):
            return None
    return found


def _is_within(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _failed_run(out: Path, work: Path, err: OSError, kept: bool, staged: bool) -> str:
    """The one line that says a run could not be written, what is left, and what to do."""
    name = err.filename
    at = ""
    if isinstance(name, str):
        shown = Path(name)
        if _is_within(shown, work):
            shown = Path(os.path.abspath(name)).relative_to(os.path.abspath(work))
        at = f" while writing {shown}"
    head = f"cannot write the run '{out}': {files.reason(err)}{at}"
    fix = files.remedy(err, "--out")
    found = checkpoints(out)
    if kept and found:
        return (
            f"{head}; its checkpoint at step {found[-1][0]} is kept: {fix}, then continue it "
            f"with 'gentool train --resume --out {out}'"
        )
    if staged:
        return f"{head}; the previous run there is unchanged: {fix}, then train again"
    return f"{head}; nothing was kept: {fix}, then train again"


def _barrier() -> None:
    """Wait for every process of a multi-process launch (torchrun, accelerate launch)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def finish_run(work: Path, meta: dict[str, Any]) -> None:
    """Complete the run in ``work``: give its files the user's umask, record every file's
    fingerprint in gentool.json, which is written last (a directory without it is no run)."""
    if not is_main_process():
        return
    files.share_like_new_files(work)  # safetensors, save_pretrained: private 0600 files
    meta = {
        "format_version": FORMAT_VERSION,
        **meta,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(work.iterdir())
            if p.is_file()
            and p.name not in (META_FILE, TRAINING_FILE)
            and not p.name.startswith(".")
        },
    }
    write_json(work / META_FILE, meta)
    with contextlib.suppress(FileNotFoundError):
        (work / TRAINING_FILE).unlink()


def create_run(out: Path, force: bool, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Build a run with ``fill(directory) -> meta`` (it writes the model files) and complete
    it (``finish_run``). If ``fill`` raises, nothing is left behind and an existing run at
    ``out`` is untouched."""
    check_new_run(out, force)
    with building_run(out, force) as work:
        finish_run(work, fill(work))
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    # Swap, so that a crash in between leaves the old run or the new one. The old run is
    # renamed within its own folder (moving a folder elsewhere needs write permission on
    # it) and removed with rmtree, which unlinks symbolic links and never follows them:
    # nothing outside the run is touched, whatever its files or gentool.json point to.
    old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- what commands write outside runs -------------------------------------------------------


def is_run_directory(folder: Path) -> bool:
    """Whether ``folder`` is a run, finished or not (damaged too): it holds gentool.json, or
    a training.json that gentool wrote (a name other tools use: a project folder holding
    one of theirs is not a run, to be refused as an output place or removed by --force)."""
    if (folder / META_FILE).is_file():
        return True
    if not (folder / TRAINING_FILE).is_file():
        return False
    if (folder / CHECKPOINTS).is_dir():
        return True
    try:
        record = json.loads((folder / TRAINING_FILE).read_text(encoding="utf-8"))
    except OSError:
        return True  # unreadable: better taken for a run than overwritten
    except ValueError:
        return False
    return isinstance(record, dict) and {"family", "recipe"} <= record.keys()


def enclosing_run(path: Path) -> Path | None:
    """The run directory ``path`` is in, or is (``is_run_directory``), judged on the
    resolved path: a symbolic link into a run counts."""
    resolved = Path(os.path.realpath(path))
    for folder in (resolved, *resolved.parents):
        if is_run_directory(folder):
            return folder
    return None


def check_outside_runs(path: Path, option: str) -> None:
    run = enclosing_run(path)
    if run is not None:
        raise OutputError(
            f"{option} '{path}' is inside the run directory '{files.shown(run)}', which only "
            "'gentool train' writes; write it outside the run"
        )


def check_output_file(path: Path, option: str, force: bool) -> None:
    """Fail before any work unless a command may write the file ``path`` (``option``: the
    flag that names it): outside every run directory, not a folder, not an existing file
    unless ``force``, in a place where files can be made."""
    check_outside_runs(path, option)
    _check_replaceable(path, option)
    if path.exists() and not force:
        raise OutputError(
            f"'{path}' exists; pass --force to replace it, or choose another {option}"
        )
    files.check_can_create(path, option)


def _check_replaceable(path: Path, option: str) -> None:
    """Outputs are written to a temporary name and renamed over ``path``: that replaces a
    regular file, but would remove a folder, a device, or a link (/dev/stdout is one)."""
    if path.is_symlink():
        raise OutputError(
            f"{option} '{path}' is a symbolic link (to '{os.readlink(path)}'); gentool "
            "replaces only regular files: name the file itself"
        )
    if path.is_dir():
        raise OutputError(f"{option} '{path}' is a folder; name a file")
    if path.exists() and not path.is_file():
        raise OutputError(f"{option} '{path}' is not a regular file; name a file")


def check_output_export(folder: Path, option: str, force: bool) -> None:
    """Fail before any work unless a command may write the folder ``folder`` whole (an
    export in a folder format): outside every run, not a file, and an existing folder only
    with ``force``, and only an empty one or one that gentool export wrote (it is replaced
    whole: --force must never remove a folder of the user's own)."""
    check_outside_runs(folder, option)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"{option} '{folder}' is not a folder; name a new folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            raise OutputError(
                f"'{folder}' exists; pass --force to replace it, or choose another {option}"
            )
        if not (folder / EXPORT_FILE).is_file():
            raise OutputError(
                f"{option} '{folder}' is a folder that gentool export did not write (it has "
                f"no {EXPORT_FILE}); --force replaces only those: choose another {option}"
            )
    files.check_can_create(folder, option)


def check_output_folder(folder: Path, option: str) -> None:
    """Fail before any work unless a command may write files into ``folder``."""
    check_outside_runs(folder, option)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} '{folder}' is a file; name a folder")
    files.check_can_create(folder, option, inside=True)


class OutputFiles:
    """The files a command writes outside any run (``export -o``, ``generate --grid``, ...),
    each written atomically; see ``output_files``."""

    def __init__(self) -> None:
        self.created: list[Path] = []

    def write(self, path: Path, write: Callable[[Path], None], option: str) -> Path:
        """Write ``path`` with ``write(path)``; a failed write is one OutputError."""
        check_outside_runs(path, option)
        _check_replaceable(path, option)
        try:
            for folder in reversed([p for p in path.parents if not p.exists()]):
                folder.mkdir()
                self.created.append(folder)
            new = not path.exists()
            write(path)
        except Exception as err:
            failure = files.as_os_error(err, path.parent)
            if failure is None:
                raise
            raise OutputError(
                f"cannot write '{path}': {files.reason(failure)}; {files.remedy(failure, option)}"
            ) from None
        if new:
            self.created.append(path)
        return path

    def write_folder(self, path: Path, write: Callable[[Path], None], option: str) -> Path:
        """Write the folder ``path`` whole with ``write(folder)``: into a hidden sibling,
        swapped in at the end (an existing folder stays until the new one is complete); a
        failed write is one OutputError, and leaves nothing of the new folder."""
        check_output_export(path, option, force=True)
        for folder in reversed([p for p in path.parents if not p.exists()]):
            folder.mkdir()
            self.created.append(folder)
        work = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            work.mkdir()
            write(work)
            _move_into_place(work, path)
        except Exception as err:
            failure = files.as_os_error(err, work)
            if failure is None:
                raise
            raise OutputError(
                f"cannot write '{path}': {files.reason(failure)}; {files.remedy(failure, option)}"
            ) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)  # (gone once moved into place)
        return path

    def remove_created(self) -> None:
        for path in reversed(self.created):  # files before the folders that hold them
            with contextlib.suppress(OSError):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()


@contextlib.contextmanager
def output_files() -> Iterator[OutputFiles]:
    """Yield an ``OutputFiles``; if the block fails (or is interrupted), the files and
    folders it created are removed again. A file it replaced (``--force``) stays replaced:
    each write is atomic, so no file is ever left half-written."""
    written = OutputFiles()
    try:
        yield written
    except BaseException:
        written.remove_created()
        raise


# -- reading a run --------------------------------------------------------------------------


def damaged(run: Path, what: str, fix: str = "restore it from a copy, or retrain it") -> RunError:
    """The error for a run whose files contradict each other or gentool's format."""
    return RunError(f"run '{run}' is damaged: {what}; {fix}")


# gentool.json's fields: name -> (JSON type, required). Only what the code relies on is
# checked; finish_run writes them all.
_META_FIELDS: dict[str, tuple[type, bool]] = {
    "family": (str, True),
    "kind": (str, False),  # format 1 runs have none: the kind follows from their recipe
    "recipe": (dict, False),  # none: the family's defaults
    "files": (dict, True),
    "tasks": (list, False),
    "seed": (int, False),
    "data": (dict, False),
    "metrics": (dict, False),
    "imported_from": (dict, False),
    "created": (str, False),
    "versions": (dict, False),
}
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
_MAX_META_BYTES = 64 << 20  # a real gentool.json is a few kilobytes


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_meta(meta: Any, run: Path) -> dict[str, Any]:
    """Check a run's gentool.json against its schema (docs/run-directory.md); return it.

    A run may be edited, synced or downloaded: every field the code relies on is checked
    here, once, so that nothing later meets a list where it expects an object.
    """
    if not isinstance(meta, dict):
        raise damaged(run, f"{META_FILE} holds {_json_type(meta)}, not an object")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise damaged(run, f"{META_FILE} 'format_version' is {version!r}, not a positive integer")
    if version > FORMAT_VERSION:
        raise RunError(
            f"run '{run}' was made by a newer gentool (format {version}; gentool {__version__} "
            f"reads format {FORMAT_VERSION}); upgrade gentool: pip install --upgrade gentool"
        )
    for field, (kind, required) in _META_FIELDS.items():
        if field not in meta:
            if required:
                raise damaged(run, f"{META_FILE} has no '{field}'")
            continue
        value = meta[field]
        if not (_is_int(value) if kind is int else isinstance(value, kind)):
            raise damaged(
                run, f"{META_FILE} '{field}' is {_json_type(value)}, not {_JSON_TYPES[kind]}"
            )
    if not meta["family"]:
        raise damaged(run, f"{META_FILE} 'family' is empty")
    if not all(isinstance(task, str) for task in meta.get("tasks", [])):
        raise damaged(run, f"{META_FILE} 'tasks' must be a list of strings")
    recorded = meta.get("recipe", {}).get("family", meta["family"])
    if not isinstance(recorded, str):
        raise damaged(run, f"{META_FILE} recipe 'family' is {_json_type(recorded)}, not a string")
    if recorded != meta["family"]:
        raise damaged(
            run,
            f"{META_FILE} says family {meta['family']!r} but its recipe is for {recorded!r} "
            "(a family mismatch)",
        )
    for name, entry in meta["files"].items():
        if not (
            isinstance(entry, dict)
            and _is_int(entry.get("bytes"))
            and entry["bytes"] >= 0
            and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64
        ):
            raise damaged(
                run,
                f"{META_FILE} 'files' entry {name!r} needs 'bytes' (its size) and 'sha256' "
                "(64 hex digits)",
            )
    return meta


def _plain_name(name: str) -> bool:
    """A file name with no directory part: what finish_run records."""
    return (
        name not in ("", ".", "..", META_FILE)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and Path(name).name == name
    )


def unreadable(path: Path, run: Path, err: OSError) -> RunError:
    """A file of ``run`` that cannot be read: for lack of permission, say how to share it."""
    if isinstance(err, PermissionError):
        return RunError(
            f"cannot read '{path}' of the run '{run}' (permission denied); ask its owner to "
            f"share it (chmod -R a+rX '{run}') or copy it"
        )
    return RunError(f"cannot read '{path}' of the run '{run}' ({err.strerror}); check the disk")


class RunDirectory:
    """A complete run directory, read and checked: its gentool.json fits the schema, every
    file it lists is a plain file of the run (no path outside it), and the run holds no
    file it does not list. Nothing but gentool.json is read until ``verify``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not self.path.is_dir():
            raise RunError(
                f"run directory '{self.path}' does not exist; train one with 'gentool train'"
            )
        step = unfinished_step(self.path)
        if step is not None:
            raise RunError(
                f"'{self.path}' is an unfinished training run ({step}); {_resume(self.path)}"
            )
        if not meta_path.is_file():
            raise RunError(
                f"'{self.path}' is not a gentool run directory (no {META_FILE}); "
                "give a directory written by 'gentool train'"
            )
        self._check_link(META_FILE)
        try:
            if meta_path.stat().st_size > _MAX_META_BYTES:
                raise damaged(self.path, f"{META_FILE} is {meta_path.stat().st_size} bytes")
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise damaged(self.path, f"{META_FILE} is not valid JSON ({err})") from None
        except OSError as err:
            raise unreadable(meta_path, self.path, err) from None
        self.meta: dict[str, Any] = check_meta(meta, self.path)
        self._check_names()

    def _check_link(self, name: str, root: Path | None = None) -> None:
        """Refuse the file ``name`` of the run if it is a link to anything outside it."""
        path = self.path / name
        if not path.is_symlink():
            return
        try:
            inside = path.resolve(strict=True).is_relative_to(root or self.path.resolve())
        except (OSError, RuntimeError):  # a dangling link, or a loop
            inside = False
        if not inside:
            raise damaged(self.path, f"'{name}' is a link to something outside the run")

    def _check_names(self) -> None:
        """Every listed file is a file of this run (not a path, nor a link to one outside),
        and every file here is listed: a loader must never read anything unverified."""
        listed = self.meta["files"]
        root = self.path.resolve()
        for name in listed:
            if not _plain_name(name):
                raise damaged(
                    self.path, f"{META_FILE} lists {name!r}, which is not a file name in the run"
                )
            self._check_link(name, root)
        try:
            with os.scandir(self.path) as entries:
                unlisted = sorted(
                    entry.name
                    for entry in entries
                    if entry.name not in listed
                    and entry.name not in (META_FILE, TRAINING_FILE)
                    and not entry.name.startswith(".")  # .DS_Store...: as in finish_run
                    and not entry.is_dir()  # checkpoints/, samples/: no loader reads them
                )
        except OSError as err:
            raise unreadable(self.path, self.path, err) from None
        if unlisted:
            raise damaged(
                self.path,
                f"it holds '{unlisted[0]}', which its {META_FILE} does not list (added after "
                "training: a model loader might read it)",
                "move that file out of the run",
            )

    @property
    def family(self) -> str:
        return str(self.meta["family"])

    @property
    def kind(self) -> str | None:
        """The kind of model (None for a run of format 1, which did not record it)."""
        kind = self.meta.get("kind")
        return str(kind) if kind else None

    @property
    def recipe(self) -> dict[str, Any]:
        return dict(self.meta.get("recipe", {}))

    def verify(self) -> None:
        """Check every recorded file's size and sha256; raise RunError naming the first bad one."""
        for name, expected in self.meta["files"].items():
            path = self.path / name
            if not path.is_file():
                raise RunError(f"run '{self.path}' is missing '{name}'; retrain the run")
            try:
                size = path.stat().st_size
                if size != expected["bytes"]:
                    raise RunError(
                        f"'{path}' is truncated or corrupt ({size} bytes, expected "
                        f"{expected['bytes']}); retrain the run or restore the file"
                    )
                digest = sha256_file(path)
            except OSError as err:
                raise unreadable(path, self.path, err) from None
            if digest != expected["sha256"]:
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
        try:
            save_file(tensors, str(tmp), metadata=metadata)
            _sort_metadata(tmp)
        except Exception as err:  # a SafetensorError naming the OS error: say which file
            failure = files.as_os_error(err, path.parent)
            if failure is None:
                raise
            raise OSError(failure.errno, failure.strerror, str(path)) from None


def _sort_metadata(path: Path) -> None:
    """Rewrite the header of a safetensors file with its metadata keys sorted, in place: the
    library keeps metadata in a hash map, so two saves of the same model could differ in
    their bytes (and sha256). Same keys, same length: the tensors' offsets do not move."""
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":")).encode()
        if len(text) > size:  # never: the same JSON, reordered
            return
        f.seek(8)
        f.write(text.ljust(size))


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """``safe_open(path)`` for numpy; a missing or damaged file is a RunError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            yield f
    except FileNotFoundError:
        raise RunError(f"'{path}' is missing; retrain the run") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(
            f"'{path}' is truncated or corrupt ({err}); retrain the run or restore the file"
        ) from None


def load_tensors(path: Path, family: str) -> dict[str, Any]:
    """Read numpy arrays from safetensors written by ``save_tensors`` for ``family``."""
    with open_tensors(path, family) as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)


@contextlib.contextmanager
def open_tensors(path: Path, family: str) -> Iterator[Any]:
    """``safe_open`` of a file written by ``save_tensors`` for ``family``, checked (a
    family that maps its tensors reads the checked file its own way)."""
    with _opened(path) as f:
        found = (f.metadata() or {}).get("gentool.family")
        if found != family:
            raise RunError(f"'{path}' holds a '{found}' model, not '{family}'; give a {family} run")
        yield f


#: A tensor as a safetensors header describes it: (dtype, shape), e.g. ("F32", (64, 32)).
TensorSpec = tuple[str, tuple[int, ...]]


def tensor_header(path: Path) -> dict[str, TensorSpec]:
    """Name -> (dtype, shape) of every tensor in a safetensors file, from its header alone:
    no tensor is read, whatever sizes the file claims. (safetensors checks that the header's
    offsets cover the file exactly, so the sizes it gives are those of the bytes on disk.)"""
    with _opened(path) as f:
        slices = {name: f.get_slice(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
        return {name: (s.get_dtype(), tuple(s.get_shape())) for name, s in slices.items()}


def _spec(spec: tuple[str, tuple[int | None, ...]]) -> str:
    dtype, shape = spec
    return f"{dtype} [{', '.join('*' if n is None else str(n) for n in shape)}]"


def check_tensors(
    path: Path,
    expected: dict[str, tuple[str, tuple[int | None, ...]]],
    optional: Collection[str] = (),
    config: str = "config.json",
    header: dict[str, TensorSpec] | None = None,
) -> dict[str, TensorSpec]:
    """Check that the tensors of ``path`` are exactly ``expected`` (what the run's ``config``
    describes: name -> (dtype, shape), None for a size the config leaves open), before
    anything is built or read; return the header. Names in ``optional`` may be absent (a
    tensor tied to another, or recomputed on load). A file that disagrees with its config
    is damaged, or lies: refused before anything the config claims is allocated.
    ``header``: the file's, if already read."""
    header = tensor_header(path) if header is None else header
    run = path.parent

    def disagree(what: str) -> RunError:
        return damaged(run, f"'{path.name}' does not match {config}: {what}")

    for name, spec in header.items():
        if name not in expected:
            raise disagree(f"it holds tensor '{name}', which the config's model does not have")
        dtype, shape = expected[name]
        fits = len(shape) == len(spec[1]) and all(
            want is None or want == got for want, got in zip(shape, spec[1], strict=True)
        )
        if spec[0] != dtype or not fits:
            raise disagree(
                f"tensor '{name}' is {_spec(spec)} in the file, {_spec(expected[name])} "
                "by the config"
            )
    missing = sorted(set(expected) - set(header) - set(optional))
    if missing:
        raise disagree(f"the config's model needs tensor '{missing[0]}', absent from the file")
    return header
