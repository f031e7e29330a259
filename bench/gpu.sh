#!/usr/bin/env bash
# jaxgram's steady-state training words/s on a lent GPU (the measure part: under 8 minutes on one
# H200), then both trainers at each worker count on its CPUs (the cores part, below).
#
#   OUT=/some/folder bash bench/gpu.sh                 # on the GPU machine, from the repo root
#   GPU_PARTS=cores OUT=/some/folder bash bench/gpu.sh # the cores part alone, in a call of its own
#   GPU_SMOKE=1 OUT=/tmp/gpu-smoke bash bench/gpu.sh   # tiny sizes, on CPU: checks the script works
#
# The measure part needs JAX (with CUDA), optax, NumPy and tqdm; not gensim, requests or bs4, and
# no network.
# Writes $OUT/gpu.json (figures, written part by part), $OUT/books_vectors.bin (five-book vectors,
# word2vec binary: score them on CPU with `python -m bench.gpu score FILE`) and $OUT/gpu.log.
# The five books come from $GPU_CORPUS (default bench/gpu_corpus.txt: make it on CPU beforehand
# with `python -m bench.gpu prepare`), else from a Gutenberg mirror (../shared/gutenberg or
# shared/gutenberg) if this machine can ingest (requests, bs4),
# else are skipped (said so in gpu.json). The synthetic corpus (100M tokens) needs only NumPy.
# Knobs: GPU_CENTRES (centres per step, default: the trainer's for the device and vocabulary),
# GPU_TOKENS, GPU_VOCAB, GPU_TIMEOUT (s).
#
# Then the cores benchmark on the machine's CPUs (JAX_PLATFORMS=cpu): `python -m bench --corpus
# FILE --workers $GPU_CORES` (default 1,2,4,8,16; smoke: 1,2), jaxgram's fused kernel and gensim
# with each worker count, $GPU_CORES_SEEDS seeds (default 3; smoke: 1), within $GPU_CORES_TIMEOUT
# s (default 360; $OUT/cores.json keeps every finished count). It needs the five-book corpus file,
# gensim (a wheel carried along, where the machine lacks it) and the fused kernel: when
# jaxgram/_ns_sgd.so is not there it is built with CMake into $TMPDIR/jaxgram-kernel-build, and the part
# is skipped, with the reason in gpu.log, when any of them is missing. GPU_PARTS (default
# "measure cores") picks the parts: each fits one 10-minute call, both together may not.
# jaxlib 0.10.2 to 0.11.0 on NVIDIA GPUs compile an f32 scatter-add with repeated indices to a
# compare-and-swap loop (~500x slower; jax-ml/jax#38806): with those versions this script adds
# XLA's workaround to XLA_FLAGS, and says so in gpu.log.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
PY=${PYTHON:-python3}
# The checkout itself, not an install: `pip install -e .` would build the C++ CPU kernel, which
# needs build tools from the network; the GPU path does not use it.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

args=(measure --out "$OUT")
if [[ "${GPU_SMOKE:-0}" == 1 ]]; then
    args+=(--smoke)
fi
corpus=${GPU_CORPUS:-bench/gpu_corpus.txt}
if [[ -f "$corpus" ]]; then
    args+=(--books "$corpus")
else
    for mirror in ../shared/gutenberg shared/gutenberg; do
        if [[ -d "$mirror/cache" ]]; then
            args+=(--mirror "$mirror")
            break
        fi
    done
fi
knobs=(GPU_CENTRES --centres GPU_TOKENS --tokens GPU_VOCAB --vocab GPU_WORK --work)
for ((i = 0; i < ${#knobs[@]}; i += 2)); do
    name=${knobs[i]}
    if [[ -n "${!name:-}" ]]; then
        args+=("${knobs[i + 1]}" "${!name}")
    fi
done

versions=$("$PY" -c 'import jax, jaxlib; print(jax.__version__, jaxlib.__version__, jax.default_backend())')
read -r jax_version jaxlib_version backend <<<"$versions"
if [[ "$backend" == gpu ]] && "$PY" -c '
import sys
release = tuple(int(part) for part in sys.argv[1].split(".")[:3])
sys.exit(0 if (0, 10, 2) <= release <= (0, 11, 0) else 1)' "$jaxlib_version"; then
    export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_backend_extra_options=-nvptx-allow-ftz-atomics"
fi

{
    echo "== $(date -u +%FT%TZ) bench/gpu.sh ${args[*]}"
    echo "jax $jax_version, jaxlib $jaxlib_version, backend $backend; XLA_FLAGS=${XLA_FLAGS:-}"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    "$PY" -c 'import jax; print("devices", jax.devices())'
} 2>&1 | tee "$OUT/gpu.log"

parts=" ${GPU_PARTS:-measure cores} "
status=0
if [[ "$parts" == *" measure "* ]]; then
    # A hard stop below the lease: gpu.json keeps every part finished before it.
    timeout "${GPU_TIMEOUT:-450}" "$PY" -m bench.gpu "${args[@]}" 2>&1 | tee -a "$OUT/gpu.log" || status=$?
    echo "== exit status $status; results in $OUT/gpu.json" | tee -a "$OUT/gpu.log"
fi

# The fused kernel's library: the checkout's, or one built here (the C++ compiler and CMake only).
fused_kernel() {
    JAX_PLATFORMS=cpu "$PY" -c 'import sys; from jaxgram import fused; sys.exit(0 if fused.available() else 1)' \
        2>/dev/null && return 0
    local build="${TMPDIR:-/tmp}/jaxgram-kernel-build"
    cmake -S . -B "$build" -DPython_EXECUTABLE="$(command -v "$PY")" >"$build.log" 2>&1 &&
        cmake --build "$build" >>"$build.log" 2>&1 && [[ -f "$build/_ns_sgd.so" ]] || return 1
    export JAXGRAM_FUSED_LIBRARY="$build/_ns_sgd.so"
}

if [[ "$parts" == *" cores "* ]]; then
    if [[ "${GPU_SMOKE:-0}" == 1 ]]; then
        workers=${GPU_CORES:-1,2} seeds=${GPU_CORES_SEEDS:-1}
    else
        workers=${GPU_CORES:-1,2,4,8,16} seeds=${GPU_CORES_SEEDS:-3}
    fi
    if [[ ! -f "$corpus" ]]; then
        why="no corpus file $corpus (make it on CPU: python -m bench.gpu prepare)"
    elif ! "$PY" -c 'import gensim' 2>/dev/null; then
        why="gensim is not installed here (carry its wheel)"
    elif ! fused_kernel; then
        why="the fused kernel is neither built nor buildable here (see ${TMPDIR:-/tmp}/jaxgram-kernel-build.log)"
    else
        why=""
    fi
    if [[ -n "$why" ]]; then
        echo "== cores benchmark skipped: $why" | tee -a "$OUT/gpu.log"
    else
        echo "== $(date -u +%FT%TZ) cores benchmark: workers $workers, $seeds seed(s)" | tee -a "$OUT/gpu.log"
        cores_status=0
        JAX_PLATFORMS=cpu timeout "${GPU_CORES_TIMEOUT:-360}" "$PY" -m bench --corpus "$corpus" --workers "$workers" \
            --seeds "$seeds" --out "$OUT/cores.json" 2>&1 |
            tee -a "$OUT/gpu.log" || cores_status=$?
        echo "== cores exit status $cores_status; results in $OUT/cores.json" | tee -a "$OUT/gpu.log"
        [[ $status != 0 ]] || status=$cores_status
    fi
fi
exit "$status"
