"""Benchmarks: 3CosAdd equals gensim's evaluate_word_analogies exactly; word-pair scores on known vectors."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from eval.benchmarks import (
    ANALOGY_FILE,
    METHODS,
    SIMILARITY_FILES,
    datapath,
    evaluate_analogies,
    evaluate_word_pairs,
    read_analogies,
    run_benchmarks,
)
from jaxgram.embeddings import Embeddings
from jaxgram.errors import DataError


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
    assert result.total.oov == total_questions and result.score is None  # nothing evaluated: no accuracy
    assert all(section.accuracy is None for section in result.sections)
    assert result.to_dict()["total"]["accuracy"] is None
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


def _with_the_pair_words(name):
    """Structured vectors plus random ones for the word-pair benchmark's own words, so many pairs are in vocabulary."""
    keyed, _ = _both(*_structured_vectors(5, keep=0.9))
    rng = np.random.default_rng(1)
    extra = sorted({w.lower() for line in datapath(SIMILARITY_FILES[name]).read_text().splitlines()
                    if not line.startswith("#") for w in line.split("\t")[:2]} - set(keyed.index_to_key))
    keyed.add_vectors(extra, rng.normal(size=(len(extra), keyed.vector_size)).astype(np.float32))
    return keyed, Embeddings(keyed.index_to_key, keyed.vectors)


@pytest.mark.parametrize("name", sorted(SIMILARITY_FILES))
def test_word_pairs_agree_with_gensim_evaluate_word_pairs(name):
    keyed, embeddings = _with_the_pair_words(name)
    pearson, spearman, oov_percent = keyed.evaluate_word_pairs(datapath(SIMILARITY_FILES[name]))
    ours = evaluate_word_pairs(embeddings, datapath(SIMILARITY_FILES[name]))
    assert ours.pearson == pytest.approx(pearson[0], abs=1e-9)
    assert ours.spearman == pytest.approx(spearman[0], abs=1e-9)
    assert ours.spearman_pvalue == pytest.approx(spearman[1], rel=1e-9) and 0 < ours.spearman_pvalue <= 1
    assert ours.to_dict()["spearman_pvalue"] == ours.spearman_pvalue
    assert 100 * ours.oov_ratio == pytest.approx(oov_percent)


# -- Embeddings.evaluate_word_analogies / evaluate_word_pairs against gensim's own ---------------------

def _lower_case_questions(tmp_path):
    """Every 10th question, lower-cased as the structured vectors' words are: case_insensitive=False finds them."""
    path = tmp_path / "questions.txt"
    path.write_text(_sampled_file(10).read_text().lower())
    return path


def _gensim_cosmul_evaluation(words, vectors, questions, restrict_vocab=300000, **options):
    """gensim's evaluate_word_analogies, scoring with gensim's own most_similar_cosmul instead of most_similar.

    gensim 4.4's most_similar_cosmul searches every word whatever restrict_vocab says, so gensim gets
    only the first restrict_vocab words: the questions it keeps use only those, so both search the same words.
    """
    limit = min(restrict_vocab, len(words))
    keyed = KeyedVectors(vectors.shape[1])
    keyed.add_vectors(words[:limit], vectors[:limit])
    keyed.most_similar = keyed.most_similar_cosmul
    return keyed.evaluate_word_analogies(questions, restrict_vocab=restrict_vocab, **options)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("restrict_vocab, case_insensitive, dummy4unknown",
                         [(300000, True, False), (400, True, True), (300000, False, False), (250, False, True)])
