"""bench/gpu.sh and bench.gpu, run in their smoke mode on CPU so the GPU script cannot rot.

The real run needs a lent GPU; this one checks the same commands end to end on tiny sizes:
the JSON figures, the steady-state split, the five-book vectors, and the skip path. Not timed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu
from jaxgram.embeddings import Embeddings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    words = "the of and a in is city country king queen man woman money bank river".split()
    lines = [" ".join(words[(i + j) % len(words)] for j in range(12)) for i in range(400)]
    path = tmp_path_factory.mktemp("gpu") / "books.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_gpu_script_smoke_mode_runs_on_cpu(books, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "GPU_SMOKE": "1", "OUT": str(out), "GPU_CORPUS": str(books), "PYTHON": sys.executable,
           "JAX_PLATFORMS": "cpu", "GPU_WORK": str(tmp_path), "GPU_CORES": "2"}
    completed = subprocess.run(["bash", "bench/gpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((out / "gpu.json").read_text())
    assert results["smoke"] is True and results["machine"]["backend"] == "cpu"
    config = results["config"]
    assert config["objective"] == "ns" and config["batch_size"] == 64 * 6 and config["kernel"] == "xla"
    bandwidth = results["bandwidth"]
    assert bandwidth["gather_scatter_gb_per_s"] > 0 and bandwidth["copy_gb_per_s"] > 0
    assert bandwidth["fraction_of_copy"] == pytest.approx(bandwidth["gather_scatter_gb_per_s"] / bandwidth["copy_gb_per_s"])
    for part, words in (("books", 400 * 12), ("synthetic", 20_000)):
        (figures,) = results[part]["runs"]  # smoke: D = 100 only
        assert figures["corpus_words"] == words and figures["epochs"] == 2 and figures["dim"] == 100
        assert figures["centres_per_step"] == 64 and figures["widest_centres_for_vocabulary"] >= 64
        assert 0 < figures["steady_epoch_seconds"] < figures["call_seconds"]
        assert figures["first_epoch_seconds"] + figures["steady_epoch_seconds"] + figures["outside_loop_seconds"] \
            == pytest.approx(figures["call_seconds"], rel=0.05, abs=0.05)
        assert figures["steady_words_per_second"] == pytest.approx(words / figures["steady_epoch_seconds"])
    assert results["books"]["corpus"]["file"] == "books.txt" and results["synthetic"]["corpus"]["tokens"] == 20_000
    assert results["synthetic"]["host_groups_words_per_second"] > 0
    vectors = Embeddings.load_word2vec_format(out / gpu.VECTORS, binary=True)
    assert len(vectors) == results["books"]["runs"][0]["vocab_size"] == 15 and vectors.vector_size == 100
    assert '"steady_words_per_second"' in completed.stdout and (out / "gpu.log").is_file()
    assert not list(tmp_path.glob("jaxgram-gpu-*"))  # the synthetic corpus went with its scratch folder
    # The cores part: both trainers on the books at each worker count, on the CPUs.
    cores = json.loads((out / "cores.json").read_text())
    assert cores["config_name"] == "cores" and cores["workers"] == [2] and cores["seeds"] == 1
    assert cores["complete"] is True and cores["corpus"]["file"] == "books.txt"
    assert [row["exit_status"] for row in cores["counts"]] == [{"jaxgram": [0], "gensim": [0]}]
    assert "== cores exit status 0" in completed.stdout and "\n| 2 | " in completed.stdout


def test_gpu_script_skips_the_cores_part_saying_why(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "GPU_SMOKE": "1", "OUT": str(out), "GPU_CORPUS": str(tmp_path / "missing.txt"),
           "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu", "GPU_PARTS": "cores"}
    completed = subprocess.run(["bash", "bench/gpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"== cores benchmark skipped: no corpus file {tmp_path / 'missing.txt'}" in completed.stdout
    assert not (out / "gpu.json").exists() and not (out / "cores.json").exists()  # GPU_PARTS=cores: no measure part
    assert "cores benchmark skipped" in (out / "gpu.log").read_text()


def test_books_are_skipped_with_a_reason_when_there_is_no_corpus(tmp_path):
    corpus, why = gpu.books_corpus(tmp_path / "missing.txt", None, tmp_path)
    assert corpus is None and "missing.txt" in why
    corpus, why = gpu.books_corpus(None, None, tmp_path)
    assert corpus is None and "python -m bench.gpu prepare" in why


def test_steady_timing_refuses_a_single_epoch(books):
    with pytest.raises(ValueError, match="epochs >= 2"):
        gpu.timed_train(books, gpu.gpu_config(1, 64))


def test_a_failing_part_is_recorded_and_the_other_still_measured(tmp_path, capsys):
    lonely = tmp_path / "lonely.txt"  # one word a line: no training pairs, train() refuses it
    lonely.write_text("word\n" * 50, encoding="utf-8")
    status = gpu.main(["measure", "--smoke", "--out", str(tmp_path / "out"), "--books", str(lonely),
                       "--work", str(tmp_path)])
    results = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert status == 1 and results["books"]["failed"].startswith("ConfigError")
    assert results["synthetic"]["runs"][0]["steady_words_per_second"] > 0 and "failed" not in results["bandwidth"]
    assert json.loads(capsys.readouterr().out) == results
