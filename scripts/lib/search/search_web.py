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
"""
from __future__ import annotations

import html
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import requests

from lib.common.artifact_columns import HIT_COLUMNS  # one home; re-exported
from lib.common.http_cache import CachedClient, HttpStatusError

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
def _text_field(query: Mapping[str, Any], key: str) -> str:
    """A string field of a query row; ``None``/NaN/missing give ``""``."""
    value = query.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _int_or_none(value: Any) -> int | None:
    try:
        if value is None or value == "":
            return None
        out = int(float(value))
        return out if out >= 0 else None
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


_TAG_RE = re.compile(r"<[^>]+>")
_WS_RE = re.compile(r"\s+")


def strip_html(text: str | None, max_len: int = 1000) -> str | None:
    """Plain text of an HTML snippet (tags removed, entities decoded, whitespace collapsed), or ``None``."""
    if not text:
        return None
    out = _WS_RE.sub(" ", html.unescape(_TAG_RE.sub(" ", str(text)))).strip()
    if len(out) > max_len:
        out = out[:max_len].rstrip()
    return out or None


def terms(text: str) -> list[str]:
    """Whitespace tokens of ``text``, de-duplicated case-insensitively in order, leading ``-`` removed."""
    seen: set[str] = set()
    out = []
    for tok in text.split():
        tok = tok.lstrip("-")
        if tok and tok.lower() not in seen:
            seen.add(tok.lower())
            out.append(tok)
    return out


def build_query_string(text: str, or_terms: str = "", exclude_terms: str = "", *, use_or_terms: bool = True,
                       use_exclude_terms: bool = True, max_or_terms: int | None = None) -> str:
    """The ``q`` sent to a web engine: ``text``, then ``(a OR b OR …)``, then ``-x -y``.

    ``or_terms`` is the space-joined Google ``orTerms`` string of queries.parquet: each whitespace token is one
    alternative (a result must contain at least one of them), which is what an ``OR`` group expresses in a query.
    ``max_or_terms`` keeps the first N alternatives (Google ignores words beyond 32).

    >>> build_query_string("european rabbit", "coney animal", "drawing clipart")
    'european rabbit (coney OR animal) -drawing -clipart'
    """
    q = text.strip()
    if use_or_terms:
        alts = terms(or_terms)
        if max_or_terms is not None:
            alts = alts[: int(max_or_terms)]
        if alts:
            q += " (" + " OR ".join(alts) + ")"
    if use_exclude_terms:
        excl = terms(exclude_terms)
        if excl:
            q += " " + " ".join("-" + t for t in excl)
    return q


_CC_CODES = {"by", "by-sa", "by-nc", "by-nd", "by-nc-sa", "by-nc-nd", "by-sa-nc", "by-nd-nc", "sampling+",
             "nc-sampling+", "sampling"}


def normalise_licence(code: str | None, version: str | None = None) -> str | None:
    """A readable licence string from an API licence code.

    ``("by-sa", "4.0")`` → ``"CC BY-SA 4.0"``; ``"cc-by-nc"`` → ``"CC BY-NC"``; ``"cc0"`` → ``"CC0"``;
    ``("pdm", "1.0")`` → ``"PDM 1.0"``; an unknown code is returned as given; ``None``/empty → ``None``.
    """
    if code is None:
        return None
    raw = str(code).strip()
    if not raw:
        return None
    c = raw.lower().replace("_", "-")
    if c.startswith("cc-") and c != "cc-0":
        c = c[3:]
    if c in ("cc0", "cc-0", "zero"):
        out = "CC0"
    elif c == "pdm":
        out = "PDM"
    elif c in _CC_CODES:
        out = "CC " + c.upper()
    else:
        out = raw
    version = _str_or_none(version)
    return f"{out} {version}" if version else out


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

    def __init__(self, params: Mapping[str, Any] | None, cache_dir: str | os.PathLike | None, *,
                 env: Mapping[str, str] | None = None, session: requests.Session | None = None):
        params = dict(params or {})
        self.params = params
        unknown = unknown_params(self.name, params)
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
        query_id = _text_field(query, "query_id")
        text = _text_field(query, "text")
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
                    url = _str_or_none(item.get("image_url"))
                    if not url or url in seen:
                        continue
                    seen.add(url)
                    new += 1
                    hits.append({
                        "query_id": query_id, "backend": self.name, "rank": len(hits), "image_url": url,
                        "page_url": _str_or_none(item.get("page_url")), "alt_text": _str_or_none(item.get("alt_text")),
                        "width": _int_or_none(item.get("width")), "height": _int_or_none(item.get("height")),
                        "licence": _str_or_none(item.get("licence")),
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


def _image_type(query: Mapping[str, Any]) -> str:
    return _text_field(query, "image_type").lower()


def _mapped(backend: str, mapping: Mapping[str, str], image_type: str) -> str | None:
    if not image_type:
        return None
    if image_type not in mapping:
        raise ValueError(f"{backend}: image_type {image_type!r} has no filter here (known: {sorted(mapping)}); "
                         f"set params.image_type_filter: false to search without one")
    return mapping[image_type]


# ----------------------------------------------------------------------------------------------------------------
# Openverse
# ----------------------------------------------------------------------------------------------------------------
class OpenverseBackend(WebSearchBackend):
    """Openverse ``GET /v1/images/`` (keyless; optional OAuth token as ``Authorization: Bearer``).

    Sends ``q, page (1-based), page_size, category (photo → photograph, when image_type_filter), mature``;
    pages until ``page >= page_count``. Hit: ``url``, ``foreign_landing_url``, ``title``, ``width``, ``height``,
    licence ``CC <LICENSE> <license_version>``. Extra params: ``image_type_filter`` (default true), ``mature``
    (default false).
    """

    name = "openverse"
    DEFAULT_BASE_URL = "https://api.openverse.org"
    PATH = "/v1/images/"
    DEFAULT_PAGE_SIZE = 20   # anonymous limit
    MAX_PAGE_SIZE = 500      # authenticated limit
    DEFAULT_MAX_PAGES = 12   # 240 results: the anonymous pagination depth
    DEFAULT_RPS = 0.5
    DEFAULT_KEY_ENV = "OPENVERSE_TOKEN"
    KEY_HEADER = "Authorization"
    EXTRA_PARAMS = frozenset({"image_type_filter", "mature"})
    CATEGORIES = {"photo": "photograph", "photograph": "photograph", "illustration": "illustration",
                  "digitized_artwork": "digitized_artwork"}

    def _auth_headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _pages(self, query, max_results):
        size = self._page_size_for(max_results)
        base = {"q": _text_field(query, "text"), "page_size": size,
                "mature": "true" if self.params.get("mature", False) else "false"}
        if self.params.get("image_type_filter", True):
            base["category"] = _mapped(self.name, self.CATEGORIES, _image_type(query))
        page = 1
        while True:
            data = self._get(self.PATH, {**base, "page": page})
            results = data.get("results") or []
            yield [{
                "image_url": r.get("url"), "page_url": r.get("foreign_landing_url"),
                "alt_text": r.get("title"), "width": r.get("width"), "height": r.get("height"),
                "licence": normalise_licence(r.get("license"), r.get("license_version")),
            } for r in results]
            page_count = _int_or_none(data.get("page_count"))
            if not results or page_count is None or page >= page_count:
                return
            page += 1


# ----------------------------------------------------------------------------------------------------------------
# Wikimedia Commons
# ----------------------------------------------------------------------------------------------------------------
class CommonsBackend(WebSearchBackend):
    """Wikimedia Commons MediaWiki Action API: ``generator=search`` in the File namespace + ``prop=imageinfo``.

    Sends ``action=query, format=json, formatversion=2, generator=search, gsrnamespace=6, gsrsearch=<text>,
    gsrlimit, prop=imageinfo, iiprop=url|size|mime|extmetadata, iiextmetadatafilter=LicenseShortName|
    ImageDescription|ObjectName, iiextmetadatalanguage=en`` and follows ``continue`` (all its keys passed back,
    partial ``imageinfo`` batches merged until ``batchcomplete``). Pages are ordered by the search ``index``.
    Hit: ``imageinfo[0].url``, ``descriptionurl``, ``width``, ``height``; licence = ``LicenseShortName``;
    alt text = ``ImageDescription`` (HTML stripped) or, if empty, the file title without ``File:`` and extension
    (``alt_text_source: title`` reverses the preference). Files whose MIME type is not in ``allowed_mime`` (default
    JPEG, PNG, WebP, GIF; so no SVG/PDF/TIFF/video) are dropped.
    """

    name = "commons"
    DEFAULT_BASE_URL = "https://commons.wikimedia.org"
    PATH = "/w/api.php"
    DEFAULT_PAGE_SIZE = 50
    MAX_PAGE_SIZE = 500
    DEFAULT_MAX_PAGES = 10
    DEFAULT_RPS = 1.0
    EXTRA_PARAMS = frozenset({"allowed_mime", "alt_text_source"})
    DEFAULT_MIME = ("image/jpeg", "image/png", "image/webp", "image/gif")

    def _pages(self, query, max_results):
        allowed = set(self.params.get("allowed_mime") or self.DEFAULT_MIME)
        prefer_title = str(self.params.get("alt_text_source", "description")) == "title"
        base = {
            "action": "query", "format": "json", "formatversion": "2", "generator": "search", "gsrnamespace": 6,
            "gsrsearch": _text_field(query, "text"), "gsrlimit": self._page_size_for(max_results),
            "prop": "imageinfo", "iiprop": "url|size|mime|extmetadata",
            "iiextmetadatafilter": "LicenseShortName|ImageDescription|ObjectName", "iiextmetadatalanguage": "en",
        }
        cont: dict = {}
        batch: dict[Any, dict] = {}
        while True:
            data = self._get(self.PATH, {**base, **cont})
            if "error" in data:
                err = data["error"] if isinstance(data["error"], dict) else {"info": data["error"]}
                raise SearchApiError(f"{self.name}: API error {err.get('code', '?')}: {err.get('info', '')}")
            pages = (data.get("query") or {}).get("pages") or []
            if isinstance(pages, dict):  # formatversion=1 shape
                pages = list(pages.values())
            for p in pages:
                key = p.get("pageid", p.get("title"))
                old = batch.setdefault(key, {"title": p.get("title"), "index": p.get("index"), "imageinfo": []})
                if p.get("index") is not None:
                    old["index"] = p["index"]
                old["imageinfo"].extend(p.get("imageinfo") or [])
            cont = data.get("continue") or {}
            if "batchcomplete" in data or not cont:
                ordered = sorted(batch.values(), key=lambda p: (p["index"] is None, p["index"] or 0))
                batch = {}
                yield [h for h in (self._hit(p, allowed, prefer_title) for p in ordered) if h]
            if not cont:
                return

    @staticmethod
    def _hit(page: dict, allowed: set, prefer_title: bool) -> dict | None:
        if not page["imageinfo"]:
            return None
        info = page["imageinfo"][0]
        if allowed and info.get("mime") not in allowed:
            return None
        meta = info.get("extmetadata") or {}

        def meta_value(name):
            v = meta.get(name)
            return strip_html(v.get("value") if isinstance(v, dict) else v)

        title = str(page.get("title") or "")
        title = re.sub(r"^(File|Image):", "", title)
        title = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", title).replace("_", " ").strip() or None
        desc = meta_value("ImageDescription")
        alt = (title or desc) if prefer_title else (desc or title)
        return {"image_url": info.get("url"), "page_url": info.get("descriptionurl"), "alt_text": alt,
                "width": info.get("width"), "height": info.get("height"),
                "licence": meta_value("LicenseShortName")}


# ----------------------------------------------------------------------------------------------------------------
# iNaturalist
# ----------------------------------------------------------------------------------------------------------------
class INaturalistBackend(WebSearchBackend):
    """iNaturalist API v1 ``GET /v1/observations`` (keyless).

    Sends ``q, photos=true, per_page, page (1-based), photo_license, quality_grade, order_by, order``; one hit per
    observation photo whose ``license_code`` is in ``photo_license`` (when set). Image URL = ``photos[].url`` with
    the size segment ``square`` replaced by ``photo_size`` (default ``large``, 1024 px on the long side); width and
    height = ``original_dimensions`` scaled to that size; page URL = the observation's ``uri``; alt text =
    ``"<preferred common name> (<taxon name>)"`` or the taxon name; licence = ``CC BY-NC`` etc. from
    ``license_code`` (``None``: all rights reserved, reported as ``"all rights reserved"``). Stops at
    ``total_results`` and at the API's ``page * per_page <= 10000`` window.
    Extra params: ``photo_license`` (default all CC licences: ``cc0,cc-by,cc-by-sa,cc-by-nc,cc-by-nd,cc-by-nc-sa,
    cc-by-nc-nd``; ``""`` for no filter), ``quality_grade`` (default ``research``; ``""`` for any), ``photo_size``,
    ``order_by`` (default ``votes``).
    """

    name = "inaturalist"
    DEFAULT_BASE_URL = "https://api.inaturalist.org"
    PATH = "/v1/observations"
    DEFAULT_PAGE_SIZE = 50
    MAX_PAGE_SIZE = 200
    DEFAULT_MAX_PAGES = 10
    DEFAULT_RPS = 1.0
    EXTRA_PARAMS = frozenset({"photo_license", "quality_grade", "photo_size", "order_by"})
    DEFAULT_LICENSES = "cc0,cc-by,cc-by-sa,cc-by-nc,cc-by-nd,cc-by-nc-sa,cc-by-nc-nd"
    SIZES = {"square": 75, "small": 240, "medium": 500, "large": 1024, "original": 2048}
    WINDOW = 10000

    def _pages(self, query, max_results):
        size_name = str(self.params.get("photo_size", "large"))
        if size_name not in self.SIZES:
            raise ValueError(f"{self.name}: photo_size must be one of {sorted(self.SIZES)}, got {size_name!r}")
        licences = self.params.get("photo_license", self.DEFAULT_LICENSES)
        if isinstance(licences, (list, tuple)):
            licences = ",".join(licences)
        allowed = {c.strip().lower() for c in str(licences or "").split(",") if c.strip()}
        per_page = self._page_size_for(max_results)
        base = {"q": _text_field(query, "text"), "photos": "true", "per_page": per_page,
                "photo_license": licences or None,
                "quality_grade": self.params.get("quality_grade", "research") or None,
                "order_by": self.params.get("order_by", "votes") or None, "order": "desc"}
        page = 1
        while True:
            data = self._get(self.PATH, {**base, "page": page})
            results = data.get("results") or []
            items = []
            for obs in results:
                taxon = obs.get("taxon") or {}
                sci, common = _str_or_none(taxon.get("name")), _str_or_none(taxon.get("preferred_common_name"))
                alt = f"{common} ({sci})" if common and sci and common.lower() != sci.lower() else (sci or common)
                obs_url = obs.get("uri") or (f"https://www.inaturalist.org/observations/{obs['id']}"
                                             if obs.get("id") is not None else None)
                for photo in obs.get("photos") or []:
                    code = _str_or_none(photo.get("license_code"))
                    if allowed and (code or "").lower() not in allowed:
                        continue
                    dims = photo.get("original_dimensions") or {}
                    w, h = self._scaled(dims.get("width"), dims.get("height"), self.SIZES[size_name])
                    items.append({"image_url": self._resize(photo.get("url"), size_name), "page_url": obs_url,
                                  "alt_text": alt, "width": w, "height": h,
                                  "licence": normalise_licence(code) if code else "all rights reserved"})
            yield items
            total = _int_or_none(data.get("total_results"))
            if (not results or (total is not None and page * per_page >= total)
                    or (page + 1) * per_page > self.WINDOW):
                return
            page += 1

    @staticmethod
    def _resize(url: str | None, size: str) -> str | None:
        if not url:
            return None
        new, n = re.subn(r"/square\.(\w+)(\?[^/]*)?$", rf"/{size}.\1\2", url)
        return new if n else url.replace("square", size, 1)

    @staticmethod
    def _scaled(width, height, max_side: int) -> tuple[int | None, int | None]:
        w, h = _int_or_none(width), _int_or_none(height)
        if not w or not h:
            return None, None
        scale = min(1.0, max_side / max(w, h))
        return max(1, round(w * scale)), max(1, round(h * scale))


# ----------------------------------------------------------------------------------------------------------------
# Brave
# ----------------------------------------------------------------------------------------------------------------
class BraveBackend(WebSearchBackend):
    """Brave Search API ``GET /res/v1/images/search`` with header ``X-Subscription-Token``.

    Sends ``q`` (the query text only) and ``count = min(max_results, page_size)`` (API maximum 200); the image
    endpoint has no offset, so there is one request per query. Hit: ``results[].properties.url``,
    ``results[].url`` (page), ``title``, ``properties.width/height`` when present; licence ``None``.
    ``extra_params`` may set ``country``, ``search_lang``, ``safesearch`` (API default ``strict``), ``spellcheck``.
    """

    name = "brave"
    DEFAULT_BASE_URL = "https://api.search.brave.com"
    PATH = "/res/v1/images/search"
    DEFAULT_PAGE_SIZE = 200
    MAX_PAGE_SIZE = 200
    DEFAULT_MAX_PAGES = 1
    DEFAULT_RPS = 1.0
    DEFAULT_KEY_ENV = "BRAVE_API_KEY"
    KEY_REQUIRED = True
    KEY_HEADER = "X-Subscription-Token"

    def _pages(self, query, max_results):
        data = self._get(self.PATH, {"q": _text_field(query, "text"), "count": self._page_size_for(max_results)})
        items = []
        for r in data.get("results") or []:
            props = r.get("properties") or {}
            items.append({"image_url": props.get("url") or None, "page_url": r.get("url"),
                          "alt_text": r.get("title"), "width": props.get("width"), "height": props.get("height"),
                          "licence": None})
        yield items


# ----------------------------------------------------------------------------------------------------------------
# SerpAPI
# ----------------------------------------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"(\d+)\s*[x×]\s*(\d+)")


class _SerpApiBackend(WebSearchBackend):
    """Common part of the SerpAPI engines (``GET /search.json``, key as ``api_key`` query parameter)."""

    DEFAULT_BASE_URL = "https://serpapi.com"
    PATH = "/search.json"
    DEFAULT_RPS = 1.0
    DEFAULT_KEY_ENV = "SERPAPI_API_KEY"
    KEY_REQUIRED = True
    KEY_PARAM = "api_key"
    EXTRA_PARAMS = frozenset({"or_terms", "exclude_terms", "max_or_terms", "image_type_filter"})
    DEFAULT_OR_TERMS = True
    DEFAULT_EXCLUDE_TERMS = True
    NO_RESULTS = ("hasn't returned any results", "has not returned any results", "no results")

    def query_string(self, query: Mapping[str, Any]) -> str:
        """The ``q`` this backend sends for a query row (see :func:`build_query_string`)."""
        return build_query_string(
            _text_field(query, "text"), _text_field(query, "or_terms"), _text_field(query, "exclude_terms"),
            use_or_terms=bool(self.params.get("or_terms", self.DEFAULT_OR_TERMS)),
            use_exclude_terms=bool(self.params.get("exclude_terms", self.DEFAULT_EXCLUDE_TERMS)),
            max_or_terms=self.params.get("max_or_terms"))

    def _checked(self, data: dict) -> bool:
        """False when SerpAPI says there are no (more) results; raises on other body errors."""
        err = data.get("error")
        if err:
            if any(s in str(err).lower() for s in self.NO_RESULTS):
                return False
            raise SearchApiError(f"{self.name}: SerpAPI error: {self.client.mask(str(err))}")
        return True

    def _paged(self, base: dict, key: str, start: int, advance):
        """Pages of items: ``base`` plus ``key = start``, then ``advance(value, items)``, until an empty page or
        SerpAPI's no-results error."""
        value = start
        while True:
            data = self._get(self.PATH, {**base, key: value})
            if not self._checked(data):
                return
            items = self._items(data)
            yield items
            if not items:
                return
            value = advance(value, items)

    @staticmethod
    def _items(data: dict) -> list[dict]:
        items = []
        for r in data.get("images_results") or []:
            w, h = r.get("original_width"), r.get("original_height")
            if (w is None or h is None) and isinstance(r.get("size"), str):
                m = _SIZE_RE.search(r["size"])
                if m:
                    w, h = m.group(1), m.group(2)
            items.append({"image_url": r.get("original"), "page_url": r.get("link"), "alt_text": r.get("title"),
                          "width": w, "height": h, "licence": None})
        return items


