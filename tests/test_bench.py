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
        _check_spread(stats["process_seconds"], 0.0, 600.0)
        assert 0 < stats["train_loop_seconds"]["median"] <= stats["wall_seconds"]["max"]
        for run in stats["runs"]:
            assert run["process_seconds"] > run["wall_seconds"] >= run["train_loop_seconds"]
            np.testing.assert_allclose(run["words_per_second"], 1500 * 8 * 5 / run["process_seconds"], rtol=1e-6)
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
    assert machine["gensim_workers"] == machine["cores"] and machine["jaxgram_devices"] == 1
    assert 0.1 < machine["matmul_gflops_fp32"] < 1e6
    assert results["softmax_matmul"] is None
    assert "| words/s (median) |" in completed.stdout and machine["cpu"] in completed.stdout
    agreement = results["agreement"]
    assert (agreement["k"], agreement["overlap_words"]) == (10, 1000)
    assert [row["seeds"] for row in agreement["jaxgram_vs_gensim"]["pairs"]] == [[1, 1], [2, 2]]
    for name in ("jaxgram_floor", "gensim_floor"):
        assert [row["seeds"] for row in agreement[name]["pairs"]] == [[1, 2]]
    for name in ("jaxgram_vs_gensim", "jaxgram_floor", "gensim_floor"):
        _check_spread(agreement[name]["overlap_at_k"], 0.0, 1.0)
    assert isinstance(agreement["bar"]["holds"], bool)
    assert "- jaxgram vs gensim, same seed: " in completed.stdout


def _embeddings(vectors):
    from jaxgram.embeddings import Embeddings

    return Embeddings([f"w{i}" for i in range(len(vectors))], vectors)


def _rotated(vectors, seed):
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(vectors.shape[1],) * 2))
    return vectors @ rotation


def _agreement(jaxgram_vectors, gensim_vectors):
    """bench.run's agreement block of seeds 1-3, make run's settings (overlap@10 over 1000 words)."""
    from bench.run import agreement_block, agreement_settings

    models = {"jaxgram": {seed: _embeddings(v) for seed, v in enumerate(jaxgram_vectors, 1)},
              "gensim": {seed: _embeddings(v) for seed, v in enumerate(gensim_vectors, 1)}}
    return agreement_block(models, agreement_settings("default"))


def test_agreement_of_rotated_copies_is_full_and_the_bar_holds():
    base = np.random.default_rng(0).normal(size=(200, 16))
    # Neighbours survive a rotation: every run is the same geometry in its own basis.
    block = _agreement([_rotated(base, seed) for seed in (1, 2, 3)], [base, base, _rotated(base, 4)])
    assert (block["k"], block["overlap_words"]) == (10, 1000)
    assert [row["seeds"] for row in block["jaxgram_vs_gensim"]["pairs"]] == [[1, 1], [2, 2], [3, 3]]
    assert [row["seeds"] for row in block["jaxgram_floor"]["pairs"]] == [[1, 2], [1, 3], [2, 3]]
    for name in ("jaxgram_vs_gensim", "jaxgram_floor", "gensim_floor"):
        assert block[name]["overlap_at_k"]["values"] == pytest.approx([1.0] * 3)
        assert all(row["overlap_words"] == 200 for row in block[name]["pairs"])
    assert block["bar"]["holds"] is True and block["bar"]["threshold"] == pytest.approx(0.99)


def test_agreement_of_unrelated_trainers_fails_the_bar():
    rng = np.random.default_rng(0)
    ours, theirs = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    block = _agreement([_rotated(ours, seed) for seed in (1, 2, 3)], [_rotated(theirs, seed) for seed in (1, 2, 3)])
    assert block["jaxgram_floor"]["overlap_at_k"]["min"] == pytest.approx(1.0)
    assert block["gensim_floor"]["overlap_at_k"]["min"] == pytest.approx(1.0)
    # 10 of 199 other words at random: a Jaccard overlap near 10/199 / (2 - 10/199), far below the floors
    assert block["jaxgram_vs_gensim"]["overlap_at_k"]["max"] < 0.2
    assert block["bar"]["holds"] is False


