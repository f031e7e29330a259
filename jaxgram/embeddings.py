"""Trained or loaded word vectors: gensim's own KeyedVectors, with what jaxgram adds to it.

`Embeddings` is a `gensim.models.KeyedVectors`: every query gensim has (similar_by_word,
get_vector, distance(s), closer_than, get_mean_vector, get_normed_vectors, has_index_for, ...)
is gensim's. What this module adds or changes, each for a reason:
- construction from jaxgram's tables and a vocabulary (its counts become the words' counts);
- an unknown word is an UnknownWordError (a KeyError) that lists close matches, so the CLI
  says it in one line;
- the queries that take `restrict_vocab` (most_similar, most_similar_cosmul, similar_by_vector)
  are kept here: gensim 4.4's most_similar_cosmul ignores it, and a bad argument is a one-line
  ConfigError naming what is allowed; 3CosMul analogies, which gensim 4.4 accepts but ignores,
  are computed the way gensim evaluates 3CosAdd;
- the word2vec formats with gensim's options (binary, no_header, limit, fvocab, `.gz`, `.bz2`), read
  in one streamed pass that refuses a malformed file naming its line, refuses non-finite values, and
  checks a SHA256SUMS record beside the file (training writes one); writing streams row by row and can
  write TensorBoard's vectors.tsv in the same pass;
- save/load in a NumPy archive read with allow_pickle=False: gensim's own save/load pickle, and
  no jaxgram load path may run code.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from jaxgram.errors import ConfigError, DataError, JaxgramError
from jaxgram.fileio import atomic_open
from jaxgram.word2vec_format import read_fvocab_counts, read_word2vec, write_fvocab, write_word2vec

# evaluate_word_analogies' similarity_function values: gensim's method names for 3CosAdd and 3CosMul.
SIMILARITY_FUNCTIONS = ("most_similar", "most_similar_cosmul")
# gensim answers an analogy with the first valid word among the top 5 candidates.
_ANALOGY_CANDIDATES = 5


class UnknownWordError(JaxgramError, KeyError):
    """A word missing from the vocabulary; the message lists close matches."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class Embeddings(KeyedVectors):
    """gensim's KeyedVectors over vectors [V, D] (float32, read-only) and their words, in id order (most
    frequent first), and optionally their counts."""

    def __init__(self, index_to_key: Sequence[str], vectors, counts: Sequence[int | None] | None = None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(index_to_key):
            raise ValueError(f"vectors must have shape [{len(index_to_key)}, D], got {vectors.shape}")
        super().__init__(vectors.shape[1], count=0, dtype=np.float32)
        self.index_to_key = list(index_to_key)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise ValueError("index_to_key contains duplicate words")
        self.next_index = len(self.index_to_key)
        self.vectors = vectors
        self.vectors.setflags(write=False)
        # Each word's corpus count (None for a word a vocabulary file did not list), or None when unknown.
        self.counts = None if counts is None else _count_array(counts, len(self.index_to_key))

    # The norms and unit vectors are computed on the first query, not here: a training run that
    # only writes its vectors never holds a second V x D copy of them.
    @functools.cached_property
    def _norms(self) -> np.ndarray:
        norms = np.linalg.norm(self.vectors, axis=1)
        # Zero vectors (e.g. an untrained row of W) stay zero instead of becoming NaN.
        return np.where(norms == 0, np.float32(1), norms)

    @functools.cached_property
    def _unit(self) -> np.ndarray:
        return self.vectors / self._norms[:, None]

    @classmethod
    def from_params(cls, params, vocab, which: str = "E") -> Embeddings:
        """Vectors from E (centre table), W (context table) or their mean, as the Embedding Geometry article offers.

        The vocabulary's counts, when it has them (a Vocabulary does), become the words' counts.
        """
        if which == "E":
            table = np.asarray(params.E)
        elif which == "W":
            table = np.asarray(params.W)
        elif which == "mean":
            table = (np.asarray(params.E) + np.asarray(params.W)) / 2
        else:
            raise ValueError(f"which={which!r} is not allowed: choose E, W or mean")
        return cls(vocab.words, table, getattr(vocab, "counts", None))

    def get_index(self, key, default=None) -> int:
        """gensim's get_index (a word's row; an int in range is its own row), except that a word not in the
        vocabulary is an UnknownWordError listing close matches. Every gensim lookup goes through here."""
        index = self.key_to_index.get(key) if isinstance(key, str) else None
        if index is not None:
            return index
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < len(self.index_to_key):
            return int(key)
        if default is not None:
            return default
        close = difflib.get_close_matches(str(key), self.index_to_key, n=5)
        hint = f"; close matches: {', '.join(close)}" if close else "; no close matches"
        raise UnknownWordError(f"word {key!r} is not in the vocabulary ({len(self)} words){hint}")

    def unit_vector(self, word: str) -> np.ndarray:
        return self._unit[self.get_index(word)]

    def similarity(self, w1: str, w2: str) -> float:
        """gensim's cosine of two words, as a Python float (JSON takes it)."""
        return float(super().similarity(w1, w2))

    def get_vecattr(self, word: str, attr: str) -> int | None:
        """The word's corpus count for attr="count", as gensim's get_vecattr; None if the vocabulary file missed it."""
        if attr != "count":
            raise ConfigError(f"attr={attr!r} is not stored: the only per-word attribute is 'count' (the corpus count)")
        if self.counts is None:
            raise ConfigError("no word counts are loaded: pass fvocab= (a `word count` file such as the vocab.txt "
                              "training writes) to load_word2vec_format, or counts= to Embeddings")
        count = self.counts[self.get_index(word)]
        return None if count is None else int(count)

    def to_gensim(self):
        """A gensim KeyedVectors: the same words in the same order, a copy of the vectors, and the counts
        (when loaded) as its "count" vecattr."""
        from gensim.models import KeyedVectors  # only this and the evaluate_* methods need gensim

        keyed = KeyedVectors(self.vector_size, dtype=np.float32)
        keyed.add_vectors(self.index_to_key, self.vectors)  # copies: gensim may change its vectors in place
        if self.counts is not None:
            keyed.allocate_vecattrs(["count"], [self.counts.dtype.type])
            # One assignment for every word: set_vecattr, a word at a time, cannot mix the counts with
            # the None of words a vocabulary file did not list (gensim's own fvocab loader fails there).
            keyed.expandos["count"][:] = self.counts
        return keyed

    # -- similarity queries, with gensim's arithmetic ------------------------------------

    def _limit(self, restrict_vocab: int | None) -> int:
        """How many words, from the first (most frequent), a query considers."""
        _check_positive("restrict_vocab", restrict_vocab, f"all {len(self)} words")
        return len(self) if restrict_vocab is None else min(int(restrict_vocab), len(self))

    def _term_vector(self, term) -> np.ndarray:
        """A word's unit vector, or a vector as given, not normalised (gensim's rule for both)."""
        if isinstance(term, str):
            return self.unit_vector(term)
        vector = np.asarray(term, dtype=np.float32)
        if vector.shape != (self.vector_size,):
            raise ConfigError(f"a query term must be a word or a vector of shape ({self.vector_size},), "
                              f"got shape {vector.shape}")
        return vector

    def _input_rows(self, terms: list) -> set[int]:
        """Rows of the words among `terms`, which results leave out."""
        return {self.key_to_index[term] for term in terms if isinstance(term, str)}

    def _cosines(self, query: np.ndarray, limit: int) -> np.ndarray:
        """Each of the first `limit` words' unit vector dotted with `query` (its cosine when `query` has unit
        length), computed as gensim computes it: the raw dot product over the word's norm."""
        return self.vectors[:limit] @ query / self._norms[:limit]

    def _ranked(self, scores: np.ndarray, inputs: set[int], topn: int | None):
        """(word, score) for the `topn` best scores, input rows left out; the scores themselves when topn is None."""
        if topn is None:
            return scores
        best = _best(scores, topn + len(inputs))
        return [(self.index_to_key[row], float(scores[row])) for row in best if row not in inputs][:topn]

    def most_similar(self, positive=None, negative=None, topn: int | None = 10, restrict_vocab: int | None = None):
        """Words closest to the mean of +unit(positive) and -unit(negative), inputs left out (gensim's 3CosAdd).

        Terms are words or vectors (a vector counts as given, as in gensim). restrict_vocab=N
        searches only the first N words (the most frequent); topn=None returns every searched
        word's cosine as an array.
        """
        positive, negative = _terms(positive), _terms(negative)
        if not positive and not negative:
            raise ConfigError("most_similar needs at least one positive or negative word")
        _check_positive("topn", topn, "every word's cosine as an array")
        limit = self._limit(restrict_vocab)
        signed = [self._term_vector(t) for t in positive] + [-self._term_vector(t) for t in negative]
        mean = _unit_length(np.sum(signed, axis=0) / len(signed))
        return self._ranked(self._cosines(mean, limit), self._input_rows(positive + negative), topn)

    def most_similar_cosmul(self, positive=None, negative=None, topn: int | None = 10,
                            restrict_vocab: int | None = None):
        """Levy & Goldberg's 3CosMul, as gensim: the product of the positives' cosines, shifted to [0, 1]
        by (1 + cos) / 2, over the negatives'. restrict_vocab and topn as in most_similar."""
        positive, negative = _terms(positive), _terms(negative)
        if not positive:
            raise ConfigError("most_similar_cosmul needs at least one positive word")
        _check_positive("topn", topn, "every word's score as an array")
        limit = self._limit(restrict_vocab)
        scores = self._cosmul_scores([self._term_vector(t) for t in positive], [self._term_vector(t) for t in negative],
                                     limit)
        return self._ranked(scores, self._input_rows(positive + negative), topn)

    def _cosmul_scores(self, positive: list[np.ndarray], negative: list[np.ndarray], limit: int) -> np.ndarray:
        """3CosMul's score of each of the first `limit` words for query vectors, as gensim computes it."""
        numerator = np.prod([(1 + self._cosines(vector, limit)) / 2 for vector in positive], axis=0)
        denominator = np.prod([(1 + self._cosines(vector, limit)) / 2 for vector in negative], axis=0)
        return numerator / (denominator + 1e-6)  # gensim's epsilon: a word opposite a negative scores high, not inf

    def similar_by_vector(self, vector, topn: int | None = 10, restrict_vocab: int | None = None):
        """Words closest to `vector` (any vector of length vector_size), as gensim's similar_by_vector."""
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def n_similarity(self, ws1: Sequence[str], ws2: Sequence[str]) -> float:
        """gensim's n_similarity (cosine between the means of two word lists' vectors), except that an empty
        list is a ConfigError (gensim: ZeroDivisionError) and an unknown word an UnknownWordError (gensim
        leaves it out of the mean without a word)."""
        lists = [_terms(ws1), _terms(ws2)]
        if not all(lists):
            raise ConfigError(f"n_similarity needs at least one word in each list, got {len(lists[0])} and {len(lists[1])}")
        for word in lists[0] + lists[1]:
            self.get_index(word)
        return float(super().n_similarity(*lists))

    # -- gensim's evaluations ------------------------------------------------------------

    def evaluation_vocab(self, restrict_vocab: int | None = 300000, case_insensitive: bool = True) -> dict[str, int]:
        """The words gensim's evaluate_* methods look up, to their rows: the first restrict_vocab words,
        upper-cased when case_insensitive, where the first (most frequent) case variant wins."""
        fold = _case_fold(case_insensitive)
        first_words = self.index_to_key[: self._limit(restrict_vocab)]
        # Reversed, so that an earlier (more frequent) variant overwrites a later one.
        return {fold(word): row for row, word in reversed(list(enumerate(first_words)))}

    def evaluate_word_analogies(self, analogies, restrict_vocab: int | None = 300000, case_insensitive: bool = True,
                                dummy4unknown: bool = False, similarity_function: str = "most_similar"):
        """Accuracy on a questions-words file: (score, sections) as gensim returns them, the last section
        'Total accuracy', each a dict of 'section', 'correct' and 'incorrect' questions.

        "most_similar" (3CosAdd) runs gensim's own evaluate_word_analogies on to_gensim().
        "most_similar_cosmul" (3CosMul; gensim 4.4 accepts it but ignores it) follows gensim's steps
        here: a question with a word outside the first restrict_vocab words is skipped (counted
        wrong with dummy4unknown=True); the answer is the first of the top 5 candidates that is
        in those words and is not a question word.
        """
        if similarity_function not in SIMILARITY_FUNCTIONS:
            raise ConfigError(f"similarity_function={similarity_function!r} is not allowed: "
                              f"choose {' or '.join(SIMILARITY_FUNCTIONS)}")
        limit = self._limit(restrict_vocab)
        sections = read_analogy_questions(analogies)
        if similarity_function == "most_similar_cosmul":
            return self._cosmul_analogies(sections, limit, case_insensitive, dummy4unknown)
        with _gensim_errors(analogies, "analogy file"):
            return self.to_gensim().evaluate_word_analogies(str(analogies), limit, case_insensitive, dummy4unknown)

    def _cosmul_analogies(self, sections, limit: int, case_insensitive: bool, dummy4unknown: bool):
        """evaluate_word_analogies' answer for 3CosMul, section by section as gensim builds it for 3CosAdd."""
        vocab = self.evaluation_vocab(limit, case_insensitive)
        fold = _case_fold(case_insensitive)
        answered = []
        for name, questions in sections:
            section = {"section": name, "correct": [], "incorrect": []}
            for question in questions:
                question = tuple(map(fold, question))
                if all(word in vocab for word in question):
                    section["correct" if self._cosmul_answers(question, vocab, fold, limit) else "incorrect"].append(question)
                elif dummy4unknown:
                    section["incorrect"].append(question)
            answered.append(section)
        total = {"section": "Total accuracy", "correct": [q for s in answered for q in s["correct"]],
                 "incorrect": [q for s in answered for q in s["incorrect"]]}
        evaluated = len(total["correct"]) + len(total["incorrect"])
        return (len(total["correct"]) / evaluated if evaluated else 0.0), answered + [total]

    def _cosmul_answers(self, question: tuple[str, ...], vocab: dict[str, int], fold: Callable[[str], str],
                        limit: int) -> bool:
        """Whether 3CosMul answers `a is to b as c is to ?` with the expected word. The answer is gensim's:
        the first of the top candidates that is in the vocabulary and is not a question word."""
        a, b, c, expected = question
        scores = self._cosmul_scores([self._unit[vocab[b]], self._unit[vocab[c]]], [self._unit[vocab[a]]], limit)
        predicted = None
        for word, _ in self._ranked(scores, {vocab[a], vocab[b], vocab[c]}, _ANALOGY_CANDIDATES):
            predicted = fold(word)
            if predicted in vocab and predicted not in (a, b, c):
                break
        return predicted == expected

    def evaluate_word_pairs(self, pairs, delimiter: str = "\t", encoding: str = "utf8",
                            restrict_vocab: int | None = 300000, case_insensitive: bool = True,
                            dummy4unknown: bool = False):
        """gensim's own evaluate_word_pairs on to_gensim(): ((pearson, p), (spearman, p), oov_ratio),
        oov_ratio in percent; a file without two usable pairs is a DataError."""
        limit = self._limit(restrict_vocab)
        with _gensim_errors(pairs, "word-pair file"):
            return self.to_gensim().evaluate_word_pairs(str(pairs), delimiter, encoding, limit, case_insensitive,
                                                        dummy4unknown)

    # -- word2vec formats ------------------------------------------------------------

    def save_word2vec_format(self, fname: str | os.PathLike, fvocab: str | os.PathLike | None = None,
                             binary: bool = False, *, also_tsv=None) -> None:
        """word2vec's format (word2vec_format.write_word2vec), with gensim's arguments: `fvocab` also writes
        `word count` lines, for the words that have a count. `also_tsv`: TensorBoard's vectors.tsv from the
        same pass."""
        write_word2vec(fname, self.index_to_key, self.vectors, binary=binary, also_tsv=also_tsv)
        if fvocab is not None:
            if self.counts is None:
                raise ConfigError("fvocab= writes each word's count, and these vectors have none")
            write_fvocab(fvocab, self.index_to_key, self.counts)

    @classmethod
    def load_word2vec_format(cls, fname: str | os.PathLike, fvocab: str | os.PathLike | None = None,
                             binary: bool = False, encoding: str = "utf8", unicode_errors: str = "strict",
                             limit: int | None = None, datatype=np.float32, no_header: bool = False) -> Embeddings:
        """Load a word2vec text or binary file, with gensim's arguments (word2vec_format.read_word2vec:
        DataError names the path and line of malformed input, and refuses a header claiming more than
        the file can hold before allocating; `limit` reads the first N rows, `no_header` a GloVe file;
        a `.gz` or `.bz2` name is decompressed as it is read, never whole, so `binary=True` reads
        GoogleNews' .bin.gz; a SHA256SUMS record beside the file is checked). Memory: the vectors and a
        bounded buffer. `fvocab`: a `word count` per line file (training's vocab.txt) for
        get_vecattr(word, "count"); as in gensim, a word it does not list has no count (None).
        Vectors are float32 (`datatype` may only say so).
        """
        _check_positive("limit", limit, "every row")
        if np.dtype(datatype) != np.float32:
            raise ConfigError(f"datatype={np.dtype(datatype).name} is not allowed: jaxgram's vectors are float32")
        words, vectors = read_word2vec(Path(fname), binary, encoding, unicode_errors, limit, no_header)
        return cls(words, vectors, None if fvocab is None else read_fvocab_counts(Path(fvocab), words))

    def save(self, fname: str | os.PathLike) -> None:
        """The words, vectors and counts in a NumPy archive (.npz), which load() reads back. Not gensim's
        pickle: a pickle runs code when loaded."""
        counts = np.full(len(self), -1, np.int64) if self.counts is None else \
            np.array([-1 if c is None else c for c in self.counts], np.int64)
        with atomic_open(fname, "wb") as handle:
            np.savez(handle, words=np.array(self.index_to_key, dtype=str), vectors=self.vectors, counts=counts,
                     has_counts=np.array(self.counts is not None))

    @classmethod
    def load(cls, fname: str | os.PathLike) -> Embeddings:
        """Vectors save() wrote (allow_pickle=False: a file can hold only arrays, never code)."""
        path = Path(fname)
        try:
            with np.load(path, allow_pickle=False) as archive:
                words, vectors = archive["words"].tolist(), archive["vectors"]
                counts = [None if c < 0 else int(c) for c in archive["counts"]] if archive["has_counts"] else None
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"cannot load vectors {path}: not an archive Embeddings.save wrote ({exc})") from None
        return cls(words, vectors, counts)


