"""word2vec's SGD step of negative sampling as one fused C++ call (XLA FFI, CPU).

csrc/ns_sgd.cc trains a batch of centre groups pair by pair, as word2vec.c and gensim do:
each (context, centre) pair is one SGD step with its own K negatives, drawn in the kernel
from the noise table with a seed the caller passes. The batch is `streams` interleaved
streams (centre b in stream b % streams), each trained in order on the tables themselves.
With one worker thread the streams take turns and a step is a pure function of its
operands; with several, the threads train their streams at once and race on the rows they
share, as gensim's threads do, so a run reproduces itself bitwise only with one worker
(gensim's rule too). The frequent words' rows, which every thread keeps hitting, are the
exception: each thread trains its own copy of them for the step and the step adds up the
threads' changes when it ends, so that their cache lines do not pass between the cores at
every write (with them shared, two threads trained no faster than one). The batched XLA
step (jaxgram.step) is the accelerators' version of the same objective; see there how they
differ. `ns_sgd_step` runs inside jit, lax.scan and shard_map; the tables are aliased in and
out of the call, so donated tables are updated in place.

The library (jaxgram/_ns_sgd.so, built by CMakeLists.txt through scikit-build-core) is
a plain shared library loaded with ctypes, not a Python extension: it links no Python,
so one build serves every interpreter. It is loaded and its handlers registered with
XLA on first use; importing this module touches neither JAX nor the library. Without
the library (a pure-Python install, no compiler), `available()` is False and
`unavailable_reason()` says why.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import numpy as np

# Points at a library to use instead of the installed one (tests, local builds).
LIBRARY_ENV = "JAXGRAM_FUSED_LIBRARY"
_STEM = "_ns_sgd"
_SUFFIXES = (".so", ".dylib", ".dll")
# tied -> (XLA custom-call target, exported handler symbol)
_HANDLERS = {False: ("jaxgram_ns_sgd_untied", "JaxgramNsSgdUntied"),
             True: ("jaxgram_ns_sgd_tied", "JaxgramNsSgdTied")}
# The kernel's thread pool driver on its own, for tests: (XLA custom-call target, symbol).
_PROBE = ("jaxgram_parallel_probe", "JaxgramParallelProbe")
_PROBE_FAILURES = {"exception": 0, "bad_alloc": 1}

_lock = threading.RLock()
_state: dict = {}  # "library": CDLL | None and "reason": str once loaded; "registered": bool


def _candidates() -> list[Path]:
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return [Path(override)]
    import importlib.util

    import jaxgram

    # An editable install (scikit-build-core's redirect mode) puts the built library in
    # site-packages and the sources in the checkout; jaxgram.__path__ lists both. Older
    # redirect finders only map module files: ask where `jaxgram._ns_sgd` would import
    # from (".so" is an extension-module suffix; the spec is only looked up, never loaded).
    candidates = [Path(folder) / f"{_STEM}{suffix}" for folder in jaxgram.__path__ for suffix in _SUFFIXES]
    spec = importlib.util.find_spec(f"jaxgram.{_STEM}")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin))
    return candidates


def _open_library() -> tuple[ctypes.CDLL | None, str]:
    candidates = _candidates()
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        return None, ("the fused kernel library is not built: none of " + ", ".join(map(str, candidates))
                      + " exists (reinstall jaxgram with `pip install -e .` where a C++17 compiler and CMake are)")
    try:
        import jax.ffi  # noqa: F401 - jax >= 0.4.38; older versions cannot call it
    except ImportError as error:
        return None, f"this jax has no jax.ffi ({error}); the fused kernel needs jax >= 0.4.38"
    try:
        library = ctypes.CDLL(str(found))
        for _target, symbol in (*_HANDLERS.values(), _PROBE):
            getattr(library, symbol)
    except (OSError, AttributeError) as error:
        return None, f"{found} could not be loaded: {error}"
    return library, ""


def _library() -> ctypes.CDLL | None:
    with _lock:
        if "library" not in _state:
            _state["library"], _state["reason"] = _open_library()
        return _state["library"]


def available() -> bool:
    """Whether the fused CPU kernel can be used in this process."""
    return _library() is not None


def unavailable_reason() -> str:
    """Why available() is False ("" when it is True)."""
    _library()
    return _state["reason"]


def _register() -> None:
    """Register both handlers with XLA for the CPU platform, once per process."""
    with _lock:
        if _state.get("registered"):
            return
        library = _library()
        if library is None:
            raise RuntimeError(f"jaxgram.fused: {_state['reason']}")
        import jax

        for target, symbol in (*_HANDLERS.values(), _PROBE):
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
        _state["registered"] = True


def _varying_axes(x) -> frozenset:
    import jax

    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    return frozenset(manual.varying) if manual is not None else frozenset(getattr(aval, "vma", ()))


def _match_varying(operands: list) -> list:
    """Inside shard_map all operands of one call must vary over the same mesh axes (a caller's
    tables and batches may vary per device where its learning rate does not): widen
    each to the union. Outside shard_map every set is empty and nothing changes."""
    import jax

    axes = [_varying_axes(x) for x in operands]
    union = frozenset().union(*axes)
    return [x if own == union else jax.lax.pcast(x, tuple(n for n in union if n not in own), to="varying")
            for x, own in zip(operands, axes)]


def _check_operands(E, W, centers, contexts, noise_ids, seed, mask, negative: int, streams: int) -> None:
    # Static shapes and attributes: checked once at trace time, so a mistake names the argument.
    import jax.numpy as jnp

    for name, table in (("E", E), ("W", W)):
        if table.ndim != 2 or table.dtype != jnp.float32:
            raise TypeError(f"ns_sgd_step: {name} must be float32 [V, D], got {table.dtype}{list(table.shape)}")
    if W.shape[1] != E.shape[1]:
        raise ValueError(f"ns_sgd_step: E and W rows differ in length: {E.shape[1]} vs {W.shape[1]}")
    batch = centers.shape[0] if centers.ndim == 1 else None
    for name, value, ndim in (("centers", centers, 1), ("contexts", contexts, 2), ("mask", mask, 1)):
        if value.ndim != ndim or value.shape[0] != batch:
            raise ValueError(f"ns_sgd_step: {name} must have {ndim} dimension(s) and one row per centre "
                             f"(centers has shape {list(centers.shape)}), got {list(value.shape)}")
    size = noise_ids.shape[0] if noise_ids.ndim == 1 else 0
    if size < 1 or size & (size - 1) or size > 1 << 32:
        raise ValueError(f"ns_sgd_step: noise_ids must be one power-of-two-long table of word ids, got shape "
                         f"{list(noise_ids.shape)}")
    if seed.shape != (2,) or seed.dtype != jnp.uint32:
        raise TypeError(f"ns_sgd_step: seed must be uint32[2] (jax.random.bits(key, (2,), jnp.uint32)), got "
                        f"{seed.dtype}{list(seed.shape)}")
    if negative < 0 or streams < 1:
        raise ValueError(f"ns_sgd_step: needs negative >= 0 and streams >= 1, got negative={negative}, "
                         f"streams={streams}")


def ns_sgd_step(E, W, centers, contexts, noise_ids, seed, mask, lr, negative: int, streams: int = 1,
                tied: bool = False, workers: int = 1):
    """word2vec's SGD over a batch of centre groups: (E, W or None, losses [B]).

    E, W: float32 [V, D] input and output tables (W None, or tied=True: W is E).
    centers int [B]; contexts int [B, C] (< 0: empty slot); noise_ids int [T], T a power of
    two, the noise table negatives are drawn from (jaxgram.data.noise_table); seed uint32[2],
    the step's random bits; mask float [B] (0: padding centre, a weight scales the centre's
    step size); lr: scalar step size; negative: K negatives per pair; streams: centre b is in
    stream b % streams; workers: threads, each training its streams at the same time as the
    others (see the module docstring): the rows of the lowest ids (the frequent words) each
    thread trains its own copy of, and the step adds their changes when it ends. Each pair
    (context c, centre t) is an SGD step on losses.ns_pair_loss with E[c] as the input row
    and W[t] as the output row: the output rows are updated one after another, each from the
    input row as the pair found it, and the input row last (word2vec.c's order). The losses are each centre's summed pair
    losses, mask-weighted (padding 0). An id outside the tables (in an unmasked centre), or
    a noise table id outside W, fails the call and changes nothing.
    """
    import jax
    import jax.numpy as jnp

    _register()
    tied = tied or W is None
    E = jnp.asarray(E)
    W = E if tied else jnp.asarray(W)
    centers, contexts, noise_ids = (jnp.asarray(ids, jnp.int32) for ids in (centers, contexts, noise_ids))
    seed, mask = jnp.asarray(seed), jnp.asarray(mask, jnp.float32)
    _check_operands(E, W, centers, contexts, noise_ids, seed, mask, negative, streams)
    tables = [E] if tied else [E, W]
    operands = _match_varying([*tables, centers, contexts, noise_ids, seed, mask,
                               jnp.asarray(lr, jnp.float32).reshape(())])
    tables, mask = operands[:len(tables)], operands[-2]
    target = _HANDLERS[tied][0]
    results = [jax.ShapeDtypeStruct.like(table) for table in tables] + [jax.ShapeDtypeStruct.like(mask)]
    # Table i in, table i out: XLA hands the kernel one buffer to update in place.
    aliases = {i: i for i in range(len(tables))}
    # `workers` threads train the streams side by side (bitwise reproducible with one).
    outputs = jax.ffi.ffi_call(target, results, input_output_aliases=aliases)(
        *operands, negative=np.int64(negative), streams=np.int64(streams), workers=np.int64(workers))
    if tied:
        return outputs[0], None, outputs[1]
    return outputs[0], outputs[1], outputs[2]


def last_step_threads() -> list[int]:
    """How many centres each thread trained in the last fused step this process ran (the calling
    thread's first; one entry per distinct thread): the kernel's own record of which threads
    trained a step (the calling thread takes a share itself when no pool thread has by then)."""
    library = _library()
    if library is None:
        raise RuntimeError(f"jaxgram.fused: {_state['reason']}")
    capacity = 256
    centres = (ctypes.c_int64 * capacity)()
    threads = library.JaxgramLastStepThreads(centres, ctypes.c_int64(capacity))
    return list(centres[:min(threads, capacity)])


def parallel_probe(parts: int, fail_part: int = -1, failure: str = "exception") -> np.ndarray:
    """Run the kernel's thread-pool driver with `parts` parts that wait for each other (up to a
    second) on XLA's CPU pool: int32 [parts], the thread (numbered from 1) that ran each part.
    Part `fail_part` raises a C++ `failure` ("exception" or "bad_alloc") instead, which the
    call turns into an error raised here: for tests of what a failing thread does."""
    import jax

    _register()
    call = jax.ffi.ffi_call(_PROBE[0], jax.ShapeDtypeStruct((parts,), np.int32))
    return np.asarray(call(parts=np.int64(parts), fail_part=np.int64(fail_part),
                           fail_kind=np.int64(_PROBE_FAILURES[failure])))


def context_block(ids, sentence_ids, reach, rows, window: int):
    """contexts [len(rows), 2·window] int32 as data.CentreGroups.block builds them, in one C++ pass;
    None when the library is not available (the caller then builds them with NumPy).

    ids, sentence_ids, reach: int32 arrays of one chunk's tokens; rows: int32 centre positions.
    """
    library = _library()
    if library is None:
        return None
    out = np.empty((len(rows), 2 * window), dtype=np.int32)
    arrays = [np.ascontiguousarray(a, dtype=np.int32) for a in (ids, sentence_ids, reach, rows)]
    pointer = ctypes.POINTER(ctypes.c_int32)
    library.JaxgramContextBlock(*(a.ctypes.data_as(pointer) for a in arrays[:3]), ctypes.c_int64(len(arrays[0])),
                                arrays[3].ctypes.data_as(pointer), ctypes.c_int64(len(rows)),
                                ctypes.c_int64(window), out.ctypes.data_as(pointer))
    return out

