"""Fault suite, ingest: killed downloads, hostile servers and ids, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_books import ACCESS_DENIED, book, prose, text_path
from fault_server import FaultServer, Reply

from ingest import DownloadConfig, ingest_books
from ingest.cache import RawCache
from jaxgram.fileio import sha256_file

pytestmark = pytest.mark.fault

FAST = DownloadConfig(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff_base=0.01)


def jaxgram_cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxgram", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def assert_cache_matches_index_and_manifest(out: Path) -> dict:
    index = json.loads((out / "raw" / "index.json").read_text())
    for key, entry in index.items():
        assert sha256_file(out / "raw" / entry["file"]) == entry["sha256"], key
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["books"]:
        assert sha256_file(entry["raw_path"]) == entry["sha256"], entry["id"]
        assert index[f"{entry['id']}.text"]["sha256"] == entry["sha256"]
    return manifest


def test_kill_9_mid_download_then_rerun_completes_with_verified_cache(tmp_path):
    """kill -9 while book 2's body is half sent: nothing partial is trusted and the rerun completes."""
    bodies = {i: book(i, prose(i)).encode() for i in (1, 2, 3)}
    out = tmp_path / "out"
    with FaultServer() as server:
        half = len(bodies[2]) // 2
        server.script("/" + text_path(1), Reply(200, bodies[1]))
        server.script("/" + text_path(2), Reply(200, bodies[2], stall=30, stall_after=half), Reply(200, bodies[2]))
        server.script("/" + text_path(3), Reply(200, bodies[3]))
        argv = ["ingest", "--books", "1", "2", "3", "--mirror", server.url, "--out", str(out), "--retries", "0"]
        child = jaxgram_cli(*argv)
        try:
            wait_for(lambda: "/" + text_path(2) in server.requests, 30, "the download of book 2 to start")
            time.sleep(0.3)  # half the body is on the wire; the rest never comes
            assert child.poll() is None, child.communicate()
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.communicate()
        assert child.returncode == -signal.SIGKILL
        # What the killed run left: book 1 verified in the cache, nothing for book 2, no corpus or manifest.
        assert RawCache(out / "raw").get(1, "text") is not None
        assert RawCache(out / "raw").get(2, "text") is None
        assert not (out / "raw" / "2").exists() or not any((out / "raw" / "2").iterdir())
        assert not (out / "manifest.json").exists() and not (out / "corpus.txt").exists()

        rerun = jaxgram_cli(*argv)
        stdout, stderr = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, stderr
    manifest = assert_cache_matches_index_and_manifest(out)
    assert [entry["id"] for entry in manifest["books"]] == [1, 2, 3]
    assert server.requests.count("/" + text_path(1)) == 1  # the finished download was reused, not fetched again
    for entry in manifest["books"]:
        assert Path(entry["raw_path"]).read_bytes() == bodies[entry["id"]]
    assert not list(out.rglob(".tmp-*"))


def test_redirect_to_another_server_is_refused_and_never_contacted(tmp_path):
    """Only the configured server is spoken to: a redirect to another port or host name is refused."""
    body = book(4, prose(4)).encode()
    with FaultServer() as mirror, FaultServer() as elsewhere:
        elsewhere.script("/" + text_path(4), Reply(200, body))
        other_port = f"{elsewhere.url}/{text_path(4)}"
        other_name = mirror.url.replace("127.0.0.1", "localhost") + "/stolen"
        mirror.script("/" + text_path(4), Reply(302, headers={"Location": other_port}))
        mirror.script("/" + text_path(5), Reply(301, headers={"Location": other_name}))
        mirror.script("/" + text_path(6), Reply(200, book(6, prose(6)).encode()))
        report = ingest_books([4, 5, 6], mirror=mirror.url, out=tmp_path, progress=False, config=FAST)
    assert [b.id for b in report.books] == [6]
    assert {e.id for e in report.errors} == {4, 5}
    assert all("another host" in e.message for e in report.errors)
    assert elsewhere.requests == [] and "/stolen" not in mirror.requests


@pytest.mark.parametrize("bad_id", ["../x", "%2e%2e", "..%2F..%2Fetc", "/etc/passwd", "1/../2", "7/../../x", "１２"])
def test_traversal_ids_are_refused_before_any_request_or_write(tmp_path, bad_id):
    """Ids end up in URLs and paths, so anything but ASCII digits is refused: one line, exit 2, nothing written."""
    with FaultServer() as server:
        child = jaxgram_cli("ingest", "--books", "1", bad_id, "--mirror", server.url, "--out", str(tmp_path / "out"))
        stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 2
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr and repr(bad_id) in stderr
    assert server.requests == []
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_tampered_cache_index_cannot_point_outside_the_cache(tmp_path):
    """A cache index entry whose file lies outside raw/ (`../../secret`) is ignored and the book fetched again."""
    secret = tmp_path / "secret.txt"
    secret.write_text(book(8, prose(99)))
    out = tmp_path / "out"
    (out / "raw").mkdir(parents=True)
    (out / "raw" / "index.json").write_text(json.dumps({"8.text": {
        "file": "../../secret.txt", "sha256": sha256_file(secret), "source_url": "x", "bytes": secret.stat().st_size}}))
    body = book(8, prose(8)).encode()
    with FaultServer() as server:
        server.script("/" + text_path(8), Reply(200, body))
        report = ingest_books([8], mirror=server.url, out=out, progress=False, config=FAST)
    assert server.requests == ["/" + text_path(8)]
    assert Path(report.books[0].raw_path).read_bytes() == body
    assert Path(report.books[0].raw_path).resolve().is_relative_to((out / "raw").resolve())


