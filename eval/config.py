"""The pipeline's TOML config: [ingest], [train] (a jaxgram TrainConfig) and [eval].

Unknown keys and wrong types are refused with a ConfigError naming the key, before any work.
Named configs live in eval/configs/NAME.toml and are selected with `--config NAME`.
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxgram.config import TrainConfig
from jaxgram.errors import ConfigError, DataError
from jaxgram.validation import check_type, coerce, field_types

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_PROBES = Path(__file__).resolve().parent / "probes.toml"
FIVE_BOOKS = (28054, 2638, 8117, 600, 40745)
SECTIONS = ("ingest", "train", "eval")
# Former names of named configs: still accepted, with a one-line notice on stderr.
RENAMED_CONFIGS = {"seed004": "dostoevsky"}


@dataclass(frozen=True)
class IngestSettings:
    """Which Gutenberg books to fetch and which edition to clean."""

    books: tuple[int, ...] = FIVE_BOOKS
    fmt: str = "text"


@dataclass(frozen=True)
class EvalSettings:
    """Benchmarks and agreement; the noise floors retrain both trainers with `second_seed`."""

    second_seed: int = 2
    noise_floors: bool = True
    overlap_words: int = 1000
    overlap_k: int = 10
    cosine_pairs: int = 5000
    pairs_seed: int = 0
    restrict_vocab: int = 300000
    probes: str = ""  # path of a probes TOML file; empty = the bundled eval/probes.toml


@dataclass(frozen=True)
class PipelineConfig:
    ingest: IngestSettings = field(default_factory=IngestSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)
    source: str = "<defaults>"

    def to_dict(self) -> dict[str, Any]:
        return {"ingest": _plain(dataclasses.asdict(self.ingest)), "train": self.train.to_dict(),
                "eval": dataclasses.asdict(self.eval)}

    @property
    def probes_path(self) -> Path:
        return Path(self.eval.probes) if self.eval.probes else DEFAULT_PROBES

    def with_train(self, **changes) -> PipelineConfig:
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes).validate())


def _plain(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _settings(cls, section: str, values: Any):
    """Build a settings dataclass from one TOML table, refusing unknown keys and wrong types."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{section}] must be a table, got {type(values).__name__}")
    hints = field_types(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown key {section}.{key}; allowed keys in [{section}]: {', '.join(hints)}")
        check_type(f"{section}.{key}", value, hints[key])
        kwargs[key] = coerce(value, hints[key])
    return cls(**kwargs)


def _validate_eval(settings: EvalSettings, train: TrainConfig) -> None:
    for name in ("overlap_words", "overlap_k", "cosine_pairs", "restrict_vocab"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"eval.{name}={getattr(settings, name)!r} is not allowed: it must be >= 1")
    if settings.noise_floors and settings.second_seed == train.seed:
        raise ConfigError(f"eval.second_seed={settings.second_seed} is not allowed: it must differ from train.seed "
                          "for the noise floors")


def _validate_ingest(settings: IngestSettings) -> None:
    if not settings.books:
        raise ConfigError("ingest.books=[] is not allowed: list at least one Gutenberg book id")
    if settings.fmt not in ("text", "html"):
        raise ConfigError(f"ingest.fmt={settings.fmt!r} is not allowed: choose text or html")


def config_from_dict(values: Mapping[str, Any], source: str = "<dict>") -> PipelineConfig:
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section [{unknown[0]}]; allowed sections: {', '.join(SECTIONS)}")
    train_values = values.get("train", {})
    if not isinstance(train_values, Mapping):
        raise ConfigError(f"{source}: [train] must be a table")
    try:
        train = TrainConfig.from_dict(train_values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: [train] {exc}") from None
    try:
        ingest = _settings(IngestSettings, "ingest", values.get("ingest", {}))
        settings = _settings(EvalSettings, "eval", values.get("eval", {}))
        _validate_ingest(ingest)
        _validate_eval(settings, train)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return PipelineConfig(ingest, train, settings, source)


def named_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def resolve_config_path(name_or_path: str | None) -> Path:
    """`default`, `dostoevsky` (or another named config) or a path to a TOML file."""
    if not name_or_path:
        return CONFIG_DIR / "default.toml"
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists() or "/" in name_or_path:
        if not candidate.is_file():
            raise DataError(f"config file {candidate} does not exist")
        return candidate
    name = current_config_name(name_or_path)
    named = CONFIG_DIR / f"{name}.toml"
    if not named.is_file():
        raise ConfigError(f"--config {name_or_path!r} is neither a file nor a named config; "
                          f"named configs: {', '.join(named_configs())}")
    return named


def current_config_name(name: str) -> str:
    """The named config's current name; a former name still works, with a notice on stderr."""
    if name not in RENAMED_CONFIGS:
        return name
    current = RENAMED_CONFIGS[name]
    print(f"note: config {name!r} is now called {current!r}; the old name is deprecated", file=sys.stderr)
    return current


def read_toml(path: Path, what: str) -> dict:
    """The TOML file at `path` as a dict; `what` ("config file", "probes file") names it in errors."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def load_config(name_or_path: str | None = None) -> PipelineConfig:
    path = resolve_config_path(name_or_path)
    values = read_toml(path, "config file")
    config = config_from_dict(values, source=str(path))
    if config.eval.probes and not Path(config.eval.probes).is_absolute():
        # A relative probes path is relative to the config file that names it.
        config = dataclasses.replace(config, eval=dataclasses.replace(config.eval, probes=str(path.parent / config.eval.probes)))
    return config
