"""The reference articles' probes (cosines, neighbours, analogies) read from one editable TOML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.config import read_toml
from jaxgram.errors import ConfigError
from jaxgram.validation import check_type

_KEYS = {"cosine_pairs", "neighbour_words", "topn", "analogies", "plot_words"}


@dataclass(frozen=True)
class Probes:
    cosine_pairs: tuple[tuple[str, str], ...]
    neighbour_words: tuple[str, ...]
    topn: int
    analogies: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (positive, negative)
    plot_words: tuple[str, ...]

    @property
    def all_words(self) -> tuple[str, ...]:
        words = [w for pair in self.cosine_pairs for w in pair] + list(self.neighbour_words) + list(self.plot_words)
        words += [w for positive, negative in self.analogies for w in positive + negative]
        return tuple(dict.fromkeys(words))


def load_probes(path) -> Probes:
    path = Path(path)
    values = read_toml(path, "probes file")
    try:
        return _probes_from(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _probes_from(values: dict) -> Probes:
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}")
    topn = values.get("topn", 10)
    check_type("topn", topn, int)
    if topn < 1:
        raise ConfigError(f"topn={topn!r} is not allowed: expected an integer >= 1")
    entries = values.get("analogies", [])
    check_type("analogies", entries, list[dict])
    return Probes(
        cosine_pairs=_word_pairs("cosine_pairs", values.get("cosine_pairs", [])),
        neighbour_words=_words("neighbour_words", values.get("neighbour_words", [])),
        topn=topn,
        analogies=tuple(_analogy(entry) for entry in entries),
        plot_words=_words("plot_words", values.get("plot_words", [])),
    )


def _analogy(entry: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if set(entry) - {"positive", "negative"} or "positive" not in entry:
        raise ConfigError(f"analogies entry {entry!r} must be a table with `positive` and optional `negative` word lists")
    return _words("positive", entry["positive"]), _words("negative", entry.get("negative", []))


def _words(key: str, value) -> tuple[str, ...]:
    check_type(key, value, list[str])
    if "" in value:
        raise ConfigError(f"{key}={value!r} is not allowed: a word cannot be empty")
    return tuple(value)


def _word_pairs(key: str, value) -> tuple[tuple[str, str], ...]:
    check_type(key, value, list[tuple[str, str]])
    return tuple(_words(key, pair) for pair in value)


def run_probes(embeddings, probes: Probes) -> dict:
    """Cosines, neighbours and analogies on one model; missing words land in `oov`."""
    oov = sorted({w for w in probes.all_words if w not in embeddings})
    cosines = [{"pair": list(pair), "cosine": embeddings.similarity(*pair) if all(w in embeddings for w in pair) else None}
               for pair in probes.cosine_pairs]
    # Lists, not dicts: the file's order survives JSON files written with sorted keys.
    neighbours = [{"word": word, "neighbours": [[w, float(s)] for w, s in embeddings.most_similar(word, topn=probes.topn)]
                   if word in embeddings else None}
                  for word in probes.neighbour_words]
    analogies = []
    for positive, negative in probes.analogies:
        known = all(w in embeddings for w in positive + negative)
        answers = embeddings.most_similar(positive=list(positive), negative=list(negative), topn=5) if known else None
        analogies.append({"positive": list(positive), "negative": list(negative),
                          "answers": [[w, float(s)] for w, s in answers] if answers is not None else None})
    return {"cosines": cosines, "neighbours": neighbours, "analogies": analogies,
            "oov": oov, "oov_count": len(oov), "words": len(probes.all_words)}
