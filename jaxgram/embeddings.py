"""Trained or loaded word vectors: gensim's own KeyedVectors, with what jaxgram adds to it.

`Embeddings` is a `gensim.models.KeyedVectors` and keeps its state where gensim keeps it:
`vectors`, `index_to_key`/`key_to_index`, the norms in `norms` (gensim's fill_norms), the
words' counts in the "count" vecattr (`expandos`, set_vecattr/get_vecattr). So gensim's own
operations (add_vectors, `kv[w] = v`, sort_by_descending_frequency, unit_normalize_all,
vectors_for_all, every query) see and keep one consistent state. A gensim method is
overridden only where jaxgram's answer must differ, and then builds on gensim's:
- an unknown word is an UnknownWordError (a KeyError) that lists close matches, and a missing
  vecattr an UnknownAttributeError (a KeyError) that says how to load counts, so the CLI says
  either in one line;
- most_similar checks its arguments before running gensim's (a restrict_vocab, clip range or topn
  that gensim would silently reinterpret is a one-line ConfigError, a ValueError);
  most_similar_cosmul is computed here, because gensim 4.4's ignores restrict_vocab; 3CosMul
  analogies, which gensim 4.4 accepts but ignores, are computed the way gensim evaluates 3CosAdd;
- a zero vector (an untrained row) has norm 1 in `norms`: it compares as 0, where gensim's is NaN;
- a new `vectors` array (every gensim mutator makes one) drops the norms, and add_vector(s) keep
  the vecattrs as long as the vectors: gensim forgets both, and answers from stale norms;
- the word2vec formats with gensim's options, read in one streamed pass that refuses a malformed
  file naming its line, refuses non-finite values, and checks a SHA256SUMS record beside the
  file (training writes one); writing streams row by row and can write TensorBoard's
  vectors.tsv in the same pass;
- save/load in a NumPy archive read with allow_pickle=False: gensim's own save/load pickle, and
  no jaxgram load path may run code.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral, Real
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


class _OneLineKeyError(JaxgramError, KeyError):
    """A KeyError (what gensim raises for the same lookup) whose message is one line for the CLI."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class UnknownWordError(_OneLineKeyError):
    """A word missing from the vocabulary; the message lists close matches."""


class UnknownAttributeError(_OneLineKeyError):
    """A per-word attribute (get_vecattr) that these vectors do not hold; the message says which they hold."""


