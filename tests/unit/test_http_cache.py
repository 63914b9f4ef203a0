"""Tests of scripts/lib/common/http_cache.py against a local stand-in server (tests/standins; not a real API)."""
from __future__ import annotations

import email.utils
import gzip
import json
import logging
import random
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (for the stand-ins)

from lib.common import http_cache  # noqa: E402
from lib.common.http_cache import (CacheMissError, CachedClient, HttpStatusError, InvalidResponseError,  # noqa: E402
                        RateLimiter, RetriesExhaustedError, backoff_delay, cache_key, mask_secrets,
                        parse_retry_after)
from standins import StandinServer  # noqa: E402

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def server():
    with StandinServer() as s:
        yield s


def make_client(tmp_path, **kw) -> CachedClient:
    opts = dict(requests_per_second=0, max_retries=3, timeout_s=5, backoff_base_s=0.01, backoff_max_s=0.05,
                max_retry_after_s=5, rng=random.Random(0))
    opts.update(kw)
    return CachedClient("teststub", tmp_path / "cache", **opts)


def cache_files(tmp_path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*.json*"))


def read_entry(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()


# ------------------------------------------------------------------------------------------------- pure functions
def test_parse_retry_after_seconds_date_and_garbage():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(7.0, abs=1.0)
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


def test_backoff_is_exponential_with_jitter_and_capped():
    rng = random.Random(1)
    for attempt, full in [(0, 1.0), (1, 2.0), (2, 4.0), (6, 10.0)]:
        values = [backoff_delay(attempt, 1.0, 10.0, rng) for _ in range(200)]
        assert min(values) >= full / 2 and max(values) <= full
        assert max(values) - min(values) > full / 10  # there is jitter


def test_cache_key_ignores_secrets_and_param_order():
    k1 = cache_key("b", "GET", "https://x.org/s", {"q": "fox", "page": 2, "api_key": SECRET}, secret_params=["api_key"])
    k2 = cache_key("b", "get", "https://x.org/s", [("page", "2"), ("q", "fox"), ("api_key", "other-key-xyz")],
                   secret_params=["api_key"])
    assert k1 == k2
    assert k1 != cache_key("b", "GET", "https://x.org/s", {"q": "fox", "page": 3}, secret_params=["api_key"])
    assert k1 != cache_key("other", "GET", "https://x.org/s", {"q": "fox", "page": 2}, secret_params=["api_key"])
    # a secret inside the URL's own query string is dropped too
    k3 = cache_key("b", "GET", f"https://x.org/s?api_key={SECRET}", {"q": "fox", "page": 2},
                   secret_params=["api_key"])
    assert k3 == k1
    # a secret value elsewhere is masked before hashing: key does not depend on it
    assert cache_key("b", "POST", "https://x.org", body=f"token={SECRET}", secrets=[SECRET]) == \
        cache_key("b", "POST", "https://x.org", body="token=***")


def test_mask_secrets_raw_and_url_encoded():
    secret = "a+b/c=d&e"
    text = f"raw {secret} pct a%2Bb%2Fc%3Dd%26e plus a%2Bb%2Fc%3Dd%26e"
    assert secret not in mask_secrets(text, [secret]) and "%2F" not in mask_secrets(text, [secret])
    assert mask_secrets("abc", ["ab"]) == "abc"  # too short to mask safely


def test_rate_limiter_token_bucket_with_fake_clock():
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    rl = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    waits = [rl.acquire() for _ in range(5)]
    assert waits[0] == 0.0
    assert waits[1:] == pytest.approx([0.5, 0.5, 0.5, 0.5])
    now[0] += 10  # idle: the bucket refills to its burst of 1 only
    assert rl.acquire() == 0.0
    assert rl.acquire() == pytest.approx(0.5)
    assert RateLimiter(0).acquire() == 0.0


def test_rate_limiter_shared_through_state_file(tmp_path):
    now = [50.0]
    clock = lambda: now[0]  # noqa: E731
    a = RateLimiter(1.0, state_path=tmp_path / "rl", clock=clock, sleep=lambda s: None)
    b = RateLimiter(1.0, state_path=tmp_path / "rl", clock=clock, sleep=lambda s: None)
    assert a.acquire() == 0.0
    assert b.acquire() == pytest.approx(1.0)   # b sees a's reservation
    assert a.acquire() == pytest.approx(2.0)


def test_rate_limit_spaces_real_requests(server, tmp_path):
    client = make_client(tmp_path, requests_per_second=20)
    t0 = time.monotonic()
    for i in range(6):
        client.get_json(server.url + "/echo", {"i": i})
    assert time.monotonic() - t0 >= 5 / 20 - 0.01
    assert server.request_count("/echo") == 6


# ------------------------------------------------------------------------------------------------------- caching
def test_cached_200_is_never_requested_again(server, tmp_path):
    client = make_client(tmp_path)
    first = client.get_json(server.url + "/echo", {"q": "fox", "page": 1})
    assert first["ok"] is True and first["params"]["q"] == ["fox"]
    again = make_client(tmp_path)  # a "rerun": new client, same cache folder
    assert again.get_json(server.url + "/echo", {"page": 1, "q": "fox"}) == first
    assert server.request_count() == 1
    assert again.stats["requests"] == 0 and again.stats["cache_hits"] == 1
    (path,) = cache_files(tmp_path)
    assert path.name.endswith(".json.gz")
    entry = json.loads(read_entry(path))
    assert entry["status"] == 200 and entry["backend"] == "teststub" and entry["body"] == first
    assert entry["headers"]["content-type"].startswith("application/json")
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]  # atomic write left no temp file


def test_errors_are_not_cached_and_unreadable_entries_are_refetched(server, tmp_path):
    client = make_client(tmp_path, max_retries=0)
    with pytest.raises(HttpStatusError):
        client.get_json(server.url + "/nowhere")
    assert cache_files(tmp_path) == []
    client.get_json(server.url + "/echo", {"q": "x"})
    (path,) = cache_files(tmp_path)
    path.write_bytes(gzip.compress(b'{"status": 200, "bo'))  # a damaged entry (e.g. disk full); must not be trusted
    assert make_client(tmp_path).get_json(server.url + "/echo", {"q": "x"})["ok"]
    assert server.request_count("/echo") == 2


def test_offline_mode(server, tmp_path):
    make_client(tmp_path).get_json(server.url + "/echo", {"q": "a"})
    offline = make_client(tmp_path, offline=True)
    assert offline.get_json(server.url + "/echo", {"q": "a"})["ok"]
    with pytest.raises(CacheMissError, match="teststub"):
        offline.get_json(server.url + "/echo", {"q": "b"})
    assert server.request_count() == 1


# ------------------------------------------------------------------------------------------------------- retries
def test_503_then_ok(server, tmp_path):
    server.add_fault("status", times=2, status=503)
    client = make_client(tmp_path)
    assert client.get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert server.request_count() == 3 and client.stats["retries"] == 2


def test_retry_after_seconds_is_honoured(server, tmp_path):
    server.add_fault("status", status=429, retry_after="1")
    client = make_client(tmp_path)
    t0 = time.monotonic()
    assert client.get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert time.monotonic() - t0 >= 1.0
    assert server.request_count() == 2


def test_retry_after_http_date_is_honoured(server, tmp_path):
    # an HTTP date has 1-second resolution: ask for 2 s, expect at least ~1 s
    server.add_fault("status", status=503, retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))
    t0 = time.monotonic()
    assert make_client(tmp_path).get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert time.monotonic() - t0 >= 1.0


