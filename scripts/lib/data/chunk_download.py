"""Download one URL chunk with img2dataset (rule ``download``), unforked: img2dataset runs as its own CLI process
under a wall-clock timeout.

- **Chunking.** The chunk is ``uid`` hash modulo ``n_chunks`` of ``urls.parquet`` (already shuffled; the job reads
  only its rows, :func:`read_chunk_urls`), written as img2dataset's parquet input with ``url``, ``caption`` (the
  first alt text) and ``uid`` (kept in each sample's ``.json`` and in img2dataset's per-shard parquet, which lists
  every input row with its ``status``).
- **Storage** (paper by default): ``image_size=512, resize_mode=keep_ratio, resize_only_if_bigger=True``, JPEG q95.
  ``max_image_area`` (optional) makes img2dataset refuse larger sources (``failed_to_resize``, "image area too
  large"); unset, any size is decoded and downscaled (img2dataset decodes with OpenCV, whose own limit is 2^30 px).
- **Retry at the next duplicate URL.** The paper tried each duplicate URL of an image in turn (docs/PAPER_NOTES.md §8).
  Here a row that failed at its first URL (``url``) is retried **once** at its next duplicate URL (the first entry of
  the ``urls`` list that differs from ``url``): after the first img2dataset pass, the failed rows that have such a URL
  are collected (:func:`retry_rows`) and downloaded by a second, small img2dataset pass into ``<chunk>/retry/`` (same
  options; its own ``_stats.json`` and parquet). Rows refused by an ``X-Robots-Tag`` opt-out are never retried elsewhere
  (the publisher said no). ``build_shards`` and ``dedup_decontaminate`` read both folders, and every input row gets
  exactly one final status, through ``lib.data.download_outcomes`` (``download_dirs``, ``row_outcomes``).
- **Opt-outs.** ``X-Robots-Tag`` directives ``noai, noimageai, noindex, noimageindex`` drop an image
  (``failed_to_download``, "Use of image disallowed by X-Robots-Tag directive"): img2dataset's default, kept unless
  ``disallowed_header_directives`` is set (the offline demo sets ``[]``; its loopback server sends none anyway).
- **Hangs and timeouts.** img2dataset can hang at the end (upstream issues #74, #164, #289, #343, #402, #445): each
  pass runs under a wall-clock timeout (the first pass gets ``timeout_s``, the retry pass what is left of it, at
  least ``min(timeout_s, 60)`` s), in its own session, so that on timeout its whole process group (img2dataset's
  spawned workers and logger included) is killed (:func:`run_with_timeout`); a shard counts as done only when its
  ``_stats.json`` exists and its tar lists cleanly; a rerun resumes in ``incremental`` mode.
  ``request_timeout_s`` is urllib's *per socket operation* timeout, not a deadline per image: a server that drips
  one byte per second holds one download thread until it closes the connection (the row then fails with
  ``IncompleteRead``); only an endless drip reaches the job timeout.
- ``serve_local``: for the offline demo and tests, a loopback HTTP server serving a directory is started for the
  duration of the job and stopped afterwards (``lib.data.loopback_server.serve_directory``).

Chunk folder layout: ``NNNNN.tar|parquet|_stats.json`` (first pass), ``_input.parquet``, ``retry/`` (second pass,
only when some row was retried, with its own ``_input.parquet``), ``_summary.json`` (counts of both passes).
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from _helpers import write_json
from lib.data.download_outcomes import OPT_OUT_MARK, RETRY_DIR, pass_status, row_outcomes
from lib.data.loopback_server import serve_directory

log = logging.getLogger("entitynet.download")


def chunk_rows(urls: pd.DataFrame, chunk: int, n_chunks: int) -> pd.DataFrame:
    """img2dataset input rows (``url, caption, uid``) of chunk ``chunk`` of ``n_chunks`` (``int(uid, 16) % n``)."""
    mine = urls[urls["uid"].map(lambda u: int(u, 16) % n_chunks) == chunk]
    first_alt = mine["alt_texts"].map(lambda v: v[0] if v is not None and len(v) else "")
    return pd.DataFrame({"url": mine["url"].values, "caption": first_alt.values, "uid": mine["uid"].values})


def img2dataset_command(url_list: str, output_dir: str, opts: dict, processes: int) -> list[str]:
    """The img2dataset CLI call (this venv's executable) for one pass; ``opts`` is the resolved
    ``datasets.<name>.download`` (``workflow_config.dataset_config``: every key with a schema default is set)."""
    exe = Path(sys.executable).parent / "img2dataset"
    args = {
        "url_list": url_list, "output_folder": output_dir, "input_format": "parquet", "url_col": "url",
        "caption_col": "caption", "save_additional_columns": '["uid"]', "output_format": "webdataset",
        "processes_count": processes, "thread_count": int(opts["thread_count"]),
        "image_size": int(opts["image_size"]), "resize_mode": opts["resize_mode"],
        "resize_only_if_bigger": bool(opts["resize_only_if_bigger"]), "encode_format": "jpg",
        "encode_quality": int(opts["encode_quality"]), "number_sample_per_shard": int(opts["samples_per_shard"]),
        "timeout": int(opts["request_timeout_s"]), "retries": int(opts["retries"]),
        "incremental_mode": "incremental", "enable_wandb": False, "distributor": "multiprocessing",
    }
    if opts.get("max_image_area") is not None:
        args["max_image_area"] = int(opts["max_image_area"])
    if opts.get("user_agent_token"):
        args["user_agent_token"] = opts["user_agent_token"]
    if opts.get("disallowed_header_directives") is not None:
        args["disallowed_header_directives"] = json.dumps(list(opts["disallowed_header_directives"]))
    return [str(exe)] + [f"--{k}={v}" for k, v in args.items()]


def run_img2dataset(rows: pd.DataFrame, out: Path, opts: dict, processes: int, timeout_s: float,
                    extra_env: dict | None = None) -> dict:
    """One img2dataset pass over ``rows`` (``url, caption, uid``) into ``out``; returns :func:`summarise`'s counts.
    ``extra_env``: set in img2dataset's environment (``serve_directory``'s proxy), replacing any proxy setting.

    The input is written to ``out/_input.parquet``. A non-zero exit raises; a timeout is logged and the shards'
    ``_stats.json`` decide (:func:`summarise` raises when a row was not processed, so a rerun resumes).
    """
    out.mkdir(parents=True, exist_ok=True)
    input_path = out / "_input.parquet"
    rows.to_parquet(input_path, index=False)
    cmd = img2dataset_command(str(input_path), str(out), opts, processes)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    if extra_env:
        env = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update(extra_env)
    log.info("running: %s", " ".join(cmd))
    rc, output = run_with_timeout(cmd, env, timeout_s)
    log.info("img2dataset output:\n%s", output[-5000:])
    if rc is None:
        log.warning("img2dataset did not exit within %.0f s (known upstream hang); its process group was killed; "
                    "checking shard stats", timeout_s)
    elif rc != 0:
        raise RuntimeError(f"img2dataset exited with {rc} writing {out}; see the log")
    return summarise(out, expected=len(rows))


def run_with_timeout(cmd: list[str], env: dict, timeout_s: float, grace_s: float = 10.0) -> tuple[int | None, str]:
    """Run ``cmd`` in its own session; on timeout SIGTERM then SIGKILL its whole process group (img2dataset's
    worker and logger processes included, which a plain ``subprocess.run`` timeout would leave running).
    Returns ``(exit code or None on timeout, combined stdout+stderr)``."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=max(float(timeout_s), 1.0))
        return proc.returncode, output or ""
    except subprocess.TimeoutExpired:
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                output, _ = proc.communicate(timeout=wait)
                return None, output or ""
            except subprocess.TimeoutExpired:
                continue
        return None, ""