def _terms(terms) -> list:
    """positive= / negative= (or a word list) as a list; one word or vector may come bare, and a 2-D array
    gives its rows, as in gensim."""
    if terms is None:
        return []
    if isinstance(terms, str) or (isinstance(terms, np.ndarray) and terms.ndim == 1):
        return [terms]
    return list(terms)


def _check_positive(name: str, value, none_means: str) -> None:
    """ConfigError unless `value` is None or an integer >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < 1):
        raise ConfigError(f"{name}={value!r} is not allowed: use an integer >= 1, or None for {none_means}")


def _unit_length(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) or 1.0)


def _best(scores: np.ndarray, count: int) -> np.ndarray:
    """Rows of the `count` highest scores, highest first, picked as gensim.matutils.argsort picks them
    (so that ties fall as in gensim)."""
    negated = -scores
    if count >= negated.size:
        return np.argsort(negated)[:count]
    highest = np.argpartition(negated, count)[:count]
    return highest[np.argsort(negated[highest])]


def _case_fold(case_insensitive: bool) -> Callable[[str], str]:
    """How gensim's evaluations compare words: upper-cased, or as they are."""
    return str.upper if case_insensitive else str


@contextlib.contextmanager
def _gensim_errors(path, what: str) -> Iterator[None]:
    """gensim's complaints about an evaluation file (unreadable, malformed, nothing usable) as DataError."""
    try:
        yield
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise DataError(f"cannot evaluate {what} {path}: {exc}") from exc


