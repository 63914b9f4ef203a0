"""One SPARQL interface, two transports: HTTP (SPARQLWrapper) and embedded (pyoxigraph).

The same query text runs on both. Results come back as SPARQL-JSON-style bindings
``{var: {"type": "uri"|"literal"|"bnode", "value": str, "xml:lang"?: str, "datatype"?: str}}`` so that callers never
see which transport answered.

HTTP requests use POST (long ``VALUES`` blocks), a descriptive User-Agent (Wikimedia's policy), a timeout, and bounded
retries with exponential backoff on 429 / 5xx / timeouts / truncated bodies; ``Retry-After`` is honoured up to
``max_wait_s``. A truncated or malformed body is never returned as a result: it is retried, then raised.
"""

import contextlib
import gzip
import http.client
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lib.common.http_retry import RETRYABLE_STATUS, parse_retry_after, retry_wait

log = logging.getLogger(__name__)

QID_RE = re.compile(r"^Q[1-9][0-9]*$")
# BCP 47 language tag (simplified: language, optional script/region/variants), as Wikidata uses them.
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

PREFIXES = """PREFIX wd: <http://www.wikidata.org/entity/>
PREFIX wdt: <http://www.wikidata.org/prop/direct/>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
PREFIX schema: <http://schema.org/>
PREFIX wikibase: <http://wikiba.se/ontology#>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
"""
WD = "http://www.wikidata.org/entity/"


class SparqlError(RuntimeError):
    """A SPARQL request failed for good (after retries) or the answer was unusable."""


def check_qid(qid: str, where: str = "QID") -> str:
    """Return ``qid`` if it is a well-formed Wikidata item id, else raise ValueError naming ``where``."""
    if not isinstance(qid, str) or not QID_RE.match(qid):
        raise ValueError(f"{where}: {qid!r} is not a Wikidata item id (expected Q followed by digits, e.g. Q729)")
    return qid


def check_lang(lang: str, where: str = "language") -> str:
    if not isinstance(lang, str) or not LANG_RE.match(lang):
        raise ValueError(f"{where}: {lang!r} is not a language tag (e.g. en, pt-br)")
    return lang


def qid_of(iri: str) -> str:
    """``http://www.wikidata.org/entity/Q42`` -> ``Q42`` (other IRIs are returned unchanged)."""
    return iri[len(WD):] if iri.startswith(WD) else iri


