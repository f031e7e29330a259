"""Downloads over real HTTP on 127.0.0.1: retries, refusals, caps, fallbacks, local folders."""

from __future__ import annotations

import socket
import time

import pytest
from fault_server import FaultServer, Reply

from ingest.download import (
    DEFAULT_MIRROR,
    DownloadConfig,
    HttpSource,
    LocalSource,
    candidate_paths,
    fetch_book,
    open_source,
    parse_retry_after,
)
from ingest.errors import BookNotFound, DownloadError, HostUnreachable
from jaxgram.errors import ConfigError

BODY = b"Some book text.\n" * 200
PATH = "/cache/epub/7/pg7.txt"
# Small timeouts and backoff keep the fault tests fast; the defaults are for gutenberg.org.
FAST = DownloadConfig(connect_timeout=2.0, read_timeout=0.5, retries=2, backoff_base=0.01)


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


def source(server, config=FAST) -> HttpSource:
    return HttpSource(server.url, config)


def test_500_then_200_recovers(server):
    server.script(PATH, Reply(500), Reply(200, BODY))
    assert source(server).fetch(PATH.lstrip("/")) == BODY
    assert server.requests == [PATH, PATH]


def test_503_every_time_gives_up_with_status(server):
    server.script(PATH, Reply(503))
    with pytest.raises(DownloadError) as info:
        source(server).fetch(PATH.lstrip("/"))
    assert info.value.status == 503 and info.value.url == server.url + PATH
    assert len(server.requests) == FAST.retries + 1


def test_429_honours_retry_after(server):
    server.script(PATH, Reply(429, headers={"Retry-After": "1"}), Reply(200, BODY))
    assert source(server).fetch(PATH.lstrip("/")) == BODY
    gap = server.request_times[1] - server.request_times[0]
    assert gap >= 0.9  # the backoff alone would have waited 0.01 s


def test_a_long_retry_after_is_capped_and_announced_before_the_wait(server):
    """A server asking for a day's pause gets retry_after_max, and a line saying so before it goes quiet."""
    server.script(PATH, Reply(503, headers={"Retry-After": "86400"}), Reply(200, BODY))
    notices = []
    http = HttpSource(server.url, DownloadConfig(retries=1, retry_after_max=0.5),
                      notify=lambda line: notices.append((time.monotonic(), line)))
    assert http.fetch(PATH.lstrip("/")) == BODY
    [(said_at, line)] = notices
    assert line == (f"waiting 0.5 s before retrying {server.url}{PATH} "
                    "(HTTP 503, Retry-After 86400 s, capped at retry_after_max=0.5 s; attempt 2 of 2)")
    first, second = server.request_times
    assert first < said_at < second and 0.45 <= second - first < 5


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_read_timeout_is_retried(server):
    server.script(PATH, Reply(200, BODY, stall=1.5), Reply(200, BODY))
    assert source(server).fetch(PATH.lstrip("/")) == BODY
    assert len(server.requests) == 2


def test_read_timeout_every_time_is_a_download_error_not_unreachable(server):
    server.script(PATH, Reply(200, BODY, stall=1.5))
    with pytest.raises(DownloadError) as info:
        source(server, DownloadConfig(read_timeout=0.3, retries=1, backoff_base=0.01)).fetch(PATH.lstrip("/"))
    assert not isinstance(info.value, HostUnreachable)


def test_body_shorter_than_content_length_is_retried(server):
    server.script(PATH, Reply(200, BODY[:100], content_length=len(BODY)), Reply(200, BODY))
    assert source(server).fetch(PATH.lstrip("/")) == BODY
    assert len(server.requests) == 2


@pytest.mark.parametrize("sent", [1000, 100_000])  # inside the first 64 kB read, and past it
def test_an_interrupted_body_counts_the_bytes_that_came(server, sent):
    server.script(PATH, Reply(200, b"x" * sent, content_length=2 * sent))
    with pytest.raises(DownloadError, match=f"body interrupted after {sent} bytes"):
        source(server, DownloadConfig(retries=0)).fetch(PATH.lstrip("/"))


def test_a_slow_drip_is_cut_off_at_the_deadline_and_not_retried(server):
    """Two bytes every 0.1 s never trip the read timeout; the wall-clock deadline stops the download."""
    server.script(PATH, Reply(200, BODY, drip=0.1))
    config = DownloadConfig(read_timeout=5.0, deadline=1.0, retries=2, backoff_base=0.01)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"not downloaded within the 1 s deadline \(\d+ bytes received\)") as info:
        source(server, config).fetch(PATH.lstrip("/"))
    assert 1.0 <= time.monotonic() - started < 2.0
    assert info.value.url == server.url + PATH and server.requests == [PATH]


def test_body_always_short_fails(server):
    server.script(PATH, Reply(200, BODY[:100], content_length=len(BODY)))
    with pytest.raises(DownloadError, match="shorter than Content-Length|interrupted"):
        source(server).fetch(PATH.lstrip("/"))


def test_redirect_to_another_host_is_refused(server):
    server.script(PATH, Reply(302, headers={"Location": "http://elsewhere.invalid/pg7.txt"}))
    with pytest.raises(DownloadError, match="another host") as info:
        source(server).fetch(PATH.lstrip("/"))
    assert info.value.status == 302
    assert server.requests == [PATH]  # refused, not retried and not followed