class SerpApiGoogleBackend(_SerpApiBackend):
    """SerpAPI Google Images: ``engine=google_images, q, ijn (0-based page of 100), tbs=itp:photo, api_key``.

    ``q`` = ``text (or1 OR or2 …) -ex1 -ex2`` (:func:`build_query_string`; ``or_terms``/``exclude_terms``
    params switch the parts off, ``max_or_terms`` caps the OR group). Hit: ``images_results[].original``,
    ``link``, ``title``, ``original_width``, ``original_height``; licence ``None``. Pages until an empty page or
    SerpAPI's "hasn't returned any results" error.
    """

    name = "serpapi_google"
    DEFAULT_PAGE_SIZE = 100   # fixed by Google Images; not sent
    MAX_PAGE_SIZE = 100
    DEFAULT_MAX_PAGES = 5
    TBS = {"photo": "itp:photo", "clipart": "itp:clipart", "lineart": "itp:lineart", "face": "itp:face",
           "animated": "itp:animated"}

    def _pages(self, query, max_results):
        base = {"engine": "google_images", "q": self.query_string(query)}
        if self.params.get("image_type_filter", True):
            tbs = _mapped(self.name, self.TBS, _image_type(query))
            if tbs:
                base["tbs"] = tbs
        yield from self._paged(base, "ijn", 0, lambda ijn, items: ijn + 1)


