"""The keyed web search engines: Brave Search and the SerpAPI engines (Google Images, Bing Images), each a
:class:`WebSearchBackend`, with the query syntax they send (:func:`build_query_string`: OR group, exclude list).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from lib.search.web_base import SearchApiError, WebSearchBackend, mapped_filter, query_image_type, text_field


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
        data = self._get(self.PATH, {"q": text_field(query, "text"), "count": self._page_size_for(max_results)})
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
            text_field(query, "text"), text_field(query, "or_terms"), text_field(query, "exclude_terms"),
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
        if self.params.get("image_type_filter", self.DEFAULT_IMAGE_TYPE_FILTER):
            tbs = mapped_filter(self.name, self.TBS, query_image_type(query))
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
    DEFAULT_OR_TERMS = "natural_type"
    DEFAULT_EXCLUDE_TERMS = False
    EXTRA_PARAMS = _SerpApiBackend.EXTRA_PARAMS | {"bing_filter_param"}
    PHOTO = {"photo": "photo", "clipart": "clipart", "lineart": "linedrawing", "linedrawing": "linedrawing",
             "animated": "animatedgif", "transparent": "transparent"}
    #: kinds whose Bing query the authors gave the natural type as OR term (their living generators' ``bing`` branch)
    NATURAL_TYPE_KINDS = frozenset({"wd-noun-living", "wd-attrnoun-living"})

    def query_string(self, query: Mapping[str, Any]) -> str:
        mode = self.params.get("or_terms", self.DEFAULT_OR_TERMS)
        if mode != "natural_type":
            if not isinstance(mode, bool):
                raise ValueError(f"{self.name}: or_terms must be 'natural_type', true or false, got {mode!r}")
            return super().query_string(query)
        q = text_field(query, "text")
        nat = text_field(query, "natural_type") if text_field(query, "kind") in self.NATURAL_TYPE_KINDS else ""
        if nat:  # the one alternative is the whole natural-type name (a phrase such as "bird of prey" is not split)
            q += f" ({' '.join(nat.split())})"
        return build_query_string(q, "", text_field(query, "exclude_terms"), use_or_terms=False,
                                  use_exclude_terms=bool(self.params.get("exclude_terms", self.DEFAULT_EXCLUDE_TERMS)))

    def _pages(self, query, max_results):
        count = self._page_size_for(max_results)
        base = {"engine": "bing_images", "q": self.query_string(query), "count": count}
        if self.params.get("image_type_filter", self.DEFAULT_IMAGE_TYPE_FILTER):
            value = mapped_filter(self.name, self.PHOTO, query_image_type(query))
            mode = str(self.params.get("bing_filter_param", "photo"))
            if mode not in ("photo", "qft"):
                raise ValueError(f"{self.name}: bing_filter_param must be 'photo' or 'qft', got {mode!r}")
            if value:
                base.update({"photo": value} if mode == "photo" else {"qft": f"+filterui:photo-{value}"})
        # ``first`` advances by the number of results actually returned
        yield from self._paged(base, "first", 1, lambda first, items: first + len(items))
