"""Fetch raw Gutenberg files over HTTP (one polite requests.Session) or from a local folder.

Both sources take paths relative to gutenberg.org's layout (`cache/epub/{id}/pg{id}.txt`)
and return the body, or None for "not there" (HTTP 404/410, missing file), so the
caller can fall back along the known paths.
"""

from __future__ import annotations

import email.utils
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from tqdm import tqdm

from ingest.errors import BookNotFound, DownloadError, HostUnreachable
from jaxgram.errors import ConfigError
from jaxgram.validation import check_fields

DEFAULT_MIRROR = "https://www.gutenberg.org"
USER_AGENT = (
    "jaxgram-ingest/0.1 (word-embedding corpus builder; one request at a time, "
    "2 s apart; https://www.gutenberg.org/policy/robot_access.html)"
)
# Known paths of each edition, best first (see ../shared/gutenberg/README.md).
TEXT_PATHS = (
    "cache/epub/{id}/pg{id}.txt",
    "files/{id}/{id}-0.txt",
    "files/{id}/{id}.txt",
    "files/{id}/{id}-8.txt",
)
HTML_PATHS = (
    "cache/epub/{id}/pg{id}-images.html",
    "cache/epub/{id}/pg{id}.html",
    "files/{id}/{id}-h/{id}-h.htm",
)
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_NOT_FOUND = frozenset({404, 410})
_CHUNK = 1 << 16


@dataclass(frozen=True)
class DownloadConfig:
    """How downloads behave; the defaults are polite to gutenberg.org."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # for each socket read: a server that drips bytes never trips it
    # Wall-clock seconds for one attempt, request to last byte: 2 MB at 7 kB/s. Checked after every
    # read, so a download stops at most one read (read_timeout) past it. Not retried: a server that
    # slow would make each retry wait as long again.
    deadline: float = 300.0
    retries: int = 3  # extra attempts after the first
    backoff_base: float = 1.0  # seconds; attempt n waits backoff_base * 2**n
    backoff_max: float = 60.0
    retry_after_max: float = 120.0  # a longer Retry-After is capped to this
    max_bytes: int = 50 * 1024 * 1024
    min_bytes: int = 2048  # a smaller body is not a book (with its licence text a Gutenberg file is far larger)
    polite_interval: float = 2.0  # seconds between requests to polite_hosts
    polite_hosts: tuple[str, ...] = ("gutenberg.org",)
    max_redirects: int = 5
    user_agent: str = USER_AGENT

    def __post_init__(self):
        check_fields(self)
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed: it must be > 0 seconds")
        for name in ("retries", "backoff_base", "backoff_max", "retry_after_max", "polite_interval", "max_redirects",
                     "min_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed: it must be >= 0")
        if self.max_bytes <= 0:
            raise ConfigError(f"max_bytes={self.max_bytes!r} is not allowed: it must be a positive byte count")


class Source(Protocol):
    description: str

    def url_for(self, path: str) -> str: ...

    def fetch(self, path: str) -> bytes | None: ...


def candidate_paths(book_id: int, fmt: str) -> list[str]:
    templates = {"text": TEXT_PATHS, "html": HTML_PATHS}.get(fmt)
    if templates is None:
        raise ConfigError(f"format {fmt!r} is not allowed: use 'text' or 'html'")
    return [template.format(id=book_id) for template in templates]


def fetch_book(source: Source, book_id: int, fmt: str) -> tuple[str, str, bytes]:
    """(relative path, URL, body) of the first known path that exists; BookNotFound names them all."""
    tried = []
    for path in candidate_paths(book_id, fmt):
        body = source.fetch(path)
        if body is not None:
            return path, source.url_for(path), body
        tried.append(source.url_for(path))
    raise BookNotFound(book_id, tried)


class LocalSource:
    """A folder with gutenberg.org's layout; no network, no pauses."""

    def __init__(self, root: str | Path, config: DownloadConfig = DownloadConfig()):
        self.root = Path(root).resolve()
        self.config = config
        self.description = str(self.root)

    def url_for(self, path: str) -> str:
        return str(self.root / path)

    def fetch(self, path: str) -> bytes | None:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        size = target.stat().st_size
        if size > self.config.max_bytes:
            raise DownloadError(f"{target} is {size} bytes, over the {self.config.max_bytes}-byte cap", url=str(target))
        return target.read_bytes()


