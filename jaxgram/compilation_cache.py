"""JAX's persistent compilation cache, so a second `jaxgram train` loads its XLA programs instead of compiling them.

Like the CPU worker count it is set where the process starts (the CLI's train handler, the
eval stage child), never on import. The folder is, first found: the `folder` argument
(`--compilation-cache`), $JAXGRAM_COMPILATION_CACHE, a folder the user already gave JAX
(JAX_COMPILATION_CACHE_DIR), else $XDG_CACHE_HOME/jaxgram/xla or ~/.cache/jaxgram/xla.
"off", in either of the first two, runs without a persistent cache.

JAX writes each entry in place, so a full disk leaves an empty or cut-short `<key>-cache` file,
which JAX then never rewrites: every later process would warn about it and recompile. So the
folder is swept at start (remove_broken_entries), and the first failed write of a run is one
warning line that turns the cache off for the rest of the run and removes what it left.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax

from jaxgram.errors import ConfigError
from jaxgram.fileio import os_error_reason

ENV_VAR = "JAXGRAM_COMPILATION_CACHE"
OFF = "off"
DEFAULT = "the default"


def enable_compilation_cache(folder: str | os.PathLike | None = None, warn=None) -> Path | None:
    """Have JAX keep compiled programs in `folder` (see the module docstring for the default).

    Returns the folder in use, or None when the cache is off or unusable. An unusable folder
    (not creatable, not writable) is a one-line warning through `warn` (default: stderr),
    never an error: training only runs slower, and so is a write that fails during the run (see
    the module docstring). A value that cannot name a folder is a ConfigError.
    """
    chosen, where = _chosen(folder)
    if chosen == OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = Path(os.path.expanduser(chosen))  # unchanged, not an error, where there is no home folder
    # A user's relative folder is taken from the working directory; the default never is.
    problem = "no home folder to keep it in" if where == DEFAULT and not path.is_absolute() else _unwritable(path)
    path = path.absolute()
    if problem is not None:
        (warn or _print_warning)(f"compilation cache {path} ({where}) is not usable: {problem}; "
                                 "compiling without a persistent cache")
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # By default JAX skips programs that compile in under a second, and may skip small ones:
    # most of ours (initialisers, PRNG, loss read-out) take 0.01-0.5 s each, about a second together.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _watch_writes(path, _sweep(path), warn or _print_warning)
    return path


def _chosen(folder: str | os.PathLike | None) -> tuple[str, str]:
    """(the folder or "off", where it came from), checked to name a local folder."""
    if folder is not None:
        value, where = os.fspath(folder), "--compilation-cache"
    elif os.environ.get(ENV_VAR):  # set but empty counts as unset, as for XDG_CACHE_HOME
        value, where = os.environ[ENV_VAR], ENV_VAR
    elif jax.config.jax_compilation_cache_dir:  # the user's own choice for JAX is kept
        value, where = jax.config.jax_compilation_cache_dir, "jax_compilation_cache_dir"
    else:
        return str(default_folder()), DEFAULT
    if value.strip().lower() == OFF:
        return OFF, where
    if not value.strip() or "\0" in value or "://" in value:
        raise ConfigError(f"{where}={value!r} is not allowed: give a local folder or {OFF!r}")
    return value, where


def default_folder() -> Path:
    """$XDG_CACHE_HOME/jaxgram/xla, else ~/.cache/jaxgram/xla (a relative XDG_CACHE_HOME is ignored, as the spec says).

    Without a home folder the result is relative (it starts with ~), and enable_compilation_cache refuses it.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    return Path(base if os.path.isabs(base) else os.path.join(os.path.expanduser("~"), ".cache"), "jaxgram", "xla")


def _unwritable(path: Path) -> str | None:
    """Why `path` cannot hold cache entries (created if missing), or None if it can."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A real write: permission bits say nothing for root, and a read-only mount says nothing in them.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _print_warning(message: str) -> None:
    print(f"jaxgram: warning: {message}", file=sys.stderr)


# Files named by this suffix are JAX's cache entries (jax/_src/lru_cache.py); eviction, when on,
# keeps each one's last use in a `<key>-atime` file beside it.
ENTRY_SUFFIX = "-cache"
_ATIME_SUFFIX = "-atime"
# Touched at each sweep, before the folder is listed: an entry older than it was already checked.
CHECKED_MARKER = ".jaxgram-checked"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_BYTES = 1 << 16


def remove_broken_entries(folder: str | os.PathLike, since_ns: int | None = None) -> list[Path]:
    """Remove the cache entries in `folder` that a failed write left empty or cut short; return them.

    Empty entries are always found; the others are read through (decompressed, or for zstd their
    frame walked) only when modified at or after `since_ns` (None: all of them), so a sweep of a
    large folder reads only what is new. Files in a format JAX does not write are left alone.
    """
    removed = []
    for entry in sorted(Path(folder).glob(f"*{ENTRY_SUFFIX}")):
        with contextlib.suppress(OSError):  # removed meanwhile, by another run's sweep
            status = entry.stat()
            new = since_ns is None or status.st_mtime_ns >= since_ns
            if status.st_size == 0 or (new and not _entry_is_whole(entry)):
                entry.unlink()
                Path(str(entry)[:-len(ENTRY_SUFFIX)] + _ATIME_SUFFIX).unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _sweep(folder: Path) -> int | None:
    """Remove the broken entries written since the last sweep; the time (ns) from which entries are this run's."""
    marker = folder / CHECKED_MARKER
    try:
        checked_before = marker.stat().st_mtime_ns
    except OSError:
        checked_before = None
    try:
        marker.touch()  # the filesystem's clock, as the entries' times are
        started = marker.stat().st_mtime_ns
    except OSError:
        started = None  # a failed write in this run then has every entry read
    remove_broken_entries(folder, checked_before)
    return started


