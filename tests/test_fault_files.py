"""Fault suite, odd and hostile files: broken books, malformed word2vec files, code hidden in arrays."""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fault_books import LICENCE_ONLY, book, html_path, prose, text_path

from jaxgram.embeddings import Embeddings
from jaxgram.errors import DataError

pytestmark = pytest.mark.fault

REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"^\w+:\s+\d+%\|")
ACCENTED = ("\n\nThe café owner said the naïve visitor don’t know the old river at all, and the "
            "visitor agreed with him and went home again through the quiet town that evening.")


def jaxgram_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxgram", *args], capture_output=True, text=True, timeout=120)


def message_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS.match(line)]


def write(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def corpus_tokens(out: Path, book_id: int) -> list[str]:
    return (out / "clean" / f"{book_id}.txt").read_text().split()


def test_odd_text_books_get_a_clear_message_each_and_the_others_still_ingest(tmp_path):
    """A cp1252 book and a book mixing UTF-8 with cp1252 ingest with a warning and no mojibake; an empty
    book and a licence-only book each fail with their own error line; the good books are in the corpus."""
    mirror, out = tmp_path / "mirror", tmp_path / "out"
    write(mirror, text_path(11), book(11, prose(11) + ACCENTED).encode("utf-8"))
    write(mirror, text_path(12), book(12, prose(12) + ACCENTED).encode("cp1252"))
    mixed = book(13, prose(13) + ACCENTED + "\n\nNAIVE_MARK").encode("utf-8")
    mixed = mixed.replace(b"NAIVE_MARK", ("Another café and a naïve reader who don’t care for anything but the long "
                                          "story of the river that ran past the house for many years.").encode("cp1252"))
    write(mirror, text_path(13), mixed)
    write(mirror, text_path(14), b"")
    write(mirror, text_path(15), LICENCE_ONLY.encode())
    result = jaxgram_cli("ingest", "--books", "11", "12", "13", "14", "15", "--mirror", str(mirror), "--out", str(out))
    assert result.returncode == 1
    lines = message_lines(result.stderr)
    warnings = [line for line in lines if line.startswith("jaxgram ingest: warning: ")]
    errors = [line for line in lines if line.startswith("jaxgram ingest: error: ")]
    assert len(warnings) + len(errors) == len(lines)
    assert [w.split(": ")[2] for w in warnings] == ["book 12", "book 13"]
    assert all("not valid UTF-8" in w and "cp1252" in w for w in warnings)
    assert [e.split(": ")[2] for e in errors] == ["book 14", "book 15"]
    assert "empty" in errors[0] and "no book text" in errors[1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["id"] for b in manifest["books"]] == [11, 12, 13]
    assert [e["id"] for e in manifest["errors"]] == [14, 15]
    for book_id in (11, 12, 13):
        tokens = corpus_tokens(out, book_id)
        assert {"cafe", "naive", "dont"} <= set(tokens), book_id
        assert not {"cafa", "naa", "caf", "na", "ve"} & set(tokens), book_id  # mojibake or split words
    assert corpus_tokens(out, 13).count("cafe") == 2 and corpus_tokens(out, 13).count("naive") == 2


HTML_BOOK = ("<html><head><title>T</title><style>p {{}}</style></head><body>"
             "<div id='pg-header'>The Project Gutenberg eBook of T. This ebook is for the use of anyone.</div>"
             "{body}<div id='pg-footer'>End of the Project Gutenberg EBook. THE FULL PROJECT GUTENBERG LICENSE"
             "</div></body></html>")


def _paragraphs(seed: int) -> str:
    return "".join(f"<p>{paragraph}</p>\n" for paragraph in prose(seed).split("\n\n"))


def test_odd_html_books_get_a_clear_message_each_and_the_others_still_ingest(tmp_path):
    """Malformed markup (unclosed and misnested tags, stray closers, NUL bytes) still yields its prose;
    a cp1252 page without a charset decodes; an empty page and a licence-only page fail one line each."""
    mirror, out = tmp_path / "mirror", tmp_path / "out"
    write(mirror, html_path(21), HTML_BOOK.format(body=_paragraphs(21)).encode())
    # Unclosed tags everywhere; the <title> every Gutenberg page has is what names it as one (ingest/verify.py).
    broken = ("<html><title>The Project Gutenberg eBook of Broken</title><body></table><p>"
              + prose(22).replace("\n\n", "<p><div><b><i>") + "</b></p></span>\x00"
              "<td><p>The old man walked home through the quiet town and thought about the river for many years."
              "<!-- an unterminated comment")
    write(mirror, html_path(22), broken.encode())
    write(mirror, html_path(23), b"")
    write(mirror, html_path(24), HTML_BOOK.format(body="").encode())
    write(mirror, html_path(25), HTML_BOOK.format(body=_paragraphs(25) + f"<p>{ACCENTED.strip()}</p>").encode("cp1252"))
    result = jaxgram_cli("ingest", "--format", "html", "--books", "21", "22", "23", "24", "25", "--mirror",
                         str(mirror), "--out", str(out))
    assert result.returncode == 1
    errors = message_lines(result.stderr)
    assert [e.split(": ")[2] for e in errors] == ["book 23", "book 24"]
    assert "empty" in errors[0] and "no book text" in errors[1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["id"] for b in manifest["books"]] == [21, 22, 25]
    # Every paragraph of the broken page survives, the one after the stray </span> and NUL included.
    assert len(corpus_tokens(out, 22)) >= len(prose(22).split())
    assert "home through the quiet town and thought about the river" in " ".join(corpus_tokens(out, 22))
    assert {"cafe", "naive", "dont"} <= set(corpus_tokens(out, 25))
    for book_id in (21, 22, 25):
        assert not {"gutenberg", "license", "ebook"} & set(corpus_tokens(out, book_id))


# -- word2vec files -------------------------------------------------------------------------------

GOOD_ROW = "w{} 0.1 0.2 0.3\n"


TEXT_CASES = [
    ("count.txt", "3 3\n" + GOOD_ROW.format(0) + GOOD_ROW.format(1), 1),  # header says 3 words, 2 rows
    ("extra.txt", "1 3\n" + GOOD_ROW.format(0) + GOOD_ROW.format(1), 1),  # header says 1 word, 2 rows
    ("dim.txt", "2 4\n" + GOOD_ROW.format(0) + GOOD_ROW.format(1), 2),  # header says 4 values a row
    ("header.txt", "two 3\n" + GOOD_ROW.format(0) + GOOD_ROW.format(1), 1),
    ("short.txt", "3 3\n" + GOOD_ROW.format(0) + "w1 0.1 0.2\n" + GOOD_ROW.format(2), 3),
    ("text.txt", "2 3\n" + GOOD_ROW.format(0) + "w1 0.1 abc 0.3\n", 3),
    ("nan.txt", "2 3\n" + GOOD_ROW.format(0) + "w1 0.1 nan 0.3\n", 3),
    ("inf.txt", "2 3\n" + "w0 inf 0.2 0.3\n" + GOOD_ROW.format(1), 2),
]


@pytest.mark.parametrize("name, content, line", TEXT_CASES, ids=[case[0] for case in TEXT_CASES])
def test_malformed_word2vec_text_is_refused_with_the_line_number(tmp_path, name, content, line):
    """Wrong header counts, short rows, non-numeric or non-finite values: DataError naming the file and line,
    and from `jaxgram neighbors` one line and exit 2."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}.*line {line}\b"):
        Embeddings.load_word2vec_format(path)
    result = jaxgram_cli("neighbors", "w0", "--vectors", str(path))
    assert result.returncode == 2 and result.stdout == ""
    [message] = message_lines(result.stderr)
    assert str(path) in message and f"line {line}" in message


def _binary(rows, count=None, dim=3) -> bytes:
    header = f"{len(rows) if count is None else count} {dim}\n".encode()
    return header + b"".join(word.encode() + b" " + np.asarray(v, "<f4").tobytes() + b"\n" for word, v in rows)


# Words long enough that the files below could hold what their headers declare: the rows are read, and
# the refusal names the row that is missing or short (a file too small for its header is refused at line 1,
# test_a_header_claiming_more_than_the_file_holds_is_refused_before_allocating).
LONG_WORDS = [("apricot", [1, 2, 3]), ("bramble", [4, 5, 6])]

BINARY_CASES = [
    ("count.bin", _binary(LONG_WORDS, count=3), 4),  # row 3 missing
    ("cut.bin", _binary(LONG_WORDS)[:-7], 3),  # row 2 cut short
    ("dim.bin", _binary(LONG_WORDS, dim=4), 3),  # rows hold 3 floats, not 4
    ("nan.bin", _binary([("a", [1, 2, 3]), ("b", [4, np.nan, 6])]), 3),
    ("header.bin", b"2 x\n" + _binary([("a", [1, 2, 3])])[4:], 1),
    ("word.bin", _binary([("a" * 70_000, [1, 2, 3])]), 2),  # no space ends the word within 64 KiB
    ("twice.bin", _binary([("a", [1, 2, 3]), ("b", [4, 5, 6]), ("a", [7, 8, 9])]), 4),
]


@pytest.mark.parametrize("name, data, line", BINARY_CASES, ids=[case[0] for case in BINARY_CASES])
def test_malformed_word2vec_binary_is_refused_with_the_line_number(tmp_path, name, data, line):
    """Rows missing or cut short, a wrong dimension, NaN, a bad header: DataError with the line number."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}.*line {line}\b"):
        Embeddings.load_word2vec_format(path, binary=True)
    result = jaxgram_cli("neighbors", "a", "--vectors", str(path))
    assert result.returncode == 2
    [message] = message_lines(result.stderr)
    assert str(path) in message and f"line {line}" in message