def test_one_seed_has_no_noise_floor_and_no_bar():
    from bench.run import agreement_block, agreement_settings

    vectors = np.random.default_rng(0).normal(size=(50, 8))
    block = agreement_block({"jaxgram": {1: _embeddings(vectors)}, "gensim": {1: _embeddings(vectors)}},
                            agreement_settings("default"))
    assert block["jaxgram_floor"] == {"overlap_at_k": {"mean": None, "median": None, "min": None, "max": None,
                                                       "values": []}, "pairs": []}
    assert block["bar"]["holds"] is None and block["bar"]["threshold"] is None


def test_tables_print_agreement_and_say_n_a_for_results_from_before_it():
    from bench.run import format_table, load_results, readme_table

    # Results from before agreement was measured: the same results without its key.
    measured = load_results(ROOT / "bench" / "results" / "default.json")
    old = {key: value for key, value in measured.items() if key != "agreement"}
    assert format_table(old).endswith("agreement: n/a (not measured in these results)")
    base = np.random.default_rng(0).normal(size=(200, 16))
    new = {**old, "agreement": _agreement([base] * 3, [base] * 3)}
    table = format_table(new)
    assert "agreement, overlap@10 over the 1000 most frequent shared words, median [min, max]:" in table
    assert "- jaxgram vs gensim, same seed: 1.000 [1.000, 1.000]" in table
    assert "- noise floor gensim, seed pairs: 1.000 [1.000, 1.000]" in table
    assert "holds (threshold 0.990)" in table
    # The README's column appears once some results have agreement; older rows say n/a.
    rows = readme_table([new, old]).splitlines()
    assert rows[0].endswith("| overlap@k jaxgram vs gensim / floor jaxgram / floor gensim (medians) |")
    assert rows[1].count("|") == rows[0].count("|")
    assert rows[2].endswith("| 1.000 / 1.000 / 1.000 (bar holds) |") and rows[3].endswith("| n/a |")
    assert "overlap" not in readme_table([old])


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
    # synthetic.json (`python -m bench --synthetic`), cores.json (`--workers`) and planted.json (`--planted`)
    # join them once the lead has measured them
    many_corpora = {"synthetic", "planted"}
    assert [path.stem for path in paths if path.stem not in {*many_corpora, "cores"}] == [
        "default", "dostoevsky", "meshes", "softmax", "xla", "xla_devices2"]
    for path in paths:
        results = json.loads(path.read_text())
        assert results["format"] == 2 and results["config_name"] == path.stem
        corpora = results["corpora"] if path.stem in many_corpora else [results["corpus"]]
        assert all(set(corpus) >= {"file", "bytes", "sha256"} or "same_corpus_as" in corpus for corpus in corpora)
        if path.stem not in many_corpora:
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


# -- `python -m bench --corpus FILE --workers ...`: both trainers at each worker count ---------------

def test_bench_workers_writes_each_count_and_prints_its_table(tiny_corpus, tmp_path):
    out = tmp_path / "cores.json"
    completed = _bench("--corpus", tiny_corpus, "--workers", "1,3", "--seeds", 1, "--out", out)
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    assert results["config_name"] == "cores" and results["base_config"] == "default"
    assert results["workers"] == [1, 3] and results["seeds"] == 1 and results["complete"] is True
    assert results["corpus_words"] == 1500 * 8 and results["corpus"]["file"] == "corpus.txt"
    assert results["config"]["workers"] is None and "gensim_workers" not in results["machine"]
    for row, count in zip(results["counts"], (1, 3)):
        assert row["workers"] == count and row["exit_status"] == {"jaxgram": [0], "gensim": [0]}
        for trainer in ("jaxgram", "gensim"):
            (run,) = row["trainers"][trainer]["runs"]
            assert run["exit_status"] == 0 and run["process_seconds"] > run["wall_seconds"] > 0
            assert row["trainers"][trainer]["words_per_second"]["median"] > 0
        assert set(row["quality_rule"]) == {"analogy_accuracy", "wordsim353_spearman"}
        assert row["agreement"]["jaxgram_vs_gensim"]["overlap_at_k"]["median"] is not None
        assert row["agreement"]["bar"]["holds"] is None  # one seed: no noise floor
        assert set(row["bars"]) == {"agreement", "analogy_accuracy", "wordsim353_spearman", "exits"}
        assert row["bars"]["exits"] is True and row["holds"] in (None, False)
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("worker counts, config default:") and "1 seed(s) per trainer and count" in lines[0]
    cores = results["machine"]["cores"]
    assert any(line.startswith("| 1 | ") for line in lines)
    assert any(line.startswith("| 3 * | ") for line in lines) == (cores < 3)
    assert (f"This machine has {cores} cores: the rows marked * (3 workers)" in completed.stdout) == (cores < 3)
    table = _bench("--cores-table", out)  # the same table, from the JSON alone
    assert table.returncode == 0, table.stderr
    assert table.stdout == completed.stdout.split("written:")[0]