class _Retryable(Exception):
    """One failed attempt worth repeating; `wait` is a server-requested pause in seconds."""

    def __init__(self, message: str, *, status: int | None = None, wait: float | None = None, connect: bool = False):
        super().__init__(message)
        self.status = status
        self.wait = wait
        self.connect = connect


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _connection_reason(exc: BaseException) -> str:
    """The useful part of a requests connection error ("[Errno 111] Connection refused")."""
    text = " ".join(str(exc).split())
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if errno:
        return errno.group(0).strip()
    if "timed out" in text.lower():
        return "connection timed out"
    return _one_line(exc)


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_server(url: str, target: str) -> bool:
    """True if `target` is served by the server of `url`: same host (www. aside) and port.

    The one change allowed is http -> https on the default ports (gutenberg.org does it);
    another port on the same host is another server, and https -> http is a downgrade.
    """
    here, there = urlsplit(url), urlsplit(target)
    if _host(url) != _host(target) or there.scheme not in _DEFAULT_PORTS:
        return False
    try:
        ports = (here.port or _DEFAULT_PORTS.get(here.scheme), there.port or _DEFAULT_PORTS[there.scheme])
    except ValueError:  # a port that is not a number
        return False
    if here.scheme == there.scheme:
        return ports[0] == ports[1]
    return (here.scheme, there.scheme) == ("http", "https") and ports == (80, 443)


def print_notice(line: str) -> None:
    """A line on stderr that leaves the progress bar whole."""
    tqdm.write(f"jaxgram ingest: {line}", file=sys.stderr)


