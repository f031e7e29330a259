"""One exception family for everything jaxgram, ingest and eval refuse or fail at.

The CLI turns any `JaxgramError` into one line on stderr and a non-zero exit status,
so raising one of these is how library code reports a problem the user can fix.
"""

from __future__ import annotations


class JaxgramError(Exception):
    """Base class: a problem worth one line to the user, never a traceback."""

    exit_code = 1


class ConfigError(JaxgramError, ValueError):
    """A bad argument or config value; the message names the field, the value and what is allowed."""

    exit_code = 2


class DataError(JaxgramError, ValueError):
    """A file that is missing, corrupt, truncated or in the wrong format; the message names the path.

    A ValueError too, as gensim's refusals of a malformed file are: `except ValueError` written
    for gensim catches it. (The CLI catches JaxgramError first: its exit status is exit_code.)"""

    exit_code = 2


class TrainingDiverged(JaxgramError):
    """The loss became NaN or inf; the last good checkpoint is kept."""

    exit_code = 3
