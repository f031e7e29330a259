"""Training configuration: one frozen dataclass, validated before any work starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from jaxgram.errors import ConfigError

OBJECTIVES = ("ns", "softmax")
OPTIMIZERS = ("sgd", "adam", "adagrad")
INITS = ("word2vec", "glorot")
ALL_DEVICES = "all"


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one skip-gram run; names and defaults follow gensim/word2vec."""

    objective: str = "ns"
    dim: int = 100
    window: int = 5
    shrink_window: bool = True
    negative: int = 5
    ns_exponent: float = 0.75
    epochs: int = 5
    min_count: int = 5
    max_vocab_size: int | None = None
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    optimizer: str = "sgd"
    init: str = "word2vec"
    tied: bool = False
    # Pairs per optimiser step. The objective is the SUM over the batch, so each pair
    # gets word2vec's per-pair learning rate whatever the batch size.
    batch_size: int = 1024
    seed: int = 1
    # None: the single-process default (on several CPU devices, sparse SGD runs Hogwild-style
    # replicas). N or "all": synchronous data parallelism over a mesh of that many devices
    # (all processes' devices when jax.distributed is initialised); batch_size is then per device.
    devices: int | str | None = None
    # Row-shard E and W (and any per-entry optimiser state) across the mesh instead of
    # replicating them, so a table larger than one device's memory fits. Needs `devices`.
    shard_tables: bool = False
    # Encoded tokens per chunk the host turns into training groups at a time (bounds host
    # memory); centres are shuffled within a chunk, so it is part of what a seed reproduces.
    chunk_tokens: int = 4_000_000

    def validate(self) -> "TrainConfig":
        """Raise ConfigError naming the first bad field; return self so calls can chain."""
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), _FIELD_TYPES[field.name])
        _choice("objective", self.objective, OBJECTIVES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("init", self.init, INITS)
        _at_least("dim", self.dim, 1)
        _at_least("window", self.window, 1)
        _at_least("epochs", self.epochs, 1)
        _at_least("min_count", self.min_count, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("seed", self.seed, 0)
        if self.objective == "ns":
            _at_least("negative", self.negative, 1)
        else:
            _at_least("negative", self.negative, 0)
        if self.max_vocab_size is not None:
            _at_least("max_vocab_size", self.max_vocab_size, 2)
        if isinstance(self.devices, str):
            if self.devices != ALL_DEVICES:
                raise ConfigError(f"devices={self.devices!r} is not allowed: it must be an int >= 1 or {ALL_DEVICES!r}")
        elif self.devices is not None:
            _at_least("devices", self.devices, 1)
        if self.shard_tables and self.devices is None:
            raise ConfigError("shard_tables=True is not allowed without devices: sharded tables need the "
                              "synchronous mesh path (set devices to N or 'all')")
        _at_least("chunk_tokens", self.chunk_tokens, 2)
        if not self.alpha > 0:
            raise ConfigError(f"alpha={self.alpha!r} is not allowed: it must be > 0")
        if not 0 <= self.min_alpha <= self.alpha:
            raise ConfigError(f"min_alpha={self.min_alpha!r} is not allowed: it must be between 0 and alpha ({self.alpha})")
        if not 0 <= self.sample < 1:
            raise ConfigError(f"sample={self.sample!r} is not allowed: it must be in [0, 1) (0 disables subsampling)")
        if not 0 <= self.ns_exponent <= 1:
            raise ConfigError(f"ns_exponent={self.ns_exponent!r} is not allowed: it must be in [0, 1]")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build and validate a config; unknown keys and wrong types raise ConfigError naming the key."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"config must be a mapping of field names to values, got {type(values).__name__}")
        unknown = sorted(set(values) - set(_FIELD_TYPES))
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(_FIELD_TYPES)}")
        for key, value in values.items():
            _check_type(key, value, _FIELD_TYPES[key])
        coerced = {k: float(v) if _FIELD_TYPES[k] is float else v for k, v in values.items()}
        return cls(**coerced).validate()


_TYPES_BY_ANNOTATION = {"str": str, "int": int, "float": float, "bool": bool, "int | None": (int, type(None)),
                        "int | str | None": (int, str, type(None))}
_FIELD_TYPES = {f.name: _TYPES_BY_ANNOTATION[f.type] for f in dataclasses.fields(TrainConfig)}


def _type_name(expected) -> str:
    if isinstance(expected, tuple):
        return " or ".join("null" if t is type(None) else t.__name__ for t in expected)
    return expected.__name__


def _check_type(name: str, value: Any, expected) -> None:
    allowed = expected if isinstance(expected, tuple) else (expected,)
    # bool is a subclass of int in Python; a config saying `dim = true` is still a mistake.
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    elif float in allowed:
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, allowed)
    if not ok:
        raise ConfigError(f"{name}={value!r} has the wrong type: expected {_type_name(expected)}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed: choose one of {', '.join(allowed)}")


def _at_least(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} has the wrong type: expected int")
    if value < minimum:
        raise ConfigError(f"{name}={value!r} is not allowed: it must be >= {minimum}")
