#!/usr/bin/env bash
# jaxgram's steady-state training words/s on a lent GPU, in one go (under 8 minutes on one H200).
#
#   OUT=/some/folder bash bench/gpu.sh                 # on the GPU machine, from the repo root
#   GPU_SMOKE=1 OUT=/tmp/gpu-smoke bash bench/gpu.sh   # tiny sizes, on CPU: checks the script works
#
# Needs JAX (with CUDA), optax, NumPy and tqdm; not gensim, requests or bs4, and no network.
# Writes $OUT/gpu.json (figures, written part by part), $OUT/books_vectors.bin (five-book vectors,
# word2vec binary: score them on CPU with `python -m bench.gpu score FILE`) and $OUT/gpu.log.
# The five books come from $GPU_CORPUS (default bench/gpu_corpus.txt: make it on CPU beforehand
# with `python -m bench.gpu prepare`), else from a Gutenberg mirror (../shared/gutenberg or
# shared/gutenberg) if this machine can ingest (requests, bs4),
# else are skipped (said so in gpu.json). The synthetic corpus (100M tokens) needs only NumPy.
# Knobs: GPU_CENTRES (centres per step, default: the trainer's for the device and vocabulary),
# GPU_TOKENS, GPU_VOCAB, GPU_TIMEOUT (s).
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

# A hard stop below the lease: gpu.json keeps every part finished before it.
status=0
timeout "${GPU_TIMEOUT:-450}" "$PY" -m bench.gpu "${args[@]}" 2>&1 | tee -a "$OUT/gpu.log" || status=$?
echo "== exit status $status; results in $OUT/gpu.json" | tee -a "$OUT/gpu.log"
exit "$status"