class SerpApiBingBackend(_SerpApiBackend):
    """SerpAPI Bing Images: ``engine=bing_images, q, first (1-based offset), count, api_key`` + photo filter.

    The photo filter is ``photo=photo`` (the parameter SerpAPI documents for Bing Images) by default, or
    ``qft=+filterui:photo-photo`` (Bing's own URL syntax) with ``bing_filter_param: qft``.
    ``q`` follows the authors' Bing queries by default (``or_terms: natural_type``): the living noun and
    attribute+noun queries (``wd-noun-living``, ``wd-attrnoun-living``) carry their natural type as the one OR term
    (``red fox (animal)``; a multi-word type is one phrase: ``barn owl (bird of prey)``); every other query, and
    every query without a natural type, is its text only; no exclude list. ``or_terms: false`` sends the text only
    for every query (our earlier Bing behaviour); ``or_terms: true`` sends the row's Google-style OR group, and
    ``exclude_terms: true`` its exclude list.
    ``first`` advances by the number of results actually returned (``count`` is only a suggestion to Bing).
    """

    name = "serpapi_bing"
    DEFAULT_PAGE_SIZE = 100
    MAX_PAGE_SIZE = 150
    DEFAULT_MAX_PAGES = 5
    DEFAULT_OR_TERMS = False
    DEFAULT_EXCLUDE_TERMS = False
    EXTRA_PARAMS = _SerpApiBackend.EXTRA_PARAMS | {"bing_filter_param"}
    PHOTO = {"photo": "photo", "clipart": "clipart", "lineart": "linedrawing", "linedrawing": "linedrawing",
             "animated": "animatedgif", "transparent": "transparent"}
    #: kinds whose Bing query the authors gave the natural type as OR term (their living generators' ``bing`` branch)
    NATURAL_TYPE_KINDS = frozenset({"wd-noun-living", "wd-attrnoun-living"})

    def query_string(self, query: Mapping[str, Any]) -> str:
        mode = self.params.get("or_terms", "natural_type")
        if mode != "natural_type":
            if not isinstance(mode, bool):
                raise ValueError(f"{self.name}: or_terms must be 'natural_type', true or false, got {mode!r}")
            return super().query_string(query)
        q = _text_field(query, "text")
        nat = _text_field(query, "natural_type") if _text_field(query, "kind") in self.NATURAL_TYPE_KINDS else ""
        if nat:  # the one alternative is the whole natural-type name (a phrase such as "bird of prey" is not split)
            q += f" ({' '.join(nat.split())})"
        return build_query_string(q, "", _text_field(query, "exclude_terms"), use_or_terms=False,
                                  use_exclude_terms=bool(self.params.get("exclude_terms", self.DEFAULT_EXCLUDE_TERMS)))

    def _pages(self, query, max_results):
        count = self._page_size_for(max_results)
        base = {"engine": "bing_images", "q": self.query_string(query), "count": count}
        if self.params.get("image_type_filter", True):
            value = _mapped(self.name, self.PHOTO, _image_type(query))
            mode = str(self.params.get("bing_filter_param", "photo"))
            if mode not in ("photo", "qft"):
                raise ValueError(f"{self.name}: bing_filter_param must be 'photo' or 'qft', got {mode!r}")
            if value:
                base.update({"photo": value} if mode == "photo" else {"qft": f"+filterui:photo-{value}"})
        # ``first`` advances by the number of results actually returned
        yield from self._paged(base, "first", 1, lambda first, items: first + len(items))


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
    cls = _backend_class(name)
    return sorted(set(params or {}) - COMMON_PARAMS - CALLER_PARAMS - cls.EXTRA_PARAMS)


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


__all__ = ["BACKENDS", "HIT_COLUMNS", "WebSearchBackend", "make_backend", "required_env", "unknown_params",
           "hits_frame", "build_query_string", "normalise_licence", "SearchApiError"]
