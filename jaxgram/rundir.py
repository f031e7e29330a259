"""The output folder a training run owns: checked, locked for the run, and its scratch space.

- `check_output_folder(out)`: `out` is a folder (made if missing), or a one-line DataError.
- `claim(out)`: holds an exclusive `fcntl.flock` on `out/.jaxgram.lock` for the run, so a
  second run into the same folder is refused instead of interleaving checkpoints. The OS
  drops the lock when the process dies, kill -9 included, so it can never stay stuck. Once
  held, it removes the temporaries (`.tmp-*`) of the atomic writer that a killed run left.
  Every writer that creates, replaces or removes a run folder takes it: `jaxgram train`,
  `jaxgram pipeline` (its `--out`), and the pipeline's trainer stages (`clear(out)`).
- `scratch_folder(out)`: where the encoded corpus lives while training reads it. With `out`
  it is `out/.scratch` (a rerun into the folder replaces what a killed run left); without,
  `$TMPDIR/jaxgram-encoded-<pid>-*`, and each such folder whose run is gone is removed when
  the next one starts. Either way it is removed when the run ends or is interrupted.

Plain Python, no JAX: `jaxgram train` checks its folder before it loads anything heavy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jaxgram.errors import DataError
from jaxgram.fileio import os_error_reason

LOCK_NAME = ".jaxgram.lock"
SCRATCH_NAME = ".scratch"
TMP_PREFIX = "jaxgram-encoded-"
# <prefix><pid>-<random>: what scratch_folder(None) makes. Older releases' names carry no pid
# and no lock, so whether their run still lives cannot be told: those are left alone.
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-\w+\Z")
# fileio.atomic_open's temporaries: `.tmp-<target's name>.<mkstemp's 8 random characters>`.
_TEMPORARY_NAME = re.compile(r"\.tmp-.+\.[a-z0-9_]{8}\Z")


def check_output_folder(out: str | os.PathLike) -> Path:
    """`out` as a Path, made (with its parents) if missing; DataError if it is not a folder or cannot be made."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is not a folder: --out needs a folder for the vectors and checkpoints")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a dangling symlink, or a file that appeared meanwhile
        raise DataError(f"{folder} is not a folder: --out needs a folder for the vectors and checkpoints") from None
    except OSError as exc:
        raise DataError(f"cannot create the output folder {folder}: {os_error_reason(exc)}") from None
    return folder


@contextlib.contextmanager
def claim(out: str | os.PathLike | None, command: str = "jaxgram train") -> Iterator[Path | None]:
    """Hold `out` for this run (made if missing); DataError naming the folder and the holder (command and pid)
    if another process holds it. `command` is how a run refused by this one names it. Once the folder is held,
    the atomic writer's temporaries a killed run left in it are removed (remove_leftover_temporaries).
    `None` (no output folder, or a process that does not write it) holds nothing."""
    if out is None:
        yield None
        return
    made = _first_missing(Path(out))
    try:
        folder = check_output_folder(out)
        with _held(folder, command):
            remove_leftover_temporaries(folder)
            yield folder
    finally:
        if made is not None:  # a refused or failed run leaves no empty folder behind, parents included
            _remove_empty_folders(Path(out), made)


def clear(out: str | os.PathLike, command: str) -> None:
    """Empty the run folder `out` while holding it (claim): a run that holds it refuses this, and loses nothing.

    For a writer that replaces a run folder's whole content, as the pipeline's trainer stages do
    before their trainer claims the folder again."""
    with claim(out, command) as folder:
        for entry in folder.iterdir():
            if entry.name == LOCK_NAME:
                continue
            try:
                _remove(entry)
            except OSError as exc:
                raise DataError(f"cannot remove {entry} to replace the run in {folder}: {os_error_reason(exc)}") from None


@contextlib.contextmanager
def _held(folder: Path, command: str) -> Iterator[None]:
    """The folder's lock, with this process named in it, for the `with` block; its file removed afterwards."""
    lock = folder / LOCK_NAME
    fd = _lock(lock, folder)
    try:
        _name_holder(fd, folder, command)
        yield
    finally:
        # Unlinked while still locked: a run that opened the old file and locks it after this
        # close sees that the name no longer leads to it, and starts over (see _lock).
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def _name_holder(fd: int, folder: Path, command: str) -> None:
    """Write 'pid host command' into the held lock file: only read by a refused run, to name the holder."""
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {command}\n".encode())
    except OSError as exc:  # a full disk fails here first: the lock file is the claim's first write
        raise DataError(f"cannot write in the output folder {folder}: {os_error_reason(exc)}") from None


