"""What a training run produces: the TrainResult it returns and, with `--out DIR`, every output
file, written atomically, and its checksum record."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxgram.config import TrainConfig
from jaxgram.distributed import is_primary
from jaxgram.errors import ConfigError
from jaxgram.fileio import SHA256SUMS, atomic_open, atomic_write_json, atomic_write_text, write_sha256sums
from jaxgram.losses import Params
from jaxgram.table_rows import ShardedTable, asked_by_primary, serve_rows
from jaxgram.vocab import EncodedCorpus, EncodedFile, Vocabulary, save_encoded_npy, save_encoded_text
from jaxgram.word2vec_format import row_blocks, rows_per_write, write_fvocab, write_projector_tsv, write_word2vec


@dataclass
class TrainResult:
    """What train() returns: the trained and initial tables, the vectors, the record.

    `params`: NumPy arrays [V, D], except on a mesh with `shard_tables`, where E and W stay on
    the devices that hold their rows: table_rows.ShardedTable, read a block of rows at a time
    (write_outputs streams them; np.asarray(params.E) gathers one whole, every process asking).
    """

    params: Params
    # The initial tables are drawn again from the seed when first asked for: training never keeps
    # a spare copy of them, and a run that only writes its outputs never makes one.
    initial_tables: Callable[[], Params] = dataclasses.field(repr=False)
    vocab: Vocabulary
    loss_per_epoch: list[float]
    wall_seconds: float  # the training loop's: the epochs' seconds, not the whole call's (loss.json: train_loop_seconds)
    words_per_second: float  # raw corpus words x epochs trained / wall_seconds
    corpus_words: int
    pairs_per_epoch: list[int]
    config: TrainConfig

    @functools.cached_property
    def initial_params(self) -> Params:
        return self.initial_tables()

    @functools.cached_property
    def embeddings(self):
        """The trained vectors (E) as gensim's KeyedVectors (jaxgram.Embeddings), with the words' counts. Made
        when first asked for: training itself never imports gensim (~70 MB and most of a second)."""
        from jaxgram.embeddings import Embeddings

        return Embeddings.from_params(self.params, self.vocab, "E")


# What a training folder holds. Always what the next step needs: the vocabulary (word2vec.c's
# -save-vocab format, and vocab.tsv with ids), config.json and loss.json (and the checkpoint,
# written while training). The rest on request, each format once, named as gensim and word2vec
# users know them (`--save bin,txt`): the vectors in word2vec binary (the default) or text,
# TensorBoard's projector set, the tables as .npy, and the encoded corpus.
ALWAYS_FILES = ("vocab.txt", "vocab.tsv", "config.json", "loss.json")
SAVE_FORMATS = {
    "bin": ("vectors.bin",),
    "txt": ("vectors.txt",),
    "tsv": ("vectors.tsv", "metadata.tsv", "projector_config.pbtxt"),
    "npy": ("E.npy", "W.npy"),
    "corpus": ("corpus.npy",),
}
DEFAULT_SAVE = ("bin",)


def checked_save(save) -> tuple[str, ...]:
    """`save` as a tuple of SAVE_FORMATS names (a "bin,txt" string or a sequence); ConfigError otherwise."""
    names = [part.strip() for part in save.split(",")] if isinstance(save, str) else list(save)
    unknown = [name for name in names if name not in SAVE_FORMATS]
    if unknown or not names:
        raise ConfigError(f"save={save!r} is not allowed: choose one or more of {', '.join(SAVE_FORMATS)}, comma-separated "
                          f"(default: {','.join(DEFAULT_SAVE)})")
    return tuple(dict.fromkeys(names))


def output_files(save=DEFAULT_SAVE) -> tuple[str, ...]:
    """The files write_outputs writes for `save` (SHA256SUMS and the checkpoint aside)."""
    return ALWAYS_FILES + tuple(name for fmt in checked_save(save) for name in SAVE_FORMATS[fmt])


# TensorBoard's projector reads this file (a ProjectorConfig in protobuf text format) from the
# log dir, and resolves relative paths against that folder: `tensorboard --logdir OUT` shows
# the vectors with their words, no TensorFlow and no checkpoint needed.
PROJECTOR_CONFIG = """embeddings {
  tensor_name: "word_vectors"
  tensor_path: "vectors.tsv"
  metadata_path: "metadata.tsv"
}
"""


def save_npy(path, array) -> None:
    """One array as .npy, atomically and without pickle (object arrays are refused by np.save); a table
    that reads its own rows in blocks (ShardedTable) is written a block at a time, the bytes np.save writes."""
    with atomic_open(path, "wb") as handle:
        if not hasattr(array, "blocks"):
            np.save(handle, np.asarray(array), allow_pickle=False)
            return
        # np.save's own header (version 1.0 holds any 2-D shape), then the C-order rows.
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(array.dtype),
                                                      "fortran_order": False, "shape": tuple(array.shape)})
        for block in row_blocks(array, rows_per_write(array.shape[1])):
            handle.write(np.ascontiguousarray(block, array.dtype).tobytes())


def result_params(trainable: Params, layout) -> Params:
    """The tables a TrainResult holds (see its docstring), from the final ones on the device or a mesh
    (`layout`: parallel.MeshLayout or None). Row-sharded tables are not gathered: no host holds one whole."""
    if layout is not None and layout.shard_tables:
        return Params(*(ShardedTable(table, layout.vocab_size) for table in trainable))
    tables = trainable if layout is None else layout.fetch(trainable)
    return Params(np.asarray(tables.E), np.asarray(tables.W))


def write_run_outputs(out, result: TrainResult, encoded=None, save=DEFAULT_SAVE, encoded_text: bool = False) -> None:
    """train()'s outputs: process 0 writes `out` (when given); with row-sharded tables in a multi-process run
    the other processes meanwhile answer its requests for blocks of their rows (whatever their own `out`)."""
    if not is_primary():
        serve_rows(result.params)
        return
    with asked_by_primary(result.params) as params:
        if out is not None:
            write_outputs(out, dataclasses.replace(result, params=params), encoded, save, encoded_text)


def write_outputs(out, result: TrainResult, encoded: EncodedCorpus | EncodedFile | None = None,
                  save=DEFAULT_SAVE, encoded_text: bool = False) -> None:
    """What `jaxgram train` writes to `out` for the `save` formats, each file written atomically, then SHA256SUMS.

    SHA256SUMS records every output's sha256 (loading vectors checks it). The old record goes
    first and the new one is written last, so a run stopped halfway leaves no record that
    would vouch for, or condemn, a mix of old and new files. Files of a format this run does not
    save are removed: left from an earlier run, they would describe other vectors.
    """
    out = Path(out)
    save = checked_save(save)
    out.mkdir(parents=True, exist_ok=True)
    (out / SHA256SUMS).unlink(missing_ok=True)
    names = list(output_files(save))
    for fmt, files in SAVE_FORMATS.items():
        for name in files if fmt not in save else ():
            (out / name).unlink(missing_ok=True)
    result.vocab.save(out / "vocab.tsv")
    write_fvocab(out / "vocab.txt", result.vocab.words, result.vocab.counts.tolist())
    _write_vectors(out, result, save)
    if "npy" in save:
        save_npy(out / "E.npy", result.params.E)
        save_npy(out / "W.npy", result.params.W)
    atomic_write_json(out / "config.json", result.config.to_dict())
    atomic_write_json(out / "loss.json", {
        "loss_per_epoch": result.loss_per_epoch,
        "pairs_per_epoch": result.pairs_per_epoch,
        "objective": result.config.objective,
        # The epochs' own time: vocabulary, compiling and writing outputs are not in it (a
        # benchmark's stats.json times the whole call as wall_seconds).
        "train_loop_seconds": result.wall_seconds,
        "train_loop_words_per_second": result.words_per_second,
        "corpus_words": result.corpus_words,
    })
    if encoded is not None and "corpus" in save:
        save_encoded_npy(out / "corpus.npy", encoded)
    elif "corpus" in save:
        names.remove("corpus.npy")
    (out / "corpus_encoded.txt").unlink(missing_ok=True)
    if encoded is not None and encoded_text:
        save_encoded_text(out / "corpus_encoded.txt", encoded)
        names.append("corpus_encoded.txt")
    write_sha256sums(out, names)


def _write_vectors(out: Path, result: TrainResult, save: tuple[str, ...]) -> None:
    """The vectors (E) in each format asked for; text and TensorBoard's tsv share one formatting pass."""
    words, vectors = result.vocab.words, result.params.E
    if not hasattr(vectors, "blocks"):  # a ShardedTable is read a block at a time, as the writers slice it
        vectors = np.asarray(vectors, np.float32)
    if "bin" in save:
        write_word2vec(out / "vectors.bin", words, vectors, binary=True)
    if "txt" in save:
        write_word2vec(out / "vectors.txt", words, vectors, also_tsv=out / "vectors.tsv" if "tsv" in save else None)
    elif "tsv" in save:
        write_projector_tsv(out / "vectors.tsv", vectors)
    if "tsv" in save:
        # TensorBoard projector: the floats in vectors.tsv, the words in metadata.tsv, and
        # projector_config.pbtxt naming both.
        atomic_write_text(out / "metadata.tsv", "".join(w + "\n" for w in result.vocab.words))
        atomic_write_text(out / "projector_config.pbtxt", PROJECTOR_CONFIG)
