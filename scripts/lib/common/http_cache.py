"""A small JSON-over-HTTP client with an on-disk request cache, a rate limit and bounded retries.

Used by the web image-search backends (`lib.search.web_base`). One :class:`CachedClient` serves one backend.

Cache
    Every successful (2xx) JSON response is stored as one JSON file under
    ``<cache_dir>/<k[:2]>/<k>.json.gz`` (gzip; ``compress=False``: plain ``<k>.json``; both are read), where ``k`` is
    :func:`cache_key` of
    (backend, method, URL without secret query parameters, sorted parameters without secret parameters, body).
    Files are written atomically (temp file in the same folder, fsync, ``os.replace``), so a job killed midway
    leaves either a complete entry or none. A cached response is returned without any network traffic, so a rerun
    of a finished job sends zero requests, and a rerun of a killed job only sends the requests it had not finished.
    Errors (4xx, exhausted retries) are never cached. Headers other than the auth-free parameters are not part of
    the key.

Secrets
    API keys are passed as ``secrets`` (their values), ``secret_params`` (query-parameter names) and
    ``secret_headers`` (header names). Secret parameters are dropped from the cache key and from the stored URL;
    every secret value is replaced by ``***`` in stored bodies, log lines and error messages. A logging filter that
    does the same is installed on the ``urllib3`` loggers, whose DEBUG lines would otherwise print full URLs.
    Exceptions raised here never chain the original ``requests`` exception (its text may hold the URL with the key).

Rate limit
    A token bucket per backend (:class:`RateLimiter`, ``requests_per_second``, burst 1). With ``state_path`` the
    bucket lives in a small file guarded by ``fcntl.flock``, so several processes (parallel Snakemake jobs) on the
    same machine share one budget. Cache hits do not consume tokens.

Retries
    Up to ``max_retries`` retries (``max_retries + 1`` attempts) on HTTP 408/425/429/5xx, connection errors,
    timeouts, broken bodies and 2xx bodies that are not valid JSON. The wait is exponential backoff with jitter
    (``uniform(d/2, d)`` where ``d = min(backoff_max_s, backoff_base_s * 2**attempt)``), or, if the response carries
    ``Retry-After`` (seconds or an HTTP date), exactly that, capped at ``max_retry_after_s``. Other 4xx are not
    retried and raise :class:`HttpStatusError` naming the backend and the status.

Why not a library (reviewed for issue 19; installed: requests, urllib3 2.8, tenacity only as a Snakemake dependency;
not installed: requests-cache, requests-ratelimiter, pyrate-limiter, ratelimit). Nothing could be replaced without a
new dependency of ``envs/search.yaml`` and a change in behaviour, so everything is kept:

* Cache: requests-cache's ``CachedSession`` would give the storage, ``ignored_parameters`` (dropped from the key and
  redacted from the stored request), ``only_if_cached`` (our ``offline``) and a custom ``key_fn``. It stores the raw
  response (not the parsed body with echoed keys masked), caches before we know the body is JSON, and its layout
  differs from ours (one gzip JSON per key), so every existing cache, paid SerpAPI/Brave requests included, would be
  fetched again.
* Retries: urllib3's ``Retry`` (through ``HTTPAdapter(max_retries=...)``) gives status lists, ``Retry-After`` with a
  cap and exponential backoff. It cannot retry a 2xx body that is cut off or not JSON (read after the adapter
  returns), enforce the per-attempt deadline of :meth:`CachedClient._fetch` (requests' timeout is per socket read),
  take a rate-limit token per attempt (its retries bypass :class:`RateLimiter`), or keep the key out of errors
  (``MaxRetryError`` holds the full URL); its schedule (no wait before the first retry, additive jitter) also differs
  from the equal jitter shared with the SPARQL and LLM clients (``http_retry``). tenacity could drive the loop, but
  the loop is mostly its decisions (what is retryable, ``Retry-After`` or backoff, which error), not the looping.
* Rate limit: the packages above give per-process buckets (pyrate-limiter also SQLite/Redis ones), not one budget
  that parallel Snakemake jobs share through a small ``flock``-ed file, with cache hits taking no token.
* Key masking (cache files, log records, exception texts): no library does it.

Revisit the cache part if requests-cache ever enters ``envs/search.yaml`` for another reason.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import gzip
import hashlib
import json
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
import urllib3

from _helpers import atomic_path
from lib.common.http_retry import RETRYABLE_STATUS, backoff_delay, parse_retry_after, retry_wait  # noqa: F401

log = logging.getLogger("http_cache")

MASK = "***"
#: response headers kept in cache files (lower case)
KEPT_HEADERS = ("content-type", "date", "etag", "last-modified", "age", "cache-control",
                "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
#: secrets shorter than this are not masked (they would mangle unrelated text); keys are much longer in practice
MIN_SECRET_LEN = 4
CACHE_FORMAT = 1


# ----------------------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------------------
class HttpClientError(RuntimeError):
    """Base class: a request of ``backend`` failed. ``url`` is masked (no secrets)."""

    def __init__(self, message: str, *, backend: str, url: str, status: int | None = None):
        super().__init__(message)
        self.backend = backend
        self.url = url
        self.status = status


class HttpStatusError(HttpClientError):
    """A non-retryable HTTP status (most 4xx), e.g. 401 for a bad key or 400 for a bad parameter."""


class RetriesExhaustedError(HttpClientError):
    """Every attempt failed with a retryable problem (429/5xx/connection error/timeout/invalid body)."""


class InvalidResponseError(RetriesExhaustedError):
    """Every attempt returned a 2xx body that was not valid JSON (e.g. truncated)."""


class CacheMissError(HttpClientError):
    """``offline=True`` and the request is not in the cache."""


# ----------------------------------------------------------------------------------------------------------------
# secrets
# ----------------------------------------------------------------------------------------------------------------
_GLOBAL_SECRETS: set[str] = set()
_GLOBAL_LOCK = threading.Lock()


def _secret_variants(secret: str) -> list[str]:
    """The forms a secret can take in text: raw, URL-quoted (``%XX`` and ``+``)."""
    return sorted({secret, quote(secret, safe=""), quote_plus(secret)}, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (raw or URL-encoded) in ``text`` by ``***``."""
    if not text:
        return text
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET_LEN:
            continue
        for variant in _secret_variants(secret):
            text = text.replace(variant, MASK)
    return text


