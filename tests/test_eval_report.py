"""report.md + self-contained report.html + PNGs, built from one evaluation dict."""

import base64
import html.parser
import re

import pytest

from eval.baseline import baseline_note
from eval.config import DEFAULT_PROBES, EvalSettings, PipelineConfig
from eval.evaluate import evaluate_runs
from eval.probes import load_probes
from eval.report import write_report
from jaxgram.config import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def metrics(synthetic_runs):
    evaluation = evaluate_runs(synthetic_runs, load_probes(DEFAULT_PROBES), EvalSettings(overlap_words=50, cosine_pairs=500))
    config = PipelineConfig()
    evaluation.update({"config": config.to_dict(), "config_source": "test",
                       "corpus": {"path": "corpus.txt", "sha256": "0" * 64, "words": 4800},
                       "baseline": {"note": baseline_note(config.train)}})
    return evaluation


@pytest.fixture(scope="module")
def written(metrics, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_report(metrics, out)


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.links, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("img", "script") and "src" in attrs:
            self.sources.append(attrs["src"])
        if tag == "link":
            self.links.append(attrs)
        self.tables += tag == "table"


def test_files_exist_and_pngs_are_pngs(written):
    out, paths = written
    for name in ("report.md", "report.html", "pca.png", "heatmap.png", "loss.png"):
        assert (out / name).is_file()
    for name in ("pca.png", "heatmap.png", "loss.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)


def test_html_is_self_contained(written):
    out, _ = written
    parser = _Collector()
    parser.feed((out / "report.html").read_text())
    assert len(parser.sources) == 3 and parser.links == []
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert parser.tables >= 5


def test_markdown_shows_the_numbers_of_the_metrics(written, metrics):
    out, _ = written
    text = (out / "report.md").read_text()
    for heading in ("Summary", "Agreement", "Analogies per section", "Seed probes", "PCA", "heatmap", "loss per epoch"):
        assert heading in text
    trainers = metrics["trainers"]
    assert f"{trainers['jaxgram']['wall_seconds']:.1f}" in text
    assert f"{trainers['gensim']['words_per_second']:,.0f}" in text
    overlap = metrics["agreement"]["gensim_a_vs_b"]["overlap_at_k"]
    assert f"{overlap:.3f}" in text
    for value in metrics["figures"]["loss_per_epoch"]:
        assert f"{value:.4f}" in text
    assert metrics["baseline"]["note"] in text
    # Every image the markdown references was written beside it.
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (out / image).is_file()


def test_html_and_markdown_carry_the_same_tables(written):
    out, _ = written
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert md.count("\n|---") == page.count("<table>")


def test_softmax_runs_say_what_they_are_compared_with(metrics, tmp_path):
    softmax = TrainConfig(objective="softmax", negative=0)
    metrics = {**metrics, "baseline": {"note": baseline_note(softmax)}}
    write_report(metrics, tmp_path)
    assert "hierarchical-softmax" in (tmp_path / "report.md").read_text()
