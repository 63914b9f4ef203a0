"""Stand-ins (NOT the real services) for Openverse, Wikimedia Commons, iNaturalist, Brave and SerpAPI.

Each class answers the one endpoint ``scripts/lib/search/search_web.py`` uses, in that API's documented JSON shape (field
names as in the public docs; extra fields the client should ignore are included on purpose), with pagination over
``n_results`` deterministic fake records per query (:func:`base.fake_items`). None of this was checked against the
live services.
"""
from __future__ import annotations

import math

from .base import Recorded, Reply, StandinServer, fake_items, slug

CC = ["by", "by-sa", "cc0", "by-nc", "pdm"]
CC_VERSION = {"by": "4.0", "by-sa": "3.0", "cc0": "1.0", "by-nc": "2.0", "pdm": "1.0"}


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class OpenverseStandin(StandinServer):
    """Stand-in for Openverse ``GET /v1/images/`` (``q, page, page_size``; ``page_count`` pagination).

    With ``api_key`` set, requires ``Authorization: Bearer <api_key>``; a page past ``page_count`` gives 400.
    """

    api_name = "openverse"

    def check_auth(self, req: Recorded):
        if self.api_key and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"detail": "Authentication credentials were not provided."})
        return None

    def respond(self, req: Recorded) -> Reply:
        if req.path != "/v1/images/":
            return Reply(404, {"detail": "Not found."})
        q = req.param("q", "")
        page, size = _int(req.param("page"), 1), _int(req.param("page_size"), 20)
        if not q or page < 1 or not 1 <= size <= 500:
            return Reply(400, {"detail": "Invalid parameters."})
        items = self.items(q)
        page_count = max(1, math.ceil(len(items) / size)) if items else 0
        if items and page > page_count:
            return Reply(400, {"detail": "Invalid page."})
        chunk = items[(page - 1) * size: page * size]
        results = []
        for it in chunk:
            lic = CC[it["i"] % len(CC)]
            results.append({
                "id": f"00000000-0000-0000-0000-{it['i']:012d}", "title": it["title"],
                "indexed_on": "2024-01-01T00:00:00Z", "foreign_landing_url": it["page_url"], "url": it["image_url"],
                "creator": "someone", "creator_url": None, "license": lic, "license_version": CC_VERSION[lic],
                "license_url": f"https://creativecommons.org/licenses/{lic}/{CC_VERSION[lic]}/",
                "provider": "flickr", "source": "flickr", "category": "photograph", "filesize": None,
                "filetype": "jpg", "tags": [{"name": "animal"}], "attribution": "…", "fields_matched": ["title"],
                "mature": False, "height": it["height"], "width": it["width"],
                "thumbnail": f"https://api.openverse.org/v1/images/{it['id']}/thumb/",
                "detail_url": "…", "related_url": "…", "unstable__sensitivity": [],
            })
        return Reply(200, {"result_count": len(items), "page_count": page_count, "page_size": size,
                           "page": page, "results": results})


