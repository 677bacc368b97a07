"""Writing files safely: where outputs may go, a full disk, file modes, --force.

Every failure is one ``Error:`` line, exit code 1, no traceback, and nothing lost or left
behind: the old run, the old output file and the last good checkpoint survive, and no
partial or temporary file remains.

The file system's refusals are injected where gentool meets them (``os.mkdir`` and
``os.open`` for a read-only folder; the writers for a full disk), so that the handling is
tested anywhere: CI may not mount a small file system, and root ignores file permissions.
Where permissions can be made real, a few tests also run gentool in a subprocess for which
they apply: as a normal user, or as root without the capabilities that bypass them.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_error, assert_same_weights, invoke

from gentool import api, runs
from gentool.output import files

NO_SPACE = "Error while serializing: I/O error: No space left on device (os error 28)"


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, corpus: Path) -> Path:
    """A small ngram run (trains in well under a second)."""
    out = tmp_path / "runs" / "ng"
    invoke("train", "ngram", "--data", corpus, "--out", out)
    return out


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (links not followed): its bytes and mode."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(folder))] = (path.read_bytes(), path.stat().st_mode)
    return found


def listing(folder: Path) -> list[str]:
    """Every name under ``folder``, hidden ones too: no temporary may be left behind."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` refuse new entries (EACCES), as a folder without write permission
    does, even under root: gentool and tempfile create files and folders with ``os.open``
    and ``os.mkdir``."""
    root = Path(os.path.realpath(folder))

    def inside(path: object) -> bool:
        parent = Path(os.path.realpath(os.path.dirname(os.fspath(path))))  # type: ignore[call-overload]
        return parent.is_relative_to(root)

    def denied(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))  # type: ignore[call-overload]

    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path: object, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if dir_fd is None and inside(path):
            raise denied(path)
        real_mkdir(path, mode, dir_fd=dir_fd)  # type: ignore[call-overload]

    def open_(path: object, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if dir_fd is None and flags & os.O_CREAT and inside(path):
            raise denied(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def unreadable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make the file ``path`` refuse to be opened (EACCES), even under root."""
    target = os.path.realpath(path)
    real_open = io.open

    def open_(file: object, *args: object, **kwargs: object) -> object:
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(io, "open", open_)


