"""jaxgram.outputs: the files `jaxgram train --out` writes, and their checksum record."""

import ast
import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxgram.errors import ConfigError
from jaxgram.fileio import SHA256SUMS, recorded_sha256, sha256_file
from jaxgram.outputs import DEFAULT_SAVE, SAVE_FORMATS, checked_save, output_files, save_npy, write_outputs
from jaxgram.toy import TOY_CONFIG, toy_sentences
from jaxgram.training import train

EVERY_FORMAT = tuple(fmt for fmt in SAVE_FORMATS if fmt != "corpus")  # corpus.npy needs train()'s encoded corpus


@pytest.fixture(scope="module")
def toy_result():
    return train(toy_sentences(), dataclasses.replace(TOY_CONFIG, epochs=1), progress=False)


def test_by_default_a_folder_holds_the_binary_vectors_and_what_the_next_step_needs(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result)
    assert DEFAULT_SAVE == ("bin",)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["vectors.bin", "vocab.txt", "vocab.tsv", "config.json", "loss.json", SHA256SUMS])


@pytest.mark.parametrize("save, files", [
    ("txt", {"vectors.txt"}), ("tsv", {"vectors.tsv", "metadata.tsv", "projector_config.pbtxt"}),
    ("npy", {"E.npy", "W.npy"}), ("bin,txt", {"vectors.bin", "vectors.txt"}),
])
def test_each_format_is_written_on_request_and_once(toy_result, tmp_path, save, files):
    write_outputs(tmp_path, toy_result, save=save)
    assert {p.name for p in tmp_path.iterdir()} == files | {"vocab.txt", "vocab.tsv", "config.json", "loss.json", SHA256SUMS}
    for name in files:
        assert recorded_sha256(tmp_path / name) == sha256_file(tmp_path / name), name
    # Files of a format a later run does not save go, so none is left describing other vectors.
    write_outputs(tmp_path, toy_result)
    assert not any((tmp_path / name).exists() for name in files - {"vectors.bin"})


def test_tsv_alone_holds_the_floats_the_text_format_does(toy_result, tmp_path):
    write_outputs(tmp_path / "both", toy_result, save="txt,tsv")
    write_outputs(tmp_path / "alone", toy_result, save="tsv")
    assert (tmp_path / "both" / "vectors.tsv").read_bytes() == (tmp_path / "alone" / "vectors.tsv").read_bytes()


def test_unknown_formats_are_refused_naming_the_allowed_ones():
    assert checked_save("bin, txt,bin") == ("bin", "txt")
    with pytest.raises(ConfigError, match="save='bin,zip' is not allowed: choose one or more of bin, txt, tsv, npy"):
        checked_save("bin,zip")
    with pytest.raises(ConfigError, match="save=''"):
        checked_save("")


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_checksum_record_is_what_sha256sum_checks(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result, save=EVERY_FORMAT)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*output_files(EVERY_FORMAT), SHA256SUMS])
    assert subprocess.run(["sha256sum", "--check", "--quiet", SHA256SUMS], cwd=tmp_path).returncode == 0
    with open(tmp_path / "vectors.txt", "a", encoding="utf-8") as handle:
        handle.write(" ")
    assert subprocess.run(["sha256sum", "--check", "--quiet", SHA256SUMS], cwd=tmp_path,
                          capture_output=True).returncode != 0


def test_rewriting_outputs_replaces_the_record(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result, save=EVERY_FORMAT)
    (tmp_path / "E.npy").write_bytes(b"stale")
    write_outputs(tmp_path, toy_result, save=EVERY_FORMAT)
    np.testing.assert_array_equal(np.load(tmp_path / "E.npy"), np.asarray(toy_result.params.E))
    for name in output_files(EVERY_FORMAT):
        assert recorded_sha256(tmp_path / name) == sha256_file(tmp_path / name), name


