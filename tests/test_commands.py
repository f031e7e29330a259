import json
import re
from pathlib import Path

import numpy as np
import pytest

from jaxgram import Embeddings, TrainConfig
from jaxgram.cli import main
from jaxgram.config import default_workers
from jaxgram.toy import toy_sentences


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "corpus.txt"
    corpus.write_text("".join(" ".join(s) + "\n" for s in toy_sentences() * 5), encoding="utf-8")
    status = main(["train", "--corpus", str(corpus), "--out", str(folder / "run"), "--dim", "12", "--epochs", "2",
                   "--min-count", "1", "--window", "2", "--no-shrink-window", "--batch-size", "32", "--no-progress",
                   "--encoded-text", "--save", "bin,txt,npy,corpus"])
    assert status == 0
    return folder / "run"


def test_train_command_writes_outputs_with_the_given_config(trained):
    config = json.loads((trained / "config.json").read_text())
    assert (config["dim"], config["epochs"], config["shrink_window"], config["objective"]) == (12, 2, False, "ns")
    assert config["workers"] == default_workers()  # the count the run used, not None
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


def _train_config(argv):
    from jaxgram.cli import build_parser
    from jaxgram.commands import config_from_args

    args = build_parser().parse_args(["train", "--out", "o", *argv])
    return args.corpus, config_from_args(args)


def test_word2vec_c_and_gensim_names_give_the_same_run_as_ours():
    ours = _train_config(["--corpus", "c.txt", "--dim", "200", "--window", "8", "--negative", "25", "--sample", "1e-4",
                          "--workers", "3", "--epochs", "15", "--min-count", "3", "--alpha", "0.05",
                          "--max-vocab-size", "900", "--no-shrink-window"])
    word2vec_c = _train_config(["-train", "c.txt", "-size", "200", "-window", "8", "-negative", "25", "-sample", "1e-4",
                                "-threads", "3", "-iter", "15", "-min-count", "3", "-alpha", "0.05",
                                "--max-vocab-size", "900", "--no-shrink-window"])
    gensim = _train_config(["--corpus", "c.txt", "--vector-size", "200", "--window", "8", "--negative", "25",
                            "--sample", "1e-4", "--workers", "3", "--epochs", "15", "--min-count", "3", "--alpha", "0.05",
                            "--max-final-vocab", "900", "--no-shrink-windows"])
    assert ours == word2vec_c == gensim
    changed = {key for key, value in ours[1].to_dict().items() if value != getattr(TrainConfig(), key)}
    assert changed == {"dim", "window", "negative", "sample", "workers", "epochs", "min_count", "alpha", "max_vocab_size",
                       "shrink_window"}  # every value differs from its default, so a crossed alias shows


def test_train_help_lists_each_option_once_with_all_its_names(capsys):
    import re

    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    # Option entries start at column 2; their help text is on the same line after 2+ spaces, or indented below.
    entries = [re.split(r"\s{2,}", line.strip())[0] for line in capsys.readouterr().out.splitlines()
               if line.startswith("  -")]
    for entry in ("--corpus CORPUS, -train CORPUS", "--dim N, --vector-size N, -size N", "--window N, -window N",
                  "--negative N, -negative N", "--sample X, -sample X", "--epochs N, -iter N",
                  "--min-count N, -min-count N", "--alpha X, -alpha X", "--workers N, -threads N",
                  "--max-vocab-size N, --max-final-vocab N",
                  "--shrink-window, --no-shrink-window, --shrink-windows, --no-shrink-windows"):
        assert entry in entries
    names = [name.split()[0] for entry in entries for name in entry.split(", ")]
    assert len(names) == len(set(names)) and "-output" not in names


