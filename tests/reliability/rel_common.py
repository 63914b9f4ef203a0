"""Fixtures of the reliability suite: import paths, the figures recorder, a loopback oxigraph endpoint.

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