def _pieces(raw) -> Iterator[bytes]:
    """A response body as it arrives. read1 returns after one socket read, so the reader can stop
    between reads (urllib3 < 2 has no read1: read waits for a whole chunk)."""
    read = getattr(raw, "read1", raw.read)
    while piece := read(_CHUNK, decode_content=True):
        yield piece


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpSource:
    """A server with gutenberg.org's layout, fetched through one requests.Session, one request at a time."""

    def __init__(
        self,
        base_url: str = DEFAULT_MIRROR,
        config: DownloadConfig = DownloadConfig(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        notify: Callable[[str], None] = print_notice,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.config = config
        self.session = session if session is not None else requests.Session()
        self.description = self.base_url
        self._sleep = sleep
        self._clock = clock
        self._notify = notify  # says why a download is quiet: a wait before a retry
        self._last_request: float | None = None
        self._lock = threading.Lock()  # one request at a time, even if shared across threads

    def url_for(self, path: str) -> str:
        return urljoin(self.base_url, path)

    def fetch(self, path: str) -> bytes | None:
        with self._lock:
            return self._fetch_with_retries(self.url_for(path))

    def needs_pause(self, url: str) -> bool:
        """True for hosts that asked for a pause between requests (gutenberg.org), False for mirrors."""
        host = _host(url)
        return any(host == name or host.endswith("." + name) for name in self.config.polite_hosts)

    def _throttle(self, url: str) -> None:
        if self.needs_pause(url) and self._last_request is not None:
            wait = self._last_request + self.config.polite_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _backoff(self, attempt: int) -> float:
        return min(self.config.backoff_max, self.config.backoff_base * 2**attempt)

    def _wait_before_retry(self, url: str, failure: _Retryable, attempt: int) -> None:
        """Say why it goes quiet, then wait: the server's Retry-After (capped), else the backoff."""
        cap = self.config.retry_after_max
        if failure.wait is None:
            wait, why = self._backoff(attempt - 1), str(failure)
        else:
            wait = min(failure.wait, cap)
            capped = f", capped at retry_after_max={cap:g} s" if failure.wait > cap else ""
            why = f"{failure}, Retry-After {failure.wait:g} s{capped}"
        self._notify(f"waiting {wait:g} s before retrying {url} ({why}; attempt {attempt + 1} of {self.config.retries + 1})")
        self._sleep(wait)

    def _fetch_with_retries(self, url: str) -> bytes | None:
        last: _Retryable | None = None
        for attempt in range(self.config.retries + 1):
            if last is not None:
                self._wait_before_retry(url, last, attempt)
            try:
                return self._attempt(url)
            except _Retryable as failure:
                last = failure
        assert last is not None
        tries = self.config.retries + 1
        if last.connect:
            raise HostUnreachable(
                f"cannot reach {urlsplit(url).netloc} ({last}) after {tries} attempt(s); check the network, "
                f"or use --mirror URL|DIR for a mirror or a local copy of gutenberg.org's /cache/epub/ layout",
                url=url,
            )
        raise DownloadError(f"{url}: {last} (gave up after {tries} attempt(s))", url=url, status=last.status)

    def _attempt(self, url: str) -> bytes | None:
        current = url
        deadline_at = self._clock() + self.config.deadline
        for _ in range(self.config.max_redirects + 1):
            self._throttle(current)
            try:
                # identity encoding: Content-Length then counts the bytes we read, so truncation shows.
                response = self.session.get(
                    current,
                    headers={"User-Agent": self.config.user_agent, "Accept-Encoding": "identity"},
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.ReadTimeout as exc:
                raise _Retryable(f"read timed out: {_one_line(exc)}") from exc
            except requests.ConnectionError as exc:
                raise _Retryable(_connection_reason(exc), connect=True) from exc
            except requests.RequestException as exc:
                raise DownloadError(f"{current}: {_one_line(exc)}", url=current) from exc
            with response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("Location", ""))
                    if not _same_server(url, target):
                        raise DownloadError(
                            f"{current} redirects to another host ({target}); refused", url=current,
                            status=response.status_code,
                        )
                    current = target
                    continue
                return self._read(current, response, deadline_at)
        raise DownloadError(f"{url}: more than {self.config.max_redirects} redirects", url=url)

    def _check_deadline(self, url: str, deadline_at: float, received: int) -> None:
        if self._clock() > deadline_at:
            raise DownloadError(
                f"{url}: not downloaded within the {self.config.deadline:g} s deadline ({received} bytes received); "
                "not retried (a slow link needs a longer deadline: --deadline SECONDS)", url=url, status=200,
            )

    def _read(self, url: str, response: requests.Response, deadline_at: float) -> bytes | None:
        status = response.status_code
        if status in _NOT_FOUND:
            return None
        if status in _RETRY_STATUSES:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise _Retryable(f"HTTP {status}", status=status, wait=wait)
        if status != 200:
            raise DownloadError(f"{url}: HTTP {status}", url=url, status=status)
        cap = self.config.max_bytes
        declared = response.headers.get("Content-Length")
        expected = int(declared) if declared and declared.isdigit() else None
        if expected is not None and expected > cap:
            raise DownloadError(f"{url}: Content-Length {expected} is over the {cap}-byte cap", url=url, status=status)
        chunks, size = [], 0
        self._check_deadline(url, deadline_at, size)
        try:
            for chunk in _pieces(response.raw):
                size += len(chunk)
                if size > cap:
                    raise DownloadError(f"{url}: body is over the {cap}-byte cap; aborted", url=url, status=status)
                chunks.append(chunk)
                self._check_deadline(url, deadline_at, size)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"body interrupted after {size} bytes: {_one_line(exc)}", status=status) from exc
        if expected is not None and size < expected:
            raise _Retryable(f"body shorter than Content-Length ({size} < {expected} bytes)", status=status)
        return b"".join(chunks)


def open_source(mirror: str | Path | None, config: DownloadConfig = DownloadConfig(), session=None) -> Source:
    """None -> gutenberg.org; an http(s) URL -> that server; an existing folder -> local files."""
    if mirror is None:
        return HttpSource(DEFAULT_MIRROR, config, session)
    text = str(mirror)
    if urlsplit(text).scheme in ("http", "https"):
        return HttpSource(text, config, session)
    if Path(text).is_dir():
        return LocalSource(text, config)
    raise ConfigError(
        f"--mirror {text!r} is not allowed: give an http(s) URL or an existing folder with the /cache/epub/ layout"
    )