@pytest.mark.parametrize("argv, expected", [
    (["-size", "0"], "dim=0 is not allowed: it must be in 1..2147483647 (given as -size)"),
    (["--vector-size", "big"], "dim='big' has the wrong type: expected int (given as --vector-size)"),
    (["-iter", "1.5"], "epochs='1.5' has the wrong type: expected int (given as -iter)"),
    (["-threads", "0"], "workers=0 is not allowed: it must be in 1..1024 (given as -threads)"),
    (["-threads", "2000"], "workers=2000 is not allowed: it must be in 1..1024 (given as -threads)"),
    (["-min-count", "0"], "min_count=0 is not allowed: it must be in 1..9223372036854775807 (given as -min-count)"),
    (["-negative", "-1"], "negative=-1 is not allowed: it must be in 1..2147483647 (given as -negative)"),
    (["-window", "0"], "window=0 is not allowed: it must be in 1..9999 (given as -window)"),
    (["-sample", "1.5"], "sample=1.5 is not allowed: it must be in [0, 1) (0 disables subsampling) (given as -sample)"),
    (["-alpha", "inf"], "alpha=inf is not allowed: it must be > 0 and finite in float32 (at most 3.4e+38) (given as -alpha)"),
    (["-alpha", "fast"], "alpha='fast' has the wrong type: expected float (given as -alpha)"),
    (["--max-final-vocab", "1"], "max_vocab_size=1 is not allowed: it must be in 2..2147483647 (given as --max-final-vocab)"),
    (["--dim", "10", "-size", "20"], "dim is given twice, as --dim 10 and as -size 20: give it once"),
    (["--workers", "2", "-threads", "2"], "workers is given twice, as --workers 2 and as -threads 2: give it once"),
    (["--dim", "0"], "dim=0 is not allowed: it must be in 1..2147483647"),  # our own name: no note
    (["--alpha-schedule", "cosine"], "alpha_schedule='cosine' is not allowed: choose one of auto, per_worker, linear"),
])
def test_bad_values_under_other_names_give_one_line_and_exit_2(tmp_path, capsys, argv, expected):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    assert main(["train", "-train", str(corpus), "--out", str(tmp_path / "o"), *argv]) == 2
    assert capsys.readouterr().err == f"jaxgram train: error: {expected}\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [
    ["-s", "50"], ["-si", "50"], ["-i", "3"], ["-w", "5"], ["-t", "c.txt"], ["-min", "2"],  # not abbreviations
    ["-output", "vectors.bin"], ["-debug", "2"],  # word2vec.c options jaxgram lacks
    ["-min_count", "2"], ["-vector-size", "50"], ["--size", "50"],  # other programs' spellings, half-converted
])
def test_option_names_match_only_in_full_and_word2vec_c_only_where_mapped(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["train", "--corpus", "c.txt", "--out", str(tmp_path / "o"), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {' '.join(argv)}" in err and "Traceback" not in err


def test_the_installed_command_exits_2_with_one_line_for_a_bad_word2vec_c_value(tmp_path):
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-m", "jaxgram", "train", "-train", str(tmp_path / "c.txt"),
                                "--out", str(tmp_path / "o"), "-size", "-5"], capture_output=True, text=True)
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr == "jaxgram train: error: dim=-5 is not allowed: it must be in 1..2147483647 (given as -size)\n"


