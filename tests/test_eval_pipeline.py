"""`jaxgram pipeline` end to end on the loopback mirror: report files, metric ranges, stage reuse, one run per folder."""

import contextlib
import functools
import html.parser
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eval.config import load_config
from eval.pipeline import run_pipeline, summary_table
from jaxgram import rundir

REPO = Path(__file__).resolve().parents[1]
TRAINER_STAGES = ("jaxgram", "gensim", "jaxgram_b", "gensim_b")
SMALL = """
[ingest]
books = [600]
[train]
dim = 16
epochs = 1
window = {window}
[eval]
overlap_words = 300
cosine_pairs = 1000
"""


def _config(folder: Path, window: int):
    path = folder / f"small-{window}.toml"
    path.write_text(SMALL.format(window=window))
    return path


@pytest.fixture(scope="module")
def first_run(mirror_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    out = folder / "run"
    log = []
    result = run_pipeline(load_config(str(_config(folder, 3))), out, mirror=mirror_server.url, progress=False, log=log.append)
    return folder, out, result, log


def _in(value, low, high):
    return value is not None and math.isfinite(value) and low <= value <= high


def test_first_run_runs_every_stage_and_writes_the_report(first_run):
    _, out, result, log = first_run
    assert [s["status"] for s in result.stages.values()] == ["ran"] * 7
    assert list(result.stages) == ["ingest", *TRAINER_STAGES, "evaluate", "report"]
    assert any("[1/7] ingest" in line for line in log) and any("[7/7] report" in line for line in log)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages"] == result.stages
    assert (out / "report.md").read_text().startswith("# jaxgram vs gensim")
    html.parser.HTMLParser().feed((out / "report.html").read_text())
    assert result.report_path == out / "report.html"
    assert (out / "vectors.bin").read_bytes() == (out / "jaxgram" / "vectors.bin").read_bytes()


def test_metrics_are_in_valid_ranges(first_run):
    _, out, _, _ = first_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["corpus"]["words"] > 30_000  # Notes from the Underground
    for name in ("jaxgram", "gensim"):
        trainer = metrics["trainers"][name]
        assert trainer["corpus_words"] == metrics["corpus"]["words"]
        assert trainer["wall_seconds"] > 0 and trainer["words_per_second"] > 0 and trainer["peak_rss_mib"] > 20
        for method in ("3cosadd", "3cosmul"):
            analogies = metrics["benchmarks"][name]["analogies"][method]
            assert _in(analogies["total"]["accuracy"], 0, 1)
            assert analogies["total"]["evaluated"] + analogies["total"]["oov_skipped"] == 19544
        for dataset in ("wordsim353", "simlex999"):
            scores = metrics["benchmarks"][name]["similarity"][dataset]
            assert _in(scores["oov_ratio"], 0, 1) and scores["pairs_used"] > 0
            assert _in(scores["spearman"], -1, 1) and _in(scores["pearson"], -1, 1)
    assert metrics["trainers"]["jaxgram"]["vocab_size"] == metrics["trainers"]["gensim"]["vocab_size"]
    losses = metrics["figures"]["loss_per_epoch"]
    assert len(losses) == 1 and _in(losses[0], 0, 10)
    for entry in metrics["agreement"].values():
        assert _in(entry["overlap_at_k"], 0, 1) and _in(entry["cosine_spearman"], -1, 1)
        assert _in(entry["procrustes_residual"], 0, 2) and entry["overlap_words"] == 300
    # Same corpus, same objective: the two trainers' geometries are related, not unrelated.
    assert metrics["agreement"]["jaxgram_vs_gensim"]["cosine_spearman"] > 0.2


def test_rerun_reuses_every_stage(first_run, mirror_server):
    folder, out, _, _ = first_run
    stats_before = {name: (out / name / "stats.json").stat().st_mtime_ns for name in TRAINER_STAGES}
    report_before = (out / "report.md").stat().st_mtime_ns
    requests_before = len(mirror_server.requests)
    result = run_pipeline(load_config(str(_config(folder, 3))), out, mirror=mirror_server.url, progress=False, log=lambda _: None)
    assert {s["status"] for s in result.stages.values()} == {"reused"}
    assert {name: (out / name / "stats.json").stat().st_mtime_ns for name in TRAINER_STAGES} == stats_before
    assert (out / "report.md").stat().st_mtime_ns == report_before
    assert len(mirror_server.requests) == requests_before  # nothing downloaded again
    assert "report: " + str(out / "report.html") in summary_table(result)


def test_cli_rerun_prints_the_summary_table(first_run, mirror_server):
    folder, out, _, _ = first_run
    completed = subprocess.run(
        [sys.executable, "-m", "jaxgram", "pipeline", "--mirror", mirror_server.url, "--config", str(_config(folder, 3)),
         "--out", str(out), "--no-progress"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout.count("reused") == 7
    assert "Google analogies 3CosAdd" in completed.stdout
    assert str(out / "report.html") in completed.stdout


def test_changed_train_setting_redoes_training_onwards_only(first_run, mirror_server):
    folder, out, _, _ = first_run
    result = run_pipeline(load_config(str(_config(folder, 2))), out, mirror=mirror_server.url, progress=False, log=lambda _: None)
    statuses = {name: stage["status"] for name, stage in result.stages.items()}
    assert statuses == {"ingest": "reused", **{name: "ran" for name in TRAINER_STAGES}, "evaluate": "ran", "report": "ran"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["train"]["window"] == 2
    assert metrics["trainers"]["gensim"]["config"]["window"] == 2


def test_report_command_rerenders_from_the_evaluation(first_run):
    _, out, _, _ = first_run
    before = (out / "report.md").read_text()
    (out / "report.md").unlink()
    completed = subprocess.run([sys.executable, "-m", "jaxgram", "report", "--run", str(out)], capture_output=True,
                               text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert (out / "report.md").read_text() == before


class _GatedHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror folder, each request held until the test opens the server's gate."""

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass

    def send_head(self):
        self.server.asked.set()
        self.server.gate.wait(timeout=60)
        return super().send_head()


@contextlib.contextmanager
def gated_mirror(folder: Path):
    """A loopback mirror of `folder`: `asked` is set once a request came, which then waits until `gate` is set."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_GatedHandler, directory=str(folder)))
    server.daemon_threads = True
    server.asked, server.gate = threading.Event(), threading.Event()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.fault
def test_a_second_pipeline_into_a_folder_in_use_is_refused_and_the_first_finishes(first_run, gutenberg_dir, tmp_path):
    """Two `jaxgram pipeline --out OUT` at once (two `make run`s): the second is refused in one line naming the
    first's pid and changes nothing; the first, held mid-download by a loopback mirror meanwhile, finishes."""
    folder, out, _, _ = first_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    shutil.rmtree(run / "ingest" / "raw")  # so the first pipeline downloads its book again, and waits there
    window = json.loads((run / "metrics.json").read_text())["config"]["train"]["window"]  # the run's, reused
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with gated_mirror(gutenberg_dir) as mirror:
        argv = [sys.executable, "-m", "jaxgram", "pipeline", "--mirror", mirror.url, "--config",
                str(_config(folder, window)), "--out", str(run), "--no-progress"]
        first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        try:
            assert mirror.asked.wait(timeout=60), "the first pipeline never asked the mirror for its book"
            before = _files(run)
            second = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
            assert _files(run) == before
            mirror.gate.set()
            stdout, stderr = first.communicate(timeout=120)
        finally:
            first.kill()
            first.communicate()
    assert second.returncode == 2, second.stderr
    assert second.stderr.splitlines() == [
        f"jaxgram pipeline: error: {run} is in use by another jaxgram pipeline (pid {first.pid}); wait for it to "
        "finish or choose another --out"]
    assert first.returncode == 0, stderr
    assert stdout.count("reused") == 6  # the book downloaded again is the same: every stage after ingest is reused
    assert not list(run.rglob(rundir.LOCK_NAME))
