"""The seeds' probes (cosines, neighbours, analogies) read from one editable TOML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.config import read_toml
from jaxgram.errors import ConfigError

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


def _words(path, key, value, size=None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value) or (size and len(value) != size):
        what = f"a list of {size} words" if size else "a list of words"
        raise ConfigError(f"{path}: {key}={value!r} has the wrong type: expected {what}")
    return tuple(value)


def load_probes(path) -> Probes:
    path = Path(path)
    values = read_toml(path, "probes file")
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}")
    pairs = values.get("cosine_pairs", [])
    if not isinstance(pairs, list):
        raise ConfigError(f"{path}: cosine_pairs has the wrong type: expected a list of word pairs")
    topn = values.get("topn", 10)
    if isinstance(topn, bool) or not isinstance(topn, int) or topn < 1:
        raise ConfigError(f"{path}: topn={topn!r} is not allowed: expected an integer >= 1")
    analogies = []
    for entry in values.get("analogies", []):
        if not isinstance(entry, dict) or set(entry) - {"positive", "negative"} or "positive" not in entry:
            raise ConfigError(f"{path}: analogies entry {entry!r} must be a table with `positive` and optional `negative` word lists")
        analogies.append((_words(path, "positive", entry["positive"]), _words(path, "negative", entry.get("negative", []))))
    return Probes(
        cosine_pairs=tuple(_words(path, "cosine_pairs", pair, 2) for pair in pairs),
        neighbour_words=_words(path, "neighbour_words", values.get("neighbour_words", [])),
        topn=topn,
        analogies=tuple(analogies),
        plot_words=_words(path, "plot_words", values.get("plot_words", [])),
    )


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