def test_retry_after_is_capped(server, tmp_path):
    server.add_fault("status", status=429, retry_after="3600")
    slept = []  # the client's sleeps, recorded instead of slept: the cap is checked without a clock
    client = make_client(tmp_path, max_retry_after_s=0.2, sleep=slept.append)
    assert client.get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert slept == [0.2] and server.request_count() == 2


def test_bounded_retries_then_clear_error(server, tmp_path, caplog):
    server.add_fault("status", times=10, status=503)
    client = make_client(tmp_path, max_retries=2)
    with caplog.at_level(logging.WARNING, logger="http_cache"):
        with pytest.raises(RetriesExhaustedError) as err:
            client.get_json(server.url + "/echo", {"q": "a"})
    assert server.request_count() == 3  # 1 + max_retries
    msg = str(err.value)
    assert "teststub" in msg and "HTTP 503" in msg and "3 attempt" in msg
    assert err.value.status == 503 and err.value.__cause__ is None
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2


def test_non_retryable_4xx_raises_at_once(server, tmp_path):
    client = make_client(tmp_path)
    with pytest.raises(HttpStatusError, match=r"teststub: HTTP 404") as err:
        client.get_json(server.url + "/missing", {"q": "a"})
    assert err.value.status == 404 and server.request_count() == 1