def _entry_is_whole(entry: Path) -> bool:
    """Whether the entry holds a whole compressed stream: zstd (Python 3.14's or zstandard's) or zlib."""
    with open(entry, "rb") as handle:
        head = handle.read(len(_ZSTD_MAGIC))
        handle.seek(0)
        if not head:
            return False
        if _ZSTD_MAGIC.startswith(head) or head.startswith(_ZSTD_MAGIC):
            return _zstd_frame_is_whole(handle, os.fstat(handle.fileno()).st_size)
        if head[0] == 0x78:  # zlib's header byte for deflate with a 32 KiB window, what zlib.compress writes
            return _zlib_stream_is_whole(handle)
    return True


def _zlib_stream_is_whole(handle) -> bool:
    stream = zlib.decompressobj()
    try:
        for block in iter(lambda: handle.read(_READ_BYTES), b""):
            stream.decompress(block)  # the output is not needed, only whether the stream ends
    except zlib.error:
        return False
    return stream.eof and not stream.unused_data


def _zstd_frame_is_whole(handle, size: int) -> bool:
    """Whether the file is one zstd frame that ends exactly at its end: the block headers are walked
    (RFC 8878, section 3.1.1), nothing is decompressed."""
    header = handle.read(18)  # magic, descriptor, window, dictionary id and content size at most
    if len(header) < 6:
        return False
    descriptor = header[4]
    single_segment = bool(descriptor & 0x20)
    content_size_bytes = (int(single_segment), 2, 4, 8)[descriptor >> 6]
    position = 5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3] + content_size_bytes
    checksum_bytes = 4 if descriptor & 0x04 else 0
    while True:
        handle.seek(position)
        block = handle.read(3)
        if len(block) < 3:
            return False
        value = int.from_bytes(block, "little")
        last, kind, length = value & 1, value >> 1 & 3, value >> 3
        if kind == 3:  # reserved: not a zstd frame after all
            return False
        position += 3 + (1 if kind == 1 else length)  # an RLE block holds one byte
        if last:
            return position + checksum_bytes == size


# JAX's warning for an entry it could not write (jax/_src/compiler.py, _cache_write). Matched by its
# start: if JAX words it otherwise, its own warnings show again and the next start's sweep still cleans up.
_JAX_WRITE_FAILED = "Error writing persistent compilation cache entry"


@dataclass
class _Watch:
    """The cache this process writes to, for the warnings hook."""

    folder: Path
    since_ns: int | None  # entries modified from then on are this run's
    warn: Callable[[str], None]
    turned_off: bool = False


_watch: _Watch | None = None
_write_failed_lock = threading.Lock()
_shown_before = warnings.showwarning  # what shows every other warning


def _watch_writes(folder: Path, since_ns: int | None, warn: Callable[[str], None]) -> None:
    """Route JAX's failed-write warnings to _write_failed (warnings.showwarning is the documented hook)."""
    global _watch, _shown_before
    _watch = _Watch(folder, since_ns, warn)
    if warnings.showwarning is not _show_warning:
        _shown_before = warnings.showwarning
        warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if _watch is not None and str(message).startswith(_JAX_WRITE_FAILED):
        _write_failed(_watch, str(message))
    else:
        _shown_before(message, category, filename, lineno, file, line)


def _write_failed(watch: _Watch, message: str) -> None:
    """Remove what the failed write left; the first time, one warning line and no cache for the rest of the run
    (JAX would otherwise try, and fail, to write every program it compiles)."""
    with _write_failed_lock:  # JAX may compile, and so fail to write, on several threads at once
        remove_broken_entries(watch.folder, watch.since_ns)
        if watch.turned_off:
            return
        watch.turned_off = True
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    jax.config.update("jax_enable_compilation_cache", False)
    jax_cache.reset_cache()  # JAX decides once per process whether to use the cache; this asks again
    # "... for 'jit_f': OSError: [Errno 28] No space left on device" -> "the disk is full (No space left on device)"
    error = re.search(r"\[Errno (\d+)\] (.+)", message)
    reason = os_error_reason(OSError(int(error[1]), error[2])) if error else message.partition("': ")[2] or message
    watch.warn(f"compilation cache {watch.folder} could not keep a compiled program: {reason}; "
               "compiling without a persistent cache for the rest of this run")
