"""gensim's own Word2Vec tests (the installed gensim's gensim/test/test_word2vec.py, with its test_data),
run against jaxgram.Word2Vec: its TestWord2VecModel, with the test module's `word2vec.Word2Vec` swapped
for jaxgram's. Nothing of gensim's is copied here.

Each test passes, or is an expected failure with its reason, checked: the test must fail with the error
that reason names (a test that fails otherwise is a failure, one that passes says to remove its entry).
Counts (gensim 4.4): of TestWord2VecModel's 74 tests, 19 pass, 1 is gensim's own skip, 54 are expected
failures (EXPECTED_FAILURES, by reason).
"""

from __future__ import annotations

import functools
import logging
import pickle
import sys
import types

import pytest
from gensim_suite_failures import Reason, expected_to_fail

import jaxgram
from jaxgram.errors import ConfigError, DataError


def _import_gensim_suite():
    """gensim's test module. It imports testfixtures for three tests of gensim's log lines; where that
    package is not installed, a log capture of our own stands in (those tests are expected failures here)."""
    try:
        import testfixtures  # noqa: F401
    except ImportError:
        sys.modules["testfixtures"] = types.SimpleNamespace(log_capture=_log_capture)
    from gensim.test import test_word2vec

    return test_word2vec


class _Records(logging.Handler):
    """The log records of a test; str() is their messages, which gensim's tests search."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __str__(self) -> str:
        return "\n".join(record.getMessage() for record in self.records)


def _log_capture():
    """testfixtures.log_capture(): the test gets the root logger's records of its run as its argument."""
    def decorate(test):
        @functools.wraps(test)
        def run(self):
            records, root = _Records(), logging.getLogger()
            level = root.level
            root.addHandler(records)
            root.setLevel(logging.DEBUG)
            try:
                return test(self, records)
            finally:
                root.removeHandler(records)
                root.setLevel(level)
        return run
    return decorate


gensim_suite = _import_gensim_suite()


CBOW = Reason("CBOW (sg=0): jaxgram trains skip-gram only and refuses sg=0", ConfigError, "^sg=0 is not allowed")
HS = Reason("hierarchical softmax (hs=1): refused; jaxgram's full softmax (TrainConfig(objective='softmax')) is another "
            "model", ConfigError, "^hs=1 is not allowed")
ONLINE = Reason("online vocabulary update (build_vocab(update=True)) is not built: a model trains on one vocabulary",
                ConfigError, "^update=True is not allowed")
OLD_MODELS = Reason("gensim's pickled models: jaxgram's load() reads only its own zip of JSON and arrays, never a pickle",
                    DataError, "not an archive Word2Vec.save wrote")
TRIM_RULE = Reason("trim_rule: jaxgram's vocabulary rules are min_count and max_final_vocab", ConfigError, "^trim_rule=")
INTERNALS = Reason("gensim's vocabulary internals (scan_vocab, prepare_vocab, effective_min_count) are not part of "
                   "Word2Vec", AttributeError, "scan_vocab")
NS_EXPONENT = Reason("ns_exponent < 0: TrainConfig takes ns_exponent in [0, 1]", ConfigError, "^ns_exponent=-1")
STR_SENTENCES = Reason("a sentence given as a str is refused (ConfigError) where gensim logs a warning", ConfigError,
                       "^sentences must be token lists")
KV_PICKLE = Reason("Embeddings.save writes a NumPy archive (no pickle), which gensim's KeyedVectors.load (a pickle) "
                   "cannot read", pickle.UnpicklingError, "")
SEPARATE_ARRAYS = Reason("save(sep_limit=) and load(mmap=) are gensim's pickle options: jaxgram's save() writes one zip",
                         TypeError, "sep_limit")
LOAD_REFUSAL = Reason("load() refuses a file it did not write with DataError naming it, not gensim's AttributeError",
                      DataError, "not an archive Word2Vec.save wrote")
CLASS_LOAD = Reason("load() is a classmethod that also works on an instance, where gensim raises AttributeError",
                    AssertionError, "AttributeError not raised")
PREDICT = Reason("predict_output_word is not implemented", AttributeError, "predict_output_word")
RESET_FROM = Reason("reset_from is not implemented", AttributeError, "reset_from")
FIXED_ALPHA = Reason("alpha is fixed once the model is made (a continued train() keeps its schedule, as --resume does)",
                     ConfigError, "^alpha cannot change")

