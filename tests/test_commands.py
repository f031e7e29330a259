import json
from pathlib import Path

import numpy as np
import pytest

from jaxgram import Embeddings
from jaxgram.cli import main
from jaxgram.toy import toy_sentences


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "corpus.txt"
    corpus.write_text("".join(" ".join(s) + "\n" for s in toy_sentences() * 5), encoding="utf-8")
    status = main(["train", "--corpus", str(corpus), "--out", str(folder / "run"), "--dim", "12", "--epochs", "2",
                   "--min-count", "1", "--window", "2", "--no-shrink-window", "--batch-size", "32", "--no-progress",
                   "--encoded-text"])
    assert status == 0
    return folder / "run"


def test_train_command_writes_outputs_with_the_given_config(trained):
    config = json.loads((trained / "config.json").read_text())
    assert (config["dim"], config["epochs"], config["shrink_window"], config["objective"]) == (12, 2, False, "ns")
    assert np.load(trained / "E.npy").shape[1] == 12
    vocab = [line.split("\t")[1] for line in (trained / "vocab.tsv").read_text().splitlines()]
    first_sentence = [vocab[int(i)] for i in (trained / "corpus_encoded.txt").read_text().splitlines()[0].split()]
    assert first_sentence == toy_sentences()[0]
    flat = np.load(trained / "corpus.npy", allow_pickle=False)
    assert flat.dtype == np.int32 and [vocab[i] for i in flat[:len(first_sentence)]] == first_sentence


def test_query_commands(trained, capsys):
    vectors = str(trained / "vectors.bin")
    embeddings = Embeddings.load_word2vec_format(trained / "vectors.bin", binary=True)
    assert main(["neighbors", "car", "--topn", "3", "--vectors", vectors]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [w for w, _ in embeddings.most_similar("car", topn=3)]
    assert main(["analogy", "car", "plane", "elephant", "--vectors", str(trained / "vectors.txt")]) == 0
    first = capsys.readouterr().out.splitlines()[0].split("\t")[0]
    assert first == embeddings.most_similar(positive=["plane", "elephant"], negative=["car"], topn=1)[0][0]
    assert main(["similarity", "car", "plane", "--vectors", vectors]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(embeddings.similarity("car", "plane"), abs=1e-4)


@pytest.mark.parametrize("argv, expected", [
    (["neighbors", "plain"], "'plain' is not in the vocabulary"),
    (["analogy", "car", "plane", "elefant"], "close matches: elephant"),
    (["similarity", "car", "xyz"], "'xyz' is not in the vocabulary"),
    (["neighbors", "car", "--topn", "0"], "topn=0"),
])
def test_bad_queries_give_one_line_and_exit_2(trained, capsys, argv, expected):
    assert main([*argv, "--vectors", str(trained / "vectors.bin")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_train_arguments_exit_2(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--dim", "0"]) == 2
    assert "dim=0" in capsys.readouterr().err
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--objective", "cbow"]) == 2
    assert "objective='cbow'" in capsys.readouterr().err
    assert main(["train", "--corpus", str(tmp_path / "none.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "none.txt" in capsys.readouterr().err
    assert main(["neighbors", "car", "--vectors", str(tmp_path / "missing.bin")]) == 2
    assert "missing.bin" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_toy_command_prints_the_experiment(capsys):
    assert main(["toy"]) == 0
    out = capsys.readouterr().out
    for needle in ("vocabulary size", "cos(car,plane)", "cos(car,elephant)", "correlation", "overlap", "Procrustes"):
        assert needle in out


def test_train_records_every_output_sha256_and_neighbors_refuses_an_altered_file(trained, tmp_path, capsys):
    import shutil

    from jaxgram.fileio import sha256_file

    records = dict(reversed(line.split("  ", 1)) for line in (trained / "SHA256SUMS").read_text().splitlines())
    outputs = {p.name for p in trained.iterdir() if p.is_file() and p.name != "SHA256SUMS"}
    assert set(records) == outputs and "corpus_encoded.txt" in outputs
    assert all(sha256_file(trained / name) == digest for name, digest in records.items())

    run = Path(shutil.copytree(trained, tmp_path / "run"))
    vectors = run / "vectors.txt"
    header, first, rest = vectors.read_text().split("\n", 2)
    word, value, values = first.split(" ", 2)
    vectors.write_text(f"{header}\n{word} {float(value) + 0.5:.9g} {values}\n{rest}")  # still a valid file
    assert main(["neighbors", "car", "--vectors", str(vectors)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert str(vectors) in captured.err and "sha256" in captured.err
    (run / "SHA256SUMS").unlink()  # a file with no record (someone else's) still loads
    assert main(["neighbors", "car", "--topn", "2", "--vectors", str(vectors)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
