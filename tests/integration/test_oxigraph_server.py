"""The same SPARQL texts over HTTP (SPARQLWrapper -> a real `oxigraph serve-read-only` on 127.0.0.1) and in-process
(pyoxigraph); the KG dump rule's code path over HTTP gives the same frozen dump as the file path."""
import gzip

import pytest

from lib.kg.kg_entity_table import build_entities
from lib.kg import kg_queries as kq
from kg_dump import dump
from loopback import DEMO_TTL, free_port, oxigraph_server
from lib.kg.sparql_client import EmbeddedSparql, HttpSparql, RetryPolicy, SparqlError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with oxigraph_server(tmp_path_factory.mktemp("oxigraph")) as url:
        yield url


@pytest.fixture(scope="module")
def embedded():
    s = EmbeddedSparql()
    s.load(DEMO_TTL)
    return s


def canon(rows):
    return sorted(tuple(sorted((k, v["value"], v.get("xml:lang", "")) for k, v in r.items())) for r in rows)


@pytest.mark.parametrize("query", [
    kq.world_entities_query("Q39546", "en"),
    kq.living_entities_query("Q729", "en", ["Q5", "Q795052"], require_image=False),
    kq.multi_value_query("skos:altLabel", "en"),
    kq.EDGES_QUERY,
])
def test_same_query_text_same_answer(endpoint, embedded, query):
    http = HttpSparql(endpoint, user_agent="entitynet-tests", retry=RetryPolicy(max_tries=2, timeout_s=30))
    a, b = http.select(query), embedded.select(query)
    assert len(a) > 0 and canon(a) == canon(b)


def test_construct_over_http_matches_embedded(endpoint, embedded):
    q = kq.paged(kq.dump_queries(["Q39546"], [], "en")["world/Q39546/names"], 1000, 0)
    http = HttpSparql(endpoint, user_agent="entitynet-tests")
    assert sorted(http.construct(q)) == sorted(embedded.construct(q)) != []


def test_dump_over_http_equals_dump_from_file(endpoint, tmp_path):
    roots, living = ["Q39546", "Q2424752"], ["Q729"]
    p_http = dump(endpoint, roots, living, "en", 300, str(tmp_path / "h.nt.gz"), str(tmp_path / "h.json"), "t")
    p_file = dump(f"file:{DEMO_TTL}", roots, living, "en", 300, str(tmp_path / "f.nt.gz"), str(tmp_path / "f.json"), "t")
    with gzip.open(tmp_path / "h.nt.gz", "rt") as h, gzip.open(tmp_path / "f.nt.gz", "rt") as f:
        assert h.read() == f.read()
    assert p_http["requests_sent"] > len(p_http["facets"])  # paged: more requests than facets
    assert p_http["triples"] == p_file["triples"] and p_http["entities"] == p_file["entities"]
    store = EmbeddedSparql()
    store.load(tmp_path / "h.nt.gz")
    ents = build_entities(store, roots, living, "en", 0, ["Q5"], False, None, [])
    assert {"Q25294", "Q161071", "Q33609"} <= set(ents["qid"])


def test_unreachable_endpoint_fails_clearly():
    http = HttpSparql(f"http://127.0.0.1:{free_port()}/query", user_agent="t",
                      retry=RetryPolicy(max_tries=2, base_delay_s=0.01, timeout_s=2))
    with pytest.raises(SparqlError, match="giving up after 2 tries"):
        http.select(kq.EDGES_QUERY)
    assert http.requests_sent == 2