def _lock(path: Path, folder: Path) -> int:
    """An open descriptor of `path` holding its exclusive flock; DataError if another process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DataError(f"cannot write in the output folder {folder}: {os_error_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(f"{folder} is in use by another {_holder(path)}; wait for it to finish or choose "
                            "another --out") from None
        except OSError as exc:  # e.g. a network filesystem without locks
            os.close(fd)
            raise DataError(f"cannot lock the output folder {folder} ({path}): {exc.strerror}") from None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the previous holder removed the file as it finished: lock the new one


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _holder(path: Path) -> str:
    """'COMMAND (pid N)' (and the host when it is another machine's), as the holder wrote it into the lock file."""
    try:
        pid, host, *command = path.read_text().split()
    except (OSError, ValueError):  # the holder has not written it yet
        return "jaxgram run (pid unknown)"
    # Releases before the pipeline took locks wrote no command: only `jaxgram train` held folders then.
    what = " ".join(command) or "jaxgram train"
    return f"{what} (pid {pid})" if host == socket.gethostname() else f"{what} (pid {pid} on {host})"


def remove_leftover_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the atomic writer's `.tmp-*` files that killed runs left in `folder` and its subfolders; return them.

    Only for the folder's holder (inside claim): a live run's temporaries are its own. Hidden
    subfolders (the scratch folder, a user's .git), symlinks, and subfolders with a lock file
    (another run's folder, swept when that one is claimed) are left alone.
    """
    removed = []
    for root, subfolders, files in os.walk(folder):
        here = Path(root)
        subfolders[:] = [name for name in subfolders
                         if not name.startswith(".") and not (here / name / LOCK_NAME).exists()]
        for path in (here / name for name in files if _TEMPORARY_NAME.match(name)):
            if path.is_symlink() or not path.is_file():
                continue
            try:
                path.unlink()
            except OSError:  # gone meanwhile, or not this user's to remove: left as it is
                continue
            removed.append(path)
    return removed


def _first_missing(folder: Path) -> Path | None:
    """The topmost of `folder` and its parents that does not exist: the first folder making it creates."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            break
        missing = path
    return missing


def _remove_empty_folders(folder: Path, top: Path) -> None:
    """Remove `folder` and its parents up to `top` while they are empty."""
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:  # not empty: the run wrote in it, or another run holds it
            return
        if path == top:
            return


@contextlib.contextmanager
def scratch_folder(out: str | os.PathLike | None = None) -> Iterator[Path]:
    """An empty folder for the encoded corpus, removed when the `with` block ends however it ends.

    With `out` (call it inside `claim(out)`, which makes this run the folder's only user) it is
    `out/.scratch`, replacing what a killed run left there. Without, it is a new
    `$TMPDIR/jaxgram-encoded-<pid>-*`, after removing those whose run is gone.
    """
    held = None
    try:
        if out is not None:
            folder = Path(out) / SCRATCH_NAME
            _remove(folder)
            folder.mkdir(parents=True)
        else:
            remove_stale_scratch()
            folder, held = _new_tmp_scratch()
    except OSError as exc:
        raise DataError(f"cannot make a scratch folder for the encoded corpus: {exc}") from None
    try:
        yield folder
    finally:
        _remove(folder, ignore_errors=True)
        if held is not None:
            os.close(held)


def _new_tmp_scratch() -> tuple[Path, int]:
    """A new TMPDIR scratch folder and the descriptor holding the flock that says its run is alive.

    It is made under a hidden name and renamed once locked, so another run's sweep never sees
    it unlocked and takes it for a dead run's.
    """
    tmp = Path(tempfile.gettempdir())
    hidden = Path(tempfile.mkdtemp(prefix=f".{TMP_PREFIX}{os.getpid()}-", dir=tmp))
    fd = os.open(hidden / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        folder = tmp / hidden.name[1:]
        os.rename(hidden, folder)
    except OSError:
        os.close(fd)
        shutil.rmtree(hidden, ignore_errors=True)
        raise
    return folder, fd


def remove_stale_scratch(tmp: str | os.PathLike | None = None) -> list[Path]:
    """Remove this user's `jaxgram-encoded-<pid>-*` folders in `tmp` (default TMPDIR) whose run is gone; return them."""
    tmp = Path(tmp if tmp is not None else tempfile.gettempdir())
    removed = []
    for folder in sorted(tmp.glob(f"{TMP_PREFIX}*")):
        match = _TMP_NAME.match(folder.name)
        try:
            mine = not folder.is_symlink() and folder.is_dir() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue  # removed meanwhile by another run's sweep
        if match and mine and not _run_alive(folder, int(match[1])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _run_alive(folder: Path, pid: int) -> bool:
    """Whether the run that made `folder` still holds the lock in it.

    The lock, not the pid, decides: a pid can be reused by another program, and a TMPDIR shared
    across containers or hosts shows pids this process cannot see. The pid is only the
    fallback for a folder whose lock file someone removed.
    """
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return _pid_alive(pid)
    except OSError:
        return True  # not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: enough to test, and works on NFS read-only
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _remove(path: Path, ignore_errors: bool = False) -> None:
    """Remove a folder tree, file or symlink at `path` (a symlink itself, never what it points to)."""
    try:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    except OSError:
        if not ignore_errors:
            raise