@dataclass
class RetryPolicy:
    """``max_tries`` attempts in all; between them ``base_delay_s * 2**attempt`` (uniform x 0.5..1 jitter, the
    shared scheme of :mod:`http_retry`) or the server's ``Retry-After``, capped at ``max_wait_s``. ``timeout_s`` bounds every socket read *and* each attempt as a whole
    (send to last byte): a body that is still trickling in after ``timeout_s`` is abandoned and retried."""

    max_tries: int = 5
    base_delay_s: float = 2.0
    max_wait_s: float = 120.0
    timeout_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry ``attempt`` (the shared scheme of :mod:`http_retry`)."""
        return retry_wait(attempt, retry_after, self.base_delay_s, self.max_wait_s, self.max_wait_s)


class HttpSparql:
    """A SPARQL 1.1 endpoint over HTTP via SPARQLWrapper (QLever, WDQS, ``oxigraph serve``)."""

    def __init__(self, url: str, user_agent: str, retry: RetryPolicy | None = None):
        if not re.match(r"^https?://", url):
            raise ValueError(f"endpoint {url!r} is not an http(s) URL")
        self.url = url
        self.user_agent = user_agent
        self.retry = retry or RetryPolicy()
        self.requests_sent = 0

    def _wrapper(self, query: str, accept: str):
        from SPARQLWrapper import POST, SPARQLWrapper

        sw = SPARQLWrapper(self.url, agent=self.user_agent)
        sw.setMethod(POST)
        sw.setRequestMethod("postdirectly")  # Content-Type: application/sparql-query
        sw.setQuery(query)
        # not setTimeout(): it truncates to int, and a timeout of 0 means none at all (a sub-second timeout_s
        # used to disable the timeout); urllib takes float seconds
        sw.timeout = max(float(self.retry.timeout_s), 0.001)
        sw.addCustomHttpHeader("Accept", accept)
        return sw

    def _read_body(self, resp, deadline: float) -> bytes:
        """The whole body, or an exception: a body still arriving at ``deadline`` (a response that never ends,
        e.g. one byte at a time, which no per-read socket timeout catches) raises TimeoutError, and a connection
        closed before ``Content-Length`` bytes arrived raises ConnectionError."""
        read = getattr(resp, "read1", None)
        if read is None:
            return resp.read()
        chunks = []
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"response body not complete after {self.retry.timeout_s} s "
                                   f"({sum(map(len, chunks))} bytes so far)")
            chunk = read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        missing = getattr(resp, "length", None)
        if missing:  # http.client's read1() returns b"" instead of raising IncompleteRead
            raise ConnectionError(f"connection closed with {missing} bytes of the announced body missing")
        return b"".join(chunks)

    def _request(self, query: str, accept: str, parse) -> object:
        from SPARQLWrapper.SPARQLExceptions import EndPointInternalError, QueryBadFormed, SPARQLWrapperException

        last: Exception | None = None
        for attempt in range(self.retry.max_tries):
            retry_after = None
            try:
                self.requests_sent += 1
                deadline = time.monotonic() + self.retry.timeout_s
                resp = self._wrapper(query, accept).query().response
                body = self._read_body(resp, deadline)
                return parse(body)
            except QueryBadFormed as e:  # our bug or a dialect problem: retrying will not help
                raise SparqlError(f"{self.url}: query rejected as malformed: {str(e)[:500]}") from e
            except urllib.error.HTTPError as e:
                last = e
                if e.code not in RETRYABLE_STATUS:
                    raise SparqlError(f"{self.url}: HTTP {e.code} {e.reason}") from e
                retry_after = parse_retry_after(e.headers.get("Retry-After") if e.headers else None)
            except (EndPointInternalError, urllib.error.URLError, socket.timeout, TimeoutError,
                    ConnectionError, http.client.HTTPException, ValueError, json.JSONDecodeError) as e:
                last = e  # ValueError: truncated JSON / N-Triples; HTTPException: IncompleteRead, bad status line
            except SPARQLWrapperException as e:  # 401, 404, 414: retrying will not help
                raise SparqlError(f"{self.url}: {type(e).__name__}: {str(e)[:300]}") from e
            wait = self.retry.delay(attempt, retry_after)
            if attempt + 1 < self.retry.max_tries:
                log.warning("SPARQL request to %s failed (%s: %s); retry %d/%d in %.1f s", self.url,
                            type(last).__name__, str(last)[:200], attempt + 1, self.retry.max_tries - 1, wait)
                time.sleep(wait)
        raise SparqlError(f"{self.url}: giving up after {self.retry.max_tries} tries: "
                          f"{type(last).__name__}: {str(last)[:300]}")

    def select(self, query: str) -> list[dict]:
        def parse(body: bytes) -> list[dict]:
            data = json.loads(body)
            if "results" not in data or "bindings" not in data["results"]:
                raise ValueError("SPARQL JSON result without results.bindings")
            return data["results"]["bindings"]

        return self._request(query, "application/sparql-results+json", parse)

    def select_frame(self, query: str):
        """SELECT as a DataFrame of plain values (str; unbound -> NaN), same shape as EmbeddedSparql's."""
        return bindings_to_frame(self.select(query), query)

    def construct(self, query: str) -> list[str]:
        """Run a CONSTRUCT and return N-Triples lines, validated by a full parse (a cut body raises)."""
        import pyoxigraph as ox

        def parse(body: bytes) -> list[str]:
            try:
                triples = list(ox.parse(body, format=ox.RdfFormat.N_TRIPLES))
            except SyntaxError as e:  # pyoxigraph's parse error is a SyntaxError, not a ValueError
                raise ValueError(f"N-Triples answer does not parse (truncated?): {e}") from None
            return [f"{t.subject} {t.predicate} {t.object} ." for t in triples]

        return self._request(query, "application/n-triples", parse)