def test_endless_body_is_cut_off_at_the_size_cap(tmp_path):
    """A server that never stops sending is cut off just past max_bytes; the book fails, nothing is cached."""
    cap = 256 * 1024
    with FaultServer() as server:
        server.script("/" + text_path(9), Reply(200, b"word " * 4096, send_length=False, endless=True))
        server.script("/" + text_path(10), Reply(200, book(10, prose(10)).encode()))
        began = time.monotonic()
        report = ingest_books([9, 10], mirror=server.url, out=tmp_path, progress=False,
                              config=DownloadConfig(max_bytes=cap, retries=0, read_timeout=5.0))
        elapsed = time.monotonic() - began
    assert [b.id for b in report.books] == [10]
    assert f"over the {cap}-byte cap" in report.errors[0].message and report.errors[0].id == 9
    assert elapsed < 10
    assert RawCache(tmp_path / "raw").get(9, "text") is None and not (tmp_path / "raw" / "9").exists()


def run_ingest(server_url: str, out: Path, *args: str) -> tuple[int, list[str]]:
    """`jaxgram ingest` of book 31 from `server_url`: exit status and its messages (the progress bar aside)."""
    child = jaxgram_cli("ingest", "--books", "31", "--mirror", server_url, "--out", str(out), *args)
    stdout, stderr = child.communicate(timeout=60)
    assert "Traceback" not in stderr
    return child.returncode, [line for line in stderr.splitlines() if line.startswith("jaxgram ")]


GOOD_31 = book(31, prose(31)).encode()
# What came instead of book 31's text, and what its one-line refusal must say.
HOSTILE = {
    "slow-drip": (Reply(200, GOOD_31, drip=0.2), "not downloaded within the 2 s deadline"),
    "html-page": (Reply(200, ACCESS_DENIED.encode()), "is not a Gutenberg plain text: it is an HTML or XML page"),
    "random-bytes": (Reply(200, random.Random(28).randbytes(8192)), "is not a Gutenberg plain text: it holds NUL bytes"),
    "gzip": (Reply(200, gzip.compress(GOOD_31)), "is not a Gutenberg plain text: it is gzip-compressed data"),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_what_is_not_the_book_is_refused_in_one_line_and_never_cached(tmp_path, kind):
    """A slow drip, an error page, random bytes or gzip served as book 31: one error line, exit 1, within the
    deadline, nothing cached; the rerun against a good server fetches the book and caches it."""
    reply, reason = HOSTILE[kind]
    out, path = tmp_path / "out", "/" + text_path(31)
    with FaultServer() as server:
        server.script(path, reply)
        began = time.monotonic()
        status, messages = run_ingest(server.url, out, "--deadline", "2")
        assert time.monotonic() - began < 10
        assert status == 1 and len(messages) == 1, messages
        assert messages[0].startswith("jaxgram ingest: error: ") and reason in messages[0]
        assert f"{server.url}{path}" in messages[0]
        assert RawCache(out / "raw").get(31, "text") is None and not (out / "raw" / "31").exists()
        assert not (out / "corpus.txt").exists()
        server.script(path, Reply(200, GOOD_31))
        assert run_ingest(server.url, out) == (0, [])
    assert server.requests == [path, path]  # refused once, fetched once: never retried, never reused
    assert RawCache(out / "raw").get(31, "text")[1] == GOOD_31
    assert set((out / "corpus.txt").read_text().split()) <= set(prose(31).lower().replace(".", "").split())


def test_a_poisoned_cache_entry_is_fetched_again(tmp_path):
    """An error page in the cache with its matching hash (what an ingest without the check cached) is not
    trusted: a warning line, the book is fetched again, and the good copy replaces it."""
    out, path = tmp_path / "out", "/" + text_path(31)
    poisoned = RawCache(out / "raw").put(31, "text", "pg31.txt", "http://old-mirror" + path, ACCESS_DENIED.encode())
    with FaultServer() as server:
        server.script(path, Reply(200, GOOD_31))
        status, messages = run_ingest(server.url, out)
    assert status == 0 and server.requests == [path]
    assert messages == [f"jaxgram ingest: warning: book 31: {poisoned.path} is not a Gutenberg plain text: "
                        "it is an HTML or XML page (it starts with <!doctype html); fetched again"]
    assert RawCache(out / "raw").get(31, "text")[1] == GOOD_31
    assert "doctype" not in (out / "corpus.txt").read_text()


def test_a_retry_after_wait_is_announced_on_the_command_line(tmp_path):
    """The CLI says why it goes quiet before it waits for a 503's Retry-After, then gets the book."""
    out, path = tmp_path / "out", "/" + text_path(31)
    with FaultServer() as server:
        server.script(path, Reply(503, headers={"Retry-After": "1"}), Reply(200, GOOD_31))
        status, messages = run_ingest(server.url, out, "--retries", "1")
    assert status == 0
    assert messages == [f"jaxgram ingest: waiting 1 s before retrying {server.url}{path} "
                        "(HTTP 503, Retry-After 1 s; attempt 2 of 2)"]
    assert server.request_times[1] - server.request_times[0] >= 0.95
