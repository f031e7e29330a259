"""report.md, one self-contained report.html (PNG plots inlined as base64) and their figures.

The report is built once as a list of blocks (headings, paragraphs, tables, images) and
rendered to both formats, so the two never disagree. Every number comes from the metrics dict.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

from jaxgram.fileio import atomic_write_bytes, atomic_write_text

MAIN = ("jaxgram", "gensim")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    filename: str
    alt: str
    png: bytes


# -- number formatting ---------------------------------------------------------------


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _pvalue(score: dict) -> str:
    """The p-value of a word-pair Spearman (results from before it was recorded have none)."""
    value = score.get("spearman_pvalue")
    return "p n/a" if value is None else f"p = {value:.2g}"


def _accuracy(score: dict) -> str:
    if not score["evaluated"]:
        return "n/a (0/0)"
    return f"{pct(score['accuracy'])} ({score['correct']}/{score['evaluated']})"


# -- figures -----------------------------------------------------------------------------


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pca_figure(pca: dict) -> bytes:
    plt = _pyplot()
    titles = {"jaxgram_before": "jaxgram, before training (initial E)",
              "jaxgram_after": "jaxgram, after training", "gensim_after": "gensim, after training"}
    figure, axes = plt.subplots(1, len(titles), figsize=(5 * len(titles), 4.5))
    for axis, (key, title) in zip(axes, titles.items()):
        panel = pca[key]
        xs = [p[0] for p in panel["xy"]]
        ys = [p[1] for p in panel["xy"]]
        axis.scatter(xs, ys, s=18)
        label_points(axis, panel["words"], xs, ys)
        explained = panel["explained"]
        axis.set_title(f"{title}\nPC1 {100 * explained[0]:.0f}%, PC2 {100 * explained[1]:.0f}% of variance", fontsize=10)
        axis.grid(alpha=0.3)
    return _png(figure)


# Where a label may go beside its point, in points: above right first, then around it.
_LABEL_OFFSETS = ((3, 3), (3, -11), (-3, 3), (-3, -11), (3, 12), (3, -20), (-3, 12), (-3, -20))


def label_points(axis, words, xs, ys) -> None:
    """Label each point with its word, each label at the first offset where it overlaps no label before it."""
    axis.autoscale_view()  # the view limits the labels' places are measured in: settle them first
    renderer = axis.figure.canvas.get_renderer()
    placed = []
    for word, x, y in zip(words, xs, ys):
        for dx, dy in _LABEL_OFFSETS:
            label = axis.annotate(word, (x, y), fontsize=9, xytext=(dx, dy), textcoords="offset points",
                                  ha="left" if dx > 0 else "right")
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:  # crowded all round: the first place, overlapping
            label = axis.annotate(word, (x, y), fontsize=9, xytext=_LABEL_OFFSETS[0], textcoords="offset points")
            box = label.get_window_extent(renderer)
        placed.append(box)


def heatmap_figure(heatmaps: dict) -> bytes:
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(MAIN), figsize=(6.5 * len(MAIN), 5.5), layout="constrained")
    # One scale for the panels, spanning their off-diagonal cosines (the diagonal is 1 by definition):
    # on -1..1 the cosines of these words, mostly 0 to 0.6, would all look alike.
    off_diagonal = [abs(value) for name in MAIN for i, row in enumerate(heatmaps[name]["cosines"])
                    for j, value in enumerate(row) if i != j]
    span = max(off_diagonal, default=1.0) or 1.0
    for axis, name in zip(axes, MAIN):
        panel = heatmaps[name]
        words = panel["words"]
        image = axis.imshow(panel["cosines"] or [[0.0]], vmin=-span, vmax=span, cmap="RdBu_r")
        axis.set_xticks(range(len(words)), words, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(words)), words, fontsize=8)
        for i, row in enumerate(panel["cosines"]):
            for j, value in enumerate(row):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
        axis.set_title(f"{name}: cosine similarity of the probe words", fontsize=10)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label=f"cosine (scale ±{span:.2f}; the diagonal is 1)")
    return _png(figure)


def loss_figure(losses: list[float]) -> bytes:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(range(1, len(losses) + 1), losses, marker="o")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    axis.set_xlabel("epoch")
    axis.set_ylabel("mean loss per pair")
    axis.set_title("jaxgram training loss")
    axis.grid(alpha=0.3)
    return _png(figure)


# -- the report's content ------------------------------------------------------------------


def trainer_rows(metrics: dict) -> list[tuple[str, ...]]:
    trainers = metrics["trainers"]
    rows = [
        ("Wall time, whole train call (s)", *(fmt(trainers[n]["wall_seconds"], 1) for n in MAIN)),
        ("Training loop only (s)", *(fmt(trainers[n]["train_loop_seconds"], 1) for n in MAIN)),
        ("Words/s (corpus words x epochs / wall)", *(f"{trainers[n]['words_per_second']:,.0f}" for n in MAIN)),
        ("Peak memory, child process RSS (MiB)", *(fmt(trainers[n]["peak_rss_mib"], 0) for n in MAIN)),
        ("Vocabulary (words)", *(fmt(trainers[n]["vocab_size"]) for n in MAIN)),
    ]
    bench = metrics["benchmarks"]
    for method, label in (("3cosadd", "3CosAdd"), ("3cosmul", "3CosMul")):
        totals = [bench[n]["analogies"][method]["total"] for n in MAIN]
        rows.append((f"Google analogies {label}, total", *(_accuracy(t) for t in totals)))
    skipped = (bench[n]["analogies"]["3cosadd"]["total"]["oov_skipped"] for n in MAIN)
    rows.append(("Analogy questions skipped (OOV)", *(fmt(count) for count in skipped)))
    for name, label in (("wordsim353", "WordSim-353"), ("simlex999", "SimLex-999")):
        scores = [bench[n]["similarity"][name] for n in MAIN]
        rows.append((f"{label} Spearman / Pearson (pairs scored, Spearman's p-value)",
                     *(f"{fmt(s['spearman'])} / {fmt(s['pearson'])} ({s['pairs_used']}, {_pvalue(s)})" for s in scores)))
        rows.append((f"{label} pairs out of vocabulary", *(f"{pct(s['oov_ratio'])} ({s['oov']})" for s in scores)))
    return rows


def _section_rows(metrics: dict) -> list[tuple[str, ...]]:
    bench = metrics["benchmarks"]
    sections = bench["jaxgram"]["analogies"]["3cosadd"]["sections"]
    rows = []
    for section in sections:
        cells = []
        for method in ("3cosadd", "3cosmul"):
            for name in MAIN:
                cells.append(_accuracy(bench[name]["analogies"][method]["sections"][section]))
        rows.append((section, *cells, fmt(sections[section]["oov_skipped"])))
    return rows


def _agreement_rows(metrics: dict) -> list[tuple[str, ...]]:
    labels = {"jaxgram_vs_gensim": "jaxgram vs gensim (seed A)",
              "gensim_a_vs_b": "noise floor: gensim seed A vs seed B",
              "jaxgram_a_vs_b": "noise floor: jaxgram seed A vs seed B"}
    rows = []
    for key, label in labels.items():
        entry = metrics["agreement"].get(key)
        if entry is None:
            rows.append((label, "not run", "not run", "not run", ""))
            continue
        rows.append((label, fmt(entry["overlap_at_k"]), fmt(entry["cosine_spearman"]),
                     fmt(entry["procrustes_residual"]), f"{entry['overlap_words']:,} / {entry['cosine_pairs']:,}"))
    return rows


def _probe_blocks(metrics: dict) -> list:
    probes = metrics["probes"]
    blocks = [Heading("Seed probes")]
    rows = tuple((f"cos({a}, {b})", *(fmt(c["cosine"]) for c in cells))
                 for (a, b), *cells in zip([c["pair"] for c in probes["jaxgram"]["cosines"]],
                                           probes["jaxgram"]["cosines"], probes["gensim"]["cosines"]))
    blocks.append(Table(("Pair", "jaxgram", "gensim"), rows))
    neighbour_rows = []
    for index, entry in enumerate(probes["jaxgram"]["neighbours"]):
        word = entry["word"]
        cells = []
        for name in MAIN:
            found = probes[name]["neighbours"][index]["neighbours"]
            cells.append("not in vocabulary" if found is None else ", ".join(f"{w} ({s:.2f})" for w, s in found))
        neighbour_rows.append((word, *cells))
    blocks.append(Paragraph("Nearest neighbours, side by side:"))
    blocks.append(Table(("Word", "jaxgram", "gensim"), tuple(neighbour_rows)))
    analogy_rows = []
    for index, query in enumerate(probes["jaxgram"]["analogies"]):
        text = " + ".join(query["positive"]) + "".join(f" - {w}" for w in query["negative"])
        cells = []
        for name in MAIN:
            answers = probes[name]["analogies"][index]["answers"]
            cells.append("a word is not in vocabulary" if answers is None else ", ".join(f"{w} ({s:.2f})" for w, s in answers))
        analogy_rows.append((text, *cells))
    blocks.append(Table(("Analogy", "jaxgram top 5", "gensim top 5"), tuple(analogy_rows)))
    oov = {name: probes[name]["oov"] for name in MAIN}
    blocks.append(Paragraph("Probe words out of vocabulary: " + "; ".join(
        f"{name}: {len(words)} of {probes[name]['words']}" + (f" ({', '.join(words)})" if words else "")
        for name, words in oov.items())))
    return blocks


def build_blocks(metrics: dict) -> list:
    corpus = metrics.get("corpus", {})
    train = metrics["config"]["train"]
    blocks = [
        Heading("jaxgram vs gensim Word2Vec on the same corpus", 1),
        Paragraph(f"Corpus: {corpus.get('path', '?')} ({fmt(corpus.get('words'))} words, "
                  f"sha256 {str(corpus.get('sha256', ''))[:12]}). "
                  f"Config: {metrics.get('config_source', '?')}: objective={train['objective']}, D={train['dim']}, "
                  f"window={train['window']}, negative={train['negative']}, epochs={train['epochs']}, "
                  f"min_count={train['min_count']}, sample={train['sample']}, alpha={train['alpha']}."),
        Paragraph("Baseline: " + metrics["baseline"]["note"]),
        Heading("Summary"),
        Table(("Metric", "jaxgram", "gensim"), tuple(trainer_rows(metrics))),
        Paragraph("Analogy accuracy counts only questions whose four words are all in the vocabulary "
                  "(gensim's rule); 3CosAdd matches gensim's evaluate_word_analogies exactly."),
        Heading("Agreement: axes rotate, geometry survives"),
        Table(("Comparison", f"Neighbour overlap@{metrics['config']['eval']['overlap_k']} (Jaccard)",
               "Spearman of cosines", "Procrustes residual", "words / pairs"), tuple(_agreement_rows(metrics))),
        Paragraph("Overlap is the mean Jaccard of top-k neighbour sets over the most frequent words both models know; "
                  "the noise floors show how much the same trainer agrees with itself across seeds. The Procrustes "
                  "residual is ||AR - B|| / ||B|| of unit rows after the best rotation "
                  "(0 = same geometry, about 1.4 = unrelated)."),
        Heading("Analogies per section"),
        Table(("Section", "jaxgram 3CosAdd", "gensim 3CosAdd", "jaxgram 3CosMul", "gensim 3CosMul", "skipped (OOV)"),
              tuple(_section_rows(metrics))),
    ]
    blocks += _probe_blocks(metrics)
    figures = metrics["figures"]
    blocks += [
        Heading("Probe words before and after training (PCA)"),
        Image("pca.png", "PCA of the probe words: jaxgram initial vectors, jaxgram trained, gensim trained",
              pca_figure(figures["pca"])),
        Heading("Cosine heatmap of the probe words"),
        Image("heatmap.png", "Cosine similarity of the probe words, jaxgram and gensim", heatmap_figure(figures["heatmap"])),
        Heading("jaxgram loss per epoch"),
        Table(("Epoch", "Mean loss per pair"), tuple((str(i), fmt(v, 4)) for i, v in enumerate(figures["loss_per_epoch"], 1))),
        Image("loss.png", "jaxgram loss per epoch", loss_figure(figures["loss_per_epoch"])),
        Paragraph("All numbers above are in metrics.json next to this report."),
    ]
    return blocks


# -- renderers ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(map(_md_cell, block.headers)) + " |",
                     "|" + "|".join("---" for _ in block.headers) + "|"]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        elif isinstance(block, Image):
            parts.append(f"![{block.alt}]({block.filename})")
    return "\n\n".join(parts) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%}"""


def render_html(blocks) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>jaxgram vs gensim</title>", f"<style>{_STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in block.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(metrics: dict, out) -> dict[str, Path]:
    """Write report.md, report.html and the PNGs into `out`; return their paths."""
    out = Path(out)
    blocks = build_blocks(metrics)
    paths = {}
    for block in blocks:
        if isinstance(block, Image):
            atomic_write_bytes(out / block.filename, block.png)
            paths[block.filename] = out / block.filename
    paths["report.md"] = out / "report.md"
    paths["report.html"] = out / "report.html"
    atomic_write_text(paths["report.md"], render_markdown(blocks))
    atomic_write_text(paths["report.html"], render_html(blocks))
    return paths
