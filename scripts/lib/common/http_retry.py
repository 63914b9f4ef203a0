"""Retry timing shared by every HTTP client of the workflow (SPARQL, web search, LLM, downloads of metadata).

One scheme everywhere, so that a user tuning one backend's retries knows what the others do:

- :func:`parse_retry_after` reads a ``Retry-After`` header (delta-seconds or an HTTP date) into seconds;
- :func:`backoff_delay` is exponential backoff with jitter, uniform in ``[d/2, d]`` with
  ``d = min(max_s, base_s * 2**attempt)`` (the "equal jitter" of the AWS architecture blog: it never waits less than
  half the nominal delay, and spreads clients that failed together);
- :func:`retry_wait` picks between them: the server's ``Retry-After`` wins, capped at ``max_retry_after_s``.

Which statuses and exceptions count as retryable stays with each client (SPARQLWrapper raises ``urllib`` errors,
``requests`` raises its own), but the set of retryable HTTP statuses is :data:`RETRYABLE_STATUS`.
"""
from __future__ import annotations

import datetime as _dt
import email.utils
import random
import time

#: HTTP statuses worth another attempt: timeouts, too early, rate limits and server errors
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if absent/invalid.

    Negative or past values give ``0.0``. ``now`` (epoch seconds) defaults to ``time.time()``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based): uniform in ``[d/2, d]``,
    ``d = min(max_s, base_s * 2**attempt)``."""
    d = min(max_s, base_s * (2 ** attempt))
    r = (rng or random).random()
    return d * (0.5 + 0.5 * r)


def retry_wait(attempt: int, retry_after: float | None, base_s: float, max_s: float, max_retry_after_s: float,
               rng: random.Random | None = None) -> float:
    """Seconds to sleep before retry ``attempt``: the server's ``Retry-After`` (capped at ``max_retry_after_s``)
    when it sent one, else :func:`backoff_delay`."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_retry_after_s)
    return backoff_delay(attempt, base_s, max_s, rng)
