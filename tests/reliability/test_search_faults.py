"""Search backend faults: the ``search`` rule's code (``search.main`` -> ``run_chunk`` -> ``search_web``) against
the Openverse stand-in (tests/standins) behind the fault-injecting proxy.

``tests/integration/test_search_web.py`` and ``tests/unit/test_http_cache.py`` already test the backends' and the
client's retry/cache logic call by call; here the whole rule entry point runs, and we check what the issue asks:
a transient fault gives the same hits file as a fault-free run; a persistent one fails with an error naming the
backend and writes no hits file; a run killed with SIGKILL midway resumes from the cache and the origin server never
answers the same request twice.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rel_common import TIMEOUT_S, TRANSPORT_FAULTS, record  # noqa: E402,F401 (fixture)

import _search_job  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from lib.common.http_cache import RetriesExhaustedError  # noqa: E402
from loopback import wait_until  # noqa: E402
from standins import OpenverseStandin  # noqa: E402

pytestmark = pytest.mark.integration

N_QUERIES, N_RESULTS, PAGE = 6, 25, 10  # 3 pages per query, 18 requests per run
PAGES_PER_QUERY = 3
PARAMS = {"requests_per_second": 0, "max_retries": 2, "timeout_s": TIMEOUT_S, "backoff_base_s": 0.05,
          "backoff_max_s": 0.2, "page_size": PAGE, "max_results": 30, "shared_rate_limit": False}


def write_queries(path: Path) -> str:
    """The suite's queries table (``N_QUERIES`` living queries) at ``path``; returns the path."""
    pd.DataFrame({
        "query_id": [f"{i + 1:016x}" for i in range(N_QUERIES)],
        "text": [f"red fox {i}" for i in range(N_QUERIES)], "kind": "wd-noun-living", "or_terms": "vulpes",
        "exclude_terms": "drawing", "image_type": "photo", "is_living": True,
        "qids": [["Q8332"]] * N_QUERIES,
    }).to_parquet(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> str:
    return write_queries(tmp_path_factory.mktemp("queries") / "queries.parquet")


def spec(base_url: str, queries: str, out: Path, **params) -> dict:
    return {"backend": "openverse", "params": {**PARAMS, "base_url": base_url, **params}, "queries": queries,
            "hits": str(out / "chunk_00000.parquet"), "cache_dir": str(out / "cache")}


@pytest.fixture(scope="module")
def reference(queries, tmp_path_factory):
    out = tmp_path_factory.mktemp("search_ref")
    with OpenverseStandin(n_results=N_RESULTS) as server:
        _search_job.run(spec(server.url, queries, out))
        n = server.request_count()
    df = pd.read_parquet(out / "chunk_00000.parquet")
    assert n == N_QUERIES * PAGES_PER_QUERY and len(df) == N_QUERIES * N_RESULTS
    return df, n


FAULTS = [
    ("503", dict(kind="status", status=503), 0.0, None),
    ("429-retry-after-1s", dict(kind="status", status=429, retry_after="1"), 1.0, None),
    ("truncated-json", dict(kind="truncate"), 0.0, None),
    *TRANSPORT_FAULTS,
]
SKIP = 7  # the fault hits query 3's page 2: earlier queries are complete and cached


def _id(f):
    return f.values[0] if hasattr(f, "values") else f[0]


@pytest.mark.parametrize("name,fault,min_wait,max_attempt", FAULTS, ids=[_id(f) for f in FAULTS])
def test_transient_fault_same_hits(name, fault, min_wait, max_attempt, queries, reference, tmp_path, record):
    ref, n_ref = reference
    with OpenverseStandin(n_results=N_RESULTS) as server, FaultProxy(server.url) as proxy:
        proxy.add_fault(**fault, skip=SKIP)
        _search_job.run(spec(proxy.url, queries, tmp_path))
        events = list(proxy.requests)
        origin_repeats = [n for n in server.distinct.values() if n > 1]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "chunk_00000.parquet"), ref)
    assert len(events) == n_ref + 1
    faulted, retry = events[SKIP], events[SKIP + 1]
    assert faulted.fault == fault["kind"] and faulted.key == retry.key
    assert [n for n in proxy.by_key.values() if n > 1] == [2]
    # the origin saw the faulted request twice only where the proxy had forwarded it (the body was then broken)
    assert origin_repeats == ([2] if fault["kind"] in ("truncate", "cut", "stall", "drip") else [])
    gap = retry.t - faulted.t
    assert gap >= min_wait, f"retried after {gap:.2f} s, Retry-After asked for {min_wait} s"
    if max_attempt is not None:
        assert gap <= max_attempt, f"the attempt lasted {gap:.2f} s (timeout_s={TIMEOUT_S})"
    record("search: search.main (openverse)", name, "recovered", requests=len(events), wait_s=round(gap, 2))