class Embeddings(KeyedVectors):
    """gensim's KeyedVectors over vectors [V, D] (float32) and their words, in id order (most frequent first),
    and optionally their counts (the "count" vecattr)."""

    def __init__(self, index_to_key: Sequence[str] | int | None = None, vectors=None,
                 counts: Sequence[int | None] | None = None, *, copy: bool = True, vector_size: int | None = None,
                 count: int = 0, dtype=np.float32, mapfile_path=None):
        """Embeddings(words, vectors, counts=None): `vectors` [len(words), D] (copied, as gensim's add_vectors
        copies, unless copy=False), `counts` each word's corpus count (None for a word without one).

        Or gensim's own form, KeyedVectors(vector_size, count=0, dtype): no words yet, `count` rows set aside
        for add_vector. An int first argument, or vector_size=, chooses it.
        """
        if isinstance(index_to_key, Integral):  # gensim's KeyedVectors(vector_size, count), positionally
            index_to_key, vector_size, count, vectors = None, index_to_key, count if vectors is None else vectors, None
        if vector_size is not None:
            if index_to_key is not None or vectors is not None or counts is not None:
                raise ConfigError("Embeddings takes words and their vectors, or gensim's vector_size and count: "
                                  "not both")
            super().__init__(int(vector_size), int(count), _float32(dtype, "dtype"), mapfile_path)
            return
        if index_to_key is None or vectors is None:
            raise ConfigError("Embeddings takes words and their vectors, Embeddings(words, vectors), or gensim's "
                              "KeyedVectors(vector_size)")
        vectors = (np.array if copy else np.asarray)(vectors, dtype=_float32(dtype, "dtype"))
        if vectors.ndim != 2 or vectors.shape[0] != len(index_to_key):
            raise ConfigError(f"vectors must have shape [{len(index_to_key)}, D] (a row per word), got {vectors.shape}")
        super().__init__(vectors.shape[1], count=0, dtype=np.float32, mapfile_path=mapfile_path)
        self.index_to_key = list(index_to_key)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise ConfigError("index_to_key contains duplicate words")
        self.next_index = len(self.index_to_key)
        self.vectors = vectors
        if counts is not None:
            # One assignment for every word: set_vecattr, a word at a time, cannot mix the counts with the
            # None of words a vocabulary file did not list (gensim's own fvocab loader fails there).
            self.expandos["count"] = _count_array(counts, len(self.index_to_key))

    # gensim's mutators (add_vectors, kv[w] = v, sort_by_descending_frequency, resize_vectors) put a new array
    # in `vectors` and some leave `norms` as they were: the next query then divides by another table's norms
    # (wrong answers, or an IndexError once the table grew). A new array drops them here (gensim's own
    # norms = None: recomputed on the next query). Writing into `vectors` in place is gensim's contract:
    # call fill_norms(force=True) after.
    @property
    def vectors(self) -> np.ndarray:
        return self._vectors

    @vectors.setter
    def vectors(self, table: np.ndarray) -> None:
        self._vectors = table
        self.norms = None

    def fill_norms(self, force: bool = False) -> None:
        """gensim's fill_norms, except that a zero vector (e.g. an untrained row of W) gets norm 1: it then
        compares as 0 with every vector, and stays zero under unit_normalize_all, where gensim makes NaN."""
        if self.norms is None or force:
            super().fill_norms(force=True)
            self.norms[self.norms == 0] = 1

    def add_vectors(self, keys, weights, extras=None, replace=False) -> None:
        """gensim's add_vectors; the vecattrs grow with the vectors (a new word's count is 0), where gensim's
        leave them short, so that get_vecattr and sort_by_descending_frequency still see every word."""
        super().add_vectors(keys, weights, extras, replace)
        self.allocate_vecattrs()

    def add_vector(self, key, vector) -> int:
        """gensim's add_vector; a vector written into a row set aside drops the norms, which gensim's keeps."""
        index = super().add_vector(key, vector)
        self.norms = None
        return index

    @classmethod
    def from_params(cls, params, vocab, which: str = "E") -> Embeddings:
        """Vectors from E (centre table), W (context table) or their mean, as the Embedding Geometry article offers.

        The vocabulary's counts, when it has them (a Vocabulary does), become the words' counts.
        """
        counts = getattr(vocab, "counts", None)
        if which == "mean":  # a new array: no second copy
            return cls(vocab.words, (np.asarray(params.E) + np.asarray(params.W)) / 2, counts, copy=False)
        if which not in ("E", "W"):
            raise ConfigError(f"which={which!r} is not allowed: choose E, W or mean")
        return cls(vocab.words, getattr(params, which), counts)

    def get_index(self, key, default=None) -> int:
        """gensim's get_index (a key's row; an int in range is its own row), except that a word not in the
        vocabulary is an UnknownWordError listing close matches. Every gensim lookup goes through here."""
        index = self.key_to_index.get(key, -1)
        if index >= 0:
            return index
        if isinstance(key, Integral) and not isinstance(key, bool) and 0 <= key < len(self.index_to_key):
            return int(key)
        if default is not None:
            return default
        words = [word for word in self.index_to_key if isinstance(word, str)]
        close = difflib.get_close_matches(str(key), words, n=5)
        hint = f"; close matches: {', '.join(close)}" if close else "; no close matches"
        raise UnknownWordError(f"word {key!r} is not in the vocabulary ({len(self)} words){hint}")

    def get_vecattr(self, key, attr):
        """gensim's get_vecattr (a count of None: a word the vocabulary file did not list), except that an
        attribute these vectors do not hold is an UnknownAttributeError, a KeyError as gensim's, in words."""
        if attr not in self.expandos:
            if attr == "count":
                raise UnknownAttributeError("no word counts are loaded: pass fvocab= (a `word count` file such as "
                                            "the vocab.txt training writes) to load_word2vec_format, or counts= "
                                            "to Embeddings")
            held = ", ".join(map(repr, self.expandos)) or "none"
            raise UnknownAttributeError(f"attr={attr!r} is not stored: these vectors' per-word attributes are {held}")
        return super().get_vecattr(key, attr)

    def similarity(self, w1, w2) -> float:
        """gensim's cosine of two words, as a Python float (JSON takes it)."""
        return float(super().similarity(w1, w2))

    def to_gensim(self) -> KeyedVectors:
        """A plain gensim KeyedVectors: the same words in the same order, a copy of the vectors and vecattrs."""
        keyed = KeyedVectors(self.vector_size, dtype=np.float32)
        keyed.add_vectors(self.index_to_key, self.vectors)  # copies: gensim may change its vectors in place
        keyed.expandos = {attr: values.copy() for attr, values in self.expandos.items()}
        return keyed

    # -- similarity queries, with gensim's arithmetic ------------------------------------

    def _limit(self, restrict_vocab: int | None) -> int:
        """How many words, from the first (most frequent), a query considers."""
        _check_positive("restrict_vocab", restrict_vocab, f"all {len(self)} words")
        return len(self) if restrict_vocab is None else min(int(restrict_vocab), len(self))

    def _term_row(self, term, weighted: bool) -> int | None:
        """The row a query term names (None for a vector), after checking it as gensim reads it: a key (word
        or row), a vector of shape (vector_size,), or with `weighted` a (term, weight) pair."""
        if weighted and isinstance(term, (tuple, list)) and len(term) == 2 and isinstance(term[1], Real):
            term = term[0]
        if isinstance(term, np.ndarray):
            if term.shape != (self.vector_size,):
                raise ConfigError(f"a query term must be a word or a vector of shape ({self.vector_size},), "
                                  f"got shape {term.shape}")
            return None
        if isinstance(term, (str, Integral)) and not isinstance(term, bool):
            return self.get_index(term)
        pair = ", or a (term, weight) pair" if weighted else ""
        raise ConfigError(f"a query term must be a word, a row number or a vector of shape "
                          f"({self.vector_size},){pair}; got {type(term).__name__} {str(term)[:40]!r}")

    def most_similar(self, positive=None, negative=None, topn: int | None = 10, clip_start: int = 0,
                     clip_end: int | None = None, restrict_vocab: int | None = None, indexer=None):
        """gensim's most_similar (words closest to the weighted mean of the terms' unit vectors, inputs left out;
        terms are words, row numbers, vectors as given, or (term, weight) pairs; `indexer`, e.g. gensim's
        AnnoyIndexer, answers an integer topn; topn=None gives every searched word's cosine as an array).

        Its arguments are checked first: an unknown word is an UnknownWordError listing close matches, and
        what gensim would reinterpret silently (restrict_vocab=0 searches every word, a negative one or a
        negative clip_start shifts the words found) is a ConfigError naming what is allowed.
        """
        terms = _terms(positive) + _terms(negative)
        if not terms:
            raise ConfigError("most_similar needs at least one positive or negative word")
        for term in terms:
            self._term_row(term, weighted=True)
        _check_topn(topn)
        _check_positive("restrict_vocab", restrict_vocab, f"all {len(self)} words")
        _check_clip(clip_start, clip_end)
        return super().most_similar(positive, negative, topn, clip_start, clip_end, restrict_vocab, indexer)

    def _cosines(self, query: np.ndarray, limit: int) -> np.ndarray:
        """Each of the first `limit` words' unit vector dotted with `query` (its cosine when `query` has unit
        length), computed as gensim computes it: the raw dot product over the word's norm."""
        self.fill_norms()
        return self.vectors[:limit] @ query / self.norms[:limit]

    def _ranked(self, scores: np.ndarray, inputs: set[int], topn: int | None):
        """(word, score) for the `topn` best scores, input rows left out; the scores themselves when topn is None."""
        if topn is None:
            return scores
        best = _best(scores, topn + len(inputs))
        return [(self.index_to_key[row], float(scores[row])) for row in best if row not in inputs][:topn]

    def most_similar_cosmul(self, positive=None, negative=None, topn: int | None = 10,
                            restrict_vocab: int | None = None):
        """Levy & Goldberg's 3CosMul, as gensim: the product of the positives' cosines, shifted to [0, 1]
        by (1 + cos) / 2, over the negatives'. Terms are words, row numbers or vectors; restrict_vocab and
        topn as in most_similar (gensim 4.4's ignores restrict_vocab)."""
        positive, negative = _terms(positive), _terms(negative)
        if not positive:
            raise ConfigError("most_similar_cosmul needs at least one positive word")
        _check_topn(topn)
        limit = self._limit(restrict_vocab)
        rows = [self._term_row(term, weighted=False) for term in positive + negative]
        if topn is not None and topn < 1:
            return []
        vectors = [term if row is None else self.get_vector(row, norm=True) for term, row in
                   zip(positive + negative, rows)]
        scores = self._cosmul_scores(vectors[:len(positive)], vectors[len(positive):], limit)
        return self._ranked(scores, {row for row in rows if row is not None}, topn)

    def _cosmul_scores(self, positive: list[np.ndarray], negative: list[np.ndarray], limit: int) -> np.ndarray:
        """3CosMul's score of each of the first `limit` words for query vectors, as gensim computes it."""
        numerator = np.prod([(1 + self._cosines(vector, limit)) / 2 for vector in positive], axis=0)
        denominator = np.prod([(1 + self._cosines(vector, limit)) / 2 for vector in negative], axis=0)
        return numerator / (denominator + 1e-6)  # gensim's epsilon: a word opposite a negative scores high, not inf

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

        "most_similar" (3CosAdd) runs gensim's own evaluate_word_analogies on to_gensim() (gensim swaps
        key_to_index while it runs: a copy leaves these vectors whole whatever happens).
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
        unit = [self.get_vector(vocab[word], norm=True) for word in (b, c, a)]
        scores = self._cosmul_scores(unit[:2], unit[2:], limit)
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
                             binary: bool = False, total_vec: int | None = None, write_header: bool = True,
                             prefix: str = "", append: bool = False, sort_attr: str = "count", *,
                             also_tsv=None) -> None:
        """word2vec's format (word2vec_format.write_word2vec), with gensim's arguments and order: words in
        descending `sort_attr` (their counts, when known; ties and words without one keep their order),
        else in row order. `fvocab` also writes `word count` lines (sort_attr's values), for the words
        that have one; `total_vec` is the count the header declares, `write_header=False` leaves it out,
        `prefix` goes before every word, `append` adds to the files. `also_tsv`: TensorBoard's
        vectors.tsv from the same pass. Each file is replaced whole or not at all."""
        _check_positive("total_vec", total_vec, "the number of words")
        values = self.expandos.get(sort_attr)
        if fvocab is not None and values is None:
            raise ConfigError(f"fvocab= writes each word's {sort_attr!r}, and these vectors have none")
        order = None if values is None else _descending(values)
        words = [f"{prefix}{word}" for word in (self.index_to_key if order is None else
                                                 (self.index_to_key[row] for row in order))]
        write_word2vec(fname, words, self.vectors if order is None else _Rows(self.vectors, order), binary=binary,
                       also_tsv=also_tsv, total_vec=total_vec, write_header=write_header, append=append)
        if fvocab is not None:
            write_fvocab(fvocab, words, values if order is None else values[order], append=append)

    @classmethod
    def load_word2vec_format(cls, fname: str | os.PathLike, fvocab: str | os.PathLike | None = None,
                             binary: bool = False, encoding: str = "utf8", unicode_errors: str = "strict",
                             limit: int | None = None, datatype=np.float32, no_header: bool = False) -> Embeddings:
        """Load a word2vec text or binary file, with gensim's arguments (word2vec_format.read_word2vec:
        DataError names the path and line of malformed input, and refuses a header claiming more than
        the file can hold before allocating; `limit` reads the first N rows, `no_header` a GloVe file;
        a `.gz` or `.bz2` name is decompressed as it is read, never whole, so `binary=True` reads
        GoogleNews' .bin.gz; a SHA256SUMS record beside the file is checked). Memory: the vectors and a
        bounded buffer. `fvocab`: a `word count` per line file (training's vocab.txt), decoded with
        `encoding` and `unicode_errors` as the vectors are, for get_vecattr(word, "count"); a word it
        does not list has no count (None). A word not valid in `encoding` is a DataError that is also
        the UnicodeDecodeError gensim raises. Vectors are float32 (`datatype` may only say so).
        """
        _check_positive("limit", limit, "every row")
        _float32(datatype, "datatype")
        words, vectors = read_word2vec(Path(fname), binary, encoding, unicode_errors, limit, no_header)
        counts = None if fvocab is None else read_fvocab_counts(Path(fvocab), words, encoding, unicode_errors)
        return cls(words, vectors, counts, copy=False)  # the reader's array is ours: no second copy

    def save(self, fname: str | os.PathLike) -> None:
        """The words, vectors and vecattrs (counts included) in a NumPy archive (.npz), which load() reads
        back. Not gensim's pickle: a pickle runs code when loaded."""
        counts = self.expandos.get("count")
        arrays = {"words": np.array(self.index_to_key, dtype=str), "vectors": self.vectors,
                  "counts": np.full(len(self), -1, np.int64) if counts is None else
                  np.array([-1 if c is None else c for c in counts], np.int64), "has_counts": np.array(counts is not None)}
        for attr, values in self.expandos.items():
            if attr != "count":
                if values.dtype == object:
                    raise ConfigError(f"vecattr {attr!r} holds Python objects, which save() cannot write without "
                                      f"pickle: give it numbers, or drop it (del emb.expandos[{attr!r}])")
                arrays[f"vecattr.{attr}"] = values
        with atomic_open(fname, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, fname: str | os.PathLike) -> Embeddings:
        """Vectors save() wrote (allow_pickle=False: a file can hold only arrays, never code)."""
        path = Path(fname)
        try:
            with np.load(path, allow_pickle=False) as archive:
                words, vectors = archive["words"].tolist(), archive["vectors"]
                counts = [None if c < 0 else int(c) for c in archive["counts"]] if archive["has_counts"] else None
                vecattrs = {name.removeprefix("vecattr."): archive[name] for name in archive.files
                            if name.startswith("vecattr.")}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"cannot load vectors {path}: not an archive Embeddings.save wrote ({exc})") from None
        loaded = cls(words, vectors, counts, copy=False)
        loaded.expandos.update(vecattrs)
        return loaded