_TSV_LITERAL = r'^"(.*)"(?:@[A-Za-z0-9-]+|\^\^<[^>]*>)?$'
_TSV_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}


def _plain_tsv_values(col):
    """SPARQL TSV terms -> plain values: ``<iri>`` -> ``iri``, ``"lit"@en`` / ``"lit"^^<dt>`` -> ``lit`` (escapes
    undone), bare numbers and ``_:b`` kept; NaN (unbound) kept."""
    s = col.astype(object)
    present = s.notna()
    iri = present & s.str.startswith("<", na=False)
    s = s.where(~iri, s.str.slice(1, -1))
    lit = present & s.str.startswith('"', na=False)
    if lit.any():
        inner = s[lit].str.extract(_TSV_LITERAL, expand=False)
        escaped = inner.str.contains("\\", regex=False, na=False)
        if escaped.any():
            inner[escaped] = inner[escaped].str.replace(
                r"\\(.)", lambda m: _TSV_ESCAPES.get(m.group(1), m.group(1)), regex=True)
        s = s.where(~lit, inner)
    return s


def _term_to_json(term) -> dict | None:
    import pyoxigraph as ox

    if term is None:
        return None
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    out = {"type": "literal", "value": term.value}
    if term.language:
        out["xml:lang"] = term.language
    elif term.datatype and term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
        out["datatype"] = term.datatype.value
    return out


class EmbeddedSparql:
    """An in-process pyoxigraph store (in memory, or on disk when ``store_dir`` is given).

    The on-disk store (RocksDB) keeps memory flat for large dumps: an in-memory store of a 1M-entity dump alone
    takes ~4 GB, the on-disk one a few hundred MB of RSS. See :func:`embedded_store` for the rules' choice.
    """

    def __init__(self, store_dir: str | Path | None = None):
        import pyoxigraph as ox

        self.store = ox.Store(str(store_dir)) if store_dir else ox.Store()
        self.store_dir = Path(store_dir) if store_dir else None
        self.url = f"embedded:{store_dir or 'memory'}"

    def load(self, path: str | Path, lenient: bool = False) -> int:
        """Load an RDF file (.ttl, .nt, .nt.gz); returns the number of triples in the store.

        ``lenient`` skips IRI/literal validation (faster); use it only for files this workflow wrote itself after
        a full parse, such as the frozen dump of ``kg_dump``.
        """
        import pyoxigraph as ox

        path = Path(path)
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        fmt = ox.RdfFormat.from_extension(name.rsplit(".", 1)[-1])
        if fmt is None:
            raise ValueError(f"{path}: unknown RDF file extension")
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            self.store.bulk_load(fh, format=fmt, lenient=lenient)
        return len(self.store)

    def select_frame(self, query: str):
        """SELECT as a pandas DataFrame of plain values, without building one Python object per binding.

        The solutions are serialised by Oxigraph itself as SPARQL 1.1 TSV and parsed by pandas' C reader; IRIs and
        literals are then reduced to their plain lexical values (language tags and datatypes dropped), every column
        is ``str`` and an unbound value is NaN. Filter languages inside the query (``FILTER(LANG(?v) = "en")``).
        TSV, not CSV: Oxigraph 0.5 writes an IRI that contains a comma into CSV unquoted (Wikimedia Commons file
        names often do), which shifted every later column of that row; in TSV a tab inside a literal is escaped
        and an IRI cannot hold one.
        """
        import csv

        import pandas as pd
        import pyoxigraph as ox

        res = self.store.query(query)
        names = [v.value for v in res.variables]
        data = res.serialize(format=ox.QueryResultsFormat.TSV)
        end_of_header = data.find(b"\n")
        if end_of_header < 0 or end_of_header >= len(data) - 1:  # header only: no solution
            return pd.DataFrame({n: pd.Series(dtype=object) for n in names})
        df = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, na_values=[""], engine="c",
                         quoting=csv.QUOTE_NONE, header=0, names=names)
        for col in names:
            df[col] = _plain_tsv_values(df[col])
        return df

    def select(self, query: str) -> list[dict]:
        res = self.store.query(query)
        names = [v.value for v in res.variables]
        rows = []
        for sol in res:
            row = {}
            for n in names:
                t = _term_to_json(sol[n])
                if t is not None:
                    row[n] = t
            rows.append(row)
        return rows

    def construct(self, query: str) -> list[str]:
        return [f"{t.subject} {t.predicate} {t.object} ." for t in self.store.query(query)]

    def iter_ntriples(self) -> Iterator[str]:
        for q in self.store.quads_for_pattern(None, None, None, None):
            yield f"{q.subject} {q.predicate} {q.object} ."


