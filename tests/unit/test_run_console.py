"""scripts/lib/common/run_console.py: the quiet console filter on Snakemake's log records, and the closing summary."""
import logging

import pandas as pd
import pytest
from snakemake_interface_logger_plugins.common import LogEvent

from lib.common import run_console as rc
from _helpers import configure_logging


def record(msg, event=None, level=logging.INFO, **extra):
    r = logging.LogRecord("snakemake.logging", level, __file__, 1, msg, None, None)
    if event is not None:
        r.event = event
    r.__dict__.update(extra)
    return r


def shown(flt, fmt, records):
    return [fmt.format(r) for r in records if flt.filter(r)]


def test_quiet_console_keeps_progress_warnings_errors_and_drops_detail():
    flt = rc.QuietConsole(clock=lambda: 0.0)
    fmt = rc.CompactFormatter(logging.Formatter("%(message)s"))
    out = shown(flt, fmt, [
        record("", LogEvent.WORKFLOW_STARTED),
        record("Select jobs to execute..."),
        record("Execute 1 jobs..."),
        record("", LogEvent.JOB_INFO, rule_name="train", wildcards={"dataset": "demo", "model": "tiny"}),
        record("2026 INFO entitynet.kg_dump: world/Q1 page 1: 0 triples", LogEvent.SHELLCMD),
        record("Finished jobid: 2 (Rule: train)", LogEvent.JOB_FINISHED),
        record("", LogEvent.PROGRESS, done=3, total=18),
        record("disk almost full", level=logging.WARNING),
        record("Error in rule evaluate", LogEvent.JOB_ERROR, level=logging.ERROR),
        record("Complete log(s): /x/.snakemake/log/a.log"),
        record("Elapsed time: 0:02:24"),
        record("Job stats:\njob count", LogEvent.RUN_INFO),
        record("Some other message a user should see"),
    ])
    assert out[0].endswith("start train (dataset=demo, model=tiny)")
    assert out[1].endswith("done  train: 3 of 18 steps")
    assert out[2:] == ["disk almost full", "Error in rule evaluate", "Job stats:\njob count",
                       "Some other message a user should see"]


def test_dry_run_is_left_as_it_is():
    flt = rc.QuietConsole(is_dryrun=lambda: True)
    for r in (record("Select jobs to execute..."), record("", LogEvent.JOB_INFO, rule_name="x", wildcards={}),
              record("", LogEvent.WORKFLOW_STARTED)):
        assert flt.filter(r)


def test_install_finds_snakemakes_console_handler_once():
    logger = logging.getLogger("entitynet.test_console")
    h = logging.StreamHandler()
    h.name = rc.STREAM_HANDLER
    other = logging.StreamHandler()
    logger.addHandler(h)
    logger.addHandler(other)
    try:
        assert rc.install(lambda: False, logger.name)
        assert rc.install(lambda: False, logger.name) is False  # idempotent
        assert len([f for f in h.filters if isinstance(f, rc.QuietConsole)]) == 1 and not other.filters
        assert isinstance(h.formatter, rc.CompactFormatter)
    finally:
        logger.removeHandler(h)
        logger.removeHandler(other)


def test_console_mode():
    assert rc.console_mode({"console": "quiet"}) == "quiet"
    assert rc.console_mode({"console": "verbose"}) == "verbose"
    assert rc.console_mode({"console": "quiet"}, verbose_flag=True) == "verbose"
    with pytest.raises(ValueError):
        rc.console_mode({"console": "loud"})


