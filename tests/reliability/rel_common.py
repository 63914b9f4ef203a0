"""Fixtures of the reliability suite: import paths, the figures recorder, a loopback oxigraph endpoint, the shared
transport faults.

Not a ``conftest.py`` (a second module named ``conftest`` would shadow ``tests/conftest.py`` for the tests that
import from it): test modules import the fixtures they use from here.
"""
import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (HERE.parent, HERE):  # tests/ (standins, workflow_helpers, loopback) and tests/reliability/ (fault_proxy)
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from loopback import oxigraph_server  # noqa: E402

# The clients' per-attempt timeout in the SPARQL and search fault tests. It has to fire on a stalled or dripping
# answer, and it must never fire on a good one: a good request that outlasts it is retried, and the tests' request
# counts are then one off. perf/fault_suite_latency.py measured the good requests of these set-ups (client side, send
# to last byte; 2 cores, 2026-12-03, 20 fault-free runs each): the SPARQL dump pages (720 requests) took at most
# 253 ms idle, 322 ms beside 2 CPU hogs and 1,092 ms (p99 884 ms) beside 6; the search pages at most 204 ms. The
# earlier 0.6 s was below that last maximum, so a loaded machine failed the tests. 3 s is 2.7 x the worst seen with
# the CPUs oversubscribed four times over; each fault test that waits for it costs 3 s per timed-out attempt.
TIMEOUT_S = 3.0
# a stalled server holds for HOLD_S; the client's own timeout must end the attempt well before: an attempt
# over HOLD_S / 2 waited for the server (the gap is ~TIMEOUT_S + backoff; the margin is for a loaded machine)
HOLD_S = 30
# (id, add_fault kwargs, minimum wait before the retry in s, maximum time the faulted attempt may take in s): the
# transport faults that both the SPARQL and the search suite throw
TRANSPORT_FAULTS = [
    ("cut-connection", dict(kind="cut"), 0.0, None),
    ("reset-no-answer", dict(kind="reset"), 0.0, None),
    ("stall-before-headers", dict(kind="hang", hold_s=HOLD_S), 0.0, HOLD_S / 2),
    ("stall-mid-body", dict(kind="stall", hold_s=HOLD_S), 0.0, HOLD_S / 2),
    ("drip-never-ends", dict(kind="drip", hold_s=HOLD_S, drip_s=0.05), 0.0, HOLD_S / 2),
]


@pytest.fixture()
def record(request):
    """``record(area, fault, outcome, requests=…, artifacts_lost=0, **detail)``: one line of the suite's figures.

    Lines go to the JSON-lines file named by ``$RELIABILITY_LOG`` (set by ``summarise.py``); call it after the
    test's assertions, so a failing test records nothing (and counts as not survived in the summary).
    """
    def _record(area: str, fault: str, outcome: str, artifacts_lost: int = 0, **detail):
        path = os.environ.get("RELIABILITY_LOG")
        if not path:
            return
        line = {"test": request.node.nodeid, "area": area, "fault": fault, "outcome": outcome,
                "artifacts_lost": artifacts_lost, **detail}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")

    return _record


@pytest.fixture(scope="session")
def oxigraph_endpoint(tmp_path_factory):
    """A real ``oxigraph serve-read-only`` on 127.0.0.1 with the demo extract; yields its /query URL."""
    with oxigraph_server(tmp_path_factory.mktemp("oxigraph")) as url:
        yield url