def test_resume_keeps_the_runs_options_and_extends_it_with_more_epochs(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(" ".join(s) + "\n" for s in toy_sentences() * 3), encoding="utf-8")
    out = tmp_path / "run"
    common = ["train", "--corpus", str(corpus), "--out", str(out), "--no-progress", "--save", "bin,npy"]
    assert main([*common, "--dim", "6", "--epochs", "1", "--min-count", "1", "--batch-size", "16"]) == 0
    finished = np.load(out / "E.npy")
    # --resume alone: the checkpoint's options (dim 6, not the default 100), nothing left to train.
    assert main([*common, "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["dim"] == 6
    np.testing.assert_array_equal(np.load(out / "E.npy"), finished)
    # --resume --epochs 2: one more epoch on the same options.
    assert main([*common, "--resume", "--epochs", "2"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["dim"], saved["epochs"], saved["batch_size"]) == (6, 2, 16)
    assert len(json.loads((out / "loss.json").read_text())["loss_per_epoch"]) == 2
    assert not np.array_equal(np.load(out / "E.npy"), finished)
    # An option given again that differs from the run's is still refused in one line.
    assert main([*common, "--resume", "--dim", "8"]) == 2


def test_a_step_wider_than_the_vocabulary_allows_is_refused_in_one_line_naming_the_widest(tmp_path, capsys):
    # The toy corpus's busiest word takes a large share of every slot: 100,000 pairs a step would hit
    # its row thousands of times at once. Refused before training, with the width that fits.
    corpus = tmp_path / "toy.txt"
    corpus.write_text("".join(" ".join(sentence) + "\n" for sentence in toy_sentences()))
    out = tmp_path / "o"
    argv = ["train", "--corpus", str(corpus), "--out", str(out), "--min-count", "1", "--kernel", "xla"]
    assert main([*argv, "--batch-size", "100000", "--no-progress"]) == 2
    error = capsys.readouterr().err
    widest = int(error.rpartition("batch_size=")[2])
    assert error.startswith("jaxgram train: error: batch_size=100000 is too wide for this vocabulary") and \
        error.count("\n") == 1 and 0 < widest < 100_000
    assert not (out / "vectors.bin").exists()
    assert main([*argv, "--batch-size", str(widest), "--epochs", "1", "--no-progress"]) == 0  # the width it names trains


@pytest.mark.parametrize("argv, expected", [
    (["-cbow", "1"], "-cbow 1 is not allowed: jaxgram trains skip-gram only"),
    (["-hs", "1"], "-hs 1 is not allowed: jaxgram has no hierarchical softmax"),
    (["-binary", "0", "--save", "bin"], "-binary 0 and --save bin both say what to write: give one"),
    (["--save", "bin,zip"], "save='bin,zip' is not allowed: choose one or more of bin, txt, tsv, npy, corpus"),
])
def test_word2vec_c_switches_jaxgram_lacks_or_that_contradict_get_one_line(tmp_path, capsys, argv, expected):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    assert main(["train", "-train", str(corpus), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"jaxgram train: error: {expected}") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_word2vec_c_switches_at_jaxgrams_own_values_train(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(" ".join(s) + "\n" for s in toy_sentences()), encoding="utf-8")
    common = ["train", "-train", str(corpus), "-cbow", "0", "-hs", "0", "-min-count", "1", "-iter", "1", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "b"), "-binary", "1"]) == 0
    assert (tmp_path / "b" / "vectors.bin").exists() and not (tmp_path / "b" / "vectors.txt").exists()
    assert main([*common, "--out", str(tmp_path / "t"), "-binary", "0"]) == 0  # word2vec.c's text output
    assert (tmp_path / "t" / "vectors.txt").exists() and not (tmp_path / "t" / "vectors.bin").exists()


def test_resume_without_a_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n")
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["train", "--corpus", str(corpus), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err == (f"jaxgram train: error: --resume found no checkpoint in {out / 'checkpoint'}: nothing to continue; "
                   "leave out --resume to start training\n")
    assert list(out.iterdir()) == []


def test_version(capsys):
    import jaxgram

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"jaxgram {jaxgram.__version__}\n"


# Runs the CLI as `jaxgram` does and says whether JAX was imported: the check costs no heavy work.
CLI_AND_JAX = "import sys; from jaxgram.cli import main; status = main(sys.argv[1:]); print('jax' in sys.modules); " \
              "sys.exit(status)"


def test_a_worker_count_past_the_bound_is_refused_in_one_line_before_jax_starts(tmp_path):
    import subprocess
    import sys

    argv = ["train", "--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"), "--workers", "100000"]
    completed = subprocess.run([sys.executable, "-c", CLI_AND_JAX, *argv], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr == "jaxgram train: error: workers=100000 is not allowed: it must be in 1..1024\n"
    assert completed.stdout == "False\n"  # refused before JAX (or any CPU device) was started
    assert not (tmp_path / "o").exists()


@pytest.mark.fault
@pytest.mark.parametrize("argv, expected", [
    (["-binary", "2"], "argument -binary: invalid choice: 2 (choose from 0, 1); try 'jaxgram train --help'"),
    (["--devices", "foo"], "argument --devices: invalid value 'foo': give a number of devices or 'all'; "
                           "try 'jaxgram train --help'"),
    # float32 would make it inf: NumPy's overflow warnings came first, six lines of them.
    (["--alpha", "1e308"], "alpha=1e+308 is not allowed: it must be > 0 and finite in float32 (at most 3.4e+38)"),
    # The empty list of formats was taken for the default (bin), while --save , was refused.
    (["--save", ""], "save='' is not allowed: choose one or more of bin, txt, tsv, npy, corpus, comma-separated "
                     "(default: bin)"),
    (["--save", ","], "save=',' is not allowed: choose one or more of bin, txt, tsv, npy, corpus, comma-separated "
                      "(default: bin)"),
])
def test_the_installed_command_refuses_a_bad_argument_in_exactly_one_line(tmp_path, argv, expected):
    import subprocess
    import sys

    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(" ".join(s) + "\n" for s in toy_sentences()))
    completed = subprocess.run([sys.executable, "-m", "jaxgram", "train", "--corpus", str(corpus),
                                "--out", str(tmp_path / "o"), "--min-count", "1", "--no-progress", *argv],
                               capture_output=True, text=True, timeout=120)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr == f"jaxgram train: error: {expected}\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.fault
def test_more_steps_than_the_step_count_holds_are_refused_in_one_line_naming_the_most_epochs(tmp_path, capsys):
    # optax counts steps in int32: 2**30 epochs of several steps each ended in an OverflowError traceback.
    corpus = tmp_path / "toy.txt"
    corpus.write_text("".join(" ".join(sentence) + "\n" for sentence in toy_sentences() * 4))
    argv = ["train", "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--min-count", "1", "--kernel", "xla",
            "--batch-size", "16", "--no-progress"]
    assert main([*argv, "--epochs", str(2**30)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"jaxgram train: error: epochs={2**30} is too many for this corpus: ") and error.count("\n") == 1
    most = int(error.rpartition("epochs=")[2])
    steps = int(re.search(r": (\d+) steps an epoch", error).group(1))
    assert most * steps <= 2**31 - 1 < (most + 1) * steps
    assert not (tmp_path / "o" / "vectors.bin").exists()