def test_3cosmul_analogies_are_gensims_evaluation_with_gensims_cosmul(tmp_path, restrict_vocab, case_insensitive,
                                                                     dummy4unknown):
    words, vectors = _structured_vectors(6)
    options = dict(restrict_vocab=restrict_vocab, case_insensitive=case_insensitive, dummy4unknown=dummy4unknown)
    questions = _lower_case_questions(tmp_path)
    score, sections = _gensim_cosmul_evaluation(words, vectors, questions, **options)
    ours = Embeddings(words, vectors).evaluate_word_analogies(questions, **options, similarity_function="most_similar_cosmul")
    assert ours == (score, sections)
    assert sections[-1]["correct"] and sections[-1]["incorrect"]  # some right, some wrong


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_3cosmul_passes_over_case_variants_of_the_question_words_as_gensim_does(tmp_path):
    # Title-case twins, less frequent and almost on their lower-case words: the top candidates for
    # a question are often its own words' twins, which gensim passes over for the next candidate.
    words, vectors = _structured_vectors(9)
    originals = [w for w in words if w.islower() and w.title() not in words]
    twins = vectors[[words.index(w) for w in originals]] + 1e-3 * np.random.default_rng(9).normal(
        size=(len(originals), vectors.shape[1])).astype(np.float32)
    words, vectors = words + [w.title() for w in originals], np.vstack([vectors, twins])
    questions = _lower_case_questions(tmp_path)
    ours = Embeddings(words, vectors).evaluate_word_analogies(questions, similarity_function="most_similar_cosmul")
    assert ours == _gensim_cosmul_evaluation(words, vectors, questions)
    assert ours[1][-1]["correct"] and ours[1][-1]["incorrect"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variants", [4, 5])
def test_3cosmul_answer_is_the_first_valid_word_of_the_top_five_as_in_gensim(tmp_path, variants):
    # Spellings of "king", a question word and so never an answer, scoring just above "queen":
    # with 4 of them "queen" is the 5th candidate and found; with 5, the 6th and missed.
    rng = np.random.default_rng(10)
    man, king, woman = rng.normal(size=(3, 16))
    queen = king + woman - man
    spellings = ["King", "KING", "kIng", "kiNg", "kinG"][:variants]
    words = ["man", "king", "woman", "queen", *spellings] + [f"filler{i}" for i in range(40)]
    further_from_man = queen - 0.3 * man + 0.01 * rng.normal(size=(variants, 16))
    vectors = np.vstack([man, king, woman, queen, further_from_man, rng.normal(size=(40, 16))]).astype(np.float32)
    questions = tmp_path / "questions.txt"
    questions.write_text(": family\nman king woman queen\n")
    ours = Embeddings(words, vectors).evaluate_word_analogies(questions, similarity_function="most_similar_cosmul")
    assert ours == _gensim_cosmul_evaluation(words, vectors, questions)
    assert ours[0] == (1.0 if variants == 4 else 0.0)


@pytest.mark.parametrize("restrict_vocab, case_insensitive, dummy4unknown", [(300, False, True), (300000, True, False)])
def test_3cosadd_analogies_pass_every_option_to_gensim(tmp_path, restrict_vocab, case_insensitive, dummy4unknown):
    keyed, embeddings = _both(*_structured_vectors(7))
    questions = _lower_case_questions(tmp_path)
    options = dict(restrict_vocab=restrict_vocab, case_insensitive=case_insensitive, dummy4unknown=dummy4unknown)
    expected = keyed.evaluate_word_analogies(questions, **options)
    assert expected[1][-1]["correct"] and expected[1][-1]["incorrect"]  # some right, some wrong
    assert embeddings.evaluate_word_analogies(questions, **options) == expected
    assert embeddings.evaluate_word_analogies(questions, **options, similarity_function="most_similar") == expected


@pytest.mark.parametrize("method", METHODS)
def test_skipped_questions_per_section_are_the_ones_gensim_counts_wrong_with_dummy4unknown(method):
    keyed, embeddings = _both(*_structured_vectors(8))
    function = {"3cosadd": "most_similar", "3cosmul": "most_similar_cosmul"}[method]
    _, skipping = embeddings.evaluate_word_analogies(_sampled_file(10), similarity_function=function)
    _, counting = embeddings.evaluate_word_analogies(_sampled_file(10), similarity_function=function, dummy4unknown=True)
    ours = evaluate_analogies(embeddings, _sampled_file(10), method)
    assert [s.oov for s in ours.sections] == [len(c["incorrect"]) - len(s["incorrect"]) for s, c in
                                              zip(skipping[:-1], counting[:-1])]
    assert [(s.correct, s.incorrect) for s in ours.sections] == [(len(s["correct"]), len(s["incorrect"]))
                                                                 for s in skipping[:-1]]
    assert ours.total.oov > 0


@pytest.mark.parametrize("restrict_vocab, case_insensitive, dummy4unknown", [(300000, True, False), (500, True, True),
                                                                              (300000, False, False)])
def test_word_pairs_through_embeddings_are_gensims_tuple(restrict_vocab, case_insensitive, dummy4unknown):
    keyed, embeddings = _with_the_pair_words("simlex999")
    path = datapath(SIMILARITY_FILES["simlex999"])
    options = dict(restrict_vocab=restrict_vocab, case_insensitive=case_insensitive, dummy4unknown=dummy4unknown)
    pearson, spearman, oov_ratio = keyed.evaluate_word_pairs(path, **options)
    assert oov_ratio < 100 and np.isfinite(pearson[0])  # correlations of pairs in vocabulary
    ours = embeddings.evaluate_word_pairs(path, **options)
    assert (tuple(ours[0]), tuple(ours[1]), ours[2]) == (tuple(pearson), tuple(spearman), oov_ratio)


def test_evaluation_files_without_usable_content_are_data_errors(tmp_path):
    embeddings = Embeddings(["zzz", "yyy", "xxx"], np.eye(3, dtype=np.float32))
    for content, message in [("", "holds no questions"), (": only a header\nnot four words\n", "holds no questions"),
                             ("a b c d\n: section\n", "line 1 comes before any ': SECTION' header")]:
        (tmp_path / "questions.txt").write_text(content)
        for method in METHODS:
            with pytest.raises(DataError, match=message):
                evaluate_analogies(embeddings, tmp_path / "questions.txt", method)
    with pytest.raises(DataError, match="cannot evaluate word-pair file .*wordsim353.tsv: No valid similarity"):
        embeddings.evaluate_word_pairs(datapath(SIMILARITY_FILES["wordsim353"]))
    with pytest.raises(DataError, match="cannot read word-pair file .*missing.tsv"):
        embeddings.evaluate_word_pairs(tmp_path / "missing.tsv")