def next_duplicate_url(url: str, urls: Iterable[str] | None) -> str | None:
    """The URL to retry after ``url`` failed: the entry after ``url`` in the ``urls`` list (wrapping around), else
    the first entry that differs from ``url``; ``None`` when there is no other URL."""
    seq = [str(u) for u in (urls if urls is not None else []) if u is not None and str(u)]
    if url in seq:
        i = seq.index(url)
        seq = seq[i + 1:] + seq[:i]
    return next((u for u in seq if u != url), None)


def retry_rows(urls: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """Rows to retry at their next duplicate URL: failed (``status != success``), not refused by an
    ``X-Robots-Tag`` opt-out, and with another URL in ``urls``. Returns ``url, caption, uid`` (the first alt text)."""
    failed = status[(status["status"] != "success")
                    & ~status["error_message"].astype(str).str.contains(OPT_OUT_MARK, regex=False)]
    if failed.empty:
        return pd.DataFrame({"url": [], "caption": [], "uid": []}, dtype="object")
    if "urls" not in urls.columns:
        return pd.DataFrame({"url": [], "caption": [], "uid": []}, dtype="object")
    sub = urls[urls["uid"].isin(set(failed["uid"]))].drop_duplicates("uid")
    alts = sub["alt_texts"] if "alt_texts" in sub.columns else pd.Series([None] * len(sub), index=sub.index)
    info = {u: (dups, a) for u, dups, a in zip(sub["uid"], sub["urls"], alts)}
    out = []
    for uid, url in zip(failed["uid"], failed["url"]):
        if uid not in info:
            continue
        dups, a = info[uid]
        nxt = next_duplicate_url(url, dups)
        if nxt is not None:
            out.append((nxt, a[0] if a is not None and len(a) else "", uid))
    return pd.DataFrame(out, columns=["url", "caption", "uid"], dtype="object")


def run_download(urls: pd.DataFrame, chunk: int, n_chunks: int, output_dir: str, opts: dict, processes: int,
                 timeout_s: float) -> dict:
    """Download chunk ``chunk``: first pass, then (``opts.retry_duplicate_urls``) the retry pass.

    Returns ``{"count", "successes", "status_dict", "first": {...}, "retry": {...} | None}`` and writes it to
    ``<output_dir>/_summary.json``; ``count``/``successes`` are per input row (a row recovered by the retry pass is
    one success, not two rows).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = chunk_rows(urls, chunk, n_chunks)
    log.info("chunk %d/%d: %d URLs", chunk, n_chunks, len(rows))
    if rows.empty:
        (out / "_empty").write_text("no URL in this chunk\n")
        summary = {"count": 0, "successes": 0, "status_dict": {}, "first": {"count": 0}, "retry": None}
        write_json(summary, out / "_summary.json")
        return summary
    t0 = time.monotonic()
    serve = opts.get("serve_local")
    ctx = (serve_directory(serve["directory"], serve["bind"], bool(serve["pin_port"])) if serve
           else contextlib.nullcontext({}))
    with ctx as extra_env:
        first = run_img2dataset(rows, out, opts, processes, timeout_s, extra_env)
        retry = None
        if opts["retry_duplicate_urls"]:
            again = retry_rows(urls, pass_status(out))
            if len(again):
                left = max(timeout_s - (time.monotonic() - t0), min(timeout_s, 60.0))
                log.info("retrying %d failed row(s) at their next duplicate URL", len(again))
                retry = run_img2dataset(again, out / RETRY_DIR, opts, processes, left, extra_env)
            else:
                log.info("no failed row has another URL: no retry pass")
    outcomes = row_outcomes([out])
    summary = {"count": int(len(outcomes)), "successes": int((outcomes["status"] == "success").sum()),
               "status_dict": {k: int(v) for k, v in outcomes["status"].value_counts().items()},
               "recovered_by_retry": int(((outcomes["status"] == "success") & outcomes["retried"]).sum()),
               "first": first, "retry": retry}
    write_json(summary, out / "_summary.json")
    return summary


def summarise(out: Path, expected: int) -> dict:
    """Check every shard finished (``_stats.json``) and its tar lists cleanly; return the pass's counts."""
    stats = sorted(out.glob("*_stats.json"))
    tars = sorted(out.glob("*.tar"))
    if not stats:
        raise RuntimeError(f"{out}: img2dataset wrote no _stats.json; the download did not finish")
    total: dict = {"count": 0, "successes": 0, "status_dict": {}}
    for s in stats:
        d = json.loads(s.read_text())
        total["count"] += d.get("count", 0)
        total["successes"] += d.get("successes", 0)
        for k, v in d.get("status_dict", {}).items():
            total["status_dict"][k] = total["status_dict"].get(k, 0) + v
    for t in tars:
        if not (out / (t.stem + "_stats.json")).exists():
            raise RuntimeError(f"{t}: shard has no _stats.json (interrupted); rerun to resume")
        with tarfile.open(t) as tf:
            tf.getmembers()  # raises on a truncated tar
    if total["count"] < expected:
        raise RuntimeError(f"{out}: only {total['count']} of {expected} URLs were processed; rerun to resume")
    shutil.rmtree(out / "_tmp", ignore_errors=True)
    return total


def read_chunk_urls(path: str | os.PathLike, chunk: int, n_chunks: int,
                    columns: tuple[str, ...] = ("uid", "url", "urls", "alt_texts")) -> pd.DataFrame:
    """The ``urls.parquet`` rows of one chunk (only ``columns`` that exist), without loading the whole table: the
    ``uid`` column decides, then a filtered read materialises only the chunk's rows (33M URLs: ~1/n of the memory)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    uids = pq.read_table(path, columns=["uid"])["uid"].to_pylist()
    mine = [u for u in uids if int(u, 16) % n_chunks == chunk]
    cols = [c for c in columns if c in names]
    if not mine:
        return pq.read_table(path, columns=cols).slice(0, 0).to_pandas()
    return pq.read_table(path, columns=cols, filters=[("uid", "in", mine)]).to_pandas()
