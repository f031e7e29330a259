"""bench.synthetic (the seeded Zipf corpus) and `python -m bench --synthetic` end to end.

The end-to-end run is a smoke test on a few thousand tokens: the command runs, its JSON holds
every promised field, and the table and the PNG come from that JSON. Not a timed test.
"""

import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import synthetic
from jaxgram.vocab import build_vocabulary, read_sentences

ROOT = Path(__file__).resolve().parents[1]


def _counts(path: Path) -> np.ndarray:
    counts = collections.Counter(path.read_text(encoding="ascii").split())
    return np.array(sorted(counts.values(), reverse=True))


def test_same_seed_gives_the_same_bytes_whatever_the_block_size(tmp_path, monkeypatch):
    first = synthetic.write_corpus(tmp_path / "a.txt", 30_000, 500, seed=7)
    monkeypatch.setattr(synthetic, "BLOCK_TOKENS", 1_000)  # streamed in 30 blocks instead of one
    again = synthetic.write_corpus(tmp_path / "b.txt", 30_000, 500, seed=7)
    other = synthetic.write_corpus(tmp_path / "c.txt", 30_000, 500, seed=8)
    assert first == again and first.raw_vocab == 1000 and other.seed == 8
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    assert (tmp_path / "a.txt").read_bytes() != (tmp_path / "c.txt").read_bytes()


def test_corpus_is_linesentence_text_of_20_word_sentences(tmp_path):
    path = tmp_path / "corpus.txt"
    synthetic.write_corpus(path, 1_010, 50, seed=0)
    text = path.read_text(encoding="ascii")
    lines = text.split("\n")
    assert text.endswith("\n") and lines[-1] == ""
    assert [len(line.split(" ")) for line in lines[:-1]] == [20] * 50 + [10]
    assert all(word.isalpha() and word.islower() for word in text.split())


def test_spellings_are_distinct_and_frequent_words_short():
    letters, lengths = synthetic.spellings(26 + 26**2 + 5)
    words = [bytes(row[:n]).decode() for row, n in zip(letters, lengths)]
    assert words[:3] == ["a", "b", "c"] and words[26] == "aa" and words[26 + 26**2] == "aaa"
    assert len(set(words)) == len(words) and list(lengths) == sorted(lengths)


def test_counts_follow_the_solved_zipf_exponent(tmp_path):
    path = tmp_path / "corpus.txt"
    corpus = synthetic.write_corpus(path, 200_000, 2_000, seed=3)
    counts = _counts(path)
    ranks = np.arange(1, len(counts) + 1)
    head = counts >= 20  # where sampling noise is small
    slope = np.polyfit(np.log(ranks[head]), np.log(counts[head]), 1)[0]
    assert 1.0 < corpus.exponent < 1.5
    assert slope == pytest.approx(-corpus.exponent, abs=0.08)


def test_kept_vocabulary_is_near_the_target(tmp_path):
    path = tmp_path / "corpus.txt"
    corpus = synthetic.write_corpus(path, 200_000, 2_000, seed=3)
    vocab = build_vocabulary(read_sentences(path), min_count=synthetic.MIN_COUNT)
    assert corpus.expected_kept == pytest.approx(2_000, rel=0.01)
    assert len(vocab) == pytest.approx(2_000, rel=0.05)


