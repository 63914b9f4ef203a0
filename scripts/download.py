"""Download one URL chunk with img2dataset (unforked, run as its own CLI process under a wall-clock timeout).

- The chunk is ``uid`` hash modulo ``n_chunks`` of ``urls.parquet`` (already shuffled), written as img2dataset's
  parquet input with ``url``, ``caption`` (the first alt text) and ``uid`` (kept in each sample's ``.json``).
- Paper storage by default: ``image_size=512, resize_mode=keep_ratio, resize_only_if_bigger=True``, JPEG q95.
- ``X-Robots-Tag`` opt-outs (noai, noimageai, noindex, noimageindex) are respected: img2dataset's default.
- img2dataset can hang at the end (upstream issues #74, #164, #289, #343, #402, #445): the process runs under a
  timeout; a shard counts as done only when its ``_stats.json`` exists; a rerun resumes in ``incremental`` mode.
- ``serve_local``: for the offline demo and tests, a loopback HTTP server serving a directory is started for the
  duration of the job (the URLs in the pool point at it) and stopped afterwards.
"""

import contextlib
import functools
import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd

from _helpers import configure_logging

log = logging.getLogger("entitynet.download")


def chunk_rows(urls: pd.DataFrame, chunk: int, n_chunks: int) -> pd.DataFrame:
    mine = urls[urls["uid"].map(lambda u: int(u, 16) % n_chunks) == chunk]
    first_alt = mine["alt_texts"].map(lambda v: v[0] if v is not None and len(v) else "")
    return pd.DataFrame({"url": mine["url"].values, "caption": first_alt.values, "uid": mine["uid"].values})


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):  # noqa: D401 - keep the rule log readable
        log.debug("local server: " + fmt, *args)


@contextlib.contextmanager
def serve_directory(directory: str, bind: str):
    """Serve ``directory`` over HTTP on ``bind`` (``127.0.0.1:PORT``) in a background thread."""
    host, port = bind.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"serve_local.bind {bind!r}: only loopback addresses are allowed")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, int(port)), handler)
    except OSError as e:
        raise RuntimeError(f"cannot serve {directory} on {bind}: {e} (is another demo download running?)") from e
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log.info("serving %s on http://%s", directory, bind)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def img2dataset_command(url_list: str, output_dir: str, opts: dict, processes: int) -> list[str]:
    exe = Path(sys.executable).parent / "img2dataset"
    args = {
        "url_list": url_list, "output_folder": output_dir, "input_format": "parquet", "url_col": "url",
        "caption_col": "caption", "save_additional_columns": '["uid"]', "output_format": "webdataset",
        "processes_count": processes, "thread_count": int(opts.get("thread_count", 64)),
        "image_size": int(opts.get("image_size", 512)), "resize_mode": opts.get("resize_mode", "keep_ratio"),
        "resize_only_if_bigger": bool(opts.get("resize_only_if_bigger", True)), "encode_format": "jpg",
        "encode_quality": int(opts.get("encode_quality", 95)),
        "number_sample_per_shard": int(opts.get("samples_per_shard", 10000)),
        "timeout": int(opts.get("request_timeout_s", 10)), "retries": int(opts.get("retries", 1)),
        "incremental_mode": "incremental", "enable_wandb": False, "distributor": "multiprocessing",
    }
    if opts.get("user_agent_token"):
        args["user_agent_token"] = opts["user_agent_token"]
    if opts.get("disallowed_header_directives") is not None:
        args["disallowed_header_directives"] = json.dumps(list(opts["disallowed_header_directives"]))
    return [str(exe)] + [f"--{k}={v}" for k, v in args.items()]


def run_download(urls: pd.DataFrame, chunk: int, n_chunks: int, output_dir: str, opts: dict, processes: int,
                 timeout_s: float) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = chunk_rows(urls, chunk, n_chunks)
    input_path = out / "_input.parquet"
    rows.to_parquet(input_path, index=False)
    log.info("chunk %d/%d: %d URLs", chunk, n_chunks, len(rows))
    if rows.empty:
        (out / "_empty").write_text("no URL in this chunk\n")
        return {"count": 0}
    cmd = img2dataset_command(str(input_path), str(out), opts, processes)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    serve = opts.get("serve_local")
    ctx = serve_directory(serve["directory"], serve["bind"]) if serve else contextlib.nullcontext()
    with ctx:
        log.info("running: %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, env=env, timeout=timeout_s, capture_output=True, text=True)
            log.info("img2dataset output:\n%s", (proc.stdout + proc.stderr)[-5000:])
            if proc.returncode != 0:
                raise RuntimeError(f"img2dataset exited with {proc.returncode}; see the log")
        except subprocess.TimeoutExpired:
            log.warning("img2dataset did not exit within %.0f s (known upstream hang); checking shard stats", timeout_s)
    return summarise(out, expected=len(rows))


def summarise(out: Path, expected: int) -> dict:
    """Check every shard finished (``_stats.json``) and its tar lists cleanly; return the chunk's counts."""
    import tarfile

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


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    urls = pd.read_parquet(snakemake.input.urls)
    summary = run_download(urls, int(snakemake.wildcards.chunk), int(p.n_chunks), snakemake.output.chunk_dir,
                           dict(p.options), int(snakemake.threads), float(p.timeout_s))
    log.info("chunk summary: %s", summary)


if __name__ == "__main__" and "snakemake" in globals():
    main(snakemake)  # noqa: F821
