"""Small helpers shared by the workflow scripts: logging to the rule's log file, atomic writes, config access."""

import atexit
import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd


def console_is_quiet(snakemake=None) -> bool:
    """Whether the console is quiet (not ``verbose``): the mode the Snakefile resolved (from the config key and
    ``snakemake --verbose``) in ``$ENTITYNET_CONSOLE``, else the job's config key (none, as in a test: quiet)."""
    mode = os.environ.get("ENTITYNET_CONSOLE") or (getattr(snakemake, "config", None) or {}).get("console")
    return mode != "verbose"


def configure_logging(snakemake=None, level: int = logging.INFO) -> logging.Logger:
    """Send logging (and uncaught exceptions) to the rule's ``log`` file if there is one, else to stderr.

    With a log file and a quiet console (:func:`console_is_quiet`), stderr gets WARNING and above only: the INFO
    detail (per page, per chunk, child process output) is in the log file; a verbose console gets it all."""
    handlers: list[logging.Handler] = []
    logfile = None
    if snakemake is not None and len(snakemake.log) > 0:
        logfile = str(snakemake.log[0])
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    console = logging.StreamHandler(sys.stderr)
    if logfile is not None and console_is_quiet(snakemake):
        console.setLevel(logging.WARNING)
        logging.captureWarnings(True)  # Python warnings (sklearn, torch) into the log, and on the console as WARNING
    handlers.append(console)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    logger = logging.getLogger("entitynet")

    def excepthook(exc_type, exc, tb):
        logger.error("Uncaught exception", exc_info=(exc_type, exc, tb))

    sys.excepthook = excepthook
    return logger


def exit_now(code: int = 0):
    """End this process with ``code`` once Python's exit handlers have run, skipping native library teardown.

    pyarrow's C++ thread pools can abort the interpreter while it shuts down, after every output is written:
    ``terminate called without an active exception``, SIGABRT (apache/arrow#34314, #39162, open upstream). The job
    then fails and Snakemake deletes its good outputs. It is rare: seen once on CI (download rule), not reproduced
    here in 210 runs of the same parquet read. Here the ``atexit`` handlers still run (logging is flushed and
    closed, temporary directories and multiprocessing helpers are cleaned up), stdout/stderr are flushed, and then
    ``os._exit`` ends the process before the C++ static destructors that abort.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(int(code or 0))


def run_then_exit(main, *args) -> None:
    """A script's entry block: ``main(*args)``, then :func:`exit_now` (0, or the int that ``main`` returned).

    An exception from ``main`` propagates as usual (traceback, exit 1): the job has failed anyway.
    """
    exit_now(main(*args))


def rules_of_script(workflow, script: str) -> list[str]:
    """Names of the workflow's rules whose ``script:`` is ``script`` (a file name such as ``kg_entities.py``)."""
    return sorted(r.name for r in workflow.rules if r.script and Path(str(r.script)).name == Path(script).name)


@contextlib.contextmanager
def loaded_workflow(configfiles: tuple[str, ...] = ()):
    """This repository's Snakemake workflow, parsed (config, rules) in the current directory, without running a job.
    Snakemake has no public API for one rule's or job's objects, so this yields its internal ``Workflow``, as
    PyPSA-Eur's ``mock_snakemake`` does."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                                    config_settings=ConfigSettings(configfiles=[Path(f) for f in configfiles]),
                                    snakefile=Path(__file__).resolve().parents[1] / "Snakefile")
        workflow_api.dag(DAGSettings())
        yield workflow_api._workflow


def mock_snakemake(rule: str | None = None, script: str | None = None, configfiles: tuple[str, ...] = (),
                   directory: str | os.PathLike | None = None, **wildcards: str):
    """The ``snakemake`` object a rule job would get, built from the workflow itself, to run or debug a rule script
    outside Snakemake (the PyPSA-Eur ``mock_snakemake`` pattern, for Snakemake 9's API).

    ``rule`` defaults to the one rule whose ``script:`` is ``script``. Paths stay relative to ``directory`` (default:
    the current directory), which becomes the working directory, as under Snakemake; the output and log folders are
    created. Inputs are not made: run the upstream jobs first (``snakemake <input>``).
    """
    import snakemake.jobs
    from snakemake.exceptions import WorkflowError
    from snakemake.script import Snakemake

    if directory is not None:
        os.chdir(directory)
    with loaded_workflow(configfiles) as workflow:
        if rule is None:
            candidates = rules_of_script(workflow, script or "")
            if len(candidates) != 1:
                raise WorkflowError(f"{script}: give --rule, one of {candidates}" if candidates
                                    else f"no rule of the workflow runs {script}")
            rule = candidates[0]
        rule_obj = workflow.get_rule(rule)
        expected = sorted(rule_obj.wildcard_names)
        if sorted(wildcards) != expected:
            raise WorkflowError(f"rule {rule} takes the wildcards {expected}; got {sorted(wildcards)} "
                                f"(pass each as --NAME VALUE)")
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
        job = snakemake.jobs.Job(rule_obj, workflow.dag, wildcards_dict=dict(wildcards))
        for path in list(job.output) + list(job.log):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return Snakemake(job.input, job.output, job.params, job.wildcards, job.threads, job.resources, job.log,
                         workflow.config, rule_obj.name, None)


def mock_snakemake_from_argv(script: str, argv: list[str]):
    """:func:`mock_snakemake` from a command line: ``[--rule R] [--configfile F ...] [--directory D] --WILDCARD V ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python scripts/{Path(script).name}",
                                     description="Run this rule script outside Snakemake for one job (debugging).")
    parser.add_argument("--rule")
    parser.add_argument("--configfile", action="append", default=[])
    parser.add_argument("--directory")
    known, rest = parser.parse_known_args(argv)
    if len(rest) % 2 or not all(a.startswith("--") for a in rest[::2]):
        parser.error(f"wildcards go as --NAME VALUE pairs; got {rest}")
    wildcards = {k[2:]: v for k, v in zip(rest[::2], rest[1::2])}
    return mock_snakemake(known.rule, script, tuple(known.configfile), known.directory, **wildcards)


def rule_entry(main, namespace: dict) -> None:
    """A rule script's entry block. Under Snakemake: ``main(snakemake)``. Run by hand, e.g.
    ``python scripts/kg_entities.py --dataset demo``: the same job's ``snakemake`` object rebuilt by
    :func:`mock_snakemake`, so the script can be run or debugged on its own. Ends through :func:`run_then_exit`."""
    smk = namespace.get("snakemake")
    if smk is None:
        smk = mock_snakemake_from_argv(namespace["__file__"], sys.argv[1:])
    run_then_exit(main, smk)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, fsync: bool = False):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (never a half file).

    This is the one write-to-temp-then-replace of the workflow (rule outputs, the HTTP cache, synthetic shards).
    ``fsync=True`` flushes the finished file to disk before the rename, for files that must survive a power cut
    once they exist (cache entries that stand for a paid request).

    The finished file gets the mode a plain ``open()`` would give it (``0o666`` less the umask), not ``mkstemp``'s
    0600: results and shards are shared data on a cluster.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):
            os.chmod(tmp, 0o666 & ~_UMASK)
            if fsync:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _current_umask() -> int:
    mask = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` as UTF-8 with Unix line ends, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