class SecretRedactingFilter(logging.Filter):
    """Logging filter that masks every registered secret in a record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging API name
        with _GLOBAL_LOCK:
            secrets = tuple(_GLOBAL_SECRETS)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        masked = mask_secrets(message, secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_REDACTOR = SecretRedactingFilter()
#: loggers that may print request URLs; filters on a logger only see records logged on that very logger
REDACTED_LOGGERS = ("http_cache", "search_web", "urllib3", "urllib3.connectionpool", "urllib3.connection",
                    "urllib3.util.retry", "urllib3.poolmanager", "requests")


def register_secrets(secrets: Iterable[str]) -> None:
    """Mask these values in every record of :data:`REDACTED_LOGGERS` from now on (process-wide)."""
    new = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
    if not new:
        return
    with _GLOBAL_LOCK:
        _GLOBAL_SECRETS.update(new)
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def strip_url_params(url: str, drop: Iterable[str]) -> str:
    """``url`` without the query parameters named in ``drop`` (case-sensitive names)."""
    drop = set(drop)
    if not drop:
        return url
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _param_items(params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> list[tuple[str, str]]:
    """Flatten params the way ``requests`` sends them (lists become repeated keys; ``None`` values are dropped)."""
    if not params:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None:
                continue
            if isinstance(v, bool):
                v = "true" if v else "false"
            out.append((str(key), str(v)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# cache key
# ----------------------------------------------------------------------------------------------------------------
def cache_key(backend: str, method: str, url: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
              body: str | bytes | None = None, *, secret_params: Iterable[str] = (),
              secrets: Iterable[str] = ()) -> str:
    """sha256 hex digest of (backend, METHOD, URL without secret params, sorted non-secret params, body).

    Secret values are masked in URL and body before hashing, so the key (and anything derived from it) never
    depends on, or reveals, the key. Parameter order does not matter; parameter values are compared as strings.
    """
    secret_params = set(secret_params)
    secrets = list(secrets)
    clean_url = mask_secrets(strip_url_params(url, secret_params), secrets)
    items = sorted((k, mask_secrets(v, secrets)) for k, v in _param_items(params) if k not in secret_params)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="surrogateescape")
    clean_body = mask_secrets(body, secrets) if body else ""
    payload = json.dumps([backend, method.upper(), clean_url, items, clean_body], ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8", errors="surrogateescape")).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Retry-After and backoff: http_retry (shared with the SPARQL and LLM clients); re-exported here
# ----------------------------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------------------------
# rate limit
# ----------------------------------------------------------------------------------------------------------------
class RateLimiter:
    """Token bucket: ``rate`` tokens per second, at most ``burst`` stored; :meth:`acquire` takes one token.

    ``rate`` of ``None`` or ``<= 0`` disables the limit. Without ``state_path`` the bucket is per object
    (thread-safe); with it, the bucket state is kept in that file under ``fcntl.flock`` so processes on one
    machine share it (this uses the wall clock, ``time.time``). A caller that finds no token reserves the next one
    (the bucket goes negative) and sleeps outside the lock, so concurrent callers are spaced ``1/rate`` apart.
    """

    def __init__(self, rate: float | None, burst: float = 1.0, state_path: str | os.PathLike | None = None,
                 clock: Callable[[], float] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.rate = float(rate) if rate else 0.0
        if self.rate < 0:
            raise ValueError(f"requests_per_second must be >= 0, got {rate!r}")
        self.burst = max(1.0, float(burst))
        self.state_path = Path(state_path) if state_path else None
        self._clock = clock or (time.time if self.state_path else time.monotonic)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last: float | None = None

    def _reserve(self, tokens: float, last: float | None, now: float) -> tuple[float, float, float]:
        if last is not None:
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        tokens -= 1.0
        wait = 0.0 if tokens >= 0 else -tokens / self.rate
        return tokens, now, wait

    @contextlib.contextmanager
    def _file_state(self):
        assert self.state_path is not None
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                raw = fh.read()
                try:
                    state = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    state = {}
                box = {"tokens": float(state.get("tokens", self.burst)), "last": state.get("last")}
                yield box
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(box))
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def acquire(self) -> float:
        """Take a token, sleeping as needed. Returns the seconds slept."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        if self.state_path is not None:
            try:
                with self._lock, self._file_state() as box:
                    box["tokens"], box["last"], wait = self._reserve(box["tokens"], box["last"], now)
            except OSError as exc:  # e.g. a network file system without flock support
                log.warning("rate-limit state file %s unusable (%s); limiting this process only",
                            self.state_path, exc)
                self.state_path = None
                self._clock = time.monotonic
                return self.acquire()
        else:
            with self._lock:
                self._tokens, self._last, wait = self._reserve(self._tokens, self._last, now)
        if wait > 0:
            self._sleep(wait)
        return wait


