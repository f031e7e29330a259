"""What the runs of gensim's own test suites on jaxgram share (test_gensim_keyedvectors_suite.py,
test_gensim_word2vec_suite.py): a documented reason a gensim test fails here, and the wrapper that
holds the test to it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Reason:
    """Why a gensim test fails on jaxgram, and the error (type, and a pattern of its message) it fails with."""

    why: str
    error: type[BaseException] | tuple[type[BaseException], ...]
    says: str

    def explains(self, error: BaseException) -> bool:
        return isinstance(error, self.error) and re.search(self.says, str(error)) is not None


def expected_to_fail(test, reasons: tuple[Reason, ...]):
    """gensim's `test`, an xfail when it fails with the error of its first reason (the others are why it would
    fail after that one); a failure when it fails otherwise, and when it passes (its entry is then to go)."""
    @functools.wraps(test)
    def run(self):
        try:
            test(self)
        except Exception as error:
            if reasons[0].explains(error):
                pytest.xfail("; then ".join(reason.why for reason in reasons))
            raise
        pytest.fail(f"{test.__qualname__} passes now: remove its entry in EXPECTED_FAILURES ({reasons[0].why})")
    return run
