"""What each of gensim's `corpus_file` workers reads in an epoch, read as gensim reads it.

gensim 4's `Word2Vec(corpus_file=..., workers=T)` (word2vec.py `_train_epoch_corpusfile`,
word2vec_corpusfile.pyx `train_epoch_sg`) starts worker i at byte `size / T * i` of the file
(mid-line: the rest of that line is its first sentence) and has it read batches of at most
10,000 words (sentences over 10,000 words cut into pieces) while the words it has read are at
most the corpus's words / T. It stops only between batches, so each worker reads past the end
of its share into the next worker's, and those words are trained twice in the epoch: the more
workers, the larger the part (the last worker stops at the end of the file). This module
counts that, and writes the shares one after another as a corpus of their own, so that a
trainer that walks T contiguous shares (jaxgram's fused kernel) can be given what gensim's
T workers were given.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_WORDS_IN_BATCH = 10_000  # gensim's word2vec_inner MAX_SENTENCE_LEN and CythonLineSentence's batch


def corpus_words(path: str | os.PathLike) -> int:
    """Words of the file as gensim counts them (whitespace-separated tokens, every line)."""
    with open(path, "rb") as handle:
        return sum(len(line.split()) for line in handle)


def worker_shares(path: str | os.PathLike, workers: int) -> list[list[list[bytes]]]:
    """The sentences each of `workers` corpus_file workers trains on in one epoch, in its order."""
    size, words = os.path.getsize(path), corpus_words(path)
    return [_worker_share(path, int(size / workers * worker), words / workers) for worker in range(workers)]


def _worker_share(path, offset: int, share: float) -> list[list[bytes]]:
    sentences, held, read = [], [], 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        lines = (piece for line in handle for piece in _pieces(line.split()))
        while read <= share:
            batch, held, more = _next_batch(lines, held)
            sentences.extend(batch)
            read += sum(len(sentence) for sentence in batch)
            if not more:
                break
    return sentences


def _pieces(sentence: list[bytes]) -> list[list[bytes]]:
    return [sentence[i:i + MAX_WORDS_IN_BATCH] for i in range(0, len(sentence), MAX_WORDS_IN_BATCH)] or [[]]


def _next_batch(lines, held: list[list[bytes]]) -> tuple[list[list[bytes]], list[list[bytes]], bool]:
    """CythonLineSentence.next_batch: sentences until the batch passes the limit; (batch, the
    sentences held for the next batch, whether the file has more)."""
    batch, count, more = list(held), sum(len(sentence) for sentence in held), True
    while count <= MAX_WORDS_IN_BATCH:
        sentence = next(lines, None)
        if sentence is None:
            more = False
            break
        batch.append(sentence)
        count += len(sentence)
    # The sentence that passed the limit stays in the batch; held back are only whole sentences
    # after it (a long sentence's pieces), as gensim's search from the end does.
    keep = len(batch)
    while keep > 1 and count - len(batch[keep - 1]) > MAX_WORDS_IN_BATCH:
        keep -= 1
        count -= len(batch[keep])
    return batch[:keep], batch[keep:], more or keep < len(batch)


def words_read(path: str | os.PathLike, workers: int) -> int:
    """Words gensim's `workers` corpus_file workers read (and train on) in one epoch."""
    return sum(len(sentence) for share in worker_shares(path, workers) for sentence in share)


def write_shares_corpus(path: str | os.PathLike, workers: int, out: str | os.PathLike) -> Path:
    """The workers' shares one after another, a sentence a line: `workers` contiguous shares, as gensim's
    `workers` threads read them."""
    out = Path(out)
    with open(out, "wb") as handle:
        for share in worker_shares(path, workers):
            handle.writelines(b" ".join(sentence) + b"\n" for sentence in share)
    return out