def _fake_run(diverging_seed):
    """bench.cores.measure_run's stand-in: rows of fixed figures; jaxgram diverges at `diverging_seed`."""
    from jaxgram.errors import TrainingDiverged

    def measure_run(trainer, corpus, config, run_dir, progress=False):
        if trainer == "jaxgram" and config.seed == diverging_seed:
            raise TrainingDiverged("the loss became nan in epoch 2")
        return {"seed": config.seed, "corpus_words": 100, "process_seconds": 2.0, "wall_seconds": 1.5,
                "train_loop_seconds": 1.0, "words_per_second": 250.0, "peak_rss_mib": 300.0,
                "analogy_accuracy": 0.5, "wordsim353_spearman": 0.4}
    return measure_run


def test_a_diverged_run_is_recorded_with_exit_3_and_fails_its_count(monkeypatch, tmp_path):
    from bench import cores

    base = np.random.default_rng(0).normal(size=(50, 8))
    loaded = []
    monkeypatch.setattr(cores, "measure_run", _fake_run(diverging_seed=3))
    monkeypatch.setattr(cores, "load_vectors", lambda run_dir: loaded.append(run_dir.name) or _embeddings(base))
    row = cores.measure_count(tmp_path / "corpus.txt", "default", 4, 3, tmp_path, progress=False)
    assert row["exit_status"] == {"gensim": [0, 0, 0], "jaxgram": [0, 0, 3]}
    failed = row["trainers"]["jaxgram"]["runs"][2]
    assert failed == {"seed": 3, "exit_status": 3, "error": "TrainingDiverged: the loss became nan in epoch 2"}
    assert row["trainers"]["jaxgram"]["process_seconds"]["values"] == [2.0, 2.0, None]
    # Agreement over the seeds both trainers finished: identical vectors agree fully, so that bar holds.
    assert sorted(loaded) == ["gensim-seed1", "gensim-seed2", "jaxgram-seed1", "jaxgram-seed2"]
    assert row["agreement"]["bar"]["holds"] is True and row["bars"]["analogy_accuracy"] is True
    assert row["bars"]["exits"] is False and row["holds"] is False


def test_every_bar_holding_makes_a_count_hold_and_a_refused_count_list_is_one_line(monkeypatch, tmp_path):
    from bench import cores

    monkeypatch.setattr(cores, "measure_run", _fake_run(diverging_seed=None))
    vectors = np.random.default_rng(1).normal(size=(30, 8))
    monkeypatch.setattr(cores, "load_vectors", lambda run_dir: _embeddings(vectors))
    row = cores.measure_count(tmp_path / "corpus.txt", "default", 2, 2, tmp_path, progress=False)
    assert row["bars"] == {"agreement": True, "analogy_accuracy": True, "wordsim353_spearman": True, "exits": True}
    assert row["holds"] is True
    assert [cores.verdict(bars) for bars in ([True, True], [True, None], [None, False])] == [True, None, False]
    refused = _bench("--corpus", tmp_path / "corpus.txt", "--workers", "2,0")
    assert refused.returncode == 2 and "workers=[2, 0]" in refused.stderr and "Traceback" not in refused.stderr


def _cores_table(results):
    from bench.cores import format_cores_table

    return format_cores_table(results)


def _planted_table(results):
    from bench.planted_grid import format_planted_table

    return format_planted_table(results)


def _meshes_table(results):
    from bench.meshes import format_table

    return format_table(results["runs"])


@pytest.mark.parametrize("command, printer", [("--cores-table", _cores_table),
                                              ("--planted --table --out", _planted_table),
                                              ("--meshes-table", _meshes_table)])
