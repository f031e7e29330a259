"""The persistent compilation cache: a second process loads what the first compiled; off and bad folders.

Training runs in child processes: JAX sets its cache up once per process, at the first compile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

import jaxgram.compilation_cache as compilation_cache
from jaxgram.cli import main
from jaxgram.compilation_cache import enable_compilation_cache, remove_broken_entries
from jaxgram.errors import ConfigError
from jaxgram.toy import toy_sentences

REPO_ROOT = Path(__file__).resolve().parents[1]
# One worker, so that the second run's vectors are bitwise the first's (with more, the fused
# kernel's threads race on shared rows as gensim's do).
TRAIN_ARGS = ("--dim", "8", "--epochs", "1", "--min-count", "1", "--window", "2", "--batch-size", "32", "--workers", "1",
              "--no-progress")
# `jaxgram train` in this child, counting JAX's persistent-cache events; prints them as JSON on its last line.
COUNTING_CHILD = """
import collections, json, sys
from jax import monitoring
events = collections.Counter()
monitoring.register_event_listener(lambda name, **kwargs: events.update([name.rsplit("/", 1)[-1]]))
from jaxgram.cli import main
status = main(["train", *sys.argv[1:]])
print(json.dumps({"status": status, **events}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache-corpus") / "corpus.txt"
    path.write_text("".join(" ".join(s) + "\n" for s in toy_sentences() * 5), encoding="utf-8")
    return path


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without any cache setting of the user's, its default folder under tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if k not in (compilation_cache.ENV_VAR, "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME")}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg"), **extra}


def _train(corpus: Path, out: Path, env: dict[str, str], *argv: str) -> tuple[dict, str]:
    """(status and cache event counts, stderr) of `jaxgram train` in a child process."""
    result = subprocess.run([sys.executable, "-c", COUNTING_CHILD, "--corpus", str(corpus), "--out", str(out),
                             *TRAIN_ARGS, *argv], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def _entries(folder: Path) -> dict[str, int]:
    """Cache entries in `folder`: file name -> modification time (ns)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name.endswith("-cache")}


def test_a_second_process_loads_every_program_the_first_compiled(corpus, tmp_path):
    folder = tmp_path / "xla"
    first, _ = _train(corpus, tmp_path / "run1", _child_env(tmp_path), "--compilation-cache", str(folder))
    entries = _entries(folder)
    compiled = first["compile_requests_use_cache"]
    # Every program compiled was written, the smallest too: JAX's default thresholds would skip most.
    assert first["status"] == 0 and compiled > 1 and first.get("cache_hits", 0) == 0
    assert len(entries) == first["cache_misses"] == compiled
    second, _ = _train(corpus, tmp_path / "run2", _child_env(tmp_path), "--compilation-cache", str(folder))
    assert second["compile_requests_use_cache"] == second["cache_hits"] == compiled
    assert second.get("cache_misses", 0) == 0
    assert _entries(folder) == entries  # nothing compiled anew, nothing rewritten
    assert (tmp_path / "run2" / "vectors.bin").read_bytes() == (tmp_path / "run1" / "vectors.bin").read_bytes()
    assert not (tmp_path / "xdg").exists()  # the option wins over the default folder


def test_off_writes_no_cache_anywhere(corpus, tmp_path):
    env = _child_env(tmp_path, **{compilation_cache.ENV_VAR: str(tmp_path / "from-env")})
    events, _ = _train(corpus, tmp_path / "run", env, "--compilation-cache", "off")
    assert events["task_disabled_cache"] == 1 and "cache_misses" not in events and "cache_hits" not in events
    assert not (tmp_path / "from-env").exists() and not (tmp_path / "xdg").exists()


def test_an_unusable_folder_warns_in_one_line_and_trains_without_a_cache(corpus, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a folder under a file cannot be made, even by root
    events, stderr = _train(corpus, tmp_path / "run", _child_env(tmp_path), "--compilation-cache", str(blocker / "xla"))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jaxgram: warning: compilation cache ")
    assert str(blocker / "xla") in lines[0] and "without a persistent cache" in lines[0]
    assert events["task_disabled_cache"] == 1 and (tmp_path / "run" / "vectors.bin").exists()


def test_the_eval_stage_child_uses_the_default_folder(corpus, tmp_path):
    config = json.dumps({"dim": 8, "epochs": 1, "min_count": 1, "window": 2, "batch_size": 32})
    result = subprocess.run([sys.executable, "-m", "eval.stage", "jaxgram", "--corpus", str(corpus), "--out",
                             str(tmp_path / "run"), "--config-json", config], capture_output=True, text=True,
                            env=_child_env(tmp_path), cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _entries(tmp_path / "xdg" / "jaxgram" / "xla")


class _RecordingConfig:
    """Stands in for jax.config: records updates, so these tests leave this process's JAX alone."""

    def __init__(self, cache_dir=None):
        self.jax_compilation_cache_dir = cache_dir
        self.updates = {}

    def update(self, name, value):
        self.updates[name] = value


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """The settings enable_compilation_cache makes, with a clean environment and HOME under tmp_path."""
    config = _RecordingConfig()
    monkeypatch.setattr(compilation_cache, "jax", SimpleNamespace(config=config))
    # A folder in use routes JAX's failed-write warnings through a hook: put back what was there.
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(compilation_cache, "_watch", None)
    for name in (compilation_cache.ENV_VAR, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return config


def test_the_folder_is_the_option_then_the_env_var_then_jax_then_xdg_then_home(recorded, tmp_path, monkeypatch):
    assert enable_compilation_cache() == tmp_path / "home" / ".cache" / "jaxgram" / "xla"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert enable_compilation_cache() == tmp_path / "home" / ".cache" / "jaxgram" / "xla"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert enable_compilation_cache() == tmp_path / "xdg" / "jaxgram" / "xla"
    recorded.jax_compilation_cache_dir = str(tmp_path / "users-jax")  # e.g. JAX_COMPILATION_CACHE_DIR
    assert enable_compilation_cache() == tmp_path / "users-jax"
    monkeypatch.setenv(compilation_cache.ENV_VAR, "~/from-env")
    assert enable_compilation_cache() == tmp_path / "home" / "from-env"
    assert enable_compilation_cache(tmp_path / "option") == tmp_path / "option"
    # The probe is gone; the sweep's marker is all there is.
    assert [p.name for p in (tmp_path / "option").iterdir()] == [compilation_cache.CHECKED_MARKER]
    assert recorded.updates == {"jax_enable_compilation_cache": True, "jax_compilation_cache_dir": str(tmp_path / "option"),
                                "jax_persistent_cache_min_compile_time_secs": 0.0,
                                "jax_persistent_cache_min_entry_size_bytes": -1}
    monkeypatch.setenv(compilation_cache.ENV_VAR, "OFF")
    assert enable_compilation_cache() is None and recorded.updates["jax_enable_compilation_cache"] is False


def test_an_unwritable_folder_is_one_warning_and_no_cache(recorded, tmp_path):
    (tmp_path / "file").write_text("")
    warnings = []
    assert enable_compilation_cache(tmp_path / "file" / "xla", warn=warnings.append) is None
    assert len(warnings) == 1 and "\n" not in warnings[0] and str(tmp_path / "file" / "xla") in warnings[0]
    assert recorded.updates == {"jax_enable_compilation_cache": False}


@pytest.mark.parametrize("value", ["", "  ", "gs://bucket/xla", "a\0b"])
def test_values_that_name_no_local_folder_are_config_errors(recorded, value):
    with pytest.raises(ConfigError, match="--compilation-cache=.* is not allowed: give a local folder or 'off'"):
        enable_compilation_cache(value)
    assert recorded.updates == {}


def test_the_env_var_is_checked_too_and_empty_is_unset(recorded, monkeypatch, tmp_path):
    monkeypatch.setenv(compilation_cache.ENV_VAR, "s3://bucket/xla")
    with pytest.raises(ConfigError, match=f"{compilation_cache.ENV_VAR}='s3://bucket/xla' is not allowed"):
        enable_compilation_cache()
    assert recorded.updates == {}
    monkeypatch.setenv(compilation_cache.ENV_VAR, "")
    assert enable_compilation_cache() == tmp_path / "home" / ".cache" / "jaxgram" / "xla"


def test_a_bad_option_exits_2_with_one_line(tmp_path, capsys, corpus):
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--compilation-cache", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxgram train: error: --compilation-cache='' is not allowed") and len(err.splitlines()) == 1


def test_without_a_home_folder_the_default_is_a_warning_not_a_relative_folder(recorded, monkeypatch, tmp_path):
    monkeypatch.delenv("HOME")
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)  # what it does when no home can be found
    monkeypatch.chdir(tmp_path)
    warnings = []
    assert enable_compilation_cache(warn=warnings.append) is None
    assert len(warnings) == 1 and "no home folder" in warnings[0] and not (tmp_path / "~").exists()


def _zstd_frame(payload: bytes) -> bytes:
    """A zstd frame (RFC 8878) of a raw block and a one-byte RLE block, as JAX writes with zstd (Python 3.14,
    or zstandard installed), made without a zstd library: the `zstd` tool decodes it to payload + b"!!!"."""
    raw = (len(payload) << 3).to_bytes(3, "little")  # not the last block; type 0, raw
    rle = (3 << 3 | 1 << 1 | 1).to_bytes(3, "little")  # the last block; type 1, RLE: one byte, three times
    return b"\x28\xb5\x2f\xfd" + bytes([0x00, 0x00]) + raw + payload + rle + b"!"


def _plant(folder: Path, entries: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in entries.items():
        (folder / name).write_bytes(data)


PROGRAM = b"a compiled program " * 200
WHOLE = {"jit_a-1-cache": zlib.compress(PROGRAM), "jit_b-2-cache": _zstd_frame(PROGRAM),
         "jit_c-3-cache": b"a format JAX does not write", ".lockfile": b"", "jit_a-1-atime": b"\0" * 8}
BROKEN = {"jit_d-4-cache": b"", "jit_e-5-cache": zlib.compress(PROGRAM)[:40], "jit_f-6-cache": _zstd_frame(PROGRAM)[:-1]}


def test_a_start_removes_the_entries_a_failed_write_left_and_nothing_else(recorded, tmp_path):
    """JAX writes entries in place and never rewrites one that exists: an empty or cut-short entry (zlib or zstd)
    would be a warning and a recompile in every later run. Enabling the cache removes them, with their -atime."""
    folder = tmp_path / "xla"
    _plant(folder, {**WHOLE, **BROKEN, "jit_e-5-atime": b"\0" * 8})
    assert enable_compilation_cache(folder) == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted([*WHOLE, compilation_cache.CHECKED_MARKER])


def test_only_entries_written_since_the_last_sweep_are_read_through(tmp_path):
    """An entry older than the last sweep was checked then (JAX never rewrites an entry), so it is not read
    again: a sweep of a large folder costs a listing. Empty entries are found whatever their age."""
    _plant(tmp_path, BROKEN)
    written_ns = 1_700_000_000 * 10**9
    for name in BROKEN:
        os.utime(tmp_path / name, ns=(written_ns, written_ns))
    assert remove_broken_entries(tmp_path, since_ns=written_ns + 1) == [tmp_path / "jit_d-4-cache"]
    assert remove_broken_entries(tmp_path, since_ns=written_ns) == [tmp_path / "jit_e-5-cache", tmp_path / "jit_f-6-cache"]


def test_a_failed_write_is_one_warning_turns_the_cache_off_and_removes_what_it_left(recorded, tmp_path):
    """JAX warns once per entry it cannot write; jaxgram shows the first as one line and turns the cache off."""
    folder = tmp_path / "xla"
    shown = []
    jax_says = "Error writing persistent compilation cache entry for '{}': OSError: [Errno 28] No space left on device"
    # Recording replaces warnings.showwarning, so the cache is enabled inside, as a process start is.
    with warnings.catch_warnings(record=True) as others:
        warnings.simplefilter("always")
        assert enable_compilation_cache(folder, warn=shown.append) == folder
        _plant(folder, BROKEN)  # what JAX's writes into a full folder left
        warnings.warn(jax_says.format("jit_run_many"), stacklevel=1)
        warnings.warn(jax_says.format("jit_stage"), stacklevel=1)
        warnings.warn("another warning", stacklevel=1)
    assert shown == [f"compilation cache {folder} could not keep a compiled program: the disk is full "
                     "(No space left on device); compiling without a persistent cache for the rest of this run"]
    assert [str(w.message) for w in others] == ["another warning"]
    assert recorded.updates["jax_enable_compilation_cache"] is False
    assert [p.name for p in folder.iterdir()] == [compilation_cache.CHECKED_MARKER]