class CommonsStandin(StandinServer):
    """Stand-in for the Commons MediaWiki API (``action=query&generator=search&prop=imageinfo``).

    Every 5th file is an SVG (to be filtered out). Pages are returned in reverse ``index`` order (as MediaWiki
    orders by page id, not rank). ``split_imageinfo=True`` makes every batch come in two responses: the first lacks
    ``imageinfo`` for every other page (by rank) and has
    ``continue: {iicontinue, gsroffset (the same batch), continue}`` and no ``batchcomplete``.
    """

    api_name = "commons"

    def __init__(self, *, split_imageinfo: bool = False, **kw):
        super().__init__(**kw)
        self.split_imageinfo = split_imageinfo

    def respond(self, req: Recorded) -> Reply:
        if req.path != "/w/api.php":
            return Reply(404, "<html>not found</html>")
        p = req.param
        if p("action") != "query" or p("generator") != "search" or p("gsrnamespace") != "6":
            return Reply(200, {"error": {"code": "badparams", "info": "stand-in expects generator=search in ns 6"}})
        q = p("gsrsearch", "")
        offset, limit = _int(p("gsroffset"), 0), _int(p("gsrlimit"), 10)
        items = self.items(q)
        chunk = items[offset: offset + limit]
        iicontinue = p("iicontinue")
        pages = []
        for rank, it in enumerate(chunk):
            svg = it["i"] % 5 == 4
            title = f"File:{it['title'].replace(' ', '_')}.{'svg' if svg else 'jpg'}"
            page = {"pageid": 1000 + it["i"], "ns": 6, "title": title, "index": offset + rank + 1,
                    "imagerepository": "local"}
            later = rank % 2 == 0  # imageinfo of even ranks comes in the continuation (order is not rank order)
            if not self.split_imageinfo or (later if iicontinue else not later):
                lic = CC[it["i"] % len(CC)]
                desc = "" if it["i"] % 3 == 2 else f"<p>A <b>{q}</b> &amp; friends, #{it['i']}</p>"
                page["imageinfo"] = [{
                    "size": 12345, "width": it["width"], "height": it["height"],
                    "url": it["image_url"].replace(".jpg", ".svg" if svg else ".jpg"),
                    "descriptionurl": f"https://commons.wikimedia.org/wiki/{title}",
                    "descriptionshorturl": "…", "mime": "image/svg+xml" if svg else "image/jpeg",
                    "extmetadata": {
                        "ImageDescription": {"value": desc, "source": "commons-desc-page"},
                        "LicenseShortName": {"value": f"CC {lic.upper()} {CC_VERSION[lic]}",
                                             "source": "commons-desc-page", "hidden": ""},
                        "ObjectName": {"value": it["title"], "source": "commons-desc-page"},
                    },
                }]
            pages.append(page)
        pages.sort(key=lambda pg: -pg["index"])
        body: dict = {"query": {"pages": pages}} if pages else {}
        more = offset + limit < len(items)
        if self.split_imageinfo and chunk and not iicontinue:
            cont = {"iicontinue": f"{chunk[0]['id']}|20240101000000", "continue": "gsroffset||"}
            if offset:
                cont["gsroffset"] = offset
            body["continue"] = cont
        else:
            body["batchcomplete"] = True
            if more:
                body["continue"] = {"gsroffset": offset + limit, "continue": "gsroffset||"}
        return Reply(200, body)


class INaturalistStandin(StandinServer):
    """Stand-in for iNaturalist ``GET /v1/observations`` (``q, page, per_page, photo_license``).

    Observation i has 2 photos when i % 3 == 0, else 1; photo licences cycle through cc-by, cc-by-nc, none (all
    rights reserved), cc0, cc-by-sa. ``photo_license`` keeps observations with at least one such photo.
    """

    api_name = "inaturalist"
    LICENSES = ["cc-by", "cc-by-nc", None, "cc0", "cc-by-sa"]

    def respond(self, req: Recorded) -> Reply:
        if req.path != "/v1/observations":
            return Reply(404, {"error": "Not found", "status": 404})
        q = req.param("q", "")
        page, per_page = _int(req.param("page"), 1), _int(req.param("per_page"), 30)
        if per_page > 200 or page * per_page > 10000:
            return Reply(422, {"error": "per_page too large or window exceeded", "status": 422})
        wanted = {c for c in (req.param("photo_license") or "").split(",") if c}
        observations = []
        n_photo = 0
        for it in self.items(q):
            photos = []
            for j in range(2 if it["i"] % 3 == 0 else 1):
                lic = self.LICENSES[n_photo % len(self.LICENSES)]
                pid = 50000 + n_photo
                n_photo += 1
                photos.append({"id": pid, "license_code": lic, "attribution": "(c) someone",
                               "url": f"https://inaturalist-open-data.s3.amazonaws.com/photos/{pid}/square.jpg",
                               "original_dimensions": {"width": it["width"] * 2, "height": it["height"] * 2},
                               "flags": []})
            if wanted and not any(ph["license_code"] in wanted for ph in photos):
                continue
            observations.append({
                "id": 9000 + it["i"], "uri": f"https://www.inaturalist.org/observations/{9000 + it['i']}",
                "quality_grade": "research", "observed_on": "2023-05-01",
                "taxon": {"id": 42, "name": "Oryctolagus cuniculus", "rank": "species",
                          "preferred_common_name": "European Rabbit" if it["i"] % 2 == 0 else None},
                "photos": photos,
            })
        chunk = observations[(page - 1) * per_page: page * per_page]
        return Reply(200, {"total_results": len(observations), "page": page, "per_page": per_page,
                           "results": chunk})