PERSISTENT = [f for f in FAULTS if _id(f) in ("503", "truncated-json", "stall-mid-body")]


@pytest.mark.parametrize("name,fault,min_wait,max_attempt", PERSISTENT, ids=[_id(f) for f in PERSISTENT])
def test_persistent_fault_fails_clearly_no_hits_file(name, fault, min_wait, max_attempt, queries, tmp_path, record):
    with OpenverseStandin(n_results=N_RESULTS) as server, FaultProxy(server.url) as proxy:
        proxy.add_fault(**fault, times=50, skip=SKIP)
        with pytest.raises(RetriesExhaustedError, match=r"openverse: GET .* failed after 3 attempt") as err:
            _search_job.run(spec(proxy.url, queries, tmp_path))
        assert proxy.received == SKIP + PARAMS["max_retries"] + 1
    assert not (tmp_path / "chunk_00000.parquet").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") and p.name != ".ratelimit"]
    cached = [p for p in (tmp_path / "cache").rglob("*.json.gz")]
    assert len(cached) == SKIP  # every answered page is cached for the rerun; the failed one is not
    record("search: search.main (openverse)", name, "refused", requests=proxy.received, error=str(err.value)[:160])


def test_connection_refused_then_listening(queries, reference, tmp_path, record):
    ref, n_ref = reference
    with OpenverseStandin(n_results=N_RESULTS) as server:
        proxy = FaultProxy(server.url, listen=False)
        try:
            opener = threading.Timer(0.3, proxy.listen)
            opener.start()
            _search_job.run(spec(proxy.url, queries, tmp_path, max_retries=6, backoff_base_s=0.2, backoff_max_s=1))
            opener.join()
            assert proxy.received == n_ref == server.request_count()
        finally:
            proxy.close()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "chunk_00000.parquet"), ref)
    record("search: search.main (openverse)", "connection-refused", "recovered", requests=n_ref)


def test_connection_refused_for_good(queries, tmp_path, record):
    proxy = FaultProxy("http://127.0.0.1:9", listen=False)
    try:
        with pytest.raises(RetriesExhaustedError, match=r"openverse: .*3 attempt.*ConnectionError"):
            _search_job.run(spec(proxy.url, queries, tmp_path))
    finally:
        proxy.close()
    assert not (tmp_path / "chunk_00000.parquet").exists()
    record("search: search.main (openverse)", "connection-refused", "refused", requests=0)


# ------------------------------------------------------------------------------------- kill -9 midway, resume
def _start(job: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "_search_job.py"), json.dumps(job)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kill_after", [4, 11])
def test_killed_search_resumes_from_cache_without_repeating(kill_after, queries, reference, tmp_path, record):
    """SIGKILL the search job while request ``kill_after + 1`` is in flight; the rerun finishes from the cache."""
    ref, n_ref = reference
    with OpenverseStandin(n_results=N_RESULTS) as server, FaultProxy(server.url) as proxy:
        job = spec(proxy.url, queries, tmp_path)
        proxy.add_fault("hang", skip=kill_after, hold_s=120)  # request kill_after+1 gets no answer
        proc = _start(job)
        try:
            wait_until(lambda: proxy.received > kill_after or proc.poll() is not None, 60, what="search job progress")
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proxy.release()
        assert proc.returncode == -signal.SIGKILL
        assert not Path(job["hits"]).exists()  # no hits file from a killed run
        assert server.request_count() == kill_after
        cached = list((tmp_path / "cache").rglob("*.json.gz"))
        assert len(cached) == kill_after  # every answered request is in the cache, complete
        assert not [p for p in (tmp_path / "cache").rglob(".*") if p.name != ".ratelimit"]  # no temp file

        rerun = _start(job)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err[-3000:]
        # the origin answered every distinct request exactly once over both runs; the only request the proxy saw
        # twice is the one in flight at the kill, which was never answered
        assert max(server.distinct.values()) == 1
        assert server.request_count() == n_ref
        assert [n for n in proxy.by_key.values() if n > 1] == [2]
        assert proxy.received == n_ref + 1
    pd.testing.assert_frame_equal(pd.read_parquet(job["hits"]), ref)
    record("search: search.main (openverse)", f"kill -9 after {kill_after} requests", "resumed",
           requests=n_ref + 1, repeated_answered=0)
