"""JAX's persistent compilation cache, so a second `jaxgram train` loads its XLA programs instead of compiling them.

Like the CPU worker count it is set where the process starts (the CLI's train handler, the
eval stage child), never on import. The folder is, first found: the `folder` argument
(`--compilation-cache`), $JAXGRAM_COMPILATION_CACHE, a folder the user already gave JAX
(JAX_COMPILATION_CACHE_DIR), else $XDG_CACHE_HOME/jaxgram/xla or ~/.cache/jaxgram/xla.
"off", in either of the first two, runs without a persistent cache.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import jax

from jaxgram.errors import ConfigError

ENV_VAR = "JAXGRAM_COMPILATION_CACHE"
OFF = "off"
DEFAULT = "the default"


def enable_compilation_cache(folder: str | os.PathLike | None = None, warn=None) -> Path | None:
    """Have JAX keep compiled programs in `folder` (see the module docstring for the default).

    Returns the folder in use, or None when the cache is off or unusable. An unusable folder
    (not creatable, not writable) is a one-line warning through `warn` (default: stderr),
    never an error: training only runs slower. A value that cannot name a folder is a ConfigError.
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
