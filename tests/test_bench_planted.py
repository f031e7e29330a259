"""bench.planted (planted-cluster corpora, cluster purity) and `python -m bench --planted` end to end.

The end-to-end run is a smoke test on 20k tokens and one epoch with real gensim and jaxgram
children: the command runs, its JSON holds every promised field, and the table printed from the
JSON alone is the one the run printed. Not a timed test.
"""

import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import planted
from bench.planted import PlantedCorpus
from jaxgram.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text(encoding="ascii").splitlines()]


def test_same_seed_gives_the_same_bytes_and_another_seed_others(tmp_path):
    spec = PlantedCorpus(20, 4, 5_000, 0.3, seed=7)
    planted.write_corpus(tmp_path / "a.txt", spec)
    planted.write_corpus(tmp_path / "b.txt", spec)
    planted.write_corpus(tmp_path / "c.txt", PlantedCorpus(20, 4, 5_000, 0.3, seed=8))
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    assert (tmp_path / "a.txt").read_bytes() != (tmp_path / "c.txt").read_bytes()


def test_corpus_has_the_requested_tokens_groups_and_dominant_share(tmp_path):
    path = tmp_path / "corpus.txt"
    spec = planted.write_corpus(path, PlantedCorpus(200, 20, 50_005, 0.6, seed=1))
    lines = _lines(path)
    assert [len(line) for line in lines] == [10] * 5_000 + [5]  # LineSentence: 10-word sentences, the rest last
    counts = collections.Counter(word for line in lines for word in line)
    assert sum(counts.values()) == 50_005 and set(counts) == set(planted.vocabulary(spec))
    assert len(counts) == 201 and counts[planted.DOMINANT] / 50_005 == pytest.approx(0.6, abs=0.01)
    # Most of a sentence's other words come from one group: 1 - noise + noise / groups of them.
    group_of = dict(zip(planted.vocabulary(spec), planted.group_ids(spec)))
    shares = []
    for line in lines[:-1]:
        groups = [group_of[word] for word in line if word != planted.DOMINANT]
        if len(groups) >= 3:
            shares.append(collections.Counter(groups).most_common(1)[0][1] / len(groups))
    assert np.mean(shares) == pytest.approx(0.9 + 0.1 / 20, abs=0.03)
    assert np.mean(shares) > 0.85


def test_a_corpus_without_a_dominant_word_has_none(tmp_path):
    path = tmp_path / "corpus.txt"
    spec = planted.write_corpus(path, PlantedCorpus(20, 4, 3_000, seed=2))
    words = path.read_text(encoding="ascii").split()
    assert planted.DOMINANT not in words and len(set(words)) == 20 and spec.name == "20/4"
    assert list(planted.group_ids(spec)) == [g for g in range(4) for _ in range(5)]


