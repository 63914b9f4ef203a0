"""SPARQL endpoint faults: a fault-injecting proxy in front of a real ``oxigraph serve-read-only`` (demo extract).

Drives the KG dump rule's function ``kg_dump.dump()`` and ``HttpSparql.select``. For each fault:

* transient (it clears within the retry budget): the dump is byte-for-byte the fault-free dump, the provenance is the
  same up to timestamps, and the server side saw exactly one extra request (the faulted one, sent again);
* persistent: bounded retries (``max_tries`` requests, backoff or ``Retry-After`` between them), a ``SparqlError``
  naming the endpoint and the last problem, and no artifact at all (no extract.nt.gz, no provenance.json, no temp
  file) although earlier pages had been answered.
"""
import email.utils
import gzip
import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rel_common import TIMEOUT_S, TRANSPORT_FAULTS, oxigraph_endpoint, record  # noqa: E402,F401 (fixtures)

from lib.kg import kg_queries as kq  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from kg_dump import dump  # noqa: E402
from lib.kg.sparql_client import HttpSparql, RetryPolicy, SparqlError  # noqa: E402

pytestmark = pytest.mark.integration

ROOTS, LIVING, PAGE = ["Q39546", "Q2424752"], ["Q729"], 300
POLICY = dict(max_tries=3, base_delay_s=0.05, max_wait_s=5.0, timeout_s=TIMEOUT_S)
VOLATILE = {"started_utc", "finished_utc", "requests_sent", "endpoint"}


def http_date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


# (id, add_fault kwargs, minimum wait before the retry in s, maximum time the faulted attempt may take in s)
FAULTS = [
    ("503", dict(kind="status", status=503), 0.0, None),
    ("500", dict(kind="status", status=500), 0.0, None),
    ("429-retry-after-1s", dict(kind="status", status=429, retry_after="1"), 1.0, None),
    # the date is made when the fault is served (a loaded machine may take many seconds to reach the faulted page)
    ("503-retry-after-http-date", dict(kind="status", status=503, retry_after=lambda: http_date_in(3)), 1.0, None),
    ("truncated-body", dict(kind="truncate"), 0.0, None),
    *TRANSPORT_FAULTS,
]
IDS = [f[0] for f in FAULTS]


def run_dump(endpoint: str, out, **policy):
    return dump(endpoint, ROOTS, LIVING, "en", PAGE, str(out / "extract.nt.gz"), str(out / "provenance.json"),
                "entitynet-reliability-tests", RetryPolicy(**{**POLICY, **policy}))


@pytest.fixture(scope="module")
def upstream(oxigraph_endpoint):
    return oxigraph_endpoint.rsplit("/query", 1)[0]


@pytest.fixture(scope="module")
def reference(upstream, tmp_path_factory):
    """The fault-free dump (through a proxy without faults, to learn the request sequence)."""
    out = tmp_path_factory.mktemp("reference")
    with FaultProxy(upstream) as proxy:
        prov = run_dump(proxy.url + "/query", out)
        events = list(proxy.requests)
    assert prov["triples"] > 1000 and all(e.fault == "ok" for e in events)
    # the faulted request: a mid-dump page with a non-empty body (pages before it have already been collected)
    target = next(i for i, e in enumerate(events) if i >= 5 and e.size > 2000)
    return {"extract": (out / "extract.nt.gz").read_bytes(), "provenance": prov, "requests": len(events),
            "target": target, "target_key": events[target].key}


def stable(prov: dict) -> dict:
    return {k: v for k, v in prov.items() if k not in VOLATILE}


def test_fault_free_dump_is_reproducible(reference, upstream, tmp_path):
    """Two fault-free dumps are byte-identical (the baseline the fault tests compare with)."""
    prov = run_dump(upstream + "/query", tmp_path)
    assert (tmp_path / "extract.nt.gz").read_bytes() == reference["extract"]
    assert stable(prov) == stable(reference["provenance"])
    assert prov["requests_sent"] == reference["requests"]


@pytest.mark.parametrize("name,spec,min_wait,max_attempt", FAULTS, ids=IDS)
def test_transient_fault_dump_identical(name, spec, min_wait, max_attempt, reference, upstream, tmp_path, record):
    with FaultProxy(upstream) as proxy:
        proxy.add_fault(**spec, skip=reference["target"])
        t0 = time.monotonic()
        prov = run_dump(proxy.url + "/query", tmp_path)
        elapsed = time.monotonic() - t0
        events = list(proxy.requests)
    assert (tmp_path / "extract.nt.gz").read_bytes() == reference["extract"]
    assert stable(prov) == stable(reference["provenance"])
    # server side: one extra request, and it is the faulted one, sent again; nothing else was sent twice
    assert len(events) == reference["requests"] + 1 == prov["requests_sent"]
    faulted = events[reference["target"]]
    retry = events[reference["target"] + 1]
    assert faulted.fault == spec["kind"] and faulted.key == retry.key == reference["target_key"]
    assert [k for k, n in proxy.by_key.items() if n > 1] == [reference["target_key"]]
    gap = retry.t - faulted.t
    assert gap >= min_wait, f"retried after {gap:.2f} s; Retry-After asked for {min_wait} s"
    if max_attempt is not None:  # the client's timeout fired: it did not wait for the server to give up (HOLD_S)
        assert gap <= max_attempt, f"the attempt lasted {gap:.2f} s (timeout_s={TIMEOUT_S})"
    record("sparql: kg_dump.dump", name, "recovered", requests=len(events), wait_s=round(gap, 2),
           elapsed_s=round(elapsed, 2))


