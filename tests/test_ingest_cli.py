"""`jaxgram ingest` from the command line: summary, exit statuses, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from jaxgram.cli import main


def test_ingest_prints_table_and_corpus_path(gutenberg_dir, tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["ingest", "--books", "600", "40745", "--mirror", str(gutenberg_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["id", "title", "tokens"]
    assert any(line.startswith("600 ") and "Notes from the Underground" in line for line in lines)
    assert any(line.startswith("40745 ") for line in lines)
    total = next(line for line in lines if line.startswith("total"))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert f"{manifest['tokens']:,}" in total
    assert f"corpus: {out / 'corpus.txt'}" in captured.out
    assert "ingest" in captured.err and "book" in captured.err  # tqdm progress bar goes to stderr
    assert (out / "clean" / "600.txt").is_file() and (out / "raw").is_dir()


def test_default_out_is_data(gutenberg_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["ingest", "--books", "600", "--mirror", str(gutenberg_dir)]) == 0
    assert (tmp_path / "data" / "corpus.txt").is_file()


def test_html_format(gutenberg_dir, tmp_path, capsys):
    assert main(["ingest", "--books", "600", "--format", "html", "--mirror", str(gutenberg_dir),
                 "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "html" and manifest["books"][0]["source_url"].endswith("pg600-images.html")


def test_bad_book_id_is_one_line_exit_2(tmp_path, capsys):
    assert main(["ingest", "--books", "600", "../etc", "--mirror", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["jaxgram ingest: error: book id '../etc' is not allowed: a book id is a positive integer such as 2638"]
    assert not (tmp_path / "o").exists()


def test_missing_book_exits_non_zero_after_writing_the_rest(gutenberg_dir, tmp_path, capsys):
    status = main(["ingest", "--books", "600", "999999", "--mirror", str(gutenberg_dir), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 1
    assert "error: book 999999: not found" in captured.err and "pg999999.txt" in captured.err
    assert (tmp_path / "corpus.txt").stat().st_size > 0


def test_unreachable_host_one_line_no_traceback(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "jaxgram", "ingest", "--books", "600", "--mirror", f"http://127.0.0.1:{port}",
         "--out", str(tmp_path / "data"), "--retries", "1"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and error_lines[0].startswith("jaxgram ingest: error: cannot reach 127.0.0.1")
    assert "--mirror" in error_lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "corpus.txt").exists()


def test_negative_retries_refused(tmp_path, capsys):
    assert main(["ingest", "--books", "600", "--mirror", str(tmp_path), "--retries", "-1"]) == 2
    assert "retries=-1 is not allowed" in capsys.readouterr().err


def test_deadline_must_be_positive(tmp_path, capsys):
    assert main(["ingest", "--books", "600", "--mirror", str(tmp_path), "--deadline", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "jaxgram ingest: error: deadline=0.0 is not allowed: it must be > 0 seconds")