def _one_hots(spec: PlantedCorpus, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    groups = planted.group_ids(spec)
    vectors = np.eye(spec.groups)[np.maximum(groups, 0)] + noise * rng.normal(size=(len(groups), spec.groups))
    vectors[groups < 0] = 1.0  # the dominant word next to every group alike: it must not count
    return vectors


def test_purity_is_one_for_group_one_hots_and_about_chance_for_random_vectors():
    spec = PlantedCorpus(200, 20, 1_000, 0.6)
    groups = planted.group_ids(spec)
    assert planted.cluster_purity(_one_hots(spec, 0.05, 0), groups) == 1.0
    random = planted.cluster_purity(np.random.default_rng(0).normal(size=(len(groups), 20)), groups)
    assert planted.chance_purity(spec) == pytest.approx(9 / 199)
    assert abs(random - planted.chance_purity(spec)) < 0.03 and random < 0.1


def test_purity_drops_when_two_groups_merge():
    spec = PlantedCorpus(20, 4, 1_000)
    groups = planted.group_ids(spec)
    rng = np.random.default_rng(1)
    vectors = np.eye(4)[np.where(groups == 1, 0, groups)] + 0.05 * rng.normal(size=(20, 4))  # 0 and 1: one cluster
    # Words of the merged groups find their 4 neighbours among 9 equally near: about 4/9 in their group.
    assert 0.6 < planted.cluster_purity(vectors, groups) < 0.85


def test_embedding_purity_reads_words_by_name_in_any_order():
    from jaxgram.embeddings import Embeddings

    spec = PlantedCorpus(20, 4, 1_000, 0.2)
    words, vectors = planted.vocabulary(spec), _one_hots(spec, 0.05, 2)
    order = np.random.default_rng(3).permutation(len(words))
    assert planted.embedding_purity(Embeddings([words[i] for i in order], vectors[order]), spec) == 1.0
    shuffled = Embeddings(words, vectors[np.random.default_rng(4).permutation(len(words))])
    assert planted.embedding_purity(shuffled, spec) < 0.6


@pytest.mark.parametrize("layout, expected", [("20/4", (20, 4, 0.0)), ("200/20+0.6", (200, 20, 0.6))])
def test_layouts_parse(layout, expected):
    assert planted.parse_layout(layout) == expected


def test_bad_layouts_and_specs_are_refused_naming_the_value():
    with pytest.raises(ConfigError, match="'20-4'"):
        planted.parse_layout("20-4")
    with pytest.raises(ConfigError, match="words=20 in groups=3"):
        PlantedCorpus(20, 3, 1_000)
    with pytest.raises(ConfigError, match="dominant_share=1.0"):
        PlantedCorpus(20, 4, 1_000, 1.0)


def _row(setting, outcome, purity, seed=1, alpha=0.025):
    return {"corpus": "20/4", "trainer": "jaxgram", "setting": setting, "kernel": "xla", "workers": 1, "width": "cpu",
            "batch_size": None, "alpha": alpha, "tied": False, "seed": seed, "gensim_workers": 1,
            "exit_status": {"ok": 0, "refused": 2, "diverged": 3}[outcome], "outcome": outcome,
            "message": None if outcome == "ok" else f"{outcome} here", "purity": purity}


def test_cells_hold_within_the_tolerance_of_gensim_or_when_refused():
    from bench.planted_grid import planted_cells

    gensim = [{"corpus": "20/4", "trainer": "gensim", "workers": 1, "alpha": 0.025, "seed": seed, "purity": purity}
              for seed, purity in ((1, 0.90), (2, 0.94))]
    runs = gensim + [_row("near", "ok", 0.905), _row("near", "ok", 0.915, 2),  # mean 0.91 >= 0.92 - 0.02
                     _row("below", "ok", 0.89), _row("below", "ok", 0.90, 2),  # mean 0.895 < 0.90
                     _row("refused", "refused", None),
                     _row("diverged", "ok", 0.99), _row("diverged", "diverged", None, 2),
                     _row("no gensim", "ok", 0.9, alpha=0.1)]
    cells = {cell["setting"]: cell for cell in planted_cells(runs)}
    assert [cells[name]["holds"] for name in ("near", "below", "refused", "diverged", "no gensim")] == [
        True, False, True, False, None]
    assert cells["near"]["threshold"] == pytest.approx(0.90) and cells["near"]["purity"]["mean"] == pytest.approx(0.91)
    assert cells["diverged"]["outcome"] == "diverged" and cells["diverged"]["exit_status"] == [0, 3]
    assert cells["refused"]["message"] == "refused here" and cells["refused"]["exit_status"] == [2]


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def test_bench_planted_smoke_run_writes_json_and_table(tmp_path):
    out = tmp_path / "planted.json"
    completed = _bench("--planted", "--corpora", "20/4+0.6", "--tokens", "20k", "--epochs", 1, "--dims", 16,
                       "--workers", 1, "--widths", "accelerator,widest", "--alphas", 0.025, "--tying", "untied",
                       "--seeds", 1, "--out", out)
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    assert results["config_name"] == "planted" and results["config"]["min_count"] == 1
    assert results["grid"] == {"corpora": ["20/4+0.6"], "tokens": 20_000, "noise": 0.1, "workers": [1],
                               "widths": ["accelerator", "widest"], "alphas": [0.025], "tied": [False], "seeds": 1,
                               "epochs": 1, "dim": 16}
    (corpus,) = results["corpora"]
    assert corpus["words"] == 20 and corpus["dominant_share"] == 0.6 and set(corpus) >= {"file", "bytes", "sha256"}
    assert corpus["chance_purity"] == pytest.approx(4 / 19)
    assert [(r["trainer"], r.get("setting"), r["outcome"]) for r in results["runs"]] == [
        ("gensim", None, "ok"), ("jaxgram", "fused, 1 worker", "ok"),
        ("jaxgram", "xla, accelerator width", "refused"), ("jaxgram", "xla, widest width", "ok")]
    for run in results["runs"]:
        assert (run["outcome"] == "ok") == (run["exit_status"] == 0 and 0.0 <= run["purity"] <= 1.0)
    refused = next(cell for cell in results["cells"] if cell["outcome"] == "refused")
    assert refused["holds"] is True and "too wide" in refused["message"] and refused["batch_size"] == 12288
    widest = next(cell for cell in results["cells"] if cell["width"] == "widest")
    assert 0 < widest["batch_size"] < 12288 and widest["gensim_workers"] == 1
    for cell in results["cells"]:
        assert set(cell) >= {"purity", "gensim_purity", "threshold", "holds", "exit_status", "outcome"}
        assert isinstance(cell["holds"], bool)
    assert results["all_hold"] in (True, False)
    assert "| 20/4+0.6 | xla, accelerator width | refused |" in completed.stdout
    assert "- 20/4+0.6, xla, accelerator width: batch_size=12288 is too wide" in completed.stdout
    table = _bench("--planted", "--table", "--out", out)  # the same table, from the JSON alone
    assert table.returncode == 0, table.stderr
    assert table.stdout == completed.stdout.split("written:")[0]


def _main(*args) -> int:
    """`python -m bench ARGS` in this process (refusals come before any training): its exit status."""
    from bench.__main__ import main

    try:
        return main([str(arg) for arg in args])
    except SystemExit as exc:  # argparse's refusals
        return exc.code


def test_bench_planted_refuses_bad_settings_in_one_line(tmp_path, capsys):
    for args, said in ((("--corpora", "20/3"), "words=20 in groups=3"), (("--tokens", "1k,2k"), "give one size"),
                       (("--widths", "narrow"), "widths=['narrow']"), (("--tying", "loose"), "'loose'")):
        assert _main("--planted", *args, "--out", tmp_path / "p.json") == 2, args
        stderr = capsys.readouterr().err
        # One line says what is wrong (argparse's usage lines may come before it), no traceback.
        assert said in stderr.strip().splitlines()[-1] and "Traceback" not in stderr, (args, stderr)
        assert not (tmp_path / "p.json").exists()
    assert _main("--corpus", tmp_path / "c.txt", "--noise", 0.5) == 2
    assert "--noise is only allowed with --planted" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"config_name": "synthetic"}))
    assert _main("--planted", "--table", "--out", tmp_path / "other.json") == 2
    assert "no --planted results" in capsys.readouterr().err


def test_the_corpus_command_writes_one_or_refuses_in_one_line(tmp_path, capsys):
    assert planted.main(["--words", "20", "--groups", "4", "--tokens", "2k", "--dominant-share", "0.5",
                         "--out", str(tmp_path / "c.txt")]) == 0
    assert "'name': '20/4+0.5'" in capsys.readouterr().out
    assert len((tmp_path / "c.txt").read_text(encoding="ascii").split()) == 2_000
    assert planted.main(["--words", "20", "--groups", "3", "--tokens", "2k", "--out", str(tmp_path / "d.txt")]) == 2
    assert capsys.readouterr().err.strip() == ("python -m bench.planted: error: words=20 in groups=3 is not allowed: "
                                               "the groups must be equal, of at least 2 words each")

