"""Benchmarks: 3CosAdd equals gensim's evaluate_word_analogies exactly; word-pair scores on known vectors."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from eval.benchmarks import (
    ANALOGY_FILE,
    SIMILARITY_FILES,
    datapath,
    evaluate_analogies,
    evaluate_word_pairs,
    read_analogies,
    run_benchmarks,
)
from jaxgram.embeddings import Embeddings


def _structured_vectors(seed: int, dim: int = 24, keep: float = 0.8):
    """Vectors over the analogy words with planted offsets (so some questions are solvable),
    a share of words left out (OOV questions) and case variants (gensim's first-wins rule)."""
    rng = np.random.default_rng(seed)
    sections = read_analogies(datapath(ANALOGY_FILE))
    words = list(dict.fromkeys(w.lower() for _, questions in sections for q in questions for w in q))
    rng.shuffle(words)
    words = words[: int(len(words) * keep)]
    words[5:5] = ["Paris", "LONDON", "Man", "KING"]  # upper-case twins ahead of some lower-case words
    vectors = rng.normal(size=(len(words), dim)).astype(np.float32)
    index = {w: i for i, w in enumerate(words)}
    for _, questions in sections:
        offset = rng.normal(size=dim).astype(np.float32)
        for a, b, c, d in questions[:: 5]:
            a, b, c, d = (w.lower() for w in (a, b, c, d))
            if all(w in index for w in (a, b, c, d)):
                vectors[index[b]] = vectors[index[a]] + offset
                vectors[index[d]] = vectors[index[c]] + offset + 0.4 * rng.normal(size=dim)
    return words, vectors


def _both(words, vectors):
    keyed = KeyedVectors(vectors.shape[1])
    keyed.add_vectors(words, vectors)
    return keyed, Embeddings(words, vectors)


def _assert_same_as_gensim(keyed, embeddings, restrict_vocab=300000):
    gensim_score, gensim_sections = keyed.evaluate_word_analogies(datapath(ANALOGY_FILE), restrict_vocab=restrict_vocab)
    ours = evaluate_analogies(embeddings, restrict_vocab=restrict_vocab)
    assert ours.score == gensim_score
    for section, theirs in zip(ours.sections, gensim_sections):
        assert section.name == theirs["section"]
        assert (section.correct, section.incorrect) == (len(theirs["correct"]), len(theirs["incorrect"]))
    return ours


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_3cosadd_equals_gensim_exactly_on_structured_vectors(seed):
    keyed, embeddings = _both(*_structured_vectors(seed))
    ours = _assert_same_as_gensim(keyed, embeddings)
    # Non-trivial: some right, some wrong, some skipped.
    assert 0 < ours.total.correct < ours.total.evaluated
    assert ours.total.oov > 0


def test_3cosadd_equals_gensim_with_a_restricted_vocabulary():
    keyed, embeddings = _both(*_structured_vectors(3))
    _assert_same_as_gensim(keyed, embeddings, restrict_vocab=300)


def test_3cosadd_equals_gensim_on_trained_vectors(five_book_corpus):
    from eval.baseline import train_gensim
    from jaxgram.config import TrainConfig

    model = train_gensim(five_book_corpus, TrainConfig(dim=32, epochs=1))
    ours = _assert_same_as_gensim(model.wv, Embeddings(model.wv.index_to_key, model.wv.vectors))
    assert ours.total.evaluated > 1000


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_3cosmul_follows_gensim_most_similar_cosmul():
    words, vectors = _structured_vectors(4)
    keyed, embeddings = _both(words, vectors)
    rows = {w.upper(): i for i, w in reversed(list(enumerate(words)))}
    expected_correct = expected_total = 0
    for _, questions in read_analogies(datapath(ANALOGY_FILE)):
        for a, b, c, d in questions[::40]:
            if not all(w in rows for w in (a, b, c, d)):
                continue
            original = keyed.key_to_index
            keyed.key_to_index = rows
            answers = keyed.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
            keyed.key_to_index = original
            predicted = None
            for word, _ in answers:
                predicted = word.upper()
                if predicted in rows and predicted not in {a, b, c}:
                    break
            expected_total += 1
            expected_correct += predicted == d
    # Same questions through our evaluator: a file holding only the sampled lines.
    ours = evaluate_analogies(embeddings, path=_sampled_file(40), method="3cosmul")
    assert (ours.total.correct, ours.total.evaluated) == (expected_correct, expected_total)
    assert 0 < expected_correct < expected_total


_SAMPLED = {}


def _sampled_file(step):
    import tempfile
    from pathlib import Path

    if step not in _SAMPLED:
        lines = []
        for name, questions in read_analogies(datapath(ANALOGY_FILE)):
            lines.append(f": {name}")
            lines += [" ".join(q) for q in questions[::step]]
        path = Path(tempfile.mkdtemp()) / "sampled.txt"
        path.write_text("\n".join(lines) + "\n")
        _SAMPLED[step] = path
    return _SAMPLED[step]


def test_unknown_words_are_counted_never_fatal():
    embeddings = Embeddings(["zzz", "yyy", "xxx"], np.eye(3, dtype=np.float32))
    result = evaluate_analogies(embeddings)
    total_questions = sum(len(q) for _, q in read_analogies(datapath(ANALOGY_FILE)))
    assert result.total.oov == total_questions and result.score == 0.0
    pairs = evaluate_word_pairs(embeddings, datapath(SIMILARITY_FILES["wordsim353"]))
    assert pairs.spearman is None and pairs.pairs_used == 0 and pairs.oov_ratio == 1.0
    report = run_benchmarks(embeddings)
    assert report["similarity"]["simlex999"]["oov_ratio"] == 1.0


def _pairs_file(tmp_path, rows):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment line\n# Word 1\tWord 2\tHuman\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    return path


def test_word_pairs_on_vectors_built_to_match_the_human_scores(tmp_path):
    # Pair i: (u_i, v_i) at angle theta_i, so cos = a known value; gold = 10 * cos -> Pearson 1.
    rng = np.random.default_rng(0)
    angles = rng.uniform(0.05, 3.0, size=12)
    words, vectors, rows = [], [], []
    for i, theta in enumerate(angles):
        words += [f"u{i}", f"v{i}"]
        vectors += [[1.0, 0.0], [np.cos(theta), np.sin(theta)]]
        rows.append((f"U{i}", f"v{i}", 10 * np.cos(theta)))  # case differs on purpose
    rows += [("u0", "missing", 5.0), ("absent", "v1", 1.0), ("gone", "lost", 2.0)]
    embeddings = Embeddings(words, np.asarray(vectors, dtype=np.float32))
    result = evaluate_word_pairs(embeddings, _pairs_file(tmp_path, rows))
    assert result.pearson == pytest.approx(1.0, abs=1e-6)
    assert result.spearman == pytest.approx(1.0)
    assert (result.pairs_used, result.oov) == (12, 3)
    assert result.oov_ratio == pytest.approx(3 / 15)

    reversed_rows = [(a, b, -s) for a, b, s in rows]
    flipped = evaluate_word_pairs(embeddings, _pairs_file(tmp_path, reversed_rows))
    assert flipped.spearman == pytest.approx(-1.0)


@pytest.mark.parametrize("name", sorted(SIMILARITY_FILES))
def test_word_pairs_agree_with_gensim_evaluate_word_pairs(name):
    keyed, embeddings = _both(*_structured_vectors(5, keep=0.9))
    rng = np.random.default_rng(1)
    # Give the benchmark's own words vectors too, so many pairs are in vocabulary.
    extra = sorted({w.lower() for line in datapath(SIMILARITY_FILES[name]).read_text().splitlines()
                    if not line.startswith("#") for w in line.split("\t")[:2]} - set(keyed.index_to_key))
    keyed.add_vectors(extra, rng.normal(size=(len(extra), keyed.vector_size)).astype(np.float32))
    embeddings = Embeddings(keyed.index_to_key, keyed.vectors)
    pearson, spearman, oov_percent = keyed.evaluate_word_pairs(datapath(SIMILARITY_FILES[name]))
    ours = evaluate_word_pairs(embeddings, datapath(SIMILARITY_FILES[name]))
    assert ours.pearson == pytest.approx(pearson[0], abs=1e-9)
    assert ours.spearman == pytest.approx(spearman[0], abs=1e-9)
    assert 100 * ours.oov_ratio == pytest.approx(oov_percent)