# ----------------------------------------------------------------------------------------------------------------
# the client
# ----------------------------------------------------------------------------------------------------------------
def _atomic_write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as JSON (gzip-compressed if ``path`` ends in ``.gz``) atomically and fsynced."""
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_path(path, suffix=".tmp", fsync=True) as tmp:
        tmp.write_bytes(data)


class CachedClient:
    """JSON HTTP client for one backend: cache, rate limit, retries, secret masking (see module docstring).

    Parameters
    ----------
    backend: name used in cache keys, log lines and error messages.
    cache_dir: folder for this backend's cache entries (created on demand); ``None`` disables the cache.
    requests_per_second: token-bucket rate (``0``/``None``: unlimited).
    max_retries: retries after the first attempt (so ``max_retries + 1`` attempts at most).
    timeout_s: connect and read timeout of each attempt.
    backoff_base_s, backoff_max_s: exponential backoff parameters (see :func:`backoff_delay`).
    max_retry_after_s: cap on a server's ``Retry-After``.
    secrets, secret_params, secret_headers: see "Secrets" in the module docstring.
    default_headers: sent with every request (e.g. ``User-Agent``, auth headers).
    shared_rate_limit: keep the bucket in ``<cache_dir>/.ratelimit`` so processes share it.
    offline: never touch the network; a cache miss raises :class:`CacheMissError`.
    compress: gzip new cache entries (``.json.gz``).
    session, rng, sleep: injectable for tests.
    """

    def __init__(self, backend: str, cache_dir: str | os.PathLike | None, *, requests_per_second: float | None = 1.0,
                 max_retries: int = 5, timeout_s: float = 30.0, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 60.0, max_retry_after_s: float = 120.0, secrets: Iterable[str] = (),
                 secret_params: Iterable[str] = (), secret_headers: Iterable[str] = (),
                 default_headers: Mapping[str, str] | None = None, shared_rate_limit: bool = True,
                 offline: bool = False, compress: bool = True, session: requests.Session | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep):
        if int(max_retries) < 0:
            raise ValueError(f"{backend}: max_retries must be >= 0, got {max_retries!r}")
        if float(timeout_s) <= 0:
            raise ValueError(f"{backend}: timeout_s must be > 0, got {timeout_s!r}")
        self.backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_retries = int(max_retries)
        self.timeout_s = float(timeout_s)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.secrets = [s for s in secrets if s]
        self.secret_params = set(secret_params)
        self.secret_headers = {h.lower() for h in secret_headers}
        self.default_headers = dict(default_headers or {})
        self.offline = bool(offline)
        self.compress = bool(compress)
        self._session = session or requests.Session()
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._sleep = sleep
        state = (self.cache_dir / ".ratelimit") if (self.cache_dir is not None and shared_rate_limit) else None
        self.limiter = RateLimiter(requests_per_second, state_path=state, sleep=sleep)
        #: counters: network attempts, cache hits, retries, responses written to the cache
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "cache_writes": 0}
        register_secrets(self.secrets)

    # -- helpers --------------------------------------------------------------------------------------------------
    def mask(self, text: str) -> str:
        """``text`` with this client's secrets masked."""
        return mask_secrets(text, self.secrets)

    def display_url(self, url: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None) -> str:
        """URL with its non-secret params, for logs and errors (secret params shown as ``***``)."""
        items = [(k, MASK if k in self.secret_params else v) for k, v in _param_items(params)]
        full = url if not items else url + ("&" if urlsplit(url).query else "?") + urlencode(items)
        parts = urlsplit(full)
        if parts.query:
            q = [(k, MASK if k in self.secret_params else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
            full = urlunsplit(parts._replace(query=urlencode(q)))
        return self.mask(full)

    def key_for(self, method: str, url: str, params=None, body: str | bytes | None = None) -> str:
        """The cache key of a request (see :func:`cache_key`)."""
        return cache_key(self.backend, method, url, params, body, secret_params=self.secret_params,
                         secrets=self.secrets)

    def cache_path(self, key: str, compress: bool | None = None) -> Path | None:
        """Where the cache entry of ``key`` is written (``None`` without a cache)."""
        if self.cache_dir is None:
            return None
        compress = self.compress if compress is None else compress
        return self.cache_dir / key[:2] / (f"{key}.json.gz" if compress else f"{key}.json")

    def _read_cache(self, key: str) -> dict | None:
        if self.cache_dir is None:
            return None
        path = next((p for p in (self.cache_path(key, self.compress), self.cache_path(key, not self.compress))
                     if p.is_file()), None)
        if path is None:
            return None
        try:
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            entry = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, EOFError) as exc:
            log.warning("%s: ignoring unreadable cache entry %s (%s); fetching again", self.backend, path,
                        type(exc).__name__)
            return None
        if not isinstance(entry, dict) or not (200 <= int(entry.get("status", 0)) < 300) or "body" not in entry:
            return None
        return entry

    def _write_cache(self, key: str, method: str, url: str, params, status: int, headers: Mapping[str, str],
                     body: Any) -> None:
        path = self.cache_path(key)
        if path is None:
            return
        items = sorted((k, self.mask(v)) for k, v in _param_items(params) if k not in self.secret_params)
        entry = {
            "format": CACHE_FORMAT,
            "backend": self.backend,
            "method": method.upper(),
            "url": self.mask(strip_url_params(url, self.secret_params)),
            "params": items,
            "status": status,
            "headers": {h: self.mask(headers[h]) for h in KEPT_HEADERS if h in headers},
            "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "body": body,
        }
        if self.secrets:
            text = json.dumps(entry, ensure_ascii=False)
            masked = self.mask(text)
            if masked != text:  # a server echoed the key: store the masked copy
                entry = json.loads(masked)
        _atomic_write_json(entry, path)
        self.stats["cache_writes"] += 1

    def is_cached(self, method: str, url: str, params=None, body: str | bytes | None = None) -> bool:
        """Whether this request would be answered from the cache."""
        return self._read_cache(self.key_for(method, url, params, body)) is not None

    # -- the request ----------------------------------------------------------------------------------------------
    def get_json(self, url: str, params=None, headers: Mapping[str, str] | None = None) -> Any:
        """GET ``url`` with ``params`` and return the parsed JSON body (from the cache when present)."""
        return self.request_json("GET", url, params=params, headers=headers)

    def request_json(self, method: str, url: str, params=None, headers: Mapping[str, str] | None = None,
                     body: str | bytes | None = None) -> Any:
        """Send one request (with retries) and return the parsed JSON body; see the module docstring."""
        method = method.upper()
        key = self.key_for(method, url, params, body)
        shown = self.display_url(url, params)
        cached = self._read_cache(key)
        if cached is not None:
            self.stats["cache_hits"] += 1
            log.debug("%s: cache hit %s %s", self.backend, method, shown)
            return cached["body"]
        if self.offline:
            raise CacheMissError(f"{self.backend}: offline mode and no cache entry for {method} {shown}",
                                 backend=self.backend, url=shown)
        all_headers = {**self.default_headers, **(headers or {})}
        attempts = self.max_retries + 1
        last_problem = "no attempt made"
        last_status: int | None = None
        only_invalid_json = True
        for attempt in range(attempts):
            self.limiter.acquire()
            self.stats["requests"] += 1
            retry_after: float | None = None
            try:
                resp = self._fetch(method, url, params, all_headers, body)
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                last_problem = f"{type(exc).__name__}: {self.mask(str(exc))}"
                last_status = None
                only_invalid_json = False
            else:
                status = resp.status_code
                last_status = status
                if 200 <= status < 300:
                    try:
                        data = json.loads(resp.content)
                    except ValueError as exc:
                        last_problem = (f"HTTP {status} with a body that is not valid JSON ({len(resp.content)} "
                                        f"bytes; {self.mask(str(exc))})")
                    else:
                        self._write_cache(key, method, url, params, status,
                                          {k.lower(): v for k, v in resp.headers.items()}, data)
                        log.debug("%s: %s %s -> %d (attempt %d)", self.backend, method, shown, status, attempt + 1)
                        return data
                elif status in RETRYABLE_STATUS:
                    only_invalid_json = False
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    last_problem = f"HTTP {status}" + (
                        f" (Retry-After: {resp.headers.get('Retry-After')})" if retry_after is not None else "")
                else:
                    snippet = self.mask(resp.text[:300].strip().replace("\n", " "))
                    raise HttpStatusError(
                        f"{self.backend}: HTTP {status} for {method} {shown} (not retried): {snippet}",
                        backend=self.backend, url=shown, status=status) from None
            if attempt + 1 >= attempts:
                break
            wait = retry_wait(attempt, retry_after, self.backoff_base_s, self.backoff_max_s, self.max_retry_after_s,
                              self._rng)
            self.stats["retries"] += 1
            log.warning("%s: %s %s failed (%s); retry %d/%d in %.2f s", self.backend, method, shown, last_problem,
                        attempt + 1, self.max_retries, wait)
            if wait > 0:
                self._sleep(wait)
        cls = InvalidResponseError if only_invalid_json else RetriesExhaustedError
        raise cls(f"{self.backend}: {method} {shown} failed after {attempts} attempt(s); last problem: {last_problem}",
                  backend=self.backend, url=shown, status=last_status) from None

    def _fetch(self, method: str, url: str, params, headers, body):
        """One attempt with an overall deadline of ``timeout_s``: requests' own timeout is per read, so a body that
        keeps trickling in (a stuck server dripping bytes) would otherwise hold the attempt forever."""
        deadline = time.monotonic() + self.timeout_s
        resp = self._session.request(method, url, params=params, headers=headers, data=body,
                                     timeout=self.timeout_s, stream=True)
        try:
            chunks = []
            while True:
                # read1 returns what has arrived (at most one socket read), so the deadline is checked often
                try:
                    chunk = resp.raw.read1(65536, decode_content=True)
                except urllib3.exceptions.ReadTimeoutError as exc:
                    raise requests.Timeout(str(exc)) from exc
                except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as exc:
                    raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc
                if not chunk:
                    break
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise requests.Timeout(f"response not complete within {self.timeout_s:g} s")
            resp._content = b"".join(chunks)
            resp._content_consumed = True
        finally:
            resp.close()
        return resp

    def close(self) -> None:
        """Close the HTTP session (if this client created it)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> "CachedClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
