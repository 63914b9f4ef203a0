"""What a workflow run prints on the console: quiet by default, detail in the logs, a short summary at the end.

``console: quiet`` (the default) keeps the console to progress and warnings; ``console: verbose`` (or
``snakemake --verbose``, or ``make demo V=1``) brings back everything, as Snakemake and the rule scripts print it.

* Rule scripts: :func:`_helpers.configure_logging` sends INFO lines to the rule's log file only and puts WARNING and
  above on the console too (the mode reaches the scripts in the environment variable :data:`ENV`).
* Snakemake's own lines: :func:`install` adds :class:`QuietConsole` to Snakemake's console handler. Each job becomes
  one line when it starts and one when it ends; the host banner, per-job input/output/resources blocks and
  scheduler chatter ("Select jobs to execute...") go to the run's log under ``.snakemake/log`` only. Dry runs are
  left as they are (their job list is the point of a dry run), and so are warnings and errors, and so is the
  job-side Snakemake of a cluster job (its output is that job's log).
* The end: the Snakefile's ``onsuccess`` prints :func:`summary_lines`: where the evaluation, dataset card, overview
  and report are, and the headline numbers.

Snakemake has no public API to change what its console handler shows from inside a workflow, so :func:`install`
finds the handler by the name Snakemake 9 gives it; if it is not there, nothing changes (the console stays verbose).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Callable, Iterable

ENV = "ENTITYNET_CONSOLE"
MODES = ("quiet", "verbose")
SNAKEMAKE_LOGGER = "snakemake.logging"
STREAM_HANDLER = "DefaultStreamHandler"

# Plain Snakemake INFO lines that say nothing a user acts on; they stay in .snakemake/log.
NOISE = re.compile(
    r"^\s*(Select jobs to execute\.\.\.|Execute \d+ jobs\.\.\.|Assuming unrestricted shared filesystem usage\."
    r"|Using shell: |Provided cores: |Provided resources: |Rules claiming more threads will be scaled down\."
    r"|Conda environments: ignored|Singularity containers: ignored|Building DAG of jobs\.\.\.|Complete log\(s\): "
    r"|Elapsed time: |\s*$)"
)
FINISHED = re.compile(r"\(Rule: (?P<rule>[^)]+)\)")


def console_mode(config: dict, verbose_flag: bool = False) -> str:
    """``verbose`` if Snakemake runs with ``--verbose`` or ``config['console'] == 'verbose'``, else ``quiet``
    (``config``: validated, so ``console`` is set)."""
    mode = str(config["console"])
    if mode not in MODES:
        raise ValueError(f"console: {mode!r} is not one of {list(MODES)}")
    return "verbose" if verbose_flag else mode


def _event(record: logging.LogRecord) -> str | None:
    event = getattr(record, "event", None)
    return getattr(event, "value", event)


def _wildcards(wc) -> str:
    try:
        items = dict(wc).items()
    except (TypeError, ValueError):
        return ""
    return ", ".join(f"{k}={v}" for k, v in items)


class QuietConsole(logging.Filter):
    """A filter for Snakemake's console handler: warnings, errors, progress and one line per job start; the rest
    (banner, job detail blocks, scheduler chatter) is dropped from the console (Snakemake's log file keeps it).

    ``is_dryrun`` is asked per record: a dry run is known only once the run starts, after the Snakefile is read.
    The one-line form goes into an extra record attribute that only :class:`CompactFormatter` reads, so Snakemake's
    log file handler, which sees the same record, still writes the full block.
    """

    def __init__(self, is_dryrun: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.time):
        super().__init__()
        self.is_dryrun = is_dryrun
        self.clock = clock
        self.finished: str | None = None

    def stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.clock()))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if self.is_dryrun():
                return True
        except Exception:  # noqa: BLE001 - a filter must never break logging
            return True
        event = _event(record)
        if record.levelno >= logging.WARNING or event in ("job_error", "group_error", "error"):
            return True
        if event == "job_info":
            wc = _wildcards(record.__dict__.get("wildcards"))
            record.entitynet_line = f"[{self.stamp()}] start {record.__dict__.get('rule_name', '?')}" + (
                f" ({wc})" if wc else "")
            return True
        if event == "job_finished":
            m = FINISHED.search(str(record.getMessage()))
            self.finished = m.group("rule") if m else None
            return False
        if event == "progress":
            done, total = record.__dict__.get("done"), record.__dict__.get("total")
            what = f"done  {self.finished}: " if self.finished else "done: "
            record.entitynet_line = f"[{self.stamp()}] {what}{done} of {total} steps"
            self.finished = None
            return True
        if event in ("workflow_started", "shellcmd", "resources_info", "group_info", "job_started", "debug_dag",
                     "rulegraph"):
            return False
        if event == "run_info":
            return True  # the job stats table: what this run will do
        msg = record.getMessage() if record.msg is not None else ""
        return not NOISE.match(msg)


class CompactFormatter(logging.Formatter):
    """Wraps Snakemake's console formatter: records that :class:`QuietConsole` gave a one-line form print as that
    line; every other record prints as Snakemake formats it."""

    def __init__(self, base: logging.Formatter | None):
        super().__init__()
        self.base = base or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        line = record.__dict__.pop("entitynet_line", None)
        return line if line is not None else self.base.format(record)


def install(is_dryrun: Callable[[], bool], logger_name: str = SNAKEMAKE_LOGGER) -> bool:
    """Make Snakemake's console handler quiet (see the module doc). Returns whether a handler was found."""
    found = False
    for handler in logging.getLogger(logger_name).handlers:
        if handler.name != STREAM_HANDLER or any(isinstance(f, QuietConsole) for f in handler.filters):
            continue
        handler.addFilter(QuietConsole(is_dryrun))
        handler.setFormatter(CompactFormatter(handler.formatter))
        found = True
    return found


def setup(config: dict, workflow) -> str:
    """The Snakefile's console set-up; returns the mode. The mode goes to the rule scripts in ``$ENTITYNET_CONSOLE``
    (job processes inherit the environment); a quiet console also turns off the scripts' tqdm bars (the per-job
    lines show progress) and gets :class:`QuietConsole` on Snakemake's handler."""
    import os

    mode = console_mode(config, bool(getattr(getattr(workflow, "output_settings", None), "verbose", False)))
    os.environ[ENV] = mode
    # A job-side Snakemake (the one a Slurm job runs, exec mode not DEFAULT) writes the job's own log: keep it full.
    if mode == "quiet" and getattr(workflow, "is_main_process", True):
        os.environ.setdefault("TQDM_DISABLE", "1")
        install(lambda: workflow.dryrun)
    return mode


# --- the closing summary -------------------------------------------------------------------------------------------

def headline(eval_csv: Path, limit: int = 6) -> list[str]:
    """One line per benchmark of an ``eval.csv``: its first metric's value in % (best variant), and missing ones."""
    import pandas as pd

    ev = pd.read_csv(eval_csv)
    lines, missing = [], []
    for bench, rows in ev.groupby("benchmark", sort=False):
        ok = rows[rows["status"] == "ok"]
        if ok.empty:
            missing.append(f"{bench} ({rows['status'].iloc[0]})")
            continue
        first = ok.iloc[0]
        lines.append(f"{bench} {first['metric']} {100 * float(first['value']):.1f} %")
    ok_first = ev[ev["status"] == "ok"].groupby("benchmark", sort=False).head(1)
    out = lines[:limit]
    if len(lines) > limit:
        out.append(f"... {len(lines) - limit} more; mean over {len(ok_first)} benchmarks "
                   f"{100 * ok_first['value'].astype(float).mean():.1f} %")
    if missing:
        out.append(f"not evaluated: {', '.join(missing)}")
    return out


def card_headline(card_json: Path) -> str:
    c = json.loads(Path(card_json).read_text())
    d = c.get("download", {})
    rate = d.get("success_rate")
    kinds = ", ".join(f"{k['key']} {k['images']}" for k in c.get("query_kinds", []))
    return (f"{c.get('images', '?')} images, {c.get('n_entities', '?')} entities"
            + (f", download success {100 * rate:.1f} %" if rate is not None else "")
            + (f"; by query kind: {kinds}" if kinds else ""))


def _guarded(fn, path: Path) -> list[str]:
    """``fn(path)``, or one line saying why the file could not be summarised: the summary never fails a run."""
    try:
        return fn(path)
    except Exception as e:  # noqa: BLE001
        return [f"(not summarised: {type(e).__name__}: {e})"]


def summary_lines(eval_csvs: Iterable[str], cards: Iterable[str], overviews: Iterable[str] = (),
                  logfiles: Iterable[str] = (), report: str = "report.html") -> list[str]:
    """The run's closing summary: each evaluation with its headline numbers, each dataset card (size, download
    success), the overview pages, how to build the HTML report, and the full Snakemake log. Missing files are
    skipped (a run of other targets has none of them)."""
    lines = ["", "EntityNet run finished."]
    for path in sorted(set(eval_csvs)):
        if Path(path).exists():
            lines.append(f"  evaluation    {path}")
            lines += [f"                {h}" for h in _guarded(headline, Path(path))]
    for path in sorted(set(cards)):
        if Path(path).exists():
            lines.append(f"  dataset card  {path}")
            stats = Path(path).with_suffix(".json")
            if stats.exists():
                lines += [f"                {h}" for h in _guarded(lambda p: [card_headline(p)], stats)]
    for path in sorted(set(overviews)):
        if Path(path).exists():
            lines.append(f"  overview      {path}")
    lines.append(f"  report        make report (or: snakemake --report {report} <targets>) writes {report}")
    for path in logfiles:
        lines.append(f"  full log      {path}")
    lines.append("  (quiet console; rule logs under logs/; `--config console=verbose` prints everything)")
    return lines


def run_outputs(dag, default_targets: Iterable[str] = ()) -> tuple[list[str], list[str], list[str]]:
    """The eval.csv, card.md and overview.html files among the jobs of a run's DAG (Snakemake's ``workflow.dag``);
    those in ``default_targets`` when the DAG has none (or cannot be read)."""
    evals, cards, overviews = [], [], []
    try:
        files = [str(f) for job in dag.jobs for f in job.output]
    except Exception:  # noqa: BLE001 - the summary must not fail a finished run
        files = []
    if not any(f.endswith(("/eval.csv", "/card/card.md", "/overview.html")) for f in files):
        files = list(default_targets)
    for f in files:
        if f.endswith("/eval.csv"):
            evals.append(f)
        elif f.endswith("/card/card.md"):
            cards.append(f)
        elif f.endswith("/overview.html"):
            overviews.append(f)
    return evals, cards, overviews


def print_summary(lines: list[str]) -> None:
    """Print the summary last on the console (stderr, where Snakemake prints its progress)."""
    import sys

    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
