"""scripts/_helpers.py: atomic writes."""

import os
import stat

import pytest

import _helpers


def test_atomic_path_gives_the_umask_mode_not_mkstemps(tmp_path):
    target = tmp_path / "out" / "table.json"
    _helpers.write_json({"a": 1}, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_helpers._UMASK
    assert _helpers._UMASK == (lambda m: (os.umask(m), m)[1])(os.umask(0o022))  # read correctly at import
    assert list(target.parent.iterdir()) == [target]  # no temp file left


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _helpers.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


# A process whose interpreter teardown aborts, the way pyarrow's thread pools sometimes do after all work is done
# ("terminate called without an active exception", SIGABRT; seen once on CI in the download rule): a module-level
# object whose finaliser calls abort() when the interpreter clears modules at exit.
TEARDOWN_ABORT = """
import atexit, logging, os, sys
sys.path.insert(0, {scripts!r})
import _helpers

class AbortsAtTeardown:
    def __del__(self):
        os.abort()

keep = AbortsAtTeardown()
logging.basicConfig(filename={log!r}, level=logging.INFO)
atexit.register(lambda: open({marker!r}, "w").write("atexit ran"))

def main(code):
    logging.getLogger("entitynet").info("all outputs written")
    return code

{entry}
"""


@pytest.mark.parametrize("code", [0, 3])
def test_run_then_exit_survives_a_teardown_abort_and_keeps_exit_handlers(tmp_path, code):
    import subprocess
    import sys

    from conftest import REPO

    def run(entry):
        script = tmp_path / "job.py"
        script.write_text(TEARDOWN_ABORT.format(scripts=str(REPO / "scripts"), log=str(tmp_path / "job.log"),
                                                marker=str(tmp_path / "marker"), entry=entry))
        return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)

    plain = run(f"sys.exit(main({code}))")
    assert plain.returncode == -6, "the simulated teardown abort no longer fires: this test proves nothing"
    (tmp_path / "marker").unlink()
    (tmp_path / "job.log").unlink()

    r = run(f"_helpers.run_then_exit(main, {code})")
    assert r.returncode == code, r.stderr
    assert (tmp_path / "marker").read_text() == "atexit ran"  # exit handlers (logging, temp dirs) still run
    assert "all outputs written" in (tmp_path / "job.log").read_text()


def test_every_rule_script_ends_through_run_then_exit():
    """A rule script that ends with a plain ``main(snakemake)`` can abort at exit after writing its outputs."""
    import re

    from conftest import REPO

    for path in sorted((REPO / "scripts").glob("*.py")):
        text = path.read_text()
        entry = re.search(r'^if __name__ == "__main__".*\Z', text, re.M | re.S)
        if entry is None or "\"snakemake\" in globals()" not in entry.group(0):
            continue
        assert "run_then_exit(main, snakemake)" in entry.group(0), f"{path.name}: entry block skips run_then_exit"