def test_redirect_on_the_same_host_is_followed(server):
    server.script(PATH, Reply(301, headers={"Location": "/files/7/7-0.txt"}))
    server.script("/files/7/7-0.txt", Reply(200, BODY))
    assert source(server).fetch(PATH.lstrip("/")) == BODY
    assert server.requests == [PATH, "/files/7/7-0.txt"]


def test_declared_oversize_body_is_refused(server):
    server.script(PATH, Reply(200, BODY))
    with pytest.raises(DownloadError, match="cap"):
        source(server, DownloadConfig(max_bytes=1000, backoff_base=0.01)).fetch(PATH.lstrip("/"))
    assert len(server.requests) == 1


def test_undeclared_oversize_stream_is_aborted(server):
    big = b"x" * 300_000
    server.script(PATH, Reply(200, big, send_length=False))
    with pytest.raises(DownloadError, match="over the 100000-byte cap; aborted"):
        source(server, DownloadConfig(max_bytes=100_000, backoff_base=0.01)).fetch(PATH.lstrip("/"))


def test_default_size_cap_is_50_mb():
    assert DownloadConfig().max_bytes == 50 * 1024 * 1024


def test_404_everywhere_names_id_and_every_url(server):
    with pytest.raises(BookNotFound) as info:
        fetch_book(source(server), 7, "text")
    message = str(info.value)
    assert "book 7" in message
    for path in candidate_paths(7, "text"):
        assert f"{server.url}/{path}" in message
    assert server.requests == ["/" + path for path in candidate_paths(7, "text")]


def test_falls_back_to_legacy_path(server):
    server.script("/files/7/7-0.txt", Reply(200, BODY))
    path, url, body = fetch_book(source(server), 7, "text")
    assert (path, body) == ("files/7/7-0.txt", BODY)
    assert url == server.url + "/files/7/7-0.txt"
    assert server.requests == ["/cache/epub/7/pg7.txt", "/files/7/7-0.txt"]  # plain text first


def test_html_format_uses_the_html_edition(server):
    server.script("/cache/epub/7/pg7-images.html", Reply(200, b"<p>x</p>"))
    assert fetch_book(source(server), 7, "html")[0] == "cache/epub/7/pg7-images.html"


def test_descriptive_user_agent_is_sent(server):
    server.script(PATH, Reply(200, BODY))
    source(server).fetch(PATH.lstrip("/"))
    agent = server.request_headers[0]["User-Agent"]
    assert agent.startswith("jaxgram-ingest/") and "python-requests" not in agent


def test_no_pause_between_requests_to_loopback(server):
    server.script(PATH, Reply(200, BODY))
    http = HttpSource(server.url, DownloadConfig())  # default config: pauses only for gutenberg.org
    started = time.monotonic()
    for _ in range(3):
        http.fetch(PATH.lstrip("/"))
    assert time.monotonic() - started < 1.0


def test_pause_between_requests_to_polite_hosts(server):
    server.script(PATH, Reply(200, BODY))
    http = HttpSource(server.url, DownloadConfig(polite_hosts=("127.0.0.1",), polite_interval=0.3))
    for _ in range(3):
        http.fetch(PATH.lstrip("/"))
    gaps = [b - a for a, b in zip(server.request_times, server.request_times[1:])]
    assert min(gaps) >= 0.28


def test_gutenberg_org_is_a_polite_host_by_default():
    http = HttpSource(DEFAULT_MIRROR)
    assert http.needs_pause("https://www.gutenberg.org/cache/epub/600/pg600.txt")
    assert http.needs_pause("https://gutenberg.org/files/600/600-0.txt")
    assert not http.needs_pause("http://127.0.0.1:8000/cache/epub/600/pg600.txt")
    assert not http.needs_pause("https://notgutenberg.org/x")
    assert DownloadConfig().polite_interval >= 2.0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_host_suggests_mirror():
    http = HttpSource(f"http://127.0.0.1:{closed_port()}", DownloadConfig(retries=1, backoff_base=0.01))
    with pytest.raises(HostUnreachable, match="--mirror"):
        http.fetch("cache/epub/7/pg7.txt")


def test_local_folder_source(tmp_path):
    folder = tmp_path / "cache" / "epub" / "7"
    folder.mkdir(parents=True)
    (folder / "pg7.txt").write_bytes(BODY)
    local = open_source(tmp_path)
    assert isinstance(local, LocalSource)
    _, url, body = fetch_book(local, 7, "text")
    assert body == BODY and url == str(folder / "pg7.txt")
    assert local.fetch("../../etc/passwd") is None  # never reads outside the folder
    with pytest.raises(BookNotFound, match="book 8"):
        fetch_book(local, 8, "text")


def test_open_source_choices(tmp_path):
    assert isinstance(open_source(None), HttpSource) and open_source(None).base_url == DEFAULT_MIRROR + "/"
    assert isinstance(open_source("http://127.0.0.1:1"), HttpSource)
    with pytest.raises(ConfigError, match="--mirror"):
        open_source(tmp_path / "missing")


@pytest.mark.parametrize("field, value", [("retries", -1), ("read_timeout", 0), ("max_bytes", 0), ("retries", "3"),
                                          ("deadline", 0), ("deadline", -1.0), ("min_bytes", -1),
                                          ("read_timeout", True), ("polite_hosts", ("gutenberg.org", 1))])
def test_config_validation(field, value):
    with pytest.raises(ConfigError, match=field):
        DownloadConfig(**{field: value})
