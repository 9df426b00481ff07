"""Writing files: atomically (a reader sees the old file or the whole new one, never half of it),
with the permissions a file written by any other program gets, and JSON that holds only plain
values. A file or folder that cannot be written is a `DigitlabError` naming it."""

from __future__ import annotations

import contextlib
import glob
import math
import os
import secrets
import stat
from pathlib import Path
from typing import IO, Iterator

from .errors import DigitlabError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: leftovers of killed writes are not cleaned up
    fcntl = None


def make_folder(folder: str | os.PathLike, file: Path | None = None) -> Path:
    """Create ``folder`` and its parents if needed, or raise `DigitlabError` saying why not (naming
    ``file``, when the folder is made to hold it)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        what = f"{file}: cannot write" if file else f"{folder}: cannot create this folder"
        raise DigitlabError(f"{what} ({_reason(folder, e)})") from None
    return folder


def ensure_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """Check, before any long work, that the file ``path`` (or with ``folder``, files inside the
    folder ``path``) can be written: create the folder, then create and delete a file in it.
    Raises `DigitlabError` naming the path. Only the folder is left behind."""
    path = Path(path)
    if not folder and path.is_dir():
        raise DigitlabError(f"{path}: is a folder; give a file name")
    parent = make_folder(path) if folder else make_folder(path.parent, path)
    try:
        fd, probe = _create_temporary(parent / (path.name if not folder else "probe"))
    except OSError as e:
        raise DigitlabError(f"{path}: cannot write ({_reason(parent, e)})") from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file ``.NAME.XXXXXXXX.part`` beside ``path``; on success rename it over
    ``path``, on error delete it. A new file gets the permissions the umask allows (0666 & ~umask)
    and a replaced one keeps its own. Temporary files that earlier writes of ``path`` left behind
    when they were killed are deleted. Any `OSError` becomes a `DigitlabError` naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise DigitlabError(f"{path}: is a folder; give a file name")
    make_folder(path.parent, path)
    _remove_leftovers(path)
    try:
        fd, tmp = _create_temporary(path)
    except OSError as e:
        raise DigitlabError(f"{path}: cannot write ({_reason(path.parent, e)})") from None
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # replacing a file: keep its mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if fcntl:  # renamed while its lock is held, so no other writer takes it for a leftover
                os.replace(tmp, path)
        if not fcntl:  # Windows cannot rename an open file
            os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise DigitlabError(f"{path}: cannot write ({_reason(path.parent, e)})") from None
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file ``.NAME.XXXXXXXX.part`` beside ``path``, open for writing and locked (see
    `_remove_leftovers`). Created with mode 0666, which the kernel masks with the umask, as it
    does for any program's new file (``tempfile.mkstemp`` would make it 0600)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, tmp
        os.close(fd)  # taken for a leftover and deleted between its creation and the lock: again


def _remove_leftovers(path: Path) -> None:
    """Delete the temporary files of earlier writes of ``path`` that were killed before renaming
    them. A live writer holds a lock on its temporary file, so a write in progress is left alone."""
    if fcntl is None:
        return
    # ".NAME." + 8 characters + ".part": our names (hex), and tempfile.mkstemp's of earlier versions
    pattern = f".{glob.escape(path.name)}.{'[a-z0-9_]' * 8}.part"
    for part in glob.glob(os.path.join(glob.escape(str(path.parent)), pattern)):
        try:
            fd = os.open(part, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(part)
        except OSError:  # locked by a live writer, or already gone
            pass
        finally:
            os.close(fd)


def _reason(folder: Path, error: OSError) -> str:
    """Why ``folder`` cannot hold a file: a file standing where a folder should be, else the
    system's words (permission denied, read-only file system, no space left...)."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return f"{blocker} is a file, not a folder"
    return error.strerror or str(error)


def jsonable(value):
    """``value`` with plain JSON types only: NumPy arrays and scalars as Python values, tuples as
    lists, non-finite floats as null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