def test_save_npy_refuses_object_arrays_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        save_npy(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_vocab_txt_gives_gensim_each_words_count(toy_result, tmp_path):
    """vocab.txt is word2vec.c's -save-vocab file: `word count` per line, in the vectors' order."""
    write_outputs(tmp_path, toy_result, save="txt")
    vocab = toy_result.vocab
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines() == [
        f"{word} {count}" for word, count in zip(vocab.words, vocab.counts.tolist())]
    loaded = KeyedVectors.load_word2vec_format(str(tmp_path / "vectors.txt"), fvocab=str(tmp_path / "vocab.txt"))
    assert loaded.index_to_key == list(vocab.words)
    counts = [loaded.get_vecattr(word, "count") for word in loaded.index_to_key]
    assert counts == vocab.counts.tolist()
    # Without fvocab gensim makes counts up (V, V-1, ..., 1): the real ones must differ from those.
    assert counts != list(range(len(vocab), 0, -1))


# Fields of TensorBoard's projector_config.proto (tensorboard/plugins/projector).
PROJECTOR_FIELDS = {"model_checkpoint_path", "embeddings", "model_checkpoint_dir"}
EMBEDDING_INFO_FIELDS = {"tensor_name", "metadata_path", "bookmarks_path", "tensor_shape", "sprite", "tensor_path"}
_TEXT_PROTO_TOKEN = re.compile(r'\s*(?:(?P<field>\w+)\s*:\s*(?P<value>"(?:[^"\\\n]|\\.)*"|[\w.+-]+)'
                               r'|(?P<message>\w+)\s*\{|(?P<close>\}))')


def parse_text_proto(text: str) -> dict:
    """Protobuf text format (scalars and nested messages, no comments) as {field: [values or dicts]}."""
    root, parents, position, text = {}, [], 0, text.rstrip()
    current = root
    while position < len(text):
        token = _TEXT_PROTO_TOKEN.match(text, position)
        assert token, f"not protobuf text format at {text[position:position + 30]!r}"
        if token["field"]:
            value = token["value"]
            current.setdefault(token["field"], []).append(ast.literal_eval(value) if value[0] == '"' else value)
        elif token["message"]:
            parents.append(current)
            current = {}
            parents[-1].setdefault(token["message"], []).append(current)
        else:
            assert parents, "a } without its {"
            current = parents.pop()
        position = token.end()
    assert not parents, "a { without its }"
    return root


def test_the_text_proto_parser_refuses_what_protobuf_refuses():
    assert parse_text_proto('a { b: "x y" c: 3 }\na { }') == {"a": [{"b": ["x y"], "c": ["3"]}, {}]}
    for broken in ('a { b "x" }', "a { b: 1", "a { } }", 'b: "unterminated'):
        with pytest.raises(AssertionError):
            parse_text_proto(broken)


def test_projector_config_points_tensorboard_at_the_vectors_and_words(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result, save="tsv")
    config = parse_text_proto((tmp_path / "projector_config.pbtxt").read_text(encoding="utf-8"))
    assert set(config) <= PROJECTOR_FIELDS
    (embedding,) = config["embeddings"]
    assert set(embedding) <= EMBEDDING_INFO_FIELDS
    assert all(len(values) == 1 for values in embedding.values()) and embedding["tensor_name"] != [""]
    # TensorBoard resolves relative paths against the folder the config is in (the log dir).
    tensor_path, metadata_path = (tmp_path / embedding["tensor_path"][0], tmp_path / embedding["metadata_path"][0])
    assert (tensor_path.name, metadata_path.name) == ("vectors.tsv", "metadata.tsv")
    # As the projector reads them: tab-separated float rows; one label per row, no header (one column).
    rows = [list(map(float, line.split("\t"))) for line in tensor_path.read_text().splitlines() if line]
    np.testing.assert_array_equal(np.array(rows, np.float32), toy_result.params.E)
    assert metadata_path.read_text(encoding="utf-8").splitlines() == list(toy_result.vocab.words)


# In a child with 4 CPU devices: argv[1]/whole from the toy run's NumPy tables, argv[1]/sharded2 and
# argv[1]/sharded4 from the same tables row-sharded on 2 and 4 devices with padding rows of garbage,
# blocks of 5 rows (FLOATS_PER_WRITE shrunk, so the last block is short); prints the rows each block gathered.
WRITE_SHARDED = """
    import dataclasses, sys
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from jaxgram import table_rows, word2vec_format
    from jaxgram.losses import Params
    from jaxgram.outputs import SAVE_FORMATS, write_outputs
    from jaxgram.toy import TOY_CONFIG, toy_sentences
    from jaxgram.training import train

    formats = [fmt for fmt in SAVE_FORMATS if fmt != "corpus"]
    result = train(toy_sentences(), dataclasses.replace(TOY_CONFIG, epochs=1), progress=False)
    write_outputs(f"{sys.argv[1]}/whole", result, save=formats)
    word2vec_format.FLOATS_PER_WRITE = 5 * TOY_CONFIG.dim
    gathered, gather = [], table_rows._gather
    table_rows._gather = lambda array, first, size: gathered.append(size) or gather(array, first, size)
    for n in (2, 4):
        mesh = Mesh(np.asarray(jax.devices()[:n]), ("data",))
        padded = -(-(len(result.vocab) + 1) // 8) * 8
        def shard(table):
            host = np.pad(table, ((0, padded - len(table)), (0, 0)), constant_values=7.0)
            return table_rows.ShardedTable(jax.device_put(host, NamedSharding(mesh, PartitionSpec("data", None))),
                                           len(table))
        sharded = dataclasses.replace(result, params=Params(shard(result.params.E), shard(result.params.W)))
        write_outputs(f"{sys.argv[1]}/sharded{n}", sharded, save=formats)
    print(len(result.vocab), *gathered)
"""


def test_sharded_tables_write_the_bytes_whole_ones_do_a_block_at_a_time(tmp_path):
    from test_distributed import run_child

    vocab_size, *gathered = map(int, run_child(WRITE_SHARDED, str(tmp_path), devices=4).split())
    whole = {path.name: path.read_bytes() for path in (tmp_path / "whole").iterdir()}
    assert set(whole) == {*output_files(EVERY_FORMAT), SHA256SUMS}
    for n in (2, 4):
        assert {path.name: path.read_bytes() for path in (tmp_path / f"sharded{n}").iterdir()} == whole, n
    # Each pass over a table (vectors.bin, vectors.txt with vectors.tsv, E.npy; W.npy) took blocks of 5 rows.
    blocks_per_pass = -(-vocab_size // 5)
    assert gathered == [5] * (2 * 4 * blocks_per_pass)