@pytest.mark.parametrize("name,spec,min_wait,max_attempt", FAULTS, ids=IDS)
def test_persistent_fault_fails_clearly_and_writes_nothing(name, spec, min_wait, max_attempt, reference, upstream,
                                                          tmp_path, record):
    out = tmp_path / "kg"
    out.mkdir()
    with FaultProxy(upstream) as proxy:
        proxy.add_fault(**spec, times=50, skip=reference["target"])
        with pytest.raises(SparqlError) as err:
            run_dump(proxy.url + "/query", out)
        events = list(proxy.requests)
    msg = str(err.value)
    assert proxy.url in msg and "giving up after 3 tries" in msg, msg
    # bounded: the pages before the fault, then exactly max_tries attempts at the faulted page
    assert len(events) == reference["target"] + POLICY["max_tries"]
    tries = events[reference["target"]:]
    assert len({e.key for e in tries}) == 1 and all(e.fault == spec["kind"] for e in tries)
    for i, (a, b) in enumerate(zip(tries, tries[1:])):
        backoff_floor = 0.5 * POLICY["base_delay_s"] * 2 ** i
        floor = min_wait if spec.get("retry_after") else backoff_floor  # Retry-After replaces the backoff
        assert b.t - a.t >= floor - 0.01, (i, b.t - a.t)
    assert sorted(p.name for p in out.iterdir()) == []  # no extract, no provenance, no temp file
    record("sparql: kg_dump.dump", name, "refused", requests=len(events), error=msg[:160])


def test_connection_refused_then_listening(reference, upstream, tmp_path, record):
    """The endpoint is down (port bound, not listening: connection refused), then comes up within the budget."""
    proxy = FaultProxy(upstream, listen=False)
    try:
        opener = threading.Timer(0.5, proxy.listen)
        opener.start()
        prov = run_dump(proxy.url + "/query", tmp_path, max_tries=8, base_delay_s=0.2)
        opener.join()
        assert (tmp_path / "extract.nt.gz").read_bytes() == reference["extract"]
        assert stable(prov) == stable(reference["provenance"])
        assert proxy.received == reference["requests"] and max(proxy.by_key.values()) == 1
        refused = prov["requests_sent"] - proxy.received
        assert refused >= 1  # attempts that never reached the server
    finally:
        proxy.close()
    record("sparql: kg_dump.dump", "connection-refused", "recovered", requests=prov["requests_sent"],
           refused_attempts=refused)


def test_connection_refused_for_good(tmp_path, record):
    proxy = FaultProxy("http://127.0.0.1:9", listen=False)  # bound, never listening
    try:
        t0 = time.monotonic()
        with pytest.raises(SparqlError, match=r"giving up after 3 tries: URLError: .*[Cc]onnection refused"):
            run_dump(proxy.url + "/query", tmp_path)
        print(f"refused 3 times in {time.monotonic() - t0:.2f} s")  # bounded by the tries, not by a clock
    finally:
        proxy.close()
    assert list(tmp_path.iterdir()) == []
    record("sparql: kg_dump.dump", "connection-refused", "refused", requests=0)


@pytest.mark.parametrize("status", [400, 404])
def test_non_retryable_status_is_not_retried(status, reference, upstream, tmp_path, record):
    with FaultProxy(upstream) as proxy:
        proxy.add_fault("status", status=status, skip=2)
        with pytest.raises(SparqlError, match=str(status) if status == 404 else "malformed") as err:
            run_dump(proxy.url + "/query", tmp_path)
        assert proxy.received == 3  # two good pages, one rejected request, no retry
    assert list(tmp_path.iterdir()) == []
    record("sparql: kg_dump.dump", f"http-{status}", "refused", requests=3, error=str(err.value)[:160])


# ------------------------------------------------------------------------------------------------- SELECT
SELECT_QUERY = kq.world_entities_query("Q39546", "en")
SELECT_FAULTS = [f for f in FAULTS if f[0] in ("503", "truncated-body", "cut-connection", "drip-never-ends")]
SELECT_PERSISTENT = [f for f in SELECT_FAULTS if f[0] in ("truncated-body", "drip-never-ends")]


@pytest.fixture(scope="module")
def select_reference(upstream):
    rows = HttpSparql(upstream + "/query", user_agent="t", retry=RetryPolicy(**POLICY)).select(SELECT_QUERY)
    assert len(rows) > 3
    return rows


