"""scripts/_helpers.py: atomic writes, the exit path, running a rule script by hand."""

import os
import stat
import subprocess
import sys

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


def rule_scripts() -> dict[str, list[str]]:
    """{script file name: [rule names]} for every rule of the workflow with a ``script:``."""
    from workflow_helpers import in_loaded_workflow

    return in_loaded_workflow(" names = {Path(str(r.script)).name for r in w.rules if r.script}\n"
                              " print(json.dumps({n: _helpers.rules_of_script(w, n) for n in sorted(names)}))")


def test_every_rule_script_ends_through_rule_entry():
    """A rule script whose entry block skips ``rule_entry`` cannot be run by hand, and can abort at exit after
    writing its outputs (no ``run_then_exit``); every script a rule names must have it."""
    from conftest import REPO

    scripts = rule_scripts()
    assert "kg_entities.py" in scripts and "plot_fig1.py" in scripts
    for name in scripts:
        text = (REPO / "scripts" / name).read_text()
        entry = text[text.rindex('if __name__ == "__main__":'):]
        assert "rule_entry(main, globals())" in entry, f"{name}: entry block skips rule_entry"


def test_a_rule_script_runs_by_hand_for_one_job(tmp_path):
    """``python scripts/build_demo_evalset.py`` outside Snakemake rebuilds the job's snakemake object from the workflow
    (rule found from the script's name, outputs and log where the rule puts them). Fails if the entry block needs
    Snakemake's global, if the rule lookup or the paths are wrong, or if wrong wildcards are accepted silently."""
    from conftest import REPO
    from workflow_helpers import make_workdir

    wd = make_workdir(tmp_path / "wd")
    run = [sys.executable, str(REPO / "scripts/build_demo_evalset.py"), "--directory", str(wd)]
    r = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    root = wd / "resources/eval/demo_heldout"
    assert (root / "test/0.tar").exists() and (root / "classnames.txt").read_text().strip()
    assert (wd / "logs/evalsets/demo_heldout.log").exists()

    bad = subprocess.run(run + ["--dataset", "demo"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "takes the wildcards []" in bad.stderr, bad.stderr[-2000:]


def test_atomic_path_fsync_writes_the_file_and_keeps_the_mode(tmp_path):
    target = tmp_path / "sub" / "entry.json.gz"
    with _helpers.atomic_path(target, suffix=".tmp", fsync=True) as tmp:
        tmp.write_bytes(b"payload")
    assert target.read_bytes() == b"payload"
    assert list(target.parent.iterdir()) == [target]


#: Scripts that serve a family of rules (one entry function per rule, chosen by the rule's name); every other rule
#: script is named after its rule (issue: `search` ran run_search.py, `text_candidates` text_mix.py).
SHARED_SCRIPTS = {"import_released.py": {"import_released_entities", "import_released_metadata"},
                  "report_html.py": {"ablation_html", "card_html", "dataset_overview", "eval_table_html"}}


def test_each_rule_script_carries_its_rules_name():
    scripts = rule_scripts()
    for script, rules in scripts.items():
        if script in SHARED_SCRIPTS:
            assert set(rules) == SHARED_SCRIPTS[script], (script, rules)
        else:
            assert script.removesuffix(".py") in rules, f"{script} runs rule(s) {rules}: name it after its rule"


def test_report_html_dispatches_each_of_its_rules_explicitly():
    """report_html.py picks the page function by rule name from PAGES: exactly the rules that run it (the test
    above checks SHARED_SCRIPTS against the workflow)."""
    import report_html

    assert set(report_html.PAGES) == SHARED_SCRIPTS["report_html.py"]
