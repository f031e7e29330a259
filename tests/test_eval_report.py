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


def test_labels_of_crowded_points_do_not_cover_each_other():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval.report import label_points

    figure, axis = plt.subplots(figsize=(5, 4))
    xs, ys = [0.0, 0.001, 0.002, 1.0], [0.0, 0.001, 0.0, 1.0]  # three points on one spot
    axis.scatter(xs, ys)
    label_points(axis, ["murder", "crime", "blood", "church"], xs, ys)
    renderer = figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in axis.texts]
    assert [text.get_text() for text in axis.texts] == ["murder", "crime", "blood", "church"]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(figure)


def test_heatmap_scale_spans_the_off_diagonal_cosines_and_loss_ticks_are_whole_epochs(monkeypatch):
    from eval import report

    drawn = {}
    monkeypatch.setattr(report, "_png", lambda figure: drawn.setdefault("figure", figure) and b"")
    cosines = [[1.0, 0.3, -0.1], [0.3, 1.0, 0.2], [-0.1, 0.2, 1.0]]
    report.heatmap_figure({name: {"words": ["a", "b", "c"], "cosines": cosines} for name in report.MAIN})
    images = [axis.images[0] for axis in drawn.pop("figure").axes if axis.images]
    assert len(images) == len(report.MAIN) and all(image.get_clim() == (-0.3, 0.3) for image in images)
    report.loss_figure([4.1, 3.0, 2.7, 2.6, 2.5])
    ticks = [tick for tick in drawn["figure"].axes[0].get_xticks() if 1 <= tick <= 5]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