@contextlib.contextmanager
def embedded_store(path: str | Path, *, mode: str, disk_min_mb: float, work_dir: str | Path | None = None,
                   lenient: bool = False):
    """A store loaded with the RDF file ``path``, in memory or in a temporary on-disk directory.

    ``mode``: ``memory``, ``disk``, or ``auto`` (disk when the file is at least ``disk_min_mb`` MiB); the rules
    pass ``kg.store`` and ``kg.disk_store_min_mb`` (config/schema.yaml). The on-disk store goes to a fresh hidden
    directory under ``work_dir`` (default: the file's own directory, which is ``resources/kg/{dataset}/`` for the
    dump) and is deleted on exit, also after an error.
    """
    path = Path(path)
    if mode not in ("auto", "memory", "disk"):
        raise ValueError(f"embedded store mode {mode!r}: expected auto, memory or disk")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: RDF file not found")
    size_mb = path.stat().st_size / 2**20
    on_disk = mode == "disk" or (mode == "auto" and size_mb >= disk_min_mb)
    tmp = None
    try:
        if on_disk:
            tmp = tempfile.mkdtemp(prefix=".oxigraph-", dir=str(work_dir or path.parent))
            store = EmbeddedSparql(store_dir=tmp)
        else:
            store = EmbeddedSparql()
        n = store.load(path, lenient=lenient)
        log.info("loaded %d triples from %s (%.1f MiB) into %s", n, path, size_mb, store.url)
        yield store
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def bindings_to_frame(rows: list[dict], query: str | None = None, names: list[str] | None = None):
    """SPARQL-JSON bindings -> DataFrame of plain values (str, NaN when unbound), like ``select_frame``."""
    import pandas as pd

    if names is None:
        names = sorted({k for r in rows for k in r})
        if query is not None:
            m = re.search(r"SELECT\s+(?:DISTINCT\s+)?(.*?)\s*(?:WHERE|\{)", query, re.S | re.I)
            if m:
                declared = re.findall(r"\?(\w+)", m.group(1))
                names = list(dict.fromkeys(declared)) or names
    return pd.DataFrame({n: [r[n]["value"] if n in r else None for r in rows] for n in names}, dtype=object)


def open_endpoint(spec: str, user_agent: str = "EntityNet-reproduction", retry: RetryPolicy | None = None):
    """``http(s)://…`` -> HttpSparql; ``file:<path>`` -> EmbeddedSparql loaded with that RDF file."""
    if spec.startswith("file:"):
        ep = EmbeddedSparql()
        ep.load(spec[len("file:"):])
        return ep
    return HttpSparql(spec, user_agent=user_agent, retry=retry)


def binding_value(row: dict, var: str):
    """Plain Python value of a binding: int for xsd integers, str otherwise, None when unbound."""
    b = row.get(var)
    if b is None:
        return None
    if b.get("datatype", "").endswith(("#integer", "#int", "#long", "#decimal")):
        try:
            return int(float(b["value"]))
        except ValueError:
            return None
    return b["value"]
