"""Each web image-search backend of scripts/lib/search/search_web.py against its local stand-in (tests/standins).

The stand-ins imitate the documented wire formats; nothing here talks to a real service.
"""
from __future__ import annotations

import gzip
import logging
import math
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (for the stand-ins)

from lib.search import search_web  # noqa: E402
from lib.common.http_cache import HttpStatusError, RetriesExhaustedError  # noqa: E402
from lib.search.search_web import HIT_COLUMNS, build_query_string, make_backend, normalise_licence, required_env  # noqa: E402
from standins import (BraveStandin, CommonsStandin, INaturalistStandin, OpenverseStandin,  # noqa: E402
                      SerpApiStandin)

BRAVE_KEY = "BSA-brave-key-0123456789"
SERP_KEY = "serp-key-abcdef0123456789"
ENV = {"BRAVE_API_KEY": BRAVE_KEY, "SERPAPI_API_KEY": SERP_KEY}
ALL = ["openverse", "commons", "inaturalist", "brave", "serpapi_google", "serpapi_bing"]
STANDIN = {"openverse": OpenverseStandin, "commons": CommonsStandin, "inaturalist": INaturalistStandin,
           "brave": BraveStandin, "serpapi_google": SerpApiStandin, "serpapi_bing": SerpApiStandin}
KEYS = {"brave": BRAVE_KEY, "serpapi_google": SERP_KEY, "serpapi_bing": SERP_KEY}


def query(i: int = 0, text: str | None = None, **kw) -> dict:
    row = {"query_id": f"{i:016x}", "text": text or f"red fox {i}", "kind": "wd-noun-living",
           "or_terms": "vulpes fox", "exclude_terms": "drawing clipart", "image_type": "photo", "is_living": True,
           "qids": ["Q8332"]}
    row.update(kw)
    return row


def standin(name: str, **kw):
    if name in KEYS:
        kw.setdefault("api_key", KEYS[name])
    return STANDIN[name](**kw)


