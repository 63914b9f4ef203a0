"""The embedded demo's default target, run once per session through the real CLI in a fresh working directory.

Registered as fixtures by tests/conftest.py (a second conftest.py under tests/integration/ would shadow the root one
as the module ``conftest`` that tests import ``REPO`` from).

Shared by tests/integration/test_demo_e2e.py (artifacts) and test_console_report.py (console output, report): one
demo run for both (minutes on 2 cores)."""
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from workflow_helpers import make_workdir, snakemake


@dataclass
class DemoRun:
    workdir: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    wd = make_workdir(tmp_path_factory.mktemp("demo"))
    t0 = time.time()
    r = snakemake(wd, "--cores", "2", timeout=1200)
    elapsed = time.time() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    print(f"\ndemo default target: {elapsed:.0f} s")
    return DemoRun(wd, r.stdout, r.stderr)


@pytest.fixture(scope="session")
def demo(demo_run) -> Path:
    return demo_run.workdir