def test_a_target_too_large_for_the_corpus_keeps_what_the_corpus_can_hold():
    fits = synthetic.describe(100_000, 5_000, seed=0)
    large, larger = synthetic.describe(100_000, 20_000, seed=0), synthetic.describe(100_000, 50_000, seed=0)
    assert fits.exponent > synthetic.S_MIN and fits.expected_kept == pytest.approx(5_000, rel=0.01)
    assert large.exponent == larger.exponent == synthetic.S_MIN
    assert large.raw_vocab == larger.raw_vocab  # the same corpus: measured once by --synthetic
    assert 5_000 < larger.expected_kept < 100_000 / 10  # about N / 11.6 words reach min_count 5
    with pytest.raises(ValueError, match="tokens=5"):
        synthetic.describe(5, 100, seed=0)


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def test_bench_synthetic_smoke_run_writes_json_table_and_plot(tmp_path):
    out, plot = tmp_path / "synthetic.json", tmp_path / "synthetic.png"
    completed = _bench("--synthetic", "--tokens", "4k", "--vocab-sizes", "200,50000,100k", "--dims", 16, "--seeds", 1,
                       "--out", out)
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    assert results["config_name"] == "synthetic" and results["config"]["epochs"] == 1
    # A grid narrowed on the command line leaves out the 12M-token V ~ 1M cell unless --large-cell asks for it.
    assert results["grid"] == {"tokens": [4000], "vocab_targets": [200, 50000, 100000], "dims": [16], "seeds": 1,
                               "large": [], "large_seeds": 1}
    measured, same = results["corpora"][:2], results["corpora"][2]
    assert same["same_corpus_as"] == 50000  # 4k tokens hold a few hundred words: one corpus for both
    for corpus in measured:
        assert set(corpus) >= {"file", "bytes", "sha256", "exponent", "vocab_kept", "expected_kept"}
        assert corpus["vocab_kept"] == pytest.approx(corpus["expected_kept"], rel=0.25)
    assert [(r["vocab_target"], r["trainer"]) for r in results["runs"]] == [
        (200, "gensim"), (200, "jaxgram"), (50000, "gensim"), (50000, "jaxgram")]
    for cell in results["cells"]:
        assert cell["us_per_word"] > cell["loop_us_per_word"] > 0 and 20 < cell["peak_rss_mib"] < 64 * 1024
        assert cell["process_seconds"] > cell["wall_seconds"] > cell["train_loop_seconds"] > 0
        assert cell["fixed_seconds"] == pytest.approx(cell["process_seconds"] - cell["train_loop_seconds"])
        assert cell["vocab_kept"] == next(c["vocab_kept"] for c in measured if c["vocab_target"] == cell["vocab_target"])
    assert [(b["vocab_target"], b["dim"]) for b in results["bars"]] == [(200, 16), (50000, 16)]
    assert all(isinstance(b[key]["holds"], bool) for b in results["bars"] for key in ("whole_process", "fixed", "peak_rss"))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tokens | V target | V kept |" in completed.stdout and "| 4,000 | 200 |" in completed.stdout
    assert "V target 100,000 at 4,000 tokens" in completed.stdout
    plot.unlink()
    table = _bench("--synthetic", "--table", "--out", out)  # the same table, from the JSON alone
    assert table.returncode == 0, table.stderr
    assert table.stdout.split("written:")[0] == completed.stdout.split("written:")[0] and plot.is_file()


def _cell(trainer, process, loop, rss):
    return {"tokens": 1000, "vocab_target": 50, "dim": 8, "trainer": trainer, "process_seconds": process,
            "fixed_seconds": process - loop, "peak_rss_mib": rss}


@pytest.mark.parametrize("jaxgram, verdicts", [
    ((10.0, 8.0, 600.0), (True, True, True)),    # faster, fixed 2.0 vs 1.0, RSS within 400 x 1.25 + 250 = 750
    ((10.0, 7.4, 750.0), (True, False, True)),   # fixed 2.6: 1.6 s above gensim's
    ((11.5, 10.0, 751.0), (False, True, False)),  # slower than gensim's 11.0, 1 MiB past the budget
])
def test_each_cell_is_held_to_the_three_bars(jaxgram, verdicts):
    from bench.run import synthetic_bars

    [bar] = synthetic_bars([_cell("gensim", 11.0, 10.0, 400.0), _cell("jaxgram", *jaxgram)])
    assert (bar["whole_process"]["holds"], bar["fixed"]["holds"], bar["peak_rss"]["holds"]) == verdicts
    assert bar["peak_rss"]["budget"] == 750.0


def test_bench_synthetic_refuses_bad_settings_in_one_line(tmp_path):
    misplaced = _bench("--corpus", tmp_path / "c.txt", "--dims", 16)
    assert misplaced.returncode == 2 and "--dims is only allowed with --synthetic" in misplaced.stderr
    bad = _bench("--synthetic", "--tokens", "many")
    assert bad.returncode == 2 and "'many'" in bad.stderr
    (tmp_path / "other.json").write_text(json.dumps({"config_name": "default"}))
    wrong = _bench("--synthetic", "--table", "--out", tmp_path / "other.json")
    assert wrong.returncode == 2 and "no --synthetic results" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = _bench("--synthetic", "--table", "--out", tmp_path / "missing.json")
    assert missing.returncode != 0 and "missing.json" in missing.stderr and "Traceback" not in missing.stderr
    zero = _bench("--synthetic", "--dims", "0", "--out", tmp_path / "s.json")
    assert zero.returncode == 2 and "dims=[0]" in zero.stderr


def test_the_readme_synthetic_table_is_the_one_the_results_json_gives():
    # Printed by `python -m bench --synthetic --table` from bench/results/synthetic.json, never typed by hand.
    from bench.run import format_synthetic_table, load_results

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = "<!-- python -m bench --synthetic --table -->\n"
    assert marker in readme, "the README says where its synthetic table comes from"
    block = readme.split(marker, 1)[1].split("\n\n", 1)[0].strip().splitlines()
    printed = format_synthetic_table(load_results(ROOT / "bench" / "results" / "synthetic.json")).splitlines()
    assert block == [line for line in printed if line.startswith("|")]