def test_truncated_json_retried_then_ok(server, tmp_path):
    server.add_fault("truncate")
    assert make_client(tmp_path).get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert server.request_count() == 2


def test_truncated_json_every_time_raises_invalid_response(server, tmp_path):
    server.add_fault("truncate", times=5)
    with pytest.raises(InvalidResponseError, match="not valid JSON"):
        make_client(tmp_path, max_retries=2).get_json(server.url + "/echo", {"q": "a"})
    assert server.request_count() == 3
    assert cache_files(tmp_path) == []


def test_short_body_connection_cut_is_retried(server, tmp_path):
    server.add_fault("cut")
    assert make_client(tmp_path).get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert server.request_count() == 2


def test_timeout_is_retried(server, tmp_path):
    """The first answer comes after 5 s, the client gives up after 1 s and retries. A client that waited would get
    that answer with one request, so the request count shows the timeout fired; no wall-clock bound is needed."""
    server.add_fault("slow", delay=5.0)
    client = make_client(tmp_path, timeout_s=1.0)
    assert client.get_json(server.url + "/echo", {"q": "a"})["ok"]
    assert server.request_count() == 2 and client.stats["retries"] == 1


def test_connection_refused_bounded(tmp_path):
    with StandinServer() as s:
        url = s.url
    client = make_client(tmp_path, max_retries=1)
    with pytest.raises(RetriesExhaustedError, match="ConnectionError"):
        client.get_json(url + "/echo", {"q": "a"})


# ------------------------------------------------------------------------------------------------------- secrets
def test_secret_never_in_cache_logs_or_errors(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # includes urllib3's DEBUG lines, which print full URLs
    client = make_client(tmp_path, secrets=[SECRET], secret_params=["api_key"])
    server.add_fault("status", status=503)
    body = client.get_json(server.url + "/echo", {"q": "a", "api_key": SECRET})
    assert body["params"]["api_key"] == [SECRET]  # the server did get the key (echoed back) ...
    for path in cache_files(tmp_path):             # ... but the cache copy has it masked
        text = read_entry(path)
        assert SECRET not in text and "***" in text
    with pytest.raises(HttpStatusError) as err:
        client.get_json(server.url + "/nope", {"q": "a", "api_key": SECRET})
    assert SECRET not in str(err.value) and "api_key=%2A%2A%2A" in str(err.value)
    assert any("urllib3" in r.name for r in caplog.records)  # the URL-printing logger did log
    assert SECRET not in caplog.text
    # the key does not change the cache key: a different key reuses the entry
    other = make_client(tmp_path, secrets=["another-secret-999"], secret_params=["api_key"])
    other.get_json(server.url + "/echo", {"q": "a", "api_key": "another-secret-999"})
    assert other.stats["requests"] == 0


def test_invalid_settings_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_retries"):
        CachedClient("x", tmp_path, max_retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        CachedClient("x", tmp_path, timeout_s=0)
    assert http_cache.RETRYABLE_STATUS >= {429, 500, 502, 503, 504}


def test_rate_limiter_falls_back_when_state_file_is_unusable(tmp_path, monkeypatch):
    def broken_flock(*a):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(http_cache.fcntl, "flock", broken_flock)
    rl = RateLimiter(1000.0, state_path=tmp_path / "rl")
    assert rl.acquire() == 0.0 and rl.state_path is None
    assert rl.acquire() <= 0.001 + 1e-9


def test_plain_json_cache_and_reading_either_form(server, tmp_path):
    plain = make_client(tmp_path, compress=False)
    plain.get_json(server.url + "/echo", {"q": "a"})
    (path,) = cache_files(tmp_path)
    assert path.name.endswith(".json") and json.loads(path.read_text())["status"] == 200
    gz = make_client(tmp_path)  # compressing client still finds the plain entry
    assert gz.get_json(server.url + "/echo", {"q": "a"})["ok"] and gz.stats["requests"] == 0
    assert server.request_count() == 1
