"""Writing to the file system: file modes, and what a failed write means to the user.

Writes fail for reasons of the machine, not of gentool: a full disk, a read-only folder or
file system, a path through a file, /proc. Each is said in one ``Error:`` line with the
fix, never as a traceback. The libraries that write model files report these failures in
their own ways (safetensors as a ``SafetensorError`` naming the OS error, torch's
checkpoint writer as a ``RuntimeError``: "unexpected pos"), so ``as_os_error`` maps them
back to the ``OSError`` they stand for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from gentool.errors import OutputError

# torch's writer (torch.save, accelerate's save_state) says only this when a write is short.
_TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")
_OS_ERROR = re.compile(r"os error (\d+)")  # how safetensors (Rust) names the OS error
_NEARLY_FULL = 16 << 20  # bytes free below which a short write means a full disk


# -- modes ------------------------------------------------------------------------------------


def umask() -> int:
    """This process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and put back
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0644 under the usual umask 022."""
    return 0o666 & ~umask()


def share_like_new_files(root: Path) -> None:
    """Give every file under ``root`` the mode a new file gets (0644 under umask 022).

    safetensors writes through a private temporary file (mode 0600) that it renames into
    place, and so do transformers' ``save_pretrained`` and accelerate's ``save_state``,
    which use it: a run shared with a group or another user could not be loaded.
    Symbolic links and what they point to are left alone.
    """
    mode = new_file_mode()
    for folder, _, names in os.walk(root):  # (os.walk does not enter linked folders)
        for name in names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) != mode:
                os.chmod(path, mode)


def shown(path: Path) -> str:
    """``path`` for a message: relative to the current folder when it is inside it."""
    with contextlib.suppress(ValueError, OSError):
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    return str(path)


# -- failed writes ----------------------------------------------------------------------------


def as_os_error(err: BaseException, where: Path) -> OSError | None:
    """``err`` as the ``OSError`` it stands for when it is a failed write; None when it is
    anything else (a bug, an interruption). ``where`` is a folder on the disk written to:
    torch's writer does not say why a write was short, a nearly full disk does."""
    if isinstance(err, OSError):
        return err
    text = str(err)
    if type(err).__name__ == "SafetensorError":
        found = _OS_ERROR.search(text)
        if found is None:
            return None
        code = int(found.group(1))
        return OSError(code, os.strerror(code))
    if isinstance(err, RuntimeError) and any(s in text for s in _TORCH_WRITE_FAILED):
        if free_bytes(where) < _NEARLY_FULL:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        detail = text.strip().splitlines()[-1].split("] ")[-1].strip(" .")
        return OSError(errno.EIO, f"the write failed: {detail}")
    return None


def free_bytes(where: Path) -> int:
    """Bytes free to this user on the disk holding ``where`` (or its nearest existing parent)."""
    for folder in (where, *where.parents):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free
    return 0


# The errors of a write that the machine refused, as opposed to a bug in the writer.
WRITE_FAILURES = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG}
)


def is_disk_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def reason(err: OSError) -> str:
    """Why a write failed, in words."""
    if err.errno == errno.ENOSPC:
        return "the disk is full (No space left on device)"
    if err.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if err.errno == errno.EROFS:
        return "the file system is read-only"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    return err.strerror or str(err)


def remedy(err: OSError, option: str = "location") -> str:
    """What to do about a failed write (``option``: the flag that chose the place)."""
    if is_disk_full(err):
        return "free space on that disk"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"make the folder writable for you (chmod u+w) or choose another {option}"
    return f"choose another {option}"


# -- up-front checks --------------------------------------------------------------------------


def check_can_create(path: Path, option: str, inside: bool = False) -> None:
    """Fail before any work unless ``path`` can be created (``inside``: files can be created
    in the folder ``path``): the nearest existing folder above it must let this process
    create entries. That is tried, not guessed from mode bits, which mislead under root,
    ACLs, read-only mounts and /proc."""
    folder = path if inside else path.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        what = "a broken link" if folder.is_symlink() and not folder.exists() else "a file"
        raise OutputError(
            f"{option} '{path}': '{folder}' is {what}, not a folder; choose another {option}"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".gentool-probe-", dir=folder))
    except OSError as err:
        raise OutputError(
            f"{option} '{path}': cannot write in '{folder}' ({reason(err)}); {remedy(err, option)}"
        ) from None
