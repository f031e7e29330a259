"""jaxgram: skip-gram word embeddings as pure JAX functions.

Public names are imported lazily so that `jaxgram ingest` and `--help` start without
loading JAX; `import jaxgram; jaxgram.Params` works as usual.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_EXPORTS = {
    "Params": "jaxgram.losses",
    "full_softmax_loss": "jaxgram.losses",
    "negative_sampling_loss": "jaxgram.losses",
    "softmax_pair_loss": "jaxgram.losses",
    "ns_pair_loss": "jaxgram.losses",
    "TrainConfig": "jaxgram.config",
    "train": "jaxgram.training",
    "TrainResult": "jaxgram.outputs",
    "configure_cpu_workers": "jaxgram.distributed",
    "Embeddings": "jaxgram.embeddings",
    "UnknownWordError": "jaxgram.embeddings",
    "Vocabulary": "jaxgram.vocab",
    "Word2Vec": "jaxgram.gensim_model",
    "build_vocabulary": "jaxgram.vocab",
    "init_params": "jaxgram.init",
    "count_pairs": "jaxgram.data",
    "run_toy": "jaxgram.toy",
    "toy_sentences": "jaxgram.toy",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        # Submodules (jaxgram.geometry, jaxgram.data, ...) load on first attribute access too.
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'jaxgram' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
