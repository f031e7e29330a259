"""jaxgram.outputs: the files `jaxgram train --out` writes, and their checksum record."""

import ast
import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxgram.fileio import SHA256SUMS, recorded_sha256, sha256_file
from jaxgram.outputs import OUTPUT_FILES, save_npy, write_outputs
from jaxgram.toy import TOY_CONFIG, toy_sentences
from jaxgram.training import train


@pytest.fixture(scope="module")
def toy_result():
    return train(toy_sentences(), dataclasses.replace(TOY_CONFIG, epochs=1), progress=False)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_checksum_record_is_what_sha256sum_checks(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*OUTPUT_FILES, SHA256SUMS])
    assert subprocess.run(["sha256sum", "--check", "--quiet", SHA256SUMS], cwd=tmp_path).returncode == 0
    with open(tmp_path / "vectors.txt", "a", encoding="utf-8") as handle:
        handle.write(" ")
    assert subprocess.run(["sha256sum", "--check", "--quiet", SHA256SUMS], cwd=tmp_path,
                          capture_output=True).returncode != 0


def test_rewriting_outputs_replaces_the_record(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result)
    (tmp_path / "E.npy").write_bytes(b"stale")
    write_outputs(tmp_path, toy_result)
    np.testing.assert_array_equal(np.load(tmp_path / "E.npy"), np.asarray(toy_result.params.E))
    for name in OUTPUT_FILES:
        assert recorded_sha256(tmp_path / name) == sha256_file(tmp_path / name), name


def test_save_npy_refuses_object_arrays_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        save_npy(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_vocab_txt_gives_gensim_each_words_count(toy_result, tmp_path):
    """vocab.txt is word2vec.c's -save-vocab file: `word count` per line, in the vectors' order."""
    write_outputs(tmp_path, toy_result)
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
    write_outputs(tmp_path, toy_result)
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
