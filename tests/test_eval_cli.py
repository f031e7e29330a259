"""`jaxgram pipeline | report | benchmark` as a user runs them: one-line errors, no traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxgram.embeddings import Embeddings

REPO = Path(__file__).resolve().parents[1]


def _jaxgram(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jaxgram", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def _assert_one_line_error(completed, *needles):
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("text, key", [
    ("[train]\nwindoww = 3\n", "windoww"),
    ("[train]\ndim = \"big\"\n", "dim"),
    ("[eval]\noverlap_k = 1.5\n", "overlap_k"),
    ("[ingest]\nbooks = 600\n", "books"),
])
def test_pipeline_bad_config_key(tmp_path, text, key):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    completed = _jaxgram("pipeline", "--config", str(config), "--out", str(tmp_path / "run"))
    _assert_one_line_error(completed, key)
    assert completed.returncode == 2
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_pipeline_missing_config_file_names_the_path(tmp_path):
    completed = _jaxgram("pipeline", "--config", str(tmp_path / "gone.toml"), "--out", str(tmp_path / "run"))
    _assert_one_line_error(completed, "gone.toml")


def test_pipeline_missing_corpus_names_the_path(tmp_path):
    missing = tmp_path / "no-corpus.txt"
    completed = _jaxgram("pipeline", "--corpus", str(missing), "--out", str(tmp_path / "run"))
    _assert_one_line_error(completed, str(missing))


def test_pipeline_out_that_is_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me\n")
    completed = _jaxgram("pipeline", "--corpus", str(blocker), "--out", str(blocker / "run"))
    _assert_one_line_error(completed, str(blocker / "run"))
    assert blocker.read_text() == "keep me\n"


def test_benchmark_missing_vectors_names_the_path(tmp_path):
    missing = tmp_path / "vectors.bin"
    completed = _jaxgram("benchmark", str(missing))
    _assert_one_line_error(completed, str(missing))


def test_report_without_a_run_names_the_path(tmp_path):
    completed = _jaxgram("report", "--run", str(tmp_path))
    _assert_one_line_error(completed, str(tmp_path / "evaluate" / "evaluation.json"))


HOLDER = """
import sys, time
from jaxgram import rundir
with rundir.claim(sys.argv[1], "jaxgram pipeline"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_report_into_a_run_folder_in_use_is_refused_and_writes_nothing(tmp_path):
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "evaluation.json").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        completed = _jaxgram("report", "--run", str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    _assert_one_line_error(completed, str(tmp_path), "in use by another jaxgram pipeline", f"pid {holder.pid}")
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "report.html").exists()


def test_benchmark_prints_json_for_a_vectors_file(tmp_path):
    words = ["man", "woman", "king", "queen", "boy", "girl", "tiger", "cat"]
    vectors = np.random.default_rng(0).normal(size=(len(words), 4)).astype(np.float32)
    path = tmp_path / "v.txt"
    Embeddings(words, vectors).save_word2vec_format(path)
    completed = _jaxgram("benchmark", str(path), "--json")
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["analogies"]["3cosadd"]["total"]["evaluated"] > 0
    assert 0 <= result["similarity"]["wordsim353"]["oov_ratio"] < 1


def test_benchmark_prints_a_short_table_and_warns_when_little_was_scored(tmp_path):
    words = ["man", "woman", "king", "queen", "boy", "girl", "tiger", "cat"]
    vectors = np.random.default_rng(0).normal(size=(len(words), 4)).astype(np.float32)
    path = tmp_path / "v.txt"
    Embeddings(words, vectors).save_word2vec_format(path)
    completed = _jaxgram("benchmark", str(path))
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) < 15 and lines[0].startswith("| benchmark | score |")
    assert any(line.startswith("| wordsim353, Spearman |") for line in lines)
    assert any(line.startswith("warning: wordsim353:") and "fewer than 30" in line for line in lines)