def disk_full_at_safetensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every safetensors write of the ngram family fails as on a full disk: safetensors'
    own (an imported model), and the trained model's, written as it is estimated."""
    from safetensors import SafetensorError

    def save_file(*args: object, **kwargs: object) -> None:
        raise SafetensorError(NO_SPACE)

    def write_safetensors(path: Path, *args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("safetensors.numpy.save_file", save_file)
    monkeypatch.setattr("gentool_ngram.streaming.write_safetensors", write_safetensors)


_DROP = "-dac_override,-dac_read_search,-fowner"


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: nothing for a normal user; for
    root, setpriv dropping the capabilities that bypass them. Skips where neither works."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set", _DROP, "--inh-caps", _DROP, "--"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"]).returncode:
        pytest.skip("root ignores file permissions, and setpriv cannot drop that here")
    return prefix


def gentool_as(prefix: list[str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "gentool", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- train --out: where a run may be written -------------------------------------------------


def test_out_under_a_file(tmp_path: Path, corpus: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    result = invoke("train", "ngram", "--data", corpus, "--out", "afile/run", ok=False)
    assert_error(result, "'afile' is a file, not a folder", "choose another --out")
    assert (tmp_path / "afile").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "corpus.txt"]


def test_out_that_is_a_file(tmp_path: Path, corpus: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    for force in ([], ["--force"]):
        result = invoke("train", "ngram", "--data", corpus, "--out", "afile", *force, ok=False)
        assert_error(result, "'afile' is a file, not a run directory")
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_under_proc(corpus: Path) -> None:
    result = invoke("train", "ngram", "--data", corpus, "--out", "/proc/gentool-run", ok=False)
    assert_error(result, "cannot write in '/proc'", "choose another --out")


def test_out_in_a_read_only_folder(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    for out in ("ro/run", "ro/deeper/run"):
        result = invoke("train", "ngram", "--data", corpus, "--out", out, ok=False)
        assert_error(result, f"--out '{out}'", "cannot write in 'ro' (permission denied)", "chmod")
    assert listing(tmp_path / "ro") == []


def test_out_in_a_read_only_folder_for_real(tmp_path: Path, corpus: Path) -> None:
    prefix = unprivileged()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    result = gentool_as(prefix, "train", "ngram", "--data", corpus, "--out", tmp_path / "ro/run")
    assert_error(result, "cannot write in", "permission denied")
    assert listing(tmp_path / "ro") == []


def test_force_over_a_run_in_a_read_only_folder(
    run: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(run)
    read_only(monkeypatch, run.parent)  # the new run is built beside the old one
    result = invoke("train", "ngram", "--data", corpus, "--out", run, "--force", ok=False)
    assert_error(result, "cannot write in", "permission denied")
    assert snapshot(run) == before
    assert listing(run.parent) == ["ng", *(f"ng/{name}" for name in sorted(before))]


def test_force_over_a_run_in_a_read_only_folder_for_real(run: Path, corpus: Path) -> None:
    prefix = unprivileged()
    before = snapshot(run)
    run.parent.chmod(0o555)
    try:
        result = gentool_as(prefix, "train", "ngram", "--data", corpus, "--out", run, "--force")
    finally:
        run.parent.chmod(0o755)
    assert_error(result, "cannot write in", "permission denied")
    assert snapshot(run) == before


def test_force_over_a_read_only_run(
    run: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing a run removes the old one at the end: refused up front if it cannot be."""
    before = snapshot(run)
    real_access = os.access

    def access(path: str, mode: int) -> bool:
        return not (os.fspath(path) == str(run) and mode & os.W_OK) and real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    result = invoke("train", "ngram", "--data", corpus, "--out", run, "--force", ok=False)
    assert_error(result, "is read-only, so --force cannot replace the run", "chmod -R u+w")
    assert snapshot(run) == before
    assert listing(run.parent) == ["ng", *(f"ng/{name}" for name in sorted(before))]


def test_force_over_a_read_only_run_for_real(run: Path, corpus: Path) -> None:
    prefix = unprivileged()
    before = snapshot(run)
    run.chmod(0o555)
    try:
        result = gentool_as(prefix, "train", "ngram", "--data", corpus, "--out", run, "--force")
    finally:
        run.chmod(0o755)
    assert_error(result, "is read-only, so --force cannot replace the run")
    assert snapshot(run) == before


def test_out_inside_a_run_is_refused(run: Path, corpus: Path, tmp_path: Path) -> None:
    before = snapshot(run)
    result = invoke("train", "ngram", "--data", corpus, "--out", run / "nested", ok=False)
    assert_error(result, "is inside the run directory", "a run cannot hold another")
    (tmp_path / "link").symlink_to(run)
    result = invoke("train", "ngram", "--data", corpus, "--out", "link/nested", ok=False)
    assert_error(result, "is inside the run directory")
    assert snapshot(run) == before


def test_import_out_in_a_read_only_folder(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("export", run, "--format", "arpa", "-o", tmp_path / "model.arpa")
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    result = invoke("import", "ngram", tmp_path / "model.arpa", "--out", "ro/run", ok=False)
    assert_error(result, "cannot write in 'ro'")
    assert listing(tmp_path / "ro") == []


# -- a full disk while saving a run or a checkpoint --------------------------------------------


def test_disk_full_while_saving_a_new_run(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_full_at_safetensors(monkeypatch)
    result = invoke("train", "ngram", "--data", corpus, "--out", "runs/new", ok=False)
    assert_error(
        result,
        "cannot write the run 'runs/new': the disk is full",
        "model.safetensors",
        "nothing was kept",
        "free space",
    )
    assert not (tmp_path / "runs").exists()  # nor the folder the run would have made


def test_disk_full_while_replacing_a_run(
    run: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(run)
    disk_full_at_safetensors(monkeypatch)
    result = invoke("train", "ngram", "--data", corpus, "--out", run, "--force", ok=False)
    assert_error(result, "the disk is full", "the previous run there is unchanged")
    assert snapshot(run) == before
    assert listing(run.parent) == ["ng", *(f"ng/{name}" for name in sorted(before))]
    api.load(run)


def test_disk_full_at_the_atomic_rename(
    run: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk can strike at any write of a run, the JSON ones and the fsync included."""
    before = snapshot(run)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs Linux's /proc to tell which file is synced")
    monkeypatch.setattr(os, "fsync", fsync)
    result = invoke("train", "ngram", "--data", corpus, "--out", run, "--force", ok=False)
    assert_error(result, "the disk is full", "the previous run there is unchanged")
    assert snapshot(run) == before
    assert listing(run.parent) == ["ng", *(f"ng/{name}" for name in sorted(before))]


def tiny_rnn(steps: int, checkpoint_every: int) -> list[str]:
    settings = ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1"]
    settings += ["model.dropout=0.0", "train.batch_size=4", "train.seq_len=8"]
    settings += ["train.warmup_steps=1", "train.log_every=2", "train.eval_batches=1"]
    settings += [f"train.max_steps={steps}", f"train.checkpoint_every={checkpoint_every}"]
    return [arg for setting in settings for arg in ("--set", setting)]


def test_disk_full_while_writing_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's writer says only "unexpected pos" and leaves its partial file: the full disk
    is told from the free space, the partial checkpoint goes, the last good one stays and
    resumes to the weights of a run that never failed."""
    pytest.importorskip("torch")
    from accelerate import Accelerator

    real_save_state = Accelerator.save_state
    calls: list[str] = []

    def save_state(self: Accelerator, output_dir: str, **kwargs: object) -> None:
        calls.append(output_dir)
        if len(calls) == 2:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "optimizer.bin").write_bytes(bytes(100))
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5 vs 3")
        real_save_state(self, output_dir, **kwargs)

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(Accelerator, "save_state", save_state)
        patch.setattr(files, "free_bytes", lambda where: 0)  # what the partial file left
        result = invoke("train", "rnn", *tiny_rnn(4, 2), "--out", run, ok=False)
    assert_error(
        result,
        f"cannot write the run '{run}': the disk is full",
        "while writing checkpoints/step-4",
        "its checkpoint at step 2 is kept",
        f"gentool train --resume --out {run}",
    )
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-2"]
    assert not (run / "gentool.json").exists()
    invoke("train", "--resume", "--out", run)
    invoke("train", "rnn", *tiny_rnn(4, 2), "--out", tmp_path / "whole")
    assert_same_weights(run, tmp_path / "whole")


def test_disk_full_while_saving_a_trained_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint of the last step is kept; resuming it writes the run."""
    pytest.importorskip("torch")
    import transformers.modeling_utils
    from safetensors import SafetensorError

    def safe_save_file(*args: object, **kwargs: object) -> None:
        raise SafetensorError(NO_SPACE)

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(transformers.modeling_utils, "safe_save_file", safe_save_file)
        result = invoke("train", "rnn", *tiny_rnn(4, 2), "--out", run, ok=False)
    assert_error(result, "the disk is full", "its checkpoint at step 4 is kept", "--resume")
    assert not (run / "model.safetensors").exists() and not (run / "gentool.json").exists()
    invoke("train", "--resume", "--out", run)
    invoke("train", "rnn", *tiny_rnn(4, 2), "--out", tmp_path / "whole")
    assert_same_weights(run, tmp_path / "whole")
    summary, whole = (
        json.loads((r / "gentool.json").read_text()) for r in (run, tmp_path / "whole")
    )
    assert summary["metrics"]["train_loss"] == whole["metrics"]["train_loss"]
    assert_error(invoke("train", "--resume", "--out", run, ok=False), "already train.max_steps")


def test_a_metrics_line_cut_short_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.jsonl"
    runs.append_line(path, {"step": 1})
    real_write = os.write
    with monkeypatch.context() as patch, pytest.raises(OSError) as caught:
        patch.setattr(os, "write", lambda fd, data: real_write(fd, data[:5]))
        runs.append_line(path, {"step": 2, "loss": 1.5})
    assert caught.value.errno == errno.ENOSPC
    assert path.read_text() == '{"step": 1}\n'


def test_library_write_failures_are_os_errors(tmp_path: Path) -> None:
    from safetensors import SafetensorError

    found = files.as_os_error(SafetensorError(NO_SPACE), tmp_path)
    assert found is not None and found.errno == errno.ENOSPC
    assert files.as_os_error(SafetensorError("invalid dtype"), tmp_path) is None
    torch_short = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5 vs 3")
    found = files.as_os_error(torch_short, tmp_path)  # the disk has room: some other failure
    assert found is not None and found.errno == errno.EIO
    assert "unexpected pos 5 vs 3" in files.reason(found)
    assert files.as_os_error(RuntimeError("shape mismatch"), tmp_path) is None
    assert files.as_os_error(KeyboardInterrupt(), tmp_path) is None


# -- outputs outside runs: export -o, generate --grid/--out-dir, restore -o --------------------


def test_export_never_writes_into_a_run(run: Path, tmp_path: Path) -> None:
    """The command that destroyed a run: export -o RUN/model.safetensors."""
    before = snapshot(run)
    (tmp_path / "link").symlink_to(run)
    (tmp_path / "model-link.arpa").symlink_to(run / "model.safetensors")
    for output in (
        run / "model.safetensors",
        run / "new.arpa",
        tmp_path / "link" / "model.arpa",
        tmp_path / "model-link.arpa",
    ):
        for force in ([], ["--force"]):
            result = invoke("export", run, "--format", "arpa", "-o", output, *force, ok=False)
            assert_error(result, "is inside the run directory", "write it outside the run")
    result = invoke("export", run, "--format", "arpa", "-o", run, "--force", ok=False)
    assert_error(result, "is inside the run directory")  # (-o may name a folder: ct2)
    assert snapshot(run) == before
    api.load(run)


def test_export_replaces_a_file_only_with_force(run: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.arpa"
    target.write_text("mine")
    result = invoke("export", run, "--format", "arpa", "-o", target, ok=False)
    assert_error(result, "exists; pass --force to replace it")
    assert target.read_text() == "mine"
    invoke("export", run, "--format", "arpa", "-o", target, "--force")
    assert target.read_text().startswith("\\data\\")
    assert stat.S_IMODE(target.stat().st_mode) == files.new_file_mode()


def test_export_never_replaces_a_link_or_a_device(run: Path, tmp_path: Path) -> None:
    """Renaming over /dev/stdout (a link) would remove it, as root even from /dev."""
    (tmp_path / "target.arpa").write_text("mine")
    (tmp_path / "stdout").symlink_to(tmp_path / "target.arpa")
    for force in ([], ["--force"]):
        result = invoke("export", run, "--format", "arpa", "-o", "stdout", *force, ok=False)
        assert_error(result, "'stdout' is a symbolic link", "name the file itself")
        if Path("/dev/null").exists():
            result = invoke("export", run, "--format", "arpa", "-o", "/dev/null", *force, ok=False)
            assert_error(result, "'/dev/null' is not a regular file")
    assert (tmp_path / "stdout").is_symlink()
    assert (tmp_path / "target.arpa").read_text() == "mine"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("afile/model.arpa", "'afile' is a file, not a folder"),
        ("/proc/model.arpa", "cannot write in '/proc'"),
    ],
)
def test_export_to_an_impossible_place(
    run: Path, tmp_path: Path, output: str, expected: str
) -> None:
    if output.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "adir").mkdir()
    before = listing(tmp_path)
    result = invoke("export", run, "--format", "arpa", "-o", output, ok=False)
    assert_error(result, expected)
    assert listing(tmp_path) == before


def test_export_into_a_read_only_folder(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    result = invoke("export", run, "--format", "arpa", "-o", "ro/model.arpa", ok=False)
    assert_error(result, "cannot write in 'ro' (permission denied)", "--output")
    assert listing(tmp_path / "ro") == []


def test_export_into_a_read_only_folder_for_real(run: Path, tmp_path: Path) -> None:
    prefix = unprivileged()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    result = gentool_as(prefix, "export", run, "--format", "arpa", "-o", tmp_path / "ro/m.arpa")
    assert_error(result, "cannot write in", "permission denied")
    assert listing(tmp_path / "ro") == []


def test_export_that_fails_keeps_the_old_file(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gentool_ngram.arpa

    target = tmp_path / "out" / "model.arpa"
    target.parent.mkdir()
    target.write_text("mine")

    def write_arpa(lm: object, path: str) -> None:
        Path(path).write_text("\\data\\\nngram 1=")  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gentool_ngram.arpa, "write_arpa", write_arpa)
    result = invoke("export", run, "--format", "arpa", "-o", target, "--force", ok=False)
    assert_error(result, f"cannot write '{target}': the disk is full", "free space")
    assert target.read_text() == "mine"
    assert listing(target.parent) == ["model.arpa"]
    result = invoke("export", run, "--format", "arpa", "-o", tmp_path / "new/m.arpa", ok=False)
    assert_error(result, "the disk is full")
    assert not (tmp_path / "new").exists()  # the folder it made is gone again


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN on the embedded digits (a few seconds)."""
    out = tmp_path_factory.mktemp("gan") / "run"
    settings = ["model.width=8", "model.latent_size=16", "train.batch_size=8"]
    settings += ["train.max_steps=2", "train.checkpoint_every=0", "train.eval_batches=1"]
    api.train("gan", overrides=settings, out=out)
    return out


@pytest.fixture(scope="module")
def restorer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("upscale") / "run"
    settings = ["model.width=8", "model.task=upscale", "train.batch_size=8"]
    settings += ["train.max_steps=2", "train.checkpoint_every=0", "train.eval_batches=1"]
    api.train("gan", overrides=settings, out=out)
    return out


def test_generate_never_writes_into_a_run(gan_run: Path, tmp_path: Path) -> None:
    before = snapshot(gan_run)
    (tmp_path / "link").symlink_to(gan_run)
    for option, path in (
        ("--grid", gan_run / "grid.png"),
        ("--grid", gan_run / "samples.png"),
        ("--out-dir", gan_run),
        ("--out-dir", gan_run / "samples"),
        ("--grid", tmp_path / "link" / "grid.png"),
    ):
        result = invoke("generate", gan_run, "-n", 2, option, path, "--force", ok=False)
        assert_error(result, "is inside the run directory", option)
    assert snapshot(gan_run) == before


def test_generate_replaces_images_only_with_force(gan_run: Path, tmp_path: Path) -> None:
    (tmp_path / "grid.png").write_text("mine")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "sample-0001.png").write_text("mine too")
    result = invoke("generate", gan_run, "-n", 2, "--grid", "grid.png", ok=False)
    assert_error(result, "'grid.png' exists; pass --force")
    result = invoke("generate", gan_run, "-n", 2, "--out-dir", "samples", ok=False)
    assert_error(result, "already holds samples (sample-0001.png); pass --force")
    assert (tmp_path / "grid.png").read_text() == "mine"
    assert (tmp_path / "samples" / "sample-0001.png").read_text() == "mine too"
    invoke("generate", gan_run, "-n", 2, "--grid", "grid.png", "--out-dir", "samples", "--force")
    assert (tmp_path / "grid.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "samples" / "sample-0001.png").read_bytes().startswith(b"\x89PNG")


def test_generate_into_a_read_only_folder(
    gan_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "afile").write_text("mine")
    read_only(monkeypatch, tmp_path / "ro")
    for option, path, expected in (
        ("--grid", "ro/grid.png", "cannot write in 'ro' (permission denied)"),
        ("--out-dir", "ro/samples", "cannot write in 'ro' (permission denied)"),
        ("--out-dir", "afile/samples", "'afile' is a file, not a folder"),
    ):
        result = invoke("generate", gan_run, "-n", 2, option, path, ok=False)
        assert_error(result, expected, f"{option} '{path}':")  # the path as given
    assert listing(tmp_path / "ro") == []


def test_generate_that_fails_leaves_no_new_file(
    gan_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gentool.output.images

    real_save = gentool.output.images.save_image
    saved = []

    def save_image(image: object, path: Path) -> None:
        if saved:  # the second image: the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(path)
        real_save(image, path)

    monkeypatch.setattr(gentool.output.images, "save_image", save_image)
    result = invoke("generate", gan_run, "-n", 3, "--out-dir", "new/samples", ok=False)
    assert_error(result, "cannot write", "sample-0001.png", "the disk is full")
    assert saved and not (tmp_path / "new").exists()


def test_restore_never_writes_into_a_run(restorer: Path, gan_run: Path, tmp_path: Path) -> None:
    invoke("generate", gan_run, "-n", 2, "--out-dir", "small")
    before = snapshot(restorer)
    for source, output in (
        ("small/sample-0000.png", restorer / "big.png"),
        ("small", restorer),
        ("small", restorer / "big"),
    ):
        result = invoke("restore", restorer, source, "-o", output, "--force", ok=False)
        assert_error(result, "is inside the run directory")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "sample-0000.png").symlink_to(restorer / "samples.png")
    result = invoke("restore", restorer, "small", "-o", "big", "--force", ok=False)
    assert_error(result, "is inside the run directory")
    assert snapshot(restorer) == before


def test_restore_to_impossible_places(
    restorer: Path, gan_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("generate", gan_run, "-n", 1, "--grid", "small.png")
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "mine.png").write_text("mine")
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    for source, output, expected in (
        ("small.png", "afile/big.png", "'afile' is a file, not a folder"),
        ("small.png", "ro/big.png", "cannot write in 'ro' (permission denied)"),
        ("small.png", "mine.png", "'mine.png' exists; pass --force"),
        (".", "afile", "'afile' is a file; name a folder"),
        (".", "ro/big", "cannot write in 'ro' (permission denied)"),
    ):
        result = invoke("restore", restorer, source, "-o", output, ok=False)
        assert_error(result, expected)
    assert (tmp_path / "afile").read_text() == "mine"
    assert (tmp_path / "mine.png").read_text() == "mine"
    assert listing(tmp_path / "ro") == []


def test_attention_never_writes_into_a_run(run: Path) -> None:
    pytest.importorskip("torch")
    before = snapshot(run)
    result = invoke("attention", run, "hello", "-o", run / "attention.png", "--force", ok=False)
    assert_error(result, "is inside the run directory")
    assert snapshot(run) == before


# -- reading a run the user may not read ------------------------------------------------------


def test_unreadable_model_file(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unreadable(monkeypatch, run / "model.safetensors")
    for command in (["generate", run], ["info", run], ["export", run, "--format", "arpa"]):
        extra = ["-o", "x.arpa"] if command[0] == "export" else []
        result = invoke(*command, *extra, ok=False)
        assert_error(result, "model.safetensors", "permission denied", "chmod -R a+rX")


def test_unreadable_gentool_json(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unreadable(monkeypatch, run / "gentool.json")
    for command in ("generate", "info"):
        assert_error(invoke(command, run, ok=False), "gentool.json", "permission denied")


def test_unreadable_run_for_real(run: Path) -> None:
    prefix = unprivileged()
    (run / "model.safetensors").chmod(0)
    try:
        result = gentool_as(prefix, "generate", run, "--seed", "1")
    finally:
        (run / "model.safetensors").chmod(0o644)
    assert_error(result, "model.safetensors", "permission denied")


# -- file modes -------------------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_every_file_of_a_run_gets_the_umask(
    umask: None, mask: int, tmp_path: Path, corpus: Path
) -> None:
    os.umask(mask)
    invoke("train", "ngram", "--data", corpus, "--out", "run")
    invoke("export", "run", "--format", "arpa", "-o", "model.arpa")
    found = modes(tmp_path / "run")
    assert "model.safetensors" in found
    assert set(found.values()) == {0o666 & ~mask}, found
    assert stat.S_IMODE((tmp_path / "model.arpa").stat().st_mode) == 0o666 & ~mask


def test_neural_runs_and_checkpoints_get_the_umask(umask: None, tmp_path: Path) -> None:
    """transformers' save_pretrained and accelerate's save_state write safetensors 0600."""
    pytest.importorskip("torch")
    os.umask(0o002)
    settings = ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1"]
    settings += ["train.batch_size=4", "train.seq_len=8", "train.max_steps=2"]
    settings += ["train.checkpoint_every=1", "train.eval_batches=1", "train.warmup_steps=1"]
    api.train("rnn", overrides=settings, out=tmp_path / "rnn")
    found = modes(tmp_path / "rnn")
    assert "checkpoints/step-2/model.safetensors" in found and "model.safetensors" in found
    assert set(found.values()) == {0o664}, found


def test_a_run_of_another_user_loads_for_real(run: Path) -> None:
    """What the 0600 model files broke: a run shared with other users."""
    prefix = unprivileged()
    if os.geteuid() != 0:
        pytest.skip("giving the run to another user needs root")
    for path in [run, *run.iterdir()]:
        os.chown(path, 65534, 65534)
    result = gentool_as(prefix, "generate", run, "--seed", "1")
    assert result.returncode == 0, result.stderr


# -- --force never reaches outside the run ----------------------------------------------------


def outside_pointing_run(run: Path, outside: Path) -> None:
    """Give ``run`` a gentool.json listing paths outside it, and links that lead out."""
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "s.txt").write_text("secret")
    meta = json.loads((run / "gentool.json").read_text())
    meta["files"]["../../outside/secret/s.txt"] = {"bytes": 6, "sha256": "0" * 64}
    meta["files"][str(outside / "secret" / "s.txt")] = {"bytes": 6, "sha256": "0" * 64}
    (run / "gentool.json").write_text(json.dumps(meta))
    (run / "to-file").symlink_to(outside / "secret" / "s.txt")
    (run / "to-folder").symlink_to(outside / "secret")
    (run / "checkpoints").symlink_to(outside / "secret")


def test_force_never_deletes_outside_the_run(run: Path, corpus: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside_pointing_run(run, outside)
    before = snapshot(outside)
    invoke("train", "ngram", "--data", corpus, "--out", run, "--force")
    assert snapshot(outside) == before
    assert not (run / "to-file").is_symlink() and not (run / "to-folder").is_symlink()
    assert [p.name for p in run.parent.iterdir()] == ["ng"]  # no .old or .partial left


def test_failed_force_never_deletes_outside_the_run(
    run: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside_pointing_run(run, outside)
    before, old = snapshot(outside), snapshot(run)
    disk_full_at_safetensors(monkeypatch)
    result = invoke("train", "ngram", "--data", corpus, "--out", run, "--force", ok=False)
    assert_error(result, "the disk is full")
    assert snapshot(outside) == before
    assert snapshot(run) == old and (run / "to-file").is_symlink()
    assert [p.name for p in run.parent.iterdir()] == ["ng"]


def test_a_stale_partial_link_is_not_followed(run: Path, corpus: Path, tmp_path: Path) -> None:
    """``.NAME.partial`` left behind as a link (by accident or malice) is removed, not
    emptied: what it points to stays."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("keep")
    (run.parent / ".ng.partial").symlink_to(tmp_path / "elsewhere")
    invoke("train", "ngram", "--data", corpus, "--out", run, "--force")
    assert (tmp_path / "elsewhere" / "keep.txt").read_text() == "keep"
    assert [p.name for p in run.parent.iterdir()] == ["ng"]


# -- the net under every write: the CLI says an OSError of the machine in one line -------------


def test_permission_denied_anywhere_is_one_line(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreadable(monkeypatch, corpus)
    result = invoke("train", "ngram", "--data", corpus, "--out", "run", ok=False)
    assert_error(result, "corpus.txt", "permission denied")


def test_a_folder_with_another_tools_training_json_is_no_run(run: Path, tmp_path: Path) -> None:
    """training.json is a common name: only gentool's own marks a run."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "training.json").write_text('{"epochs": 3}')
    invoke("export", run, "--format", "arpa", "-o", project / "model.arpa")
    result = invoke("train", "ngram", "--out", project, "--force", ok=False)
    assert_error(result, "is not a gentool run", "choose another --out")
    assert (project / "training.json").read_text() == '{"epochs": 3}'
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "training.json").write_text('{"family": "rnn", "recipe": {}}')
    result = invoke("export", run, "--format", "arpa", "-o", unfinished / "m.arpa", ok=False)
    assert_error(result, "is inside the run directory")