# Each gensim test that does not pass, with its reasons in the order the test meets them.
EXPECTED_FAILURES = {
    **dict.fromkeys(("test_cbow_fixedwindowsize", "test_cbow_fixedwindowsize_fromfile", "test_cbow_hs",
                     "test_cbow_hs_fromfile", "test_cbow_hs_online", "test_cbow_neg", "test_cbow_neg_fromfile",
                     "test_cbow_neg_online", "test_locking", "test_similarities", "test_training_cbow",
                     "test_training_cbow_negative"), (CBOW,)),
    **dict.fromkeys(("test_build_vocab_from_freq", "test_compute_training_loss", "test_cosmul", "test_online_learning",
                     "test_online_learning_from_file", "test_prune_vocab", "test_scoring", "test_sg_hs",
                     "test_sg_hs_fromfile", "test_sg_hs_online", "test_sg_fixedwindowsize_fromfile", "test_similar_by",
                     "test_train_hs_and_neg", "test_train_with_explicit_param", "test_training",
                     "test_training_from_file", "test_vocab"), (HS,)),
    "test_sg_neg_online": (ONLINE,),
    **dict.fromkeys(("test_online_learning_after_save", "test_online_learning_after_save_from_file"), (ONLINE,)),
    **dict.fromkeys(("test_persistence_backwards_compatible", "test_load_old_model", "test_load_old_model_separates",
                     "test_load_old_models_1_x", "test_load_old_models_2_x", "test_load_old_models_3_x"), (OLD_MODELS,)),
    **dict.fromkeys(("test_rule", "test_rule_with_min_count", "test_lambda_rule",
                     "test_persistence_with_constructor_rule"), (TRIM_RULE,)),
    **dict.fromkeys(("test_max_final_vocab", "test_total_word_count"), (INTERNALS,)),
    "test_negative_ns_exp": (NS_EXPONENT,),
    "test_build_vocab_warning": (STR_SENTENCES,),
    **dict.fromkeys(("test_persistence", "test_persistence_from_file"), (KV_PICKLE,)),
    "test_persistence_word2vec_format_combination_with_standard_persistence": (LOAD_REFUSAL,),
    "test_large_mmap": (SEPARATE_ARRAYS,),
    "test_load_on_class_error": (CLASS_LOAD,),
    "test_predict_output_word": (PREDICT,),
    "test_reset_from": (RESET_FROM,),
    "test_train_warning": (FIXED_ALPHA,),
}
# gensim's tests that train longest here (20 to 70 s on 2 busy cores): `-m "not slow"` leaves them out.
SLOW = ("test_evaluate_word_pairs", "test_evaluate_word_pairs_from_file", "test_parallel")


def _word2vec_module_with(word2vec_class: type) -> types.ModuleType:
    """gensim.models.word2vec as gensim's tests use it (LineSentence, ...), with `word2vec_class` for Word2Vec;
    gensim's own module is left as it is."""
    module = types.ModuleType(gensim_suite.word2vec.__name__)
    module.__dict__.update(vars(gensim_suite.word2vec))
    module.Word2Vec = word2vec_class
    return module


def _run_on(suite: type, expected: dict[str, tuple[Reason, ...]], only=None) -> type:
    """Set `suite` (a subclass of gensim's TestWord2VecModel) to run gensim's tests (those named in `only`,
    or all), each expected to fail for its `expected` reasons if any; gensim's own functions stay as they are."""
    for name in [name for name in dir(suite) if name.startswith("test")]:
        test = getattr(gensim_suite.TestWord2VecModel, name)
        if only is not None and name not in only:
            setattr(suite, name, None)  # unittest collects only callables
        elif expected.get(name):
            setattr(suite, name, expected_to_fail(test, expected[name]))
        if name in SLOW and callable(getattr(suite, name)):
            setattr(suite, name, pytest.mark.slow(functools.wraps(test)(lambda self, test=test: test(self))))
    return suite


class TestGensimWord2VecSuiteOnJaxgram(gensim_suite.TestWord2VecModel):
    """gensim's TestWord2VecModel, every test of it, on jaxgram.Word2Vec."""

    @pytest.fixture(autouse=True)
    def _jaxgram_word2vec(self, monkeypatch):
        monkeypatch.setattr(gensim_suite, "word2vec", _word2vec_module_with(jaxgram.Word2Vec))


_run_on(TestGensimWord2VecSuiteOnJaxgram, EXPECTED_FAILURES)
