"""The common part of the web image-search backends: config params, the API key, the cached HTTP client and the
search loop that turns pages of partial hits into ranked hit rows (see ``search_web`` for the interface).

:class:`WebSearchBackend` reads the params every backend shares (``COMMON_PARAMS``), reads the key from the
environment, builds the :class:`http_cache.CachedClient` (cache, rate limit, retries, key masking) and implements
:meth:`WebSearchBackend.search`: hits without an image URL or repeating one are skipped, ``rank`` is 0-based and
contiguous, a bad query (HTTP 400/404/422) is skipped while ``skip_bad_queries`` is on. Subclasses only build
requests and read responses (``_pages``). The small helpers here read query-row fields and response values.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import requests

from lib.common.http_cache import CachedClient, HttpStatusError

#: one logger name for every backend module (its records are masked by http_cache's secret filter)
log = logging.getLogger("search_web")

USER_AGENT = (f"EntityNet-reproduction/0.1 (search_web.py; set params.user_agent to a contact address) "
              f"python-requests/{requests.__version__}")

COMMON_PARAMS = frozenset({
    "base_url", "requests_per_second", "max_retries", "timeout_s", "page_size", "max_pages", "api_key_env",
    "user_agent", "backoff_base_s", "backoff_max_s", "max_retry_after_s", "extra_params", "offline",
    "shared_rate_limit", "skip_bad_queries", "max_consecutive_bad_queries", "cache_compress",
})
#: keys that may sit in a backend's config block but are read by the caller (``search.py``), not here
CALLER_PARAMS = frozenset({"max_results"})
#: statuses that mean "this one query is bad" (not the key or the config) when ``skip_bad_queries`` is on
BAD_QUERY_STATUS = frozenset({400, 404, 422})


class SearchApiError(RuntimeError):
    """The API answered 2xx but reported an error in the body (e.g. MediaWiki ``error``, SerpAPI ``error``)."""


# ----------------------------------------------------------------------------------------------------------------
# small pure helpers
# ----------------------------------------------------------------------------------------------------------------
def text_field(query: Mapping[str, Any], key: str) -> str:
    """A string field of a query row; ``None``/NaN/missing give ``""``."""
    value = query.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def int_or_none(value: Any) -> int | None:
    try:
        if value is None or value == "":
            return None
        out = int(float(value))
        return out if out >= 0 else None
    except (TypeError, ValueError):
        return None


def str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


# ----------------------------------------------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------------------------------------------
class WebSearchBackend:
    """One web image-search API. Subclasses set the class attributes and implement :meth:`_pages`."""

    name: str = ""
    DEFAULT_BASE_URL: str = ""
    DEFAULT_PAGE_SIZE: int = 50
    MAX_PAGE_SIZE: int = 50
    DEFAULT_MAX_PAGES: int = 10
    DEFAULT_RPS: float = 1.0
    #: env var of the key; ``KEY_REQUIRED`` says whether the backend can run without it
    DEFAULT_KEY_ENV: str | None = None
    KEY_REQUIRED: bool = False
    #: where the key goes: a query parameter or a header (or, for Openverse, an ``Authorization: Bearer`` header)
    KEY_PARAM: str | None = None
    KEY_HEADER: str | None = None
    EXTRA_PARAMS: frozenset = frozenset()
    #: backends with an ``image_type_filter`` param: filter on the query's image type unless it is false
    DEFAULT_IMAGE_TYPE_FILTER: bool = True

    def __init__(self, params: Mapping[str, Any] | None, cache_dir: str | os.PathLike | None, *,
                 env: Mapping[str, str] | None = None, session: requests.Session | None = None):
        params = dict(params or {})
        self.params = params
        unknown = self.unknown_params(params)
        if unknown:
            log.warning("%s: ignoring unknown config params %s (known: %s)", self.name, unknown,
                        sorted(COMMON_PARAMS | CALLER_PARAMS | self.EXTRA_PARAMS))
        env = os.environ if env is None else env
        self.base_url = str(params.get("base_url") or self.DEFAULT_BASE_URL).rstrip("/")
        self.page_size = int(params.get("page_size", self.DEFAULT_PAGE_SIZE))
        if not 1 <= self.page_size <= self.MAX_PAGE_SIZE:
            raise ValueError(f"{self.name}: page_size must be in 1..{self.MAX_PAGE_SIZE}, got {self.page_size}")
        self.max_pages = int(params.get("max_pages", self.DEFAULT_MAX_PAGES))
        if self.max_pages < 1:
            raise ValueError(f"{self.name}: max_pages must be >= 1, got {self.max_pages}")
        extra = params.get("extra_params") or {}
        if not isinstance(extra, Mapping):
            raise ValueError(f"{self.name}: extra_params must be a mapping, got {type(extra).__name__}")
        self.extra_params = dict(extra)
        self.skip_bad_queries = bool(params.get("skip_bad_queries", True))
        self.max_consecutive_bad = int(params.get("max_consecutive_bad_queries", 5))

        key_env = params.get("api_key_env", self.DEFAULT_KEY_ENV)
        self.api_key: str | None = None
        if key_env and (self.KEY_REQUIRED or "api_key_env" in params):
            value = env.get(str(key_env), "")
            if not value.strip():
                raise ValueError(f"backend {self.name!r} needs its API key in environment variable {key_env!r} "
                                 f"(config params.api_key_env), which is not set or empty")
            self.api_key = value.strip()
        if self.KEY_PARAM and self.KEY_PARAM in self.extra_params:
            raise ValueError(f"{self.name}: do not put {self.KEY_PARAM!r} in extra_params; set api_key_env instead")

        headers = {"User-Agent": str(params.get("user_agent") or USER_AGENT), "Accept": "application/json"}
        headers.update(self._auth_headers())
        cache_path = Path(cache_dir) / self.name if cache_dir is not None else None
        self.client = CachedClient(
            self.name, cache_path,
            requests_per_second=params.get("requests_per_second", self.DEFAULT_RPS),
            max_retries=params.get("max_retries", 5), timeout_s=params.get("timeout_s", 30.0),
            backoff_base_s=params.get("backoff_base_s", 1.0), backoff_max_s=params.get("backoff_max_s", 60.0),
            max_retry_after_s=params.get("max_retry_after_s", 120.0),
            secrets=[self.api_key] if self.api_key else [],
            secret_params=[self.KEY_PARAM] if self.KEY_PARAM else [],
            secret_headers=[h for h in (self.KEY_HEADER, "Authorization") if h],
            default_headers=headers, shared_rate_limit=bool(params.get("shared_rate_limit", True)),
            offline=bool(params.get("offline", False)), compress=bool(params.get("cache_compress", True)),
            session=session)
        self.n_queries = 0
        self.n_hits = 0
        self.skipped: list[tuple[str, str]] = []
        self._consecutive_bad = 0

    @classmethod
    def unknown_params(cls, params: Mapping[str, Any] | None) -> list[str]:
        """Config keys this backend does not read (unknown keys only warn)."""
        return sorted(set(params or {}) - COMMON_PARAMS - CALLER_PARAMS - cls.EXTRA_PARAMS)

    # -- hooks ----------------------------------------------------------------------------------------------------
    def _auth_headers(self) -> dict[str, str]:
        if self.api_key and self.KEY_HEADER:
            return {self.KEY_HEADER: self.api_key}
        return {}

    def _key_params(self) -> dict[str, str]:
        return {self.KEY_PARAM: self.api_key} if (self.KEY_PARAM and self.api_key) else {}

    def _pages(self, query: Mapping[str, Any], max_results: int) -> Iterator[list[dict]]:
        """Yield one list of partial hits (image_url, page_url, alt_text, width, height, licence) per page."""
        raise NotImplementedError

    def _get(self, path: str, params: Mapping[str, Any]) -> dict:
        url = self.base_url + path
        data = self.client.get_json(url, params={**params, **self.extra_params, **self._key_params()})
        if not isinstance(data, dict):
            raise SearchApiError(f"{self.name}: expected a JSON object from {self.client.display_url(url)}, "
                                 f"got {type(data).__name__}")
        return data

    def _page_size_for(self, max_results: int) -> int:
        return max(1, min(self.page_size, max_results))

    # -- public API -----------------------------------------------------------------------------------------------
    def search(self, query: Mapping[str, Any], max_results: int) -> list[dict]:
        """At most ``max_results`` hits for one query row (see the module docstring for the hit keys)."""
        query_id = text_field(query, "query_id")
        text = text_field(query, "text")
        if not query_id:
            raise ValueError(f"{self.name}: query row without query_id: {dict(query)!r}")
        if not text:
            raise ValueError(f"{self.name}: query {query_id} has an empty text")
        max_results = int(max_results)
        hits: list[dict] = []
        if max_results <= 0:
            return hits
        self.n_queries += 1
        seen: set[str] = set()
        pages = self._pages(query, max_results)
        try:
            for n_page, items in enumerate(pages):
                new = 0
                for item in items:
                    url = str_or_none(item.get("image_url"))
                    if not url or url in seen:
                        continue
                    seen.add(url)
                    new += 1
                    hits.append({
                        "query_id": query_id, "backend": self.name, "rank": len(hits), "image_url": url,
                        "page_url": str_or_none(item.get("page_url")), "alt_text": str_or_none(item.get("alt_text")),
                        "width": int_or_none(item.get("width")), "height": int_or_none(item.get("height")),
                        "licence": str_or_none(item.get("licence")),
                    })
                    if len(hits) >= max_results:
                        break
                # stop: enough hits, a page of nothing but repeats (pagination stuck), or the page cap;
                # an empty/fully filtered page does not stop us: the generator ends when the API runs out
                if len(hits) >= max_results or (items and new == 0) or n_page + 1 >= self.max_pages:
                    break
        except HttpStatusError as exc:
            if not (self.skip_bad_queries and exc.status in BAD_QUERY_STATUS):
                raise
            self._consecutive_bad += 1
            self.skipped.append((query_id, str(exc)))
            log.warning("%s: query %s skipped after %d hit(s): %s", self.name, query_id, len(hits), exc)
            if self._consecutive_bad >= self.max_consecutive_bad:
                raise HttpStatusError(
                    f"{self.name}: {self._consecutive_bad} queries in a row were rejected (last: {exc}); this looks "
                    f"like a configuration problem, not bad queries", backend=self.name, url=exc.url,
                    status=exc.status) from None
            return hits
        finally:
            pages.close()
        self._consecutive_bad = 0
        self.n_hits += len(hits)
        log.debug("%s: query %s -> %d hit(s)", self.name, query_id, len(hits))
        return hits

    @property
    def stats(self) -> dict:
        """Counters: queries, hits, skipped queries, and the client's requests/cache hits/retries/cache writes."""
        return {"queries": self.n_queries, "hits": self.n_hits, "skipped_queries": len(self.skipped),
                **self.client.stats}

    def close(self) -> None:
        """Release the HTTP session."""
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def query_image_type(query: Mapping[str, Any]) -> str:
    return text_field(query, "image_type").lower()


def mapped_filter(backend: str, mapping: Mapping[str, str], image_type: str) -> str | None:
    if not image_type:
        return None
    if image_type not in mapping:
        raise ValueError(f"{backend}: image_type {image_type!r} has no filter here (known: {sorted(mapping)}); "
                         f"set params.image_type_filter: false to search without one")
    return mapping[image_type]
