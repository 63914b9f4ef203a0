"""The one retry-timing scheme (scripts/lib/common/http_retry.py) and the clients that must use it.

Bugs these catch: a client that keeps its own backoff (the SPARQL client used ``x 0.5..1.5`` jitter, which can
wait longer than the cap's nominal delay), a ``Retry-After`` that is ignored or not capped, and a retryable-status
list that drifts between clients.
"""
from __future__ import annotations

import random

import pytest

from lib.common import http_cache
from lib.common import http_retry
from lib.kg import sparql_client
from lib.common.http_retry import RETRYABLE_STATUS, retry_wait
from lib.kg.sparql_client import RetryPolicy


def test_retry_after_wins_and_is_capped():
    assert retry_wait(0, 3.0, 1.0, 60.0, 120.0) == 3.0
    assert retry_wait(5, 500.0, 1.0, 60.0, 120.0) == 120.0
    assert retry_wait(0, -2.0, 1.0, 60.0, 120.0) == 0.0


def test_without_retry_after_it_is_the_shared_backoff():
    a, b = random.Random(7), random.Random(7)
    assert [retry_wait(k, None, 2.0, 30.0, 99.0, a) for k in range(8)] == \
        [http_retry.backoff_delay(k, 2.0, 30.0, b) for k in range(8)]


@pytest.mark.parametrize("attempt", [0, 1, 3, 10])
def test_sparql_policy_uses_the_shared_scheme_and_never_exceeds_its_cap(attempt):
    policy = RetryPolicy(max_tries=20, base_delay_s=2.0, max_wait_s=10.0)
    nominal = min(10.0, 2.0 * 2 ** attempt)
    random.seed(attempt)
    waits = [policy.delay(attempt) for _ in range(300)]
    assert nominal / 2 <= min(waits) and max(waits) <= nominal
    assert policy.delay(attempt, retry_after=4.0) == 4.0
    assert policy.delay(attempt, retry_after=400.0) == 10.0


def test_every_client_shares_one_definition():
    assert http_cache.parse_retry_after is http_retry.parse_retry_after
    assert sparql_client.parse_retry_after is http_retry.parse_retry_after
    assert http_cache.RETRYABLE_STATUS is RETRYABLE_STATUS
    assert {408, 425, 429, 500, 502, 503, 504} <= RETRYABLE_STATUS
    assert not RETRYABLE_STATUS & {400, 401, 403, 404}