@pytest.mark.parametrize("name,spec,min_wait,max_attempt", SELECT_FAULTS, ids=[f[0] for f in SELECT_FAULTS])
def test_select_survives_transient_fault(name, spec, min_wait, max_attempt, select_reference, upstream, record):
    with FaultProxy(upstream) as proxy:
        proxy.add_fault(**spec)
        client = HttpSparql(proxy.url + "/query", user_agent="t", retry=RetryPolicy(**POLICY))
        rows = client.select(SELECT_QUERY)
        events = list(proxy.requests)
    assert rows == select_reference
    assert len(events) == 2 == client.requests_sent and events[0].key == events[1].key
    gap = events[1].t - events[0].t
    assert gap >= min_wait and (max_attempt is None or gap <= max_attempt), gap
    record("sparql: HttpSparql.select", name, "recovered", requests=2, wait_s=round(gap, 2))


@pytest.mark.parametrize("name,spec,min_wait,max_attempt", SELECT_PERSISTENT,
                         ids=[f[0] for f in SELECT_PERSISTENT])
def test_select_persistent_fault_raises(name, spec, min_wait, max_attempt, upstream, record):
    with FaultProxy(upstream) as proxy:
        proxy.add_fault(**spec, times=50)
        client = HttpSparql(proxy.url + "/query", user_agent="t", retry=RetryPolicy(**POLICY))
        with pytest.raises(SparqlError, match="giving up after 3 tries"):
            client.select(SELECT_QUERY)
        assert proxy.received == 3 == client.requests_sent
    record("sparql: HttpSparql.select", name, "refused", requests=3)


def test_dump_file_is_byte_reproducible(reference):
    """The frozen dump's gzip carries no timestamp or temp-file name (so equal dumps are equal files)."""
    raw = reference["extract"]
    assert raw[4:8] == b"\0\0\0\0"  # MTIME
    assert not raw[3] & 0x08  # FLG.FNAME unset
    text = gzip.decompress(raw).decode()
    assert text.count("\n") == reference["provenance"]["triples"]
    assert json.dumps(reference["provenance"]["facets"])  # per-facet stats are part of the compared provenance


# ------------------------------------------------------------------------------------ hostile text is data
HOSTILE = 'Gold"fish\' } UNION { ?s ?p ?o } # DROP ALL ; SELECT * WHERE {\nINSERT DATA { <urn:x> <urn:y> "z" } \\ 1'


def test_hostile_label_round_trips_through_http_dump(tmp_path, record):
    """A label with quotes, braces, a newline, a backslash and SPARQL keywords: served by oxigraph, dumped over
    HTTP (CONSTRUCT -> N-Triples -> our parser -> .nt.gz), identical to the file dump, and the same string again."""
    from loopback import oxigraph_server
    from lib.kg.sparql_client import EmbeddedSparql

    lit = '"' + HOSTILE.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"@en'
    ttl = tmp_path / "hostile.ttl"
    ttl.write_text(
        "@prefix wd: <http://www.wikidata.org/entity/> .\n@prefix wdt: <http://www.wikidata.org/prop/direct/> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n"
        f'wd:Q39546 rdfs:label "tool"@en .\nwd:Q900001 wdt:P279 wd:Q39546 .\nwd:Q900001 rdfs:label {lit} .\n'
        f"wd:Q900001 skos:altLabel {lit[:-4]} (alias)\"@en .\n")
    (tmp_path / "ox").mkdir()
    with oxigraph_server(tmp_path / "ox", ttl) as url:
        label_q = 'SELECT ?l WHERE { <http://www.wikidata.org/entity/Q900001> rdfs:label ?l }'
        rows = HttpSparql(url, "t", RetryPolicy(**POLICY)).select(kq.PREFIXES + label_q)
        assert [r["l"]["value"] for r in rows] == [HOSTILE]
        dump(url, ["Q39546"], [], "en", PAGE, str(tmp_path / "h.nt.gz"), str(tmp_path / "h.json"), "t",
             RetryPolicy(**POLICY))
    dump(f"file:{ttl}", ["Q39546"], [], "en", PAGE, str(tmp_path / "f.nt.gz"), str(tmp_path / "f.json"), "t")
    assert (tmp_path / "h.nt.gz").read_bytes() == (tmp_path / "f.nt.gz").read_bytes()
    store = EmbeddedSparql()
    store.load(tmp_path / "h.nt.gz")
    labels = {r["l"]["value"] for r in store.select(kq.PREFIXES + label_q)}
    alts = {r["a"]["value"] for r in store.select(
        kq.PREFIXES + "SELECT ?a WHERE { <http://www.wikidata.org/entity/Q900001> skos:altLabel ?a }")}
    assert labels == {HOSTILE} and alts == {HOSTILE + " (alias)"}
    record("sparql: kg_dump.dump", "hostile label (quotes, braces, newline, SPARQL)", "data intact")
