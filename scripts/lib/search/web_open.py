"""The keyless open-licence image APIs: Openverse, Wikimedia Commons and iNaturalist (each a
:class:`WebSearchBackend`), with the readers of their response values (licence codes, HTML descriptions).
"""
from __future__ import annotations

import html
import re
from typing import Any

from lib.search.web_base import (SearchApiError, WebSearchBackend, int_or_none, mapped_filter, query_image_type,
                                 str_or_none, text_field)

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
    version = str_or_none(version)
    return f"{out} {version}" if version else out


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
        base = {"q": text_field(query, "text"), "page_size": size,
                "mature": "true" if self.params.get("mature", False) else "false"}
        if self.params.get("image_type_filter", self.DEFAULT_IMAGE_TYPE_FILTER):
            base["category"] = mapped_filter(self.name, self.CATEGORIES, query_image_type(query))
        page = 1
        while True:
            data = self._get(self.PATH, {**base, "page": page})
            results = data.get("results") or []
            yield [{
                "image_url": r.get("url"), "page_url": r.get("foreign_landing_url"),
                "alt_text": r.get("title"), "width": r.get("width"), "height": r.get("height"),
                "licence": normalise_licence(r.get("license"), r.get("license_version")),
            } for r in results]
            page_count = int_or_none(data.get("page_count"))
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
            "gsrsearch": text_field(query, "text"), "gsrlimit": self._page_size_for(max_results),
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
        base = {"q": text_field(query, "text"), "photos": "true", "per_page": per_page,
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
                sci, common = str_or_none(taxon.get("name")), str_or_none(taxon.get("preferred_common_name"))
                alt = f"{common} ({sci})" if common and sci and common.lower() != sci.lower() else (sci or common)
                obs_url = obs.get("uri") or (f"https://www.inaturalist.org/observations/{obs['id']}"
                                             if obs.get("id") is not None else None)
                for photo in obs.get("photos") or []:
                    code = str_or_none(photo.get("license_code"))
                    if allowed and (code or "").lower() not in allowed:
                        continue
                    dims = photo.get("original_dimensions") or {}
                    w, h = self._scaled(dims.get("width"), dims.get("height"), self.SIZES[size_name])
                    items.append({"image_url": self._resize(photo.get("url"), size_name), "page_url": obs_url,
                                  "alt_text": alt, "width": w, "height": h,
                                  "licence": normalise_licence(code) if code else "all rights reserved"})
            yield items
            total = int_or_none(data.get("total_results"))
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
        w, h = int_or_none(width), int_or_none(height)
        if not w or not h:
            return None, None
        scale = min(1.0, max_side / max(w, h))
        return max(1, round(w * scale)), max(1, round(h * scale))