class BraveStandin(StandinServer):
    """Stand-in for Brave ``GET /res/v1/images/search`` (header ``X-Subscription-Token``; ``q``, ``count`` ≤ 200)."""

    api_name = "brave"

    def check_auth(self, req: Recorded):
        if req.headers.get("x-subscription-token") != self.api_key:
            return Reply(401, {"type": "ErrorResponse", "error": {
                "id": "00000000", "status": 401, "code": "SUBSCRIPTION_TOKEN_INVALID",
                "detail": "The provided subscription token is invalid.", "meta": {}}, "time": 0})
        return None

    def respond(self, req: Recorded) -> Reply:
        if req.path != "/res/v1/images/search":
            return Reply(404, {"type": "ErrorResponse", "error": {"status": 404, "code": "NOT_FOUND"}})
        q = req.param("q", "")
        count = _int(req.param("count"), 50)
        if not q or not 1 <= count <= 200:
            return Reply(422, {"type": "ErrorResponse", "error": {"status": 422, "code": "VALIDATION"}})
        results = []
        for it in self.items(q)[:count]:
            props = {"url": it["image_url"], "placeholder": it["image_url"] + "?ph"}
            if it["i"] % 4 != 3:  # width/height only "for most images" (changelog 2025-06-27)
                props.update(width=it["width"], height=it["height"])
            results.append({
                "type": "image_result", "title": it["title"], "url": it["page_url"], "source": "pages.example.org",
                "page_fetched": "2024-01-01T00:00:00Z",
                "thumbnail": {"src": f"https://imgs.search.brave.com/{it['id']}", "width": 300, "height": 200},
                "properties": props, "meta_url": {"scheme": "https", "netloc": "pages.example.org"},
                "confidence": "high",
            })
        return Reply(200, {"type": "images", "query": {"original": q, "spellcheck_off": False}, "results": results})


class SerpApiStandin(StandinServer):
    """Stand-in for SerpAPI ``GET /search.json`` with ``engine=google_images`` (``ijn``, 100 per page) and
    ``engine=bing_images`` (``first``/``count``; width/height only in a ``size`` string). ``api_key`` must match.
    ``echo_key=True`` puts the key into the response body (to test that it is masked in the cache)."""

    api_name = "serpapi"
    GOOGLE_PAGE = 100

    def __init__(self, *, echo_key: bool = False, **kw):
        super().__init__(**kw)
        self.echo_key = echo_key

    def check_auth(self, req: Recorded):
        if req.param("api_key") != self.api_key:
            return Reply(401, {"error": "Invalid API key. Your API key should be here: "
                                        "https://serpapi.com/manage-api-key"})
        return None

    def respond(self, req: Recorded) -> Reply:
        if req.path != "/search.json":
            return Reply(404, {"error": "Not found"})
        engine, q = req.param("engine"), req.param("q", "")
        items = self.items(q)
        meta = {"id": "abc123", "status": "Success", "json_endpoint": "https://serpapi.com/searches/abc/abc.json",
                "created_at": "2024-01-01 00:00:00 UTC", "total_time_taken": 1.2}
        params = {k: v[0] for k, v in req.params.items() if k != "api_key" or self.echo_key}
        if engine == "google_images":
            ijn = _int(req.param("ijn"), 0)
            chunk = items[ijn * self.GOOGLE_PAGE:(ijn + 1) * self.GOOGLE_PAGE]
            if not chunk:
                return Reply(200, {"search_metadata": {**meta, "status": "Success"}, "search_parameters": params,
                                   "error": "Google hasn't returned any results for this query."})
            results = [{"position": it["i"] + 1, "thumbnail": f"https://serpapi.com/thumb/{it['id']}",
                        "related_content_id": it["id"], "source": "pages.example.org", "title": it["title"],
                        "link": it["page_url"], "original": it["image_url"], "original_width": it["width"],
                        "original_height": it["height"], "is_product": False} for it in chunk]
        elif engine == "bing_images":
            first, count = _int(req.param("first"), 1), _int(req.param("count"), 35)
            chunk = items[first - 1: first - 1 + count]
            if not chunk:
                return Reply(200, {"search_metadata": meta, "search_parameters": params,
                                   "error": "Bing Images hasn't returned any results for this query."})
            results = [{"position": it["i"] + 1, "thumbnail": f"https://tse1.mm.bing.net/th?id={it['id']}",
                        "link": it["page_url"], "original": it["image_url"], "title": it["title"],
                        "source": "pages.example.org", "domain": "pages.example.org",
                        "size": f"{it['width']} x {it['height']} · jpeg"} for it in chunk]
        else:
            return Reply(400, {"error": f"Unsupported `{engine}` search engine."})
        return Reply(200, {"search_metadata": meta, "search_parameters": params, "images_results": results,
                           "suggested_searches": [{"name": slug(q)}]})


STANDINS = {"openverse": OpenverseStandin, "commons": CommonsStandin, "inaturalist": INaturalistStandin,
            "brave": BraveStandin, "serpapi_google": SerpApiStandin, "serpapi_bing": SerpApiStandin}
