"""Freeze the KG sub-graph a dataset needs into ``resources/kg/{dataset}/extract.nt.gz`` (+ provenance.json).

The extraction is the union of per-root, per-facet CONSTRUCT queries (``kg_queries.dump_queries``), each paged with
ORDER BY/LIMIT/OFFSET so that no single request hits endpoint limits. It runs over HTTP (SPARQLWrapper) against
QLever/WDQS/``oxigraph serve``, or in-process when the endpoint is ``file:<rdf file>``. All later KG queries run
on the frozen dump, so a rerun months later selects the same entities even though Wikidata drifts.

Nothing partial is ever marked complete: pages are collected in memory, and the output is written atomically only
after every facet finished; any failed request (after bounded retries) aborts the rule with a clear error.
"""

import datetime as dt
import gzip
import io
import logging

from tqdm import tqdm

from lib.kg import kg_queries as kq
from _helpers import atomic_path, configure_logging, rule_entry, write_json
from lib.kg.sparql_client import RetryPolicy, open_endpoint

log = logging.getLogger("entitynet.kg_dump")


def extract(endpoint, queries: dict[str, str], page_size: int) -> tuple[set[str], dict]:
    """Run every CONSTRUCT facet with paging; return the set of N-Triples lines and per-facet stats."""
    triples: set[str] = set()
    stats: dict[str, dict] = {}
    for name, query in tqdm(queries.items(), desc="KG facets", unit="facet"):
        page, n_facet = 0, 0
        while True:
            lines = endpoint.construct(kq.paged(query, page_size, page))
            n_facet += len(lines)
            triples.update(lines)
            log.info("%s page %d: %d triples", name, page, len(lines))
            if not lines:
                break
            page += 1
        stats[name] = {"pages": page + 1, "triples": n_facet}
    return triples, stats


def dump(endpoint_spec: str, roots: list[str], living_roots: list[str], lang: str, page_size: int,
         out_nt_gz: str, out_provenance: str, user_agent: str, retry: RetryPolicy | None = None,
         abstract_classes=()) -> dict:
    endpoint = open_endpoint(endpoint_spec, user_agent=user_agent, retry=retry)
    queries = kq.dump_queries(roots, living_roots, lang, list(abstract_classes))
    started = dt.datetime.now(dt.timezone.utc)
    triples, stats = extract(endpoint, queries, page_size)
    if not triples:
        raise RuntimeError(f"{endpoint_spec}: the extraction returned no triples for roots {roots + living_roots}; "
                           "check the endpoint and the root QIDs")
    ordered = sorted(triples)
    entities = {t.split(" ", 1)[0] for t in ordered if t.startswith("<http://www.wikidata.org/entity/Q")}
    with atomic_path(out_nt_gz, suffix=".gz") as tmp:
        # no file name and mtime 0 in the gzip header: the same triples always give the same bytes
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                io.TextIOWrapper(gz, encoding="utf-8") as fh:
            for t in ordered:
                fh.write(t + "\n")
    provenance = {
        "endpoint": endpoint_spec,
        "user_agent": user_agent,
        "language": lang,
        "roots": roots,
        "living_roots": living_roots,
        "started_utc": started.isoformat(),
        "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(),
        "page_size": page_size,
        "triples": len(ordered),
        "entities": len(entities),
        "facets": stats,
        "queries": queries,
        "requests_sent": getattr(endpoint, "requests_sent", None),
    }
    write_json(provenance, out_provenance)
    log.info("froze %d triples about %d entities from %s", len(ordered), len(entities), endpoint_spec)
    return provenance


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    dump(p.endpoint, list(p.roots), list(p.living_roots), p.language, int(p.page_size),
         snakemake.output.extract, snakemake.output.provenance, p.user_agent,
         RetryPolicy(max_tries=int(p.max_tries), timeout_s=float(p.timeout_s)),
         abstract_classes=list(p.abstract_classes))


if __name__ == "__main__":
    rule_entry(main, globals())