def test_summary_has_paths_and_headline_numbers(tmp_path):
    ev = tmp_path / "results/demo/tiny/eval.csv"
    ev.parent.mkdir(parents=True)
    pd.DataFrame([
        {"benchmark": "demo_heldout", "metric": "acc1", "value": 0.0909, "status": "ok"},
        {"benchmark": "demo_heldout", "metric": "acc5", "value": 0.36, "status": "ok"},
        {"benchmark": "imagenet1k", "metric": "acc1", "value": None, "status": "missing"},
    ]).to_csv(ev, index=False)
    card = tmp_path / "results/demo/card/card.md"
    card.parent.mkdir(parents=True)
    card.write_text("# card\n")
    card.with_suffix(".json").write_text('{"images": 19, "n_entities": 15, "download": {"success_rate": 0.95}, '
                                         '"query_kinds": [{"key": "wd-noun-living", "images": 13}]}')
    lines = rc.summary_lines([str(ev), str(ev)], [str(card)], [str(tmp_path / "absent.html")], ["/x/run.log"])
    text = "\n".join(lines)
    assert lines[1] == "EntityNet run finished."
    assert text.count(str(ev)) == 1 and "demo_heldout acc1 9.1 %" in text and "not evaluated: imagenet1k (missing)" in text
    assert "19 images, 15 entities, download success 95.0 %; by query kind: wd-noun-living 13" in text
    assert "absent.html" not in text and "full log      /x/run.log" in text
    ev.write_text("not,an,eval\n1,2,3\n")  # a malformed file is named, not a failed run
    assert "(not summarised: KeyError: 'benchmark')" in "\n".join(rc.summary_lines([str(ev)], []))


def test_run_outputs_picks_eval_card_overview():
    class Job:
        def __init__(self, *out):
            self.output = out

    class Dag:
        jobs = [Job("results/d/m/eval.csv", "results/d/m/eval"), Job("results/d/card/card.md", "results/d/card/x.png"),
                Job("results/d/overview.html")]

    assert rc.run_outputs(Dag(), ["results/demo/tiny/eval.csv"]) == (
        ["results/d/m/eval.csv"], ["results/d/card/card.md"], ["results/d/overview.html"])  # the run's, not the demo's
    assert rc.run_outputs(None, ["results/e/m/eval.csv"]) == (["results/e/m/eval.csv"], [], [])


class FakeSmk:
    def __init__(self, log, config):
        self.log = [str(log)]
        self.config = config


@pytest.mark.parametrize("mode,on_console", [("quiet", False), ("verbose", True)])
def test_rule_script_info_goes_to_log_only_when_quiet(tmp_path, capsys, monkeypatch, mode, on_console):
    monkeypatch.delenv("ENTITYNET_CONSOLE", raising=False)
    log = configure_logging(FakeSmk(tmp_path / "r.log", {"console": mode}))
    log.info("page 1: 0 triples")
    log.warning("living root Q764: no entity found")
    for h in logging.getLogger().handlers:
        h.flush()
    err = capsys.readouterr().err
    assert ("page 1: 0 triples" in err) is on_console and "no entity found" in err
    assert "page 1: 0 triples" in (tmp_path / "r.log").read_text()
    monkeypatch.setenv("ENTITYNET_CONSOLE", "verbose")  # the Snakefile's resolved mode wins over the config key
    log = configure_logging(FakeSmk(tmp_path / "r2.log", {"console": "quiet"}))
    log.info("detail")
    assert "detail" in capsys.readouterr().err
    logging.captureWarnings(False)


def test_setup_leaves_job_side_snakemake_and_verbose_alone(monkeypatch):
    installed = []
    monkeypatch.setattr(rc, "install", lambda is_dryrun: installed.append(is_dryrun) or True)
    monkeypatch.setenv(rc.ENV, "unset")  # restored after the test (setup writes the variable)
    monkeypatch.setenv("TQDM_DISABLE", "1")

    class Settings:
        verbose = False

    class Workflow:
        output_settings = Settings()
        is_main_process = True
        dryrun = False

    quiet = {"console": "quiet"}
    assert rc.setup(quiet, Workflow()) == "quiet" and len(installed) == 1 and __import__("os").environ[rc.ENV] == "quiet"
    Workflow.is_main_process = False  # the Snakemake inside a Slurm job
    assert rc.setup(quiet, Workflow()) == "quiet" and len(installed) == 1
    Workflow.is_main_process, Settings.verbose = True, True  # snakemake --verbose
    assert rc.setup(quiet, Workflow()) == "verbose" and len(installed) == 1
    assert __import__("os").environ[rc.ENV] == "verbose"
