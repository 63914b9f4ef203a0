"""How long a *fault-free* request takes in the reliability suite's set-ups: the measured distribution behind
``tests/reliability/rel_common.TIMEOUT_S``.

The fault tests give their clients a short per-attempt timeout, so that a stalled or dripping server is abandoned
quickly. The same timeout also applies to every good request. If a good request ever outlasts it, the client retries
it and the tests' request counts are off by one: a flake that depends on machine load. This script measures the
good requests of both set-ups, with no fault and a generous timeout:

* ``sparql``: the KG dump (``kg_dump.dump``) through a fault-free ``FaultProxy`` in front of a real
  ``oxigraph serve-read-only`` on the demo extract (the pages of ``test_sparql_faults``);
* ``search``: the ``search`` rule's code against the Openverse stand-in behind the proxy (``test_search_faults``).

Each attempt is timed on the client side, from sending the request to the last byte of the answer
(``HttpSparql._request`` / ``CachedClient._fetch``). Run it idle, then beside a CPU hog, e.g.::

    python perf/fault_suite_latency.py --runs 20
    stress-ng --cpu 2 --cpu-method matrixprod --timeout 10m --quiet & python perf/fault_suite_latency.py --runs 20

It prints the count, median, p99 and maximum in ms per set-up, and the ratio of the maximum to the timeout.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "scripts", ROOT / "tests", ROOT / "tests" / "reliability"):
    sys.path.insert(0, str(p))

import _search_job  # noqa: E402
import rel_common  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from kg_dump import dump  # noqa: E402
from lib.common import http_cache  # noqa: E402
from lib.kg.sparql_client import HttpSparql, RetryPolicy  # noqa: E402
from loopback import oxigraph_server  # noqa: E402
from standins import OpenverseStandin  # noqa: E402


def timed(owner, name: str, times: list[float]):
    """Wrap ``owner.name`` so that every call's wall time (ms) is appended to ``times``; returns the original."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times.append((time.perf_counter() - t0) * 1000)

    setattr(owner, name, wrapper)
    return original


def sparql_runs(runs: int, work: Path) -> list[float]:
    import test_sparql_faults as t  # the suite's own roots, page size and policy

    times: list[float] = []
    original = timed(HttpSparql, "_request", times)
    try:
        (work / "oxigraph").mkdir()
        with oxigraph_server(work / "oxigraph") as url, FaultProxy(url.rsplit("/query", 1)[0]) as proxy:
            for i in range(runs):
                out = work / f"sparql{i}"
                out.mkdir()
                dump(proxy.url + "/query", t.ROOTS, t.LIVING, "en", t.PAGE, str(out / "extract.nt.gz"),
                     str(out / "provenance.json"), "entitynet-latency", RetryPolicy(**{**t.POLICY, "timeout_s": 60}))
    finally:
        HttpSparql._request = original
    return times


def search_runs(runs: int, work: Path) -> list[float]:
    import test_search_faults as t

    queries = t.write_queries(work / "queries.parquet")
    times: list[float] = []
    original = timed(http_cache.CachedClient, "_fetch", times)
    try:
        with OpenverseStandin(n_results=t.N_RESULTS) as server, FaultProxy(server.url) as proxy:
            for i in range(runs):
                out = work / f"search{i}"
                out.mkdir()
                _search_job.run(t.spec(proxy.url, queries, out, timeout_s=60))
    finally:
        http_cache.CachedClient._fetch = original
    return times


def summary(name: str, ms: list[float]) -> str:
    s = sorted(ms)
    p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
    return (f"{name:7s} n={len(s):5d}  median {statistics.median(s):7.1f} ms  p99 {p99:7.1f} ms  "
            f"max {s[-1]:7.1f} ms  max/TIMEOUT_S {s[-1] / 1000 / rel_common.TIMEOUT_S:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="fault-free runs of each set-up")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"TIMEOUT_S = {rel_common.TIMEOUT_S} s")
        print(summary("sparql", sparql_runs(args.runs, work)), flush=True)
        print(summary("search", search_runs(args.runs, work)), flush=True)


if __name__ == "__main__":
    main()
