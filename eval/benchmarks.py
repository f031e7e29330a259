"""Google analogies (3CosAdd, 3CosMul), WordSim-353 and SimLex-999 on any KeyedVectors-like object.

The rules mirror gensim's `evaluate_word_analogies` / `evaluate_word_pairs` step for step
(upper-cased lookup, first = most frequent case variant wins, the 300000 most frequent
words only, top-5 candidates, the same float32 arithmetic), so 3CosAdd gives exactly
gensim's score on the same vectors. Out-of-vocabulary questions are counted, not fatal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.linalg import blas

from jaxgram.errors import DataError

ANALOGY_FILE = "questions-words.txt"
SIMILARITY_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
METHODS = ("3cosadd", "3cosmul")
_CANDIDATES = 5  # gensim looks at the top 5 answers and takes the first valid one


def datapath(name: str) -> Path:
    """A benchmark file shipped inside the gensim package."""
    from gensim.test.utils import datapath as gensim_datapath

    return Path(gensim_datapath(name))


@dataclass
class SectionScore:
    name: str
    correct: int = 0
    incorrect: int = 0
    oov: int = 0

    @property
    def evaluated(self) -> int:
        return self.correct + self.incorrect

    @property
    def accuracy(self) -> float:
        # gensim's rule: a section with nothing evaluated scores 0.0
        return self.correct / self.evaluated if self.evaluated else 0.0

    def to_dict(self) -> dict:
        return {"correct": self.correct, "evaluated": self.evaluated, "oov_skipped": self.oov,
                "questions": self.evaluated + self.oov, "accuracy": self.accuracy}


@dataclass
class AnalogyResult:
    method: str
    sections: list[SectionScore] = field(default_factory=list)

    @property
    def total(self) -> SectionScore:
        return SectionScore("total", sum(s.correct for s in self.sections),
                            sum(s.incorrect for s in self.sections), sum(s.oov for s in self.sections))

    @property
    def score(self) -> float:
        return self.total.accuracy

    def to_dict(self) -> dict:
        return {"method": self.method, "sections": {s.name: s.to_dict() for s in self.sections},
                "total": self.total.to_dict()}


class _Lookup:
    """Upper-cased word -> row, restricted to the first `restrict_vocab` rows, as gensim does."""

    def __init__(self, embeddings, restrict_vocab: int):
        self.vectors = np.asarray(embeddings.vectors, dtype=np.float32)
        self.limit = min(restrict_vocab, len(self.vectors))
        keys = list(embeddings.index_to_key)[: self.limit]
        # reversed: the first (most frequent) case variant overwrites the others
        self.rows = {word.upper(): index for index, word in reversed(list(enumerate(keys)))}
        self.norms = np.linalg.norm(self.vectors, axis=1)
        self.words = list(embeddings.index_to_key)

    def unit(self, row: int) -> np.ndarray:
        return self.vectors[row] / self.norms[row]


def _unitvec(vector: np.ndarray) -> np.ndarray:
    """gensim.matutils.unitvec for dense vectors: BLAS dnrm2/dscal, cast back to the input dtype."""
    length = blas.dnrm2(vector)
    if length > 0.0:
        return blas.dscal(1.0 / length, vector).astype(vector.dtype)
    return vector


def _top(scores: np.ndarray, topn: int) -> np.ndarray:
    """Indices of the `topn` largest scores, best first (gensim.matutils.argsort, reverse=True)."""
    negated = -scores
    if topn >= negated.size:
        return np.argsort(negated)[:topn]
    extreme = np.argpartition(negated, topn)[:topn]
    return extreme.take(np.argsort(negated.take(extreme)))


def _cosadd_scores(lookup: _Lookup, a: int, b: int, c: int) -> np.ndarray:
    # gensim: float32 accumulator, float64 weights (+b +c -a), mean / 3, unit length, float32
    weights = np.array([1.0, 1.0, -1.0])
    mean = np.zeros(lookup.vectors.shape[1], lookup.vectors.dtype)
    total_weight = 0
    for weight, row in zip(weights, (b, c, a)):
        mean += weight * lookup.unit(row)
        total_weight += abs(weight)
    mean = _unitvec(mean / total_weight).astype(np.float32)
    return np.dot(lookup.vectors[: lookup.limit], mean) / lookup.norms[: lookup.limit]


def _cosmul_scores(lookup: _Lookup, a: int, b: int, c: int) -> np.ndarray:
    # Levy & Goldberg's 3CosMul with cosines shifted to [0, 1], as gensim's most_similar_cosmul
    vectors, norms = lookup.vectors[: lookup.limit], lookup.norms[: lookup.limit]
    positive = [(1 + np.dot(vectors, lookup.unit(row)) / norms) / 2 for row in (b, c)]
    negative = [(1 + np.dot(vectors, lookup.unit(row)) / norms) / 2 for row in (a,)]
    return np.prod(positive, axis=0) / (np.prod(negative, axis=0) + 0.000001)


_SCORERS = {"3cosadd": _cosadd_scores, "3cosmul": _cosmul_scores}


def _predict(lookup: _Lookup, scores: np.ndarray, inputs: tuple[int, int, int], ignore: set[str]) -> str | None:
    best = _top(scores, _CANDIDATES + len(inputs))
    candidates = [lookup.words[row] for row in best if row not in inputs][:_CANDIDATES]
    predicted = None
    for word in candidates:
        predicted = word.upper()
        if predicted in lookup.rows and predicted not in ignore:
            break
    return predicted


def read_analogies(path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of a questions-words file: [(name, [(a, b, c, expected), ...]), ...]."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read analogy file {path}: {exc}") from None
    sections: list[tuple[str, list]] = []
    for number, line in enumerate(lines, start=1):
        if line.startswith(": "):
            sections.append((line.lstrip(": ").strip(), []))
            continue
        words = line.split()
        if len(words) != 4:
            continue  # gensim skips malformed lines too
        if not sections:
            raise DataError(f"{path}: line {number} comes before any ': SECTION' header")
        sections[-1][1].append(tuple(w.upper() for w in words))
    return sections


def evaluate_analogies(embeddings, path=None, method: str = "3cosadd", restrict_vocab: int = 300000) -> AnalogyResult:
    """Accuracy per section and in total; questions with an unknown word are counted as oov."""
    if method not in _SCORERS:
        raise ValueError(f"method={method!r} is not allowed: choose one of {', '.join(METHODS)}")
    lookup = _Lookup(embeddings, restrict_vocab)
    scorer = _SCORERS[method]
    result = AnalogyResult(method)
    for name, questions in read_analogies(path or datapath(ANALOGY_FILE)):
        section = SectionScore(name)
        for a, b, c, expected in questions:
            if not all(word in lookup.rows for word in (a, b, c, expected)):
                section.oov += 1
                continue
            rows = (lookup.rows[b], lookup.rows[c], lookup.rows[a])
            predicted = _predict(lookup, scorer(lookup, rows[2], rows[0], rows[1]), rows, {a, b, c})
            if predicted == expected:
                section.correct += 1
            else:
                section.incorrect += 1
        result.sections.append(section)
    return result


@dataclass
class SimilarityResult:
    dataset: str
    spearman: float | None
    pearson: float | None
    pairs_used: int
    oov: int

    @property
    def oov_ratio(self) -> float:
        total = self.pairs_used + self.oov
        return self.oov / total if total else 0.0

    def to_dict(self) -> dict:
        return {"spearman": self.spearman, "pearson": self.pearson, "pairs_used": self.pairs_used,
                "oov": self.oov, "oov_ratio": self.oov_ratio}


def read_word_pairs(path) -> list[tuple[str, str, float]]:
    """(word, word, human score) triples of a tab-separated file; `#` lines are comments."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read word-pair file {path}: {exc}") from None
    pairs = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        try:
            pairs.append((fields[0].upper(), fields[1].upper(), float(fields[2])))
        except ValueError:
            continue
    return pairs


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def evaluate_word_pairs(embeddings, path, dataset: str = "", restrict_vocab: int = 300000) -> SimilarityResult:
    """Spearman and Pearson between model cosines and human scores; unknown words are counted."""
    lookup = _Lookup(embeddings, restrict_vocab)
    gold, model, oov = [], [], 0
    for a, b, score in read_word_pairs(path):
        if a not in lookup.rows or b not in lookup.rows:
            oov += 1
            continue
        gold.append(score)
        model.append(float(np.dot(_unitvec(lookup.vectors[lookup.rows[a]]), _unitvec(lookup.vectors[lookup.rows[b]]))))
    spearman = pearson = None
    # A correlation needs at least 2 pairs and some spread on both sides.
    if len(gold) >= 2 and np.ptp(gold) > 0 and np.ptp(model) > 0:
        spearman = _nan_to_none(stats.spearmanr(gold, model)[0])
        pearson = _nan_to_none(stats.pearsonr(gold, model)[0])
    return SimilarityResult(dataset or Path(path).stem, spearman, pearson, len(gold), oov)


def run_benchmarks(embeddings, restrict_vocab: int = 300000) -> dict:
    """Every benchmark on one set of vectors, as a JSON-ready dict."""
    return {
        "analogies": {method: evaluate_analogies(embeddings, method=method, restrict_vocab=restrict_vocab).to_dict()
                      for method in METHODS},
        "similarity": {name: evaluate_word_pairs(embeddings, datapath(filename), name, restrict_vocab).to_dict()
                       for name, filename in SIMILARITY_FILES.items()},
    }
