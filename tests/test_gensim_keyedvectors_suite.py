"""gensim's own KeyedVectors tests (the installed gensim's gensim/test/test_keyedvectors.py, with its test_data),
run against jaxgram.Embeddings. Nothing of gensim's is copied here.

Every TestCase of gensim's module runs with `KeyedVectors` swapped for Embeddings wherever the tests name it:
the module's own `KeyedVectors`, `gensim.models.KeyedVectors` and `gensim.models.keyedvectors.KeyedVectors`.
gensim's module is left as it is: the swap is a stand-in for its globals, for the test's duration. Where a test
calls gensim's private binary reader (LoadWord2VecFormatTest), it gets Embeddings.load_word2vec_format, reading
binary_chunk_size bytes at a time. gensim's temporary files go to the test's own tmp_path.

TestKeyedVectors then runs again with counts, given as a vocabulary file (fvocab=) of the counts gensim's reader
makes up when it has none (V - row): the tests that need counts pass there.

Each test passes, or is an expected failure with its reason, checked: the test must fail with the error its
reason names (a test that fails otherwise is a failure; one that passes says to remove its entry). Each reason is
a row of docs/usage.md's "Coming from gensim or word2vec.c" table. Counts (gensim 4.4): of gensim's 33 tests, 30
pass and 3 are expected failures (2 for NO_COUNTS, 1 for PICKLE); with counts, all 29 of TestKeyedVectors pass.
Each class adds one check of its own, that the swap took.
"""

from __future__ import annotations

import types
from unittest import mock

import gensim
import pytest
from gensim.test import test_keyedvectors as gensim_suite
from gensim_suite_failures import Reason, expected_to_fail

from jaxgram import word2vec_format
from jaxgram.embeddings import Embeddings, UnknownAttributeError
from jaxgram.errors import DataError

NO_COUNTS = Reason("load_word2vec_format without fvocab= loads no counts (gensim makes up V - row): "
                       "get_vecattr(w, 'count') is an UnknownAttributeError, a KeyError, that says to pass fvocab=",
                       UnknownAttributeError, "^no word counts are loaded: pass fvocab=")
PICKLE = Reason("Embeddings.load reads only the NumPy archive Embeddings.save writes, never gensim's pickle "
                    "(a pickle runs code when loaded)", DataError, "not an archive Embeddings.save wrote")

EXPECTED_FAILURES = {
    "TestKeyedVectors.test_vectors_for_all_with_copy_vecattrs": NO_COUNTS,
    "TestKeyedVectors.test_vectors_for_all_without_copy_vecattrs": NO_COUNTS,
    "Gensim320Test.test": PICKLE,
}


def _read_in_chunks(cls, fname, binary_chunk_size, **options):
    """gensim's private _load_word2vec_format(cls, fname, ..., binary_chunk_size) as LoadWord2VecFormatTest calls
    it: Embeddings' own reader, which reads the file binary_chunk_size bytes at a time."""
    with mock.patch.object(word2vec_format, "READ_CHUNK", binary_chunk_size):
        return cls.load_word2vec_format(fname, **options)


def _gensim_with_embeddings(tmp_path) -> types.SimpleNamespace:
    """`gensim` as gensim's test module reaches into it, with Embeddings for KeyedVectors and tmp_path for
    gensim's temporary files."""
    keyedvectors = types.ModuleType(gensim.models.keyedvectors.__name__)
    keyedvectors.__dict__.update(vars(gensim.models.keyedvectors))
    keyedvectors.KeyedVectors, keyedvectors._load_word2vec_format = Embeddings, _read_in_chunks
    test_utils = types.SimpleNamespace(**vars(gensim.test.utils))
    test_utils.get_tmpfile = lambda name: str(tmp_path / name)
    return types.SimpleNamespace(models=types.SimpleNamespace(KeyedVectors=Embeddings, keyedvectors=keyedvectors),
                                 test=types.SimpleNamespace(utils=test_utils), utils=gensim.utils)


class _OnEmbeddings:
    """Mixed into a subclass of one of gensim's TestCases: its tests run with Embeddings for KeyedVectors."""

    @pytest.fixture(autouse=True)
    def _embeddings_for_keyedvectors(self, monkeypatch, tmp_path):
        monkeypatch.setattr(gensim_suite, "KeyedVectors", Embeddings)
        monkeypatch.setattr(gensim_suite, "gensim", _gensim_with_embeddings(tmp_path))
        self.tmp_path = tmp_path

    def __init_subclass__(cls, **kwargs):
        """Wrap each expected failure of the gensim TestCase `cls` derives from (its last base)."""
        super().__init_subclass__(**kwargs)
        suite = cls.__bases__[-1]
        for name in [name for name in dir(suite) if name.startswith("test")]:
            difference = EXPECTED_FAILURES.get(f"{suite.__name__}.{name}")
            if difference is not None and cls.expects_failures:
                setattr(cls, name, expected_to_fail(getattr(suite, name), (difference,)))

    expects_failures = True

    def test_gensims_tests_here_run_on_embeddings(self):
        """The swap took: gensim's module, and each path its tests reach KeyedVectors by, give Embeddings, and so
        do the vectors its setUp loads."""
        stand_in = gensim_suite.gensim.models
        assert gensim_suite.KeyedVectors is stand_in.KeyedVectors is stand_in.keyedvectors.KeyedVectors is Embeddings
        assert type(getattr(self, "vectors", Embeddings(1))) is Embeddings


class TestGensimKeyedVectorsOnEmbeddings(_OnEmbeddings, gensim_suite.TestKeyedVectors):
    """gensim's TestKeyedVectors: its vectors (euclidean_vectors.bin) loaded by Embeddings.load_word2vec_format."""


class TestGensimOldModelOnEmbeddings(_OnEmbeddings, gensim_suite.Gensim320Test):
    """gensim's Gensim320Test: loading a gensim 3.2 pickle."""


class TestGensimLoadWord2VecFormatOnEmbeddings(_OnEmbeddings, gensim_suite.LoadWord2VecFormatTest):
    """gensim's LoadWord2VecFormatTest: binary files read in chunks of 5, 16 and 1024 bytes."""


class TestGensimKeyedVectorsWithCountsOnEmbeddings(_OnEmbeddings, gensim_suite.TestKeyedVectors):
    """gensim's TestKeyedVectors on its vectors with counts, read from a vocabulary file as training writes it."""

    expects_failures = False

    def setUp(self):
        super().setUp()
        words = self.vectors.index_to_key
        vocab_path = self.tmp_path / "vocab.txt"
        word2vec_format.write_fvocab(vocab_path, words, range(len(words), 0, -1))
        self.vectors = Embeddings.load_word2vec_format(gensim_suite.datapath("euclidean_vectors.bin"), binary=True,
                                                       fvocab=vocab_path)
