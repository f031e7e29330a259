"""Smoke test of `python -m bench` on a tiny synthetic corpus: the command runs end to end
and its JSON holds every promised field in a valid range. Not a timed test."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Words of the Google analogy and WordSim-353 files, so that both benchmarks have questions.
CAPITALS = [("athens", "greece"), ("berlin", "germany"), ("paris", "france"), ("rome", "italy"),
            ("madrid", "spain"), ("tokyo", "japan"), ("london", "england"), ("moscow", "russia")]
FILLER = ["the", "of", "and", "a", "in", "is", "city", "country", "king", "queen", "man", "woman", "money", "bank"]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(1500):
        city, country = CAPITALS[rng.integers(len(CAPITALS))]
        words = [city, "is", "in", country] + list(rng.choice(FILLER, 4))
        rng.shuffle(words)
        lines.append(" ".join(words))
    path = tmp_path_factory.mktemp("bench") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bench(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          check=False)


def _check_spread(stats, low, high):
    values = [v for v in stats["values"] if v is not None]
    assert values, stats
    assert low <= stats["min"] <= stats["mean"] <= stats["max"] <= high
    assert stats["min"] == min(values) and stats["max"] == max(values)


def test_bench_writes_both_trainers_speed_memory_and_quality(tiny_corpus, tmp_path):
    out = tmp_path / "results.json"
    completed = _bench("--corpus", tiny_corpus, "--seeds", 2, "--out", out, "--work", tmp_path / "work")
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    assert results["seeds"] == 2 and results["config"]["objective"] == "ns"
    assert results["corpus_words"] == 1500 * 8 and results["corpus"]["file"] == "corpus.txt"
    for trainer in ("jaxgram", "gensim"):
        stats = results["trainers"][trainer]
        assert [run["seed"] for run in stats["runs"]] == [1, 2]
        _check_spread(stats["wall_seconds"], 0.0, 600.0)
        assert 0 < stats["train_loop_seconds"]["median"] <= stats["wall_seconds"]["max"]
        for run in stats["runs"]:
            np.testing.assert_allclose(run["words_per_second"], 1500 * 8 * 5 / run["wall_seconds"], rtol=1e-6)
        _check_spread(stats["peak_rss_mib"], 20.0, 64 * 1024.0)
        _check_spread(stats["analogy_accuracy"], 0.0, 1.0)
        _check_spread(stats["wordsim353_spearman"], -1.0, 1.0)
        assert all(run["analogy_evaluated"] > 0 and run["wordsim353_pairs"] >= 2 for run in stats["runs"])
    jax_speed = results["trainers"]["jaxgram"]["words_per_second"]["median"]
    gensim_speed = results["trainers"]["gensim"]["words_per_second"]["median"]
    assert results["words_per_second_ratio"] == pytest.approx(jax_speed / gensim_speed)
    assert results["peak_rss_ratio"] > 0
    assert set(results["quality_within_gensim_range"]) == {"analogy_accuracy", "wordsim353_spearman"}
    machine = results["machine"]
    assert machine["jax"] == jax.__version__ and machine["cores"] >= 1 and machine["cpu"]
    assert machine["gensim_workers"] == machine["cores"] and machine["jaxgram_replicas"] >= 1
    assert 0.1 < machine["matmul_gflops_fp32"] < 1e6
    assert results["softmax_matmul"] is None
    assert "| words/s (median) |" in completed.stdout and machine["cpu"] in completed.stdout


def test_bench_softmax_reports_its_share_of_the_matmul_ceiling(tiny_corpus, tmp_path):
    out = tmp_path / "results.json"
    completed = _bench("--corpus", tiny_corpus, "--seeds", 1, "--config", "softmax", "--out", out)
    assert completed.returncode == 0, completed.stderr
    softmax = json.loads(out.read_text())["softmax_matmul"]
    assert softmax["useful_gflop"] > 0
    # Useful FLOPs over the training loop can't beat the machine by much (timing noise aside).
    assert 0 < softmax["fraction_of_matmul"] < 2
    assert "full-softmax achieved GFLOP/s" in completed.stdout


def test_bench_refuses_a_missing_corpus_in_one_line(tmp_path):
    out = tmp_path / "results.json"
    completed = _bench("--corpus", tmp_path / "missing.txt", "--out", out)
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0 and "missing.txt" in completed.stderr
    assert "Traceback" not in completed.stderr and not out.exists()
    bad_seeds = _bench("--corpus", tmp_path / "missing.txt", "--seeds", 0, "--out", out)
    assert bad_seeds.returncode == 2 and "seeds=0" in bad_seeds.stderr


def test_results_name_the_corpus_by_file_size_and_sha256_not_by_path(tiny_corpus):
    from bench.run import corpus_record

    body = tiny_corpus.read_bytes()
    assert corpus_record(tiny_corpus) == {"file": "corpus.txt", "bytes": len(body),
                                          "sha256": hashlib.sha256(body).hexdigest()}


def test_committed_results_hold_no_machine_private_path():
    paths = sorted((ROOT / "bench" / "results").glob("*.json"))
    # synthetic.json (`python -m bench --synthetic`) joins them once the lead has measured it
    assert [path.stem for path in paths if path.stem != "synthetic"] == ["default", "dostoevsky", "softmax"]
    for path in paths:
        results = json.loads(path.read_text())
        assert results["format"] == 2 and results["config_name"] == path.stem
        corpora = results["corpora"] if path.stem == "synthetic" else [results["corpus"]]
        assert all(set(corpus) >= {"file", "bytes", "sha256"} or "same_corpus_as" in corpus for corpus in corpora)
        if path.stem != "synthetic":
            assert set(results["corpus"]) == {"file", "bytes", "sha256"}
        assert str(Path.home()) not in path.read_text() and "/tmp/" not in path.read_text()


def test_the_readme_performance_table_is_the_one_the_results_json_gives():
    # The README's table is printed by `python -m bench --readme-table`, never typed by hand.
    from bench.run import load_results, readme_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = re.search(r"<!-- python -m bench --readme-table (.+?) -->\n", readme)
    assert marker, "the README names the results files its performance table comes from"
    table = readme[marker.end():].split("\n\n", 1)[0].strip()
    files = [ROOT / name for name in marker.group(1).split()]
    assert table == readme_table([load_results(path) for path in files])
