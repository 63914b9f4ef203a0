"""Web image-search backends behind one interface (Openverse, Wikimedia Commons, iNaturalist, Brave, SerpAPI).

Every backend turns one row of ``queries.parquet`` (a dict) into at most ``max_results`` hits::

    backend = make_backend("openverse", {"requests_per_second": 1.0, "page_size": 20}, cache_dir="cache/search")
    hits = backend.search({"query_id": "…", "text": "european rabbit", "kind": "wd-noun-living",
                           "or_terms": "coney", "exclude_terms": "drawing clipart", "image_type": "photo",
                           "is_living": True, "qids": ["Q25851"]}, max_results=50)
    backend.close()

A hit is a dict with exactly the keys of :data:`HIT_COLUMNS` (``query_id, backend, rank, image_url, page_url,
alt_text, width, height, licence``; unknown values are ``None``; ``rank`` is 0-based and contiguous). Hits without an
image URL are dropped, and an image URL seen earlier for the same query (pagination overlap) is skipped.

All HTTP goes through :class:`http_cache.CachedClient`: responses are cached under ``<cache_dir>/<backend>/``, so
a rerun sends no request twice; requests are rate limited and retried (see ``http_cache``). API keys are read only
from environment variables (``api_key_env``), never from config, and never reach cache files or logs.

Config params read by every backend (all optional): ``base_url``, ``requests_per_second``, ``max_retries``,
``timeout_s``, ``page_size``, ``max_pages``, ``api_key_env``, ``user_agent``, ``backoff_base_s``, ``backoff_max_s``,
``max_retry_after_s``, ``extra_params`` (dict added to every request), ``offline``, ``shared_rate_limit``,
``skip_bad_queries``, ``max_consecutive_bad_queries``, ``cache_compress``. Backend-specific ones are listed on each class and in
``docs/SEARCH_BACKENDS.md``. No backend has been tried against the live service from the development environment;
they are tested against the local stand-ins in ``tests/standins/``.

This module is the interface and the registry (name -> backend class, config checks, :func:`hits_frame`); the code
lives in ``web_base`` (params, key, client, the search loop), ``web_open`` (Openverse, Commons, iNaturalist) and
``web_engines`` (Brave, SerpAPI Google and Bing, :func:`build_query_string`).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import requests

from lib.common.artifact_columns import HIT_COLUMNS  # one home; re-exported
from lib.search.web_base import CALLER_PARAMS, COMMON_PARAMS, SearchApiError, WebSearchBackend
from lib.search.web_engines import BraveBackend, SerpApiBingBackend, SerpApiGoogleBackend, build_query_string
from lib.search.web_open import CommonsBackend, INaturalistBackend, OpenverseBackend, normalise_licence


def hits_frame(hits: list[dict]):
    """The hits as a DataFrame with the ``search/{backend}/chunk_{i}.parquet`` columns and dtypes
    (``rank`` int64, ``width``/``height`` nullable Int64, the rest object/str with ``None`` for unknown)."""
    import pandas as pd

    df = pd.DataFrame(list(hits), columns=list(HIT_COLUMNS))
    df["rank"] = df["rank"].astype("int64")
    for col in ("width", "height"):
        df[col] = pd.array([None if v is None or v != v else int(v) for v in df[col]], dtype="Int64")
    for col in ("query_id", "backend", "image_url", "page_url", "alt_text", "licence"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df


# ----------------------------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------------------------
BACKENDS: dict[str, type[WebSearchBackend]] = {
    cls.name: cls for cls in (OpenverseBackend, CommonsBackend, INaturalistBackend, BraveBackend,
                              SerpApiGoogleBackend, SerpApiBingBackend)
}


def _backend_class(name: str) -> type[WebSearchBackend]:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown search backend {name!r}; known: {sorted(BACKENDS)}") from None


def unknown_params(name: str, params: Mapping[str, Any] | None) -> list[str]:
    """Config keys that backend ``name`` does not read (for config validation; unknown keys only warn)."""
    return _backend_class(name).unknown_params(params)


def required_env(name: str, params: Mapping[str, Any] | None = None) -> list[str]:
    """Environment variables backend ``name`` needs (its key), for validation before any job starts.

    ``params.api_key_env`` overrides the default variable name; for Openverse (keyless) a token variable is only
    required when ``api_key_env`` is set.
    """
    cls = _backend_class(name)
    params = params or {}
    env = params.get("api_key_env", cls.DEFAULT_KEY_ENV)
    if env and (cls.KEY_REQUIRED or "api_key_env" in params):
        return [str(env)]
    return []


def make_backend(name: str, params: Mapping[str, Any] | None, cache_dir: str | os.PathLike | None, *,
                 env: Mapping[str, str] | None = None, session: requests.Session | None = None) -> WebSearchBackend:
    """Build backend ``name`` from its config ``params``; its cache goes to ``<cache_dir>/<name>/``.

    Raises ``ValueError`` naming the backend for an unknown name, a missing/empty key variable or a bad param.
    ``env`` defaults to ``os.environ``.
    """
    cls = _backend_class(name)
    return cls(params, cache_dir, env=env, session=session)


__all__ = ["BACKENDS", "HIT_COLUMNS", "COMMON_PARAMS", "CALLER_PARAMS", "WebSearchBackend", "make_backend",
           "required_env", "unknown_params", "hits_frame", "build_query_string", "normalise_licence", "SearchApiError"]