def backend(name: str, server, tmp_path, **params):
    opts = {"base_url": server.url, "requests_per_second": 0, "max_retries": 2, "timeout_s": 5,
            "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    opts.update(params)
    return make_backend(name, opts, str(tmp_path / "cache"), env=ENV)


def paging(name: str) -> dict:
    """Small pages for backends that paginate by a page size (Brave has no paging; Google pages are 100)."""
    return {} if name in ("brave", "serpapi_google") else {"page_size": 10}


def cache_texts(tmp_path) -> list[str]:
    """Every file under the cache folder as text (gzip entries decompressed)."""
    out = []
    for p in (tmp_path / "cache").rglob("*"):
        if p.is_file():
            raw = p.read_bytes()
            out.append((gzip.decompress(raw) if p.suffix == ".gz" else raw).decode())
    return out


# ------------------------------------------------------------------------------------------- fields & pagination
@pytest.mark.parametrize("name", ALL)
def test_hits_follow_the_contract(name, tmp_path):
    with standin(name, n_results=250 if name == "serpapi_google" else 45) as server:
        b = backend(name, server, tmp_path, **paging(name))
        hits = b.search(query(3), max_results=30)
        b.close()
    assert len(hits) == 30
    for rank, h in enumerate(hits):
        assert tuple(h) == HIT_COLUMNS
        assert h["rank"] == rank and h["backend"] == name and h["query_id"] == query(3)["query_id"]
        assert h["image_url"].startswith("https://") and h["page_url"].startswith("https://")
        assert h["alt_text"]
        assert h["width"] is None or (isinstance(h["width"], int) and h["width"] > 0)
        assert h["height"] is None or (isinstance(h["height"], int) and h["height"] > 0)
    assert len({h["image_url"] for h in hits}) == 30
    if name in ("brave", "serpapi_google", "serpapi_bing"):
        assert all(h["licence"] is None for h in hits)
    else:
        assert all(h["licence"] for h in hits)


def _inat_expected(n: int, allowed=frozenset({"cc-by", "cc-by-nc", "cc0", "cc-by-sa"})) -> tuple[int, int]:
    """(observations kept, photos kept) of the iNaturalist stand-in for n observations."""
    lic, k, obs, photos = INaturalistStandin.LICENSES, 0, 0, 0
    for i in range(n):
        codes = []
        for _ in range(2 if i % 3 == 0 else 1):
            codes.append(lic[k % len(lic)])
            k += 1
        if any(c in allowed for c in codes):
            obs += 1
            photos += sum(c in allowed for c in codes)
    return obs, photos


@pytest.mark.parametrize("name", ALL)
def test_pagination_stops_when_results_run_out(name, tmp_path):
    n = 23
    obs, photos = _inat_expected(n)
    expected_hits = {"commons": n - n // 5, "inaturalist": photos}.get(name, n)  # commons: every 5th is an SVG
    expected_requests = {"openverse": 3, "commons": 3, "inaturalist": math.ceil(obs / 10), "brave": 1,
                         "serpapi_google": 2, "serpapi_bing": 4}[name]
    with standin(name, n_results=n) as server:
        b = backend(name, server, tmp_path, **paging(name))
        hits = b.search(query(), max_results=100)
        assert len(hits) == expected_hits
        assert server.request_count() == expected_requests
        assert b.stats["requests"] == expected_requests and b.stats["hits"] == expected_hits


def test_max_pages_caps_requests(tmp_path):
    with OpenverseStandin(n_results=100) as server:
        hits = backend("openverse", server, tmp_path, page_size=10, max_pages=2).search(query(), 100)
        assert len(hits) == 20 and server.request_count() == 2


def test_max_results_zero_sends_nothing(tmp_path):
    with OpenverseStandin() as server:
        assert backend("openverse", server, tmp_path).search(query(), 0) == []
        assert server.request_count() == 0


# ----------------------------------------------------------------------------------------------- per backend
def test_openverse_params_licence_and_token(tmp_path):
    with OpenverseStandin(n_results=12) as server:
        hits = backend("openverse", server, tmp_path, page_size=5).search(query(text="european rabbit"), 12)
        first = server.requests[0]
        assert first.path == "/v1/images/" and first.param("q") == "european rabbit"
        assert first.param("page") == "1" and first.param("page_size") == "5"
        assert first.param("category") == "photograph" and first.param("mature") == "false"
        assert [r.param("page") for r in server.requests] == ["1", "2", "3"]
        assert "authorization" not in first.headers
    assert [h["licence"] for h in hits[:5]] == ["CC BY 4.0", "CC BY-SA 3.0", "CC0 1.0", "CC BY-NC 2.0", "PDM 1.0"]
    assert hits[0]["alt_text"] == "european rabbit photo 0"
    token = "ov-token-0123456789"
    with OpenverseStandin(api_key=token, n_results=3) as server:
        b = make_backend("openverse", {"base_url": server.url, "requests_per_second": 0,
                                       "api_key_env": "OPENVERSE_TOKEN"}, str(tmp_path / "c2"),
                         env={"OPENVERSE_TOKEN": token})
        assert len(b.search(query(), 5)) == 3
        assert server.requests[0].headers["authorization"] == f"Bearer {token}"
    assert not any(token in t for t in cache_texts(tmp_path))


@pytest.mark.parametrize("split", [False, True])
def test_commons_continue_order_alt_text_and_mime_filter(split, tmp_path):
    with CommonsStandin(n_results=30, split_imageinfo=split) as server:
        hits = backend("commons", server, tmp_path, page_size=10).search(query(text="rabbit"), 100)
        assert server.request_count() == (6 if split else 3)
        first = server.requests[0]
        assert (first.param("generator"), first.param("gsrnamespace"), first.param("gsrsearch")) == \
            ("search", "6", "rabbit")
        assert first.param("prop") == "imageinfo" and "extmetadata" in first.param("iiprop")
        assert "gsroffset" not in first.params
        if split:  # the second half of the batch is fetched with iicontinue, same batch
            assert server.requests[1].param("iicontinue") and "gsroffset" not in server.requests[1].params
            assert server.requests[3].param("iicontinue") and server.requests[3].param("gsroffset") == "10"
        else:
            assert [r.param("gsroffset") for r in server.requests] == [None, "10", "20"]
    # ranks follow the search index (the stand-in returns pages in reverse), SVGs dropped
    kept = [i for i in range(30) if i % 5 != 4]
    assert [h["image_url"] for h in hits] == [f"https://images.example.org/rabbit/{i}.jpg" for i in kept]
    assert hits[0]["alt_text"] == "A rabbit & friends, #0"          # ImageDescription, HTML stripped
    assert hits[2]["alt_text"] == "rabbit photo 2"                   # empty description -> file title
    assert hits[0]["licence"] == "CC BY 4.0" and hits[1]["licence"] == "CC BY-SA 3.0"
    assert hits[0]["page_url"] == "https://commons.wikimedia.org/wiki/File:rabbit_photo_0.jpg"


def test_commons_api_error_is_clear(tmp_path):
    class Broken(CommonsStandin):
        def respond(self, req):
            from standins import Reply
            return Reply(200, {"error": {"code": "maxlag", "info": "Waiting for a database server"}})

    with Broken() as server:
        with pytest.raises(search_web.SearchApiError, match="commons: API error maxlag"):
            backend("commons", server, tmp_path).search(query(), 10)


def test_inaturalist_photo_urls_dimensions_and_licences(tmp_path):
    with INaturalistStandin(n_results=12) as server:
        hits = backend("inaturalist", server, tmp_path, page_size=50).search(query(text="rabbit"), 100)
        req = server.requests[0]
        assert req.path == "/v1/observations" and req.param("photos") == "true" and req.param("q") == "rabbit"
        assert req.param("photo_license") == "cc0,cc-by,cc-by-sa,cc-by-nc,cc-by-nd,cc-by-nc-sa,cc-by-nc-nd"
        assert req.param("per_page") == "50" and req.param("quality_grade") == "research"
    assert len(hits) == _inat_expected(12)[1]
    assert all(h["image_url"].endswith("/large.jpg") and "square" not in h["image_url"] for h in hits)
    sides = [max(h["width"], h["height"]) for h in hits]
    assert max(sides) == 1024 and min(sides) >= 600  # scaled down to the "large" size, never up
    assert {h["licence"] for h in hits} == {"CC BY", "CC BY-NC", "CC0", "CC BY-SA"}
    assert hits[0]["alt_text"] == "European Rabbit (Oryctolagus cuniculus)"
    assert hits[0]["page_url"] == "https://www.inaturalist.org/observations/9000"
    assert "Oryctolagus cuniculus" in {h["alt_text"] for h in hits}  # no common name -> scientific name
    with INaturalistStandin(n_results=12) as server:
        unfiltered = backend("inaturalist", server, tmp_path / "b", photo_license="", photo_size="medium",
                             page_size=50).search(query(text="rabbit"), 100)
        assert "photo_license" not in server.requests[0].params
    assert "all rights reserved" in {h["licence"] for h in unfiltered}
    assert all(h["image_url"].endswith("/medium.jpg") for h in unfiltered)


def test_brave_header_count_and_bad_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with BraveStandin(api_key=BRAVE_KEY, n_results=80) as server:
        hits = backend("brave", server, tmp_path).search(query(text="red fox"), 60)
        req = server.requests[0]
        assert req.headers["x-subscription-token"] == BRAVE_KEY
        assert req.param("count") == "60" and req.param("q") == "red fox"  # text only, no operators
        assert len(hits) == 60
        assert hits[3]["width"] is None and hits[0]["width"] is not None
        bad = make_backend("brave", {"base_url": server.url, "requests_per_second": 0}, str(tmp_path / "bad"),
                           env={"BRAVE_API_KEY": "wrong-key-987654321"})
        with pytest.raises(HttpStatusError) as err:
            bad.search(query(), 10)
        assert server.request_count() == 2  # 401 is not retried
    msg = str(err.value)
    assert "brave" in msg and "401" in msg and "wrong-key-987654321" not in msg and BRAVE_KEY not in msg
    assert BRAVE_KEY not in caplog.text and "wrong-key-987654321" not in caplog.text
    assert not any(BRAVE_KEY in t for t in cache_texts(tmp_path))


def test_serpapi_google_query_syntax_and_ijn_paging(tmp_path):
    with SerpApiStandin(api_key=SERP_KEY, n_results=250) as server:
        b = backend("serpapi_google", server, tmp_path)
        hits = b.search(query(text="european rabbit", or_terms="coney Coney oryctolagus animal",
                              exclude_terms="drawing clipart illustration"), 220)
        reqs = server.requests
        assert [r.param("ijn") for r in reqs] == ["0", "1", "2"]
        assert reqs[0].param("engine") == "google_images" and reqs[0].param("tbs") == "itp:photo"
        assert reqs[0].param("q") == "european rabbit (coney OR oryctolagus OR animal) -drawing -clipart -illustration"
        assert reqs[0].param("api_key") == SERP_KEY
    assert len(hits) == 220 and hits[219]["rank"] == 219
    assert (hits[0]["width"], hits[0]["height"]) != (None, None)


def test_serpapi_bing_filter_offsets_and_size_parsing(tmp_path):
    with SerpApiStandin(api_key=SERP_KEY, n_results=40) as server:
        hits = backend("serpapi_bing", server, tmp_path, page_size=15).search(query(text="red fox"), 35)
        reqs = server.requests
        assert [r.param("first") for r in reqs] == ["1", "16", "31"]
        assert reqs[0].param("engine") == "bing_images" and reqs[0].param("q") == "red fox"
        assert reqs[0].param("photo") == "photo" and "qft" not in reqs[0].params
        assert reqs[0].param("count") == "15"
        b = backend("serpapi_bing", server, tmp_path / "b", bing_filter_param="qft", or_terms=True)
        b.search(query(text="red fox"), 5)
        assert server.requests[-1].param("qft") == "+filterui:photo-photo"
        assert server.requests[-1].param("q") == "red fox (vulpes OR fox)"
    assert len(hits) == 35
    assert all(isinstance(h["width"], int) and isinstance(h["height"], int) for h in hits)


def _built_queries(world_search_terms: str = "authors") -> dict:
    """Real build_queries rows (one living entity with a natural type, one world entity), keyed by (kind, text)."""
    import pandas as pd

    from lib.search.query_builder import build_queries
    from lib.search.queries import KINDS

    ents = pd.DataFrame([
        {"qid": "Q8332", "label": "Red fox", "aliases": ["Vulpes vulpes"], "common_names": [], "taxon_names": [],
         "is_living": True, "natural_type_label": "animal", "source": "wikidata"},
        {"qid": "Q132964", "label": "Claw hammer", "aliases": ["nail puller"], "common_names": [], "taxon_names": [],
         "is_living": False, "natural_type_label": "hand tool", "source": "wikidata"}])
    attrs = pd.DataFrame([
        {"qid": "Q8332", "category": "Behavior", "attribute": "sleeping", "query": "sleeping red fox", "source": "kg"},
        {"qid": "Q132964", "category": "Color", "attribute": "red", "query": "red claw hammer", "source": "kg"}])
    q = build_queries(ents, attrs, KINDS, world_search_terms=world_search_terms)
    return {(r["kind"], r["text"]): r for r in q.to_dict("records")}


def _sent_q(name: str, rows, tmp_path, **params) -> list[str]:
    with SerpApiStandin(api_key=SERP_KEY, n_results=3) as server:
        b = backend(name, server, tmp_path / f"{name}{len(list(tmp_path.iterdir()))}", **params)
        for row in rows:
            b.search(row, 3)
        return [r.param("q") for r in server.requests]


def test_bing_sends_the_natural_type_as_or_term_like_the_authors(tmp_path):
    """The authors' Bing queries: living noun and attribute+noun queries carry the natural type as their OR term,
    nothing else carries one, and none has an exclude list. ``or_terms: false`` is our earlier text-only Bing."""
    rows = _built_queries()
    keys = [("wd-noun-living", "red fox"), ("wd-attrnoun-living", "sleeping red fox"),
            ("wd-attr-living", "sleeping animal"), ("wd-noun-world", "claw hammer"),
            ("wd-attrnoun-world", "red claw hammer"), ("wd-attr-world", "red hand tool")]
    assert _sent_q("serpapi_bing", [rows[k] for k in keys], tmp_path) == [
        "red fox (animal)", "sleeping red fox (animal)", "sleeping animal", "claw hammer", "red claw hammer",
        "red hand tool"]
    assert _sent_q("serpapi_bing", [rows[k] for k in keys], tmp_path, or_terms=False) == [k[1] for k in keys]
    # a multi-word natural type is one alternative, not an OR of its words; a row without a type is the text only
    multi = dict(rows[keys[0]], natural_type="bird of prey")
    assert _sent_q("serpapi_bing", [multi, dict(rows[keys[0]], natural_type=None)], tmp_path) == [
        "red fox (bird of prey)", "red fox"]
    with pytest.raises(ValueError, match="or_terms must be 'natural_type', true or false"):
        make_backend("serpapi_bing", {"or_terms": "nat"}, str(tmp_path), env=ENV).search(rows[keys[0]], 1)


def test_world_queries_reach_google_in_the_authors_shape(tmp_path):
    """Default world queries reach Google as their text plus the photo filter only; living queries keep their
    OR group and exclude list; ``world_search_terms: extended`` restores the living-style world syntax."""
    rows, ext = _built_queries(), _built_queries("extended")
    world, living = ("wd-noun-world", "claw hammer"), ("wd-noun-living", "red fox")
    with SerpApiStandin(api_key=SERP_KEY, n_results=3) as server:
        b = backend("serpapi_google", server, tmp_path)
        b.search(rows[world], 3)
        b.search(rows[living], 3)
        b.search(ext[world], 3)
        reqs = server.requests
    assert reqs[0].param("q") == "claw hammer" and reqs[0].param("tbs") == "itp:photo"
    assert reqs[1].param("q") == ("red fox (vulpes OR animal) -drawing -clipart -illustration -cartoon -vector "
                                  "-painting")
    assert reqs[2].param("q") == ("claw hammer (nail OR puller OR hand OR tool) -drawing -clipart -illustration "
                                  "-cartoon -vector -painting")


class OverlappingBing(SerpApiStandin):
    """Bing pages that overlap by 3 results (``stuck=True``: the offset is ignored, every page is the same)."""

    def __init__(self, stuck=False, **kw):
        super().__init__(**kw)
        self.stuck = stuck

    def respond(self, req):
        first = int(req.param("first", "1"))
        req.params["first"] = ["1" if self.stuck else str(max(1, first - 3))]
        return super().respond(req)


def test_overlapping_pages_are_deduplicated(tmp_path):
    with OverlappingBing(api_key=SERP_KEY, n_results=40) as server:
        hits = backend("serpapi_bing", server, tmp_path, page_size=10).search(query(text="fox"), 30)
    urls = [h["image_url"] for h in hits]
    assert len(urls) == len(set(urls)) == 30
    assert urls == [f"https://images.example.org/fox/{i}.jpg" for i in range(30)]
    assert [h["rank"] for h in hits] == list(range(30))


def test_stuck_pagination_stops(tmp_path):
    with OverlappingBing(stuck=True, api_key=SERP_KEY, n_results=40) as server:
        hits = backend("serpapi_bing", server, tmp_path, page_size=10).search(query(text="fox"), 30)
        assert len(hits) == 10 and server.request_count() == 2  # the 2nd page brought nothing new


# ------------------------------------------------------------------------------------------- cache and resume
@pytest.mark.parametrize("name", ALL)
def test_second_run_sends_zero_requests(name, tmp_path):
    with standin(name, n_results=30) as server:
        params = paging(name)
        first = [backend(name, server, tmp_path, **params).search(query(i), 25) for i in range(2)]
        sent = server.request_count()
        assert sent > 0
        again = backend(name, server, tmp_path, **params)
        second = [again.search(query(i), 25) for i in range(2)]
        assert server.request_count() == sent
        assert again.stats["requests"] == 0 and again.stats["cache_hits"] == sent
    assert second == first


class Killed(RuntimeError):
    pass


@pytest.mark.parametrize("name", ["openverse", "serpapi_bing"])
def test_killed_run_resumes_without_sending_anything_twice(name, tmp_path):
    queries = [query(i) for i in range(6)]
    with standin(name, n_results=25) as server:
        b = backend(name, server, tmp_path, page_size=10)
        with pytest.raises(Killed):
            for n, q in enumerate(queries):
                if n == 3:
                    raise Killed("simulated kill after 3 queries")
                b.search(q, 25)
        # a second run dies inside query 3's pagination: its page-2 request fails for good
        server.add_fault("status", status=503, skip=1)
        b2 = backend(name, server, tmp_path, page_size=10, max_retries=0)
        with pytest.raises(RetriesExhaustedError):
            for q in queries:
                b2.search(q, 25)
        assert b2.stats["requests"] == 2 and b2.stats["cache_hits"] == 9
        resumed = backend(name, server, tmp_path, page_size=10)
        hits = [resumed.search(q, 25) for q in queries]
        repeated = [n for n in server.distinct.values() if n > 1]
        assert repeated == [2]  # only the request that failed is sent again
        assert resumed.stats["cache_hits"] == 10  # queries 0-2 (3 pages each) + query 3 page 1
    with standin(name, n_results=25) as fresh_server:
        fresh = backend(name, fresh_server, tmp_path / "fresh", page_size=10)
        assert hits == [fresh.search(q, 25) for q in queries]
        assert resumed.stats["requests"] + resumed.stats["cache_hits"] == fresh_server.request_count()


def test_retry_after_honoured_by_a_backend(tmp_path):
    with SerpApiStandin(api_key=SERP_KEY, n_results=5) as server:
        server.add_fault("status", status=429, retry_after="1")
        t0 = time.monotonic()
        hits = backend("serpapi_google", server, tmp_path).search(query(), 5)
        assert time.monotonic() - t0 >= 1.0 and len(hits) == 5
        assert server.request_count() == 2  # the 429, then ijn=0 (max_results reached)


def test_bounded_retries_then_error_naming_backend(tmp_path):
    with OpenverseStandin() as server:
        server.add_fault("status", times=10, status=502)
        with pytest.raises(RetriesExhaustedError, match=r"openverse: .*3 attempt.*HTTP 502"):
            backend("openverse", server, tmp_path, max_retries=2).search(query(), 5)
        assert server.request_count() == 3


def test_rejected_queries_are_skipped_but_not_forever(tmp_path):
    with OpenverseStandin(n_results=5) as server:
        b = backend("openverse", server, tmp_path)
        server.add_fault("status", status=400)
        assert b.search(query(0), 5) == []
        assert b.skipped and b.skipped[0][0] == query(0)["query_id"]
        assert len(b.search(query(1), 5)) == 5      # the next query works again
        server.add_fault("status", times=5, status=422)
        for i in range(2, 6):
            assert b.search(query(i), 5) == []
        with pytest.raises(HttpStatusError, match="5 queries in a row"):
            b.search(query(6), 5)
        server.add_fault("status", status=403)       # auth-type errors are never skipped
        with pytest.raises(HttpStatusError, match="403"):
            backend("openverse", server, tmp_path / "x").search(query(7), 5)


# ------------------------------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("name", ["brave", "serpapi_google", "serpapi_bing"])
def test_api_key_never_in_cache_files_or_logs(name, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key = KEYS[name]
    kw = {"echo_key": True} if name.startswith("serpapi") else {}
    with standin(name, n_results=30, **kw) as server:
        server.add_fault("status", status=503)
        server.add_fault("truncate")
        b = backend(name, server, tmp_path, **paging(name))
        assert len(b.search(query(), 25)) == 25
        server.add_fault("status", times=5, status=500)
        with pytest.raises(RetriesExhaustedError) as err:
            b.search(query(1), 25)
    assert key not in str(err.value)
    texts = cache_texts(tmp_path)
    assert texts and not any(key in t for t in texts)
    assert key not in caplog.text
    assert any(r.name.startswith("urllib3") for r in caplog.records)


# ------------------------------------------------------------------------------------------------- factory
def test_make_backend_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown search backend 'bingo'.*openverse"):
        make_backend("bingo", {}, str(tmp_path))
    with pytest.raises(ValueError, match="'brave'.*'BRAVE_API_KEY'"):
        make_backend("brave", {}, str(tmp_path), env={})
    with pytest.raises(ValueError, match="'MY_SERP_KEY'"):
        make_backend("serpapi_google", {"api_key_env": "MY_SERP_KEY"}, str(tmp_path), env={"MY_SERP_KEY": "  "})
    with pytest.raises(ValueError, match="page_size must be in 1..200"):
        make_backend("inaturalist", {"page_size": 500}, str(tmp_path), env={})
    with pytest.raises(ValueError, match="api_key_env"):
        make_backend("serpapi_bing", {"extra_params": {"api_key": "x"}}, str(tmp_path), env=ENV)
    assert set(search_web.BACKENDS) == set(ALL)
    assert required_env("brave") == ["BRAVE_API_KEY"]
    assert required_env("serpapi_google") == required_env("serpapi_bing") == ["SERPAPI_API_KEY"]
    assert required_env("serpapi_bing", {"api_key_env": "K2"}) == ["K2"]
    assert required_env("openverse") == [] and required_env("commons") == [] and required_env("inaturalist") == []
    assert required_env("openverse", {"api_key_env": "OPENVERSE_TOKEN"}) == ["OPENVERSE_TOKEN"]
    assert search_web.unknown_params("commons", {"page_size": 5, "pagesize": 5, "allowed_mime": [],
                                                  "max_results": 60}) == ["pagesize"]
    assert search_web.unknown_params("brave", {"allowed_mime": []}) == ["allowed_mime"]


def test_query_row_validation_and_missing_fields(tmp_path):
    with OpenverseStandin(n_results=3) as server:
        b = backend("openverse", server, tmp_path)
        with pytest.raises(ValueError, match="empty text"):
            b.search(query(text=" "), 5)
        with pytest.raises(ValueError, match="without query_id"):
            b.search({"text": "x"}, 5)
        row = {"query_id": "abc", "text": "fox", "or_terms": None, "exclude_terms": float("nan"), "image_type": None}
        assert len(b.search(row, 5)) == 3
        assert "category" not in server.requests[-1].params  # no image type, no filter
        with pytest.raises(ValueError, match="image_type 'sketch'"):
            b.search(query(image_type="sketch"), 5)


# ------------------------------------------------------------------------------------------------- helpers
def test_hits_frame_round_trips_through_parquet(tmp_path):
    import pandas as pd

    with BraveStandin(api_key=BRAVE_KEY, n_results=8) as server:
        hits = backend("brave", server, tmp_path).search(query(), 8)
    df = search_web.hits_frame(hits)
    assert list(df.columns) == list(HIT_COLUMNS) and len(df) == 8
    df.to_parquet(tmp_path / "chunk_0.parquet", index=False)
    back = pd.read_parquet(tmp_path / "chunk_0.parquet")
    assert str(back["rank"].dtype) == "int64" and str(back["width"].dtype) == "Int64"
    assert back["width"].isna().sum() == 2 and back["licence"].isna().all()
    assert search_web.hits_frame([]).columns.tolist() == list(HIT_COLUMNS)



def test_build_query_string():
    assert build_query_string("fox", "", "") == "fox"
    assert build_query_string("red fox", "vulpes", "") == "red fox (vulpes)"
    assert build_query_string("a", "b c B -d", "x -y x") == "a (b OR c OR d) -x -y"
    assert build_query_string("a", "b c d", "x", max_or_terms=2) == "a (b OR c) -x"
    assert build_query_string("a", "b", "x", use_or_terms=False, use_exclude_terms=False) == "a"


@pytest.mark.parametrize("code,version,expected", [
    ("by", "4.0", "CC BY 4.0"), ("by-nc-sa", "2.0", "CC BY-NC-SA 2.0"), ("cc-by-nc", None, "CC BY-NC"),
    ("cc0", "1.0", "CC0 1.0"), ("cc0", None, "CC0"), ("pdm", "1.0", "PDM 1.0"), (None, "4.0", None),
    ("", None, None), ("Public domain", None, "Public domain"),
])
def test_normalise_licence(code, version, expected):
    assert normalise_licence(code, version) == expected
