"""The skip allow-list of tests/conftest.py: a run with a skip whose reason is not allowed fails and names it.

Each case runs pytest in a subprocess on a small project made here, whose conftest is a copy of tests/conftest.py.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

ALLOWED = '''
import pytest
from conftest import NO_CUDA

def test_runs():
    pass

def test_no_gpu_here():
    pytest.skip(NO_CUDA)

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
'''

DISALLOWED = '''
import pytest

@pytest.mark.skipif(True, reason="fixture photos not available")
def test_skipped_by_marker():
    pass

def test_skipped_in_body():
    pytest.skip("no WordNet here")
'''

MODULE_SKIP = '''
import pytest
pytest.skip("the whole module needs root", allow_module_level=True)
'''

CUDA_MARKED = '''
import pytest

@pytest.mark.cuda
def test_on_gpu():
    import torch
    assert torch.cuda.is_available()
'''


def run_pytest(tmp_path: Path, **modules: str) -> subprocess.CompletedProcess:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    for helper in ("demo_fixture.py", "workflow_helpers.py"):  # modules the conftest imports (shared fixtures)
        shutil.copy(CONFTEST.parent / helper, tmp_path / helper)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -ra\nmarkers =\n    cuda: needs CUDA\n")
    for name, text in modules.items():
        (tmp_path / f"test_{name}.py").write_text(text)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_allowed_skip_and_xfail_keep_the_run_green(tmp_path):
    r = run_pytest(tmp_path, allowed=ALLOWED)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SKIPPED [1]" in r.stdout and "needs a CUDA device" in r.stdout  # -ra prints the reason
    assert "XFAIL" in r.stdout and "not on the allow-list" not in r.stdout


def test_disallowed_skips_fail_the_run_and_are_listed(tmp_path):
    r = run_pytest(tmp_path, allowed=ALLOWED, disallowed=DISALLOWED, module=MODULE_SKIP)
    assert r.returncode == 1, r.stdout + r.stderr
    section = r.stdout[r.stdout.index("skips not on the allow-list"):r.stdout.index("short test summary info")]
    assert "test_disallowed.py::test_skipped_by_marker: fixture photos not available" in section
    assert "test_disallowed.py::test_skipped_in_body: no WordNet here" in section
    assert "test_module.py: the whole module needs root" in section
    assert "3 skipped for a reason not in ALLOWED_SKIP_REASONS" in section
    assert "test_allowed.py" not in section  # the allowed skip is not listed


def test_cuda_marker_skips_with_the_allowed_reason_or_runs(tmp_path):
    import torch

    r = run_pytest(tmp_path, cuda=CUDA_MARKED)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = "1 passed" if torch.cuda.is_available() else "1 skipped"
    assert expected in r.stdout


def test_failing_run_keeps_its_failure_status(tmp_path):
    failing = "def test_fails():\n    assert False\n"
    r = run_pytest(tmp_path, failing=failing, disallowed=DISALLOWED)
    assert r.returncode == pytest.ExitCode.TESTS_FAILED and "1 failed" in r.stdout
