"""Google analogies (3CosAdd, 3CosMul), WordSim-353 and SimLex-999 on jaxgram Embeddings.

3CosAdd and the word-pair correlations are gensim's own evaluate_word_analogies and
evaluate_word_pairs, run on Embeddings.to_gensim(): gensim's numbers on the same vectors.
3CosMul, which gensim 4.4 accepts as similarity_function but ignores, is Embeddings' own,
taking gensim's steps (upper-cased lookup, first = most frequent case variant wins, the
300000 most frequent words only, top-5 candidates). Out-of-vocabulary questions are counted, not fatal.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats

from jaxgram.embeddings import read_analogy_questions
from jaxgram.errors import ConfigError, DataError

ANALOGY_FILE = "questions-words.txt"
SIMILARITY_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
# Our method names, and the similarity_function Embeddings.evaluate_word_analogies knows each by.
SIMILARITY_FUNCTIONS = {"3cosadd": "most_similar", "3cosmul": "most_similar_cosmul"}
METHODS = tuple(SIMILARITY_FUNCTIONS)


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
    def accuracy(self) -> float | None:
        # None where nothing was evaluated (gensim scores such a section 0.0, which reads as a result)
        return self.correct / self.evaluated if self.evaluated else None

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
    def score(self) -> float | None:
        return self.total.accuracy

    def to_dict(self) -> dict:
        return {"method": self.method, "sections": {s.name: s.to_dict() for s in self.sections},
                "total": self.total.to_dict()}


def read_analogies(path) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Sections of a questions-words file, words upper-cased as gensim compares them:
    [(name, [(a, b, c, expected), ...]), ...]."""
    return [(name, [tuple(word.upper() for word in question) for question in questions])
            for name, questions in read_analogy_questions(path)]


def evaluate_analogies(embeddings, path=None, method: str = "3cosadd", restrict_vocab: int = 300000) -> AnalogyResult:
    """Accuracy per section and in total; questions with an unknown word are counted as oov."""
    if method not in SIMILARITY_FUNCTIONS:
        raise ConfigError(f"method={method!r} is not allowed: choose one of {', '.join(METHODS)}")
    path = path or datapath(ANALOGY_FILE)
    _, answered = embeddings.evaluate_word_analogies(path, restrict_vocab=restrict_vocab,
                                                     similarity_function=SIMILARITY_FUNCTIONS[method])
    result = AnalogyResult(method)
    # The evaluation's sections are the file's, then a total (which zip leaves out); a question
    # neither right nor wrong was skipped for a word outside the vocabulary.
    for (name, questions), section in zip(read_analogy_questions(path), answered):
        correct, incorrect = len(section["correct"]), len(section["incorrect"])
        result.sections.append(SectionScore(name, correct, incorrect, len(questions) - correct - incorrect))
    return result


@dataclass
class SimilarityResult:
    dataset: str
    spearman: float | None
    pearson: float | None
    pairs_used: int
    oov: int
    spearman_pvalue: float | None = None  # how likely so strong a rank correlation is by chance, over these pairs

    @property
    def oov_ratio(self) -> float:
        total = self.pairs_used + self.oov
        return self.oov / total if total else 0.0

    def to_dict(self) -> dict:
        return {"spearman": self.spearman, "spearman_pvalue": self.spearman_pvalue, "pearson": self.pearson,
                "pairs_used": self.pairs_used, "oov": self.oov, "oov_ratio": self.oov_ratio}


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
    pairs = read_word_pairs(path)
    vocab = embeddings.evaluation_vocab(restrict_vocab)
    used = sum(a in vocab and b in vocab for a, b, _ in pairs)
    pearson = spearman = pvalue = None
    if used >= 2:  # a correlation needs two pairs
        with warnings.catch_warnings():
            # Constant scores on one side have no correlation: None below, not a warning.
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            (pearson, _), (spearman, pvalue), _ = embeddings.evaluate_word_pairs(path, restrict_vocab=restrict_vocab)
    return SimilarityResult(dataset or Path(path).stem, _nan_to_none(spearman), _nan_to_none(pearson), used,
                            len(pairs) - used, _nan_to_none(pvalue))


def run_benchmarks(embeddings, restrict_vocab: int = 300000) -> dict:
    """Every benchmark on one set of vectors, as a JSON-ready dict."""
    return {
        "analogies": {method: evaluate_analogies(embeddings, method=method, restrict_vocab=restrict_vocab).to_dict()
                      for method in METHODS},
        "similarity": {name: evaluate_word_pairs(embeddings, datapath(filename), name, restrict_vocab).to_dict()
                       for name, filename in SIMILARITY_FILES.items()},
    }


# Below this many scored questions or pairs a figure says little (WordSim-353 over the five books
# scores 143 pairs, and its Spearman moves by 0.01 between seeds).
FEW_SCORED = 30


def benchmark_table(report: dict) -> list[str]:
    """run_benchmarks' report as a short Markdown table, then a warning for each figure scored on too little."""
    rows, warnings_ = [], []
    for method, result in report["analogies"].items():
        total = result["total"]
        score = "n/a" if not total["evaluated"] else f"{100 * total['accuracy']:.1f}%"
        rows.append(f"| analogies, {method} | {score} | {total['evaluated']:,} of {total['questions']:,} questions |")
        if total["evaluated"] < FEW_SCORED:
            warnings_.append(f"warning: analogies ({method}): {total['evaluated']} questions scored, fewer than "
                             f"{FEW_SCORED}: the accuracy says little")
    for name, result in report["similarity"].items():
        score = "n/a" if result["spearman"] is None else f"{result['spearman']:.3f} (p = {result['spearman_pvalue']:.2g})"
        rows.append(f"| {name}, Spearman | {score} | {result['pairs_used']:,} of "
                    f"{result['pairs_used'] + result['oov']:,} pairs |")
        if result["pairs_used"] < FEW_SCORED:
            warnings_.append(f"warning: {name}: {result['pairs_used']} pairs scored, fewer than {FEW_SCORED}: the "
                             "correlation says little")
    return ["| benchmark | score | scored (the rest has a word outside the vocabulary) |", "|---|---:|---:|",
            *rows, *warnings_]
