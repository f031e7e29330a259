"""jaxgram.tables: one fixed-width table printer for the toy, ingest and pipeline summaries."""

from pathlib import Path

import pytest

from eval import pipeline
from ingest.pipeline import BookError, BookResult, IngestReport
from jaxgram.tables import table_lines
from jaxgram.toy import ToyReport


def test_columns_fit_their_longest_cell_and_align_as_asked():
    lines = table_lines(("name", "n"), [("a", "1"), ("bb", "100")], "<>")
    assert lines == ["name    n", "a       1", "bb    100"]


def test_a_rule_underlines_each_column_and_trailing_blanks_go():
    lines = table_lines(("id", "note"), [("1", ""), ("22", "x")], "<<", rule="-")
    assert lines == ["id  note", "--  ----", "1", "22  x"]


def test_given_widths_are_kept_and_a_longer_cell_overflows_like_an_f_string():
    lines = table_lines(("pair", "run 1"), [("cos(car,elephant)", "-0.031")], "<>", widths=(16, 10), gap="")
    assert lines == [f"{'pair':<16}{'run 1':>10}", f"{'cos(car,elephant)':<16}{'-0.031':>10}"]


def test_align_needs_one_side_per_column():
    with pytest.raises(ValueError, match="align"):
        table_lines(("a", "b"), [], "<")
    with pytest.raises(ValueError, match="align"):
        table_lines(("a", "b"), [], "<^")


def test_toy_report_table_is_unchanged():
    report = ToyReport(vocab_size=48, pair_count=1234, pairs_trained=1234,
                       cosines=[{"car,plane": 0.9991, "car,elephant": -0.0312}, {"car,plane": 0.998, "car,elephant": 0.05}],
                       coordinate_correlation=0.0123, neighbour_overlap=0.85, procrustes_residual=0.14,
                       nearest_to_car=["plane", "plane"])
    assert report.format().split("\n")[:6] == [
        "vocabulary size: 48", "training pairs per epoch: 1234", "",
        "pair                 run 1     run 2",
        "cos(car,plane)       0.999     0.998",
        "cos(car,elephant)    -0.031     0.050",
    ]


def test_ingest_summary_table_is_unchanged():
    book = BookResult(id=600, title="Notes from the Underground, a very long title", source_url="u", raw_path="r",
                      sha256="s", bytes=123456, tokens=45678, sentences=3456, lines_removed=12, clean_path="c",
                      from_cache=True)
    report = IngestReport(Path("out/corpus.txt"), Path("out/manifest.json"), "text", "src", [book], [BookError(7, "x")])
    assert report.summary().split("\n") == [
        "id     title                               tokens  sentences  removed  raw bytes  source",
        "-----  ----------------------------------  ------  ---------  -------  ---------  ------",
        "600    Notes from the Underground, a very  45,678      3,456       12    123,456  cache",
        "7      FAILED                                   -          -        -          -  -",
        "total  1 book(s)                           45,678      3,456",
        "corpus: out/corpus.txt",
        "manifest: out/manifest.json",
    ]


def test_pipeline_summary_table_is_unchanged(monkeypatch):
    rows = [("Wall time (s)", "19.5", "15.4"), ("Words/s", "1,000,000", "1,270,000")]
    monkeypatch.setattr(pipeline.report_module, "trainer_rows", lambda metrics: rows)
    stages = {"ingest": {"status": "ran", "seconds": 1.234, "key": "k"},
              "jaxgram": {"status": "reused", "seconds": None, "key": "k"}}
    result = pipeline.PipelineResult(Path("/runs/x"), stages, {"agreement": {"jaxgram_vs_gensim": {"overlap_at_k": 0.41}}})
    assert pipeline.summary_table(result).split("\n")[:8] == [
        "stage        status   seconds",
        "ingest       ran          1.2",
        "jaxgram      reused         -",
        "",
        "metric                          jaxgram      gensim",
        "Wall time (s)                      19.5        15.4",
        "Words/s                       1,000,000   1,270,000",
        "overlap@k jaxgram vs gensim       0.410",
    ]