# -- hostile vectors files: headers that claim too much, compression bombs ---------------------------

# Peak RSS a vectors loader may reach whatever a file claims or expands to: the CLI itself takes about
# 120 MiB, the loader a 32 MiB line at most beyond the vectors; reading a bomb below whole takes GiBs.
PEAK_RSS_LIMIT_MIB = 400

# Runs `jaxgram ARGS` as its only child and reports the child's peak RSS: getrusage(RUSAGE_CHILDREN) in this
# test session would count every earlier child too.
_MEASURED_CLI = """
import resource, subprocess, sys
child = subprocess.run([sys.executable, "-m", "jaxgram", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(child.stderr)
print(child.stdout + f"peak_rss_mib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}")
sys.exit(child.returncode)
"""


def jaxgram_cli_peak_rss(*args: str) -> tuple[subprocess.CompletedProcess, int]:
    """The CLI's result (stdout without the measurement) and its peak RSS in MiB."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # BLAS buffers are not the loader's
    result = subprocess.run([sys.executable, "-c", _MEASURED_CLI, *args], capture_output=True, text=True,
                            timeout=120, env=env)
    *output, measured = result.stdout.splitlines(keepends=True)
    result.stdout = "".join(output)
    return result, int(measured.split()[1])


CLAIMS = [  # name, the header's words and dimension, what the refusal says the file can hold
    ("claims.bin", (2_000_000_000, 100), "the file has"),
    ("claims.bin", (3_000_000_000, 3_000_000_000), "the file has"),
    ("claims.txt", (2_000_000_000, 100), "the file has"),
    ("claims.bin.gz", (2_000_000_000, 100), "gzip file of"),
]


@pytest.mark.parametrize("name, claim, holds", CLAIMS, ids=["2e9x100.bin", "3e9x3e9.bin", "2e9x100.txt", "2e9x100.bin.gz"])
def test_a_header_claiming_more_than_the_file_holds_is_refused_before_allocating(tmp_path, name, claim, holds):
    """A 1 KB file whose header declares 2e9 x 100 (745 GiB of floats) or 3e9 x 3e9: one line naming the file,
    the claim and what the file can hold, exit 2, no traceback, and no memory spent on the claim."""
    count, dim = claim
    if ".bin" in name:
        data = _binary([(f"w{i}", [i, 2, 3]) for i in range(60)], count=count, dim=dim)
    else:
        data = f"{count} {dim}\n{''.join(GOOD_ROW.format(i) for i in range(60))}".encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: header \(line 1\) declares {count:,} words"):
        Embeddings.load_word2vec_format(path, binary=".bin" in name)
    result, peak_mib = jaxgram_cli_peak_rss("neighbors", "w1", "--vectors", str(path))
    assert result.returncode == 2 and result.stdout == ""
    [message] = message_lines(result.stderr)
    assert str(path) in message and f"{count:,} words of dimension {dim:,}" in message and holds in message
    assert peak_mib < PEAK_RSS_LIMIT_MIB


def _bomb(path: Path, head: bytes, block: bytes, repeats: int) -> None:
    """`head` then `block` `repeats` times, compressed by the name's suffix: `block` is compressed once and its
    stream repeated (gzip and bzip2 read concatenated streams as one), so a few MB expand to GiBs in no time."""
    compress = gzip.compress if path.suffix == ".gz" else bz2.compress
    path.write_bytes(compress(head) + compress(block) * repeats)


MIB = 1 << 20
BOMBS = [  # name, head, block of 1 MiB or so, repeats, exit status, what stderr (or stdout) says
    # 3 GiB of one line after a `1 3` header: refused once the line passes 32 MiB.
    ("line.txt.gz", b"1 3\nw", b" 0" * (MIB // 2), 3072, 2, "line 2 is longer than 33,554,432 bytes"),
    # A header within gzip's bound (1032-fold), then 3 GiB of the same row: refused at its second copy.
    ("rows.txt.gz", b"1000000 1000\n", (b"w" + b" 0" * 1000 + b"\n") * 512, 3072, 2, "line 3 repeats the word 'w'"),
    # bzip2 has no useful bound, so any claim passes the header check; the rows are refused as they come.
    ("rows.txt.bz2", b"2000000000 1000\n", (b"w" + b" 0" * 1000 + b"\n") * 512, 3072, 2, "line 3 repeats"),
    # A valid file followed by 384 MiB of newlines: read to the end, a chunk at a time, and loaded.
    ("newlines.bin.gz", _binary([("a", [1, 2, 3]), ("b", [1, 2, 4])]), b"\n" * MIB, 384, 0, "b\t"),
]


@pytest.mark.parametrize("name, head, block, repeats, status, says", BOMBS, ids=[bomb[0] for bomb in BOMBS])
def test_a_compression_bomb_is_read_as_a_stream_in_bounded_memory(tmp_path, name, head, block, repeats, status, says):
    """A few MB of .gz or .bz2 that expand to GiBs (one endless line, a lying header over repeated rows, endless
    newlines) are decompressed as they are read, never whole: refused in one line or loaded, and the CLI's
    peak RSS stays far below what the file expands to."""
    path = tmp_path / name
    _bomb(path, head, block, repeats)
    assert path.stat().st_size < 6 * MIB
    result, peak_mib = jaxgram_cli_peak_rss("neighbors", "a" if status == 0 else "w", "--vectors", str(path))
    assert result.returncode == status, result.stderr[-2000:]
    if status == 0:
        assert result.stdout.startswith(says)
    else:
        [message] = message_lines(result.stderr)
        assert str(path) in message and says in message
    assert peak_mib < PEAK_RSS_LIMIT_MIB


# -- nothing that runs code ---------------------------------------------------------------------

# Anything that can turn file contents into running code. Checked in every source file.
CODE_RUNNERS = {
    "pickle": re.compile(r"\b(?:c?pickle|dill|cloudpickle|joblib|marshal|shelve)\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "eval()/exec()": re.compile(r"(?<![\w.])(?:eval|exec)\s*\("),
    "yaml.load": re.compile(r"\byaml\.(?:load|unsafe_load|full_load)\b"),
    "torch.load": re.compile(r"\btorch\.load\b"),
    "gensim .load() (pickle)": re.compile(r"\b(?:KeyedVectors|Word2Vec|utils)\.load\s*\("),
}


def test_no_load_path_can_run_code():
    """No pickle, eval/exec, yaml.load or pickle-based gensim load in jaxgram/, ingest/ or eval/;
    every np.load says allow_pickle=False. (Docstrings may say "no pickle": prose is skipped.)"""
    sources = [p for package in ("jaxgram", "ingest", "eval") for p in sorted((REPO / package).rglob("*.py"))]
    assert len(sources) > 20
    found = []
    for path in sources:
        found += [f"{path.relative_to(REPO)}: {hit}" for hit in _code_runners(path.read_text(encoding="utf-8"))]
    assert found == []


def _code_runners(source: str) -> list[str]:
    code = _code_only(source)
    hits = [f"{what}: {m.group(0)}" for what, pattern in CODE_RUNNERS.items() for m in pattern.finditer(code)]
    for node in ast.walk(ast.parse(source)):
        # np.load / numpy.load must say allow_pickle=False in the call itself.
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy")):
            safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                       for k in node.keywords)
            if not safe:
                hits.append(f"np.load without allow_pickle=False: line {node.lineno}")
    return hits


def _code_only(source: str) -> str:
    """The source with comments and string literals blanked (a docstring saying "no pickle" is fine)."""
    import tokenize

    lines = source.splitlines(keepends=True)
    blanked = [list(line) for line in lines]
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            (row0, col0), (row1, col1) = token.start, token.end
            for row in range(row0, row1 + 1):
                start = col0 if row == row0 else 0
                end = col1 if row == row1 else len(blanked[row - 1])
                for col in range(start, end):
                    if blanked[row - 1][col] != "\n":
                        blanked[row - 1][col] = " "
    return "".join("".join(line) for line in blanked)


def test_the_scan_would_catch_a_pickle_load():
    """The scanner itself can fail: each forbidden form in code is found, the same words in prose are not."""
    source = ('"""no pickle here"""\nimport pickle\nx = np.load(f(p))\ny = eval("1")  # eval( in a comment\n'
              'z = np.load(io.BytesIO(b), allow_pickle=False)\n')
    hits = [hit.split(":")[0] for hit in _code_runners(source)]
    assert sorted(hits) == ["eval()/exec()", "np.load without allow_pickle=False", "pickle"]


class _Trap:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _object_npy(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Trap(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_arrays_carrying_pickled_code_are_refused_by_every_loader(tmp_path):
    """An object array whose unpickling would create a file: the checkpoint, corpus.npy and init_E.npy
    loaders refuse it with a DataError naming the file, and the file is never created."""
    from eval.evaluate import load_initial
    from jaxgram import checkpoint
    from jaxgram.vocab import load_encoded_npy

    marker = tmp_path / "code-ran"
    payload = _object_npy(marker)
    assert np.load(io.BytesIO(payload), allow_pickle=True) is not None and marker.exists()  # the trap works
    marker.unlink()

    folder = tmp_path / "checkpoint"
    # checkpoint.save writes a valid manifest with every checksum right: only the loader stands in the way.
    checkpoint.save(folder, {"E": np.array([_Trap(marker)], dtype=object)}, {"epochs_done": 1})
    assert not marker.exists()
    with pytest.raises(DataError, match="epoch-1.npz"):
        checkpoint.load(folder)
    (tmp_path / "corpus.npy").write_bytes(payload)
    with pytest.raises(DataError, match="corpus.npy"):
        load_encoded_npy(tmp_path / "corpus.npy")
    run = tmp_path / "run"
    run.mkdir()
    (run / "init_E.npy").write_bytes(payload)
    with pytest.raises(DataError, match="init_E.npy"):
        load_initial(run, ["a"])
    assert not marker.exists()
