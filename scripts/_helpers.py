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


def configure_logging(snakemake=None, level: int = logging.INFO) -> logging.Logger:
    """Send logging (and uncaught exceptions) to the rule's ``log`` file if there is one, else to stderr."""
    handlers: list[logging.Handler] = []
    logfile = None
    if snakemake is not None and len(snakemake.log) > 0:
        logfile = str(snakemake.log[0])
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    handlers.append(logging.StreamHandler(sys.stderr))
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
    then fails and Snakemake deletes its good outputs. It is rare and load-dependent: one rule job in roughly a few
    thousand, seen once on CI in the download rule. Here the ``atexit`` handlers still run (logging is flushed and
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (never a half file).

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
    with atomic_path(path) as tmp:
        tmp.write_text(text)