class _Rows:
    """`table`'s rows in `order`, gathered a block at a time as write_word2vec slices them (no reordered copy)."""

    def __init__(self, table: np.ndarray, order: np.ndarray):
        self._table, self._order = table, order
        self.shape = (len(order), table.shape[1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self._table[self._order[rows]]


def _descending(values: np.ndarray) -> np.ndarray | None:
    """Rows by descending value, ties in row order (gensim's stable sort), a value of None last; None when
    that is row order already (most files: training writes the most frequent word first)."""
    if values.dtype == object:
        order = np.array(sorted(range(len(values)), key=lambda row: (values[row] is None, -(values[row] or 0))),
                         dtype=np.int64)
    else:  # a stable ascending sort of the reversed values, reversed: descending, ties in row order; no negation
        order = (len(values) - 1 - np.argsort(values[::-1], kind="stable"))[::-1]  # (which wraps unsigned counts)
    return None if np.array_equal(order, np.arange(len(values))) else order


def _terms(terms) -> list:
    """positive= / negative= (or a word list) as a list, as gensim reads them: one key (word or row) or
    vector may come bare, and a 2-D array gives its rows."""
    if terms is None:
        return []
    if isinstance(terms, (str, Integral)) or (isinstance(terms, np.ndarray) and terms.ndim == 1):
        return [terms]
    return list(terms)


def _check_positive(name: str, value, none_means: str) -> None:
    """ConfigError unless `value` is None or an integer >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < 1):
        raise ConfigError(f"{name}={value!r} is not allowed: use an integer >= 1, or None for {none_means}")


def _check_topn(topn) -> None:
    """ConfigError unless topn is an integer (below 1: no results, as in gensim) or None (every score)."""
    if topn is not None and (isinstance(topn, bool) or not isinstance(topn, Integral)):
        raise ConfigError(f"topn={topn!r} is not allowed: use an integer (below 1 gives no results), "
                          f"or None for every word's score as an array")


def _check_clip(clip_start, clip_end) -> None:
    """ConfigError unless clip_start is an integer >= 0 and clip_end None or an integer above it."""
    if isinstance(clip_start, bool) or not isinstance(clip_start, Integral) or clip_start < 0:
        raise ConfigError(f"clip_start={clip_start!r} is not allowed: use an integer >= 0, the first row searched")
    if clip_end is not None and (isinstance(clip_end, bool) or not isinstance(clip_end, Integral)
                                 or clip_end <= clip_start):
        raise ConfigError(f"clip_end={clip_end!r} is not allowed: use an integer above clip_start ({clip_start}), "
                          f"or None to search to the last row")


def _float32(dtype, name: str):
    """np.float32, if `dtype` says so; ConfigError otherwise."""
    if np.dtype(dtype) != np.float32:
        raise ConfigError(f"{name}={np.dtype(dtype).name} is not allowed: jaxgram's vectors are float32")
    return np.float32


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
    """Counts as int64, or as objects when a word has None (no count)."""
    values = list(counts)
    if len(values) != size:
        raise ConfigError(f"counts has {len(values)} entries for {size} words: give one per word, in the words' order")
    known = [value for value in values if value is not None]
    if any(isinstance(value, bool) or not isinstance(value, Integral) or value < 0 for value in known):
        raise ConfigError("counts must be integers >= 0 (or None for a word without a count)")
    return np.array(values, dtype=np.int64 if len(known) == size else object)
