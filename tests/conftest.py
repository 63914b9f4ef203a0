"""Shared pytest set-up: `scripts/` is importable as top-level modules (PyPSA-Eur pattern), and the skip allow-list.

Skip allow-list
---------------
A skipped test is a test that did not run, so a green run must not hide one. The run **fails** (exit status 1, and a
section "skips not on the allow-list" naming each test and its reason) when any test or module is skipped for a
reason that is not in ``ALLOWED_SKIP_REASONS``. Today the list holds one reason:

- ``NO_CUDA``: the test needs a CUDA device (mark it ``@pytest.mark.cuda``; this file skips it with that reason when
  ``torch.cuda.is_available()`` is false). No machine of this project's CI has a GPU.

Everything else a test needs comes from the repository or is made by the test. Tests that need the machine set up
(WordNet 3.0 from Debian's ``wordnet-base``; a local Slurm, which needs root and apt) still say why they skip, but
that reason is not on the list: ``.ci/run`` runs as root and installs what they need, so they never skip there, and
elsewhere the run fails with the reason (install the package, or leave those tests out explicitly with ``-m "not
slurm"`` or ``--deselect``: a deselected test is not a skipped one). A known bug is an ``xfail`` with its reason
(``strict=True``, so a fix shows up as a failure that asks to drop the marker), not a skip. ``-ra`` (``pytest.ini``)
prints every skip and xfail with its reason in the short summary.
"""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
TESTS = REPO / "tests"
for _p in (SCRIPTS, TESTS):  # scripts/ as top-level modules; tests/ for shared helpers (loopback, workflow_helpers)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from demo_fixture import demo, demo_run  # noqa: E402,F401  (session fixtures: one demo run for the e2e tests)

NO_CUDA = "needs a CUDA device (torch.cuda.is_available() is false)"
ALLOWED_SKIP_REASONS = frozenset({NO_CUDA})


def pytest_configure(config):
    config.pluginmanager.register(SkipAllowList(), "entitynet-skip-allow-list")


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None and not _cuda_available():
        pytest.skip(NO_CUDA)


def _cuda_available() -> bool:
    import torch  # imported only when a CUDA test runs

    return torch.cuda.is_available()


def skip_reason(report) -> str | None:
    """The reason of a skipped (not xfailed) test or collection report; None for any other outcome."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return message.removeprefix("Skipped: ")


class SkipAllowList:
    """Collects skips whose reason is not allowed; fails the session and lists them in the terminal summary."""

    def __init__(self, allowed=ALLOWED_SKIP_REASONS):
        self.allowed = allowed
        self.disallowed: list[tuple[str, str]] = []

    def _record(self, report) -> None:
        reason = skip_reason(report)
        if reason is not None and reason not in self.allowed:
            self.disallowed.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report):
        self._record(report)

    def pytest_collectreport(self, report):
        self._record(report)

    def pytest_sessionfinish(self, session):
        ok = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.disallowed and session.exitstatus in ok:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.disallowed:
            return
        terminalreporter.section("skips not on the allow-list (tests/conftest.py): the run fails", sep="=", red=True)
        for nodeid, reason in self.disallowed:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"{len(self.disallowed)} skipped for a reason not in ALLOWED_SKIP_REASONS; allowed: "
                              + "; ".join(sorted(self.allowed)))