def read_analogy_questions(path) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Sections of a questions-words file, words as written: [(name, [(a, b, c, expected), ...]), ...].

    Split as gensim splits it (lines end at "\\n"; `: NAME` opens a section; a line without
    exactly four words is skipped), so section i here is section i of gensim's evaluation.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise DataError(f"cannot read analogy file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise DataError(f"analogy file {path} is not valid UTF-8") from None
    sections: list[tuple[str, list[tuple[str, ...]]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith(": "):
            sections.append((line.lstrip(": ").strip(), []))
            continue
        words = line.split()
        if len(words) != 4:
            continue
        if not sections:
            raise DataError(f"{path}: line {number} comes before any ': SECTION' header")
        sections[-1][1].append(tuple(words))
    if not any(questions for _, questions in sections):
        raise DataError(f"analogy file {path} holds no questions (lines `a b c expected` under `: SECTION` headers)")
    return sections


def _count_array(counts: Sequence[int | None], size: int) -> np.ndarray:
    """Counts as int64, or as objects when a word has None (no count); read-only."""
    values = list(counts)
    if len(values) != size:
        raise ConfigError(f"counts has {len(values)} entries for {size} words: give one per word, in the words' order")
    known = [value for value in values if value is not None]
    if any(isinstance(value, bool) or not isinstance(value, Integral) or value < 0 for value in known):
        raise ConfigError("counts must be integers >= 0 (or None for a word without a count)")
    array = np.array(values, dtype=np.int64 if len(known) == size else object)
    array.setflags(write=False)
    return array