def test_a_table_in_the_docs_is_the_one_its_results_json_gives(command, printer):
    # docs/performance.md's cores and planted tables are printed by `python -m bench COMMAND FILE`, never typed by
    # hand: a marker comment names the command and the file, and the printed text follows it.
    from bench.run import load_results

    marker = re.compile(rf"<!-- python -m bench {re.escape(command)} (\S+) -->\n")
    found = [(document, match) for document in sorted((ROOT / "docs").glob("*.md"))
             for match in marker.finditer(document.read_text(encoding="utf-8"))]
    if not found:
        pytest.skip(f"no document shows a `python -m bench {command}` table yet")
    for document, match in found:
        printed = printer(load_results(ROOT / match.group(1)))
        assert document.read_text(encoding="utf-8")[match.end():].startswith(printed + "\n"), document.name


def test_gensim_modes_trains_gensim_from_an_iterable_too_and_the_table_shows_both_modes(monkeypatch, tmp_path):
    from bench import cores

    monkeypatch.setattr(cores, "measure_run", _fake_run(diverging_seed=None))
    base = np.random.default_rng(2).normal(size=(40, 8))
    noisy = base + np.random.default_rng(3).normal(scale=3.0, size=base.shape)
    loaded = []

    def vectors(run_dir):
        loaded.append(run_dir.name)
        return _embeddings(noisy if run_dir.name.startswith("gensim_iterable") else base)

    monkeypatch.setattr(cores, "load_vectors", vectors)
    row = cores.measure_count(tmp_path / "corpus.txt", "default", 2, 2, tmp_path, progress=False, gensim_modes=True)
    assert sorted(loaded) == sorted(f"{t}-seed{s}" for t in ("gensim", "gensim_iterable", "jaxgram") for s in (1, 2))
    cross = row["agreement"]["cross_mode"]
    assert cross["jaxgram"]["overlap_at_k"]["mean"] == 1.0 > cross["gensim_iterable"]["overlap_at_k"]["mean"]
    # The row is still held to the noise floors' bar, which identical jaxgram and gensim vectors meet.
    assert row["bars"]["agreement"] is True and row["exit_status"]["gensim_iterable"] == [0, 0]
    from jaxgram import TrainConfig

    results = {"config": {**TrainConfig().to_dict(), "workers": None}, "corpus": {"file": "corpus.txt"},
               "corpus_words": 100, "seeds": 2, "base_config": "default",
               "machine": {"cpu": "cpu", "cores": 2, "jax": "x", "device": "cpu", "gensim": "y",
                           "jaxgram_kernel": "fused"}, "counts": [row]}
    table = _cores_table(results)
    assert "gensim iterable / jaxgram (means)" in table
    line = next(line for line in table.splitlines() if line.startswith("| 2 |"))
    assert f"{cross['gensim_iterable']['overlap_at_k']['mean']:.3f} / 1.000" in line and "(bar holds)" in line
    refused = _bench("--corpus", tmp_path / "corpus.txt", "--gensim-modes")
    assert refused.returncode == 2 and "--gensim-modes needs --workers" in refused.stderr


def test_bench_meshes_times_one_process_and_two_and_says_what_a_slot_exchanges(tiny_corpus, tmp_path):
    # Real runs through the command line: 1 process x 2 CPU devices, then 2 processes x 1 device on loopback.
    from bench.meshes import format_table, run_layout

    rows = [run_layout(tiny_corpus, processes, devices, False, tmp_path / f"{processes}x{devices}", epochs=1)
            for processes, devices in ((1, 2), (2, 1))]
    for row in rows:
        assert row["words_per_second"] > 0 and row["steps"] > 0 and row["slots"] == row["steps"] * 2 * 5
        # The gathered row changes of a device's streams, a row of E and 1 + K of W (the step's one all-gather).
        assert row["gathered_bytes_per_device"] == row["step_centres"] // 2 * (2 + 5) * 100 * 4
    assert rows[0]["steps"] == rows[1]["steps"]  # the same schedule on the same mesh width
    table = format_table(rows).splitlines()
    assert len(table) == 4 and table[3].startswith("| replicated | 2 x 1 |")
    assert re.search(r"\| -?\d+\.\d\d \|", table[3]) and "|  |" in table[2]  # the cost a slot, beside its twin
