"""img2dataset bare vs through our ``run_download`` (``lib.data.chunk_download``, rule download) on the same loopback
server and URL list.

Both sides run the same img2dataset CLI command (``chunk_download.img2dataset_command``: same options, same processes
and threads) on the same URL list, served by the same HTTP server on 127.0.0.1 (tests/faulty_image_server.py, in its
own process so it does not share the driver's GIL). "Ours" adds what the rule adds around img2dataset: chunk selection,
the input parquet, reading the per-shard parquet for failed rows (the retry pass finds none: every first URL is
good), the shard/tar check, the per-row outcome table and ``_summary.json``. Runs alternate (bare, ours, bare, ours,
...) so that load from other jobs on the machine hits both sides alike; the best run of each side is compared
(contention only ever slows a run down). The ratio is ours/bare in images per second (goal >= 0.95). Because both
sides run the same img2dataset command, the time "ours" spends outside the img2dataset process (measured by
wrapping ``chunk_download.run_with_timeout``) is our whole overhead; ``ratio_bound_from_overhead`` = bare / (bare +
that overhead) is the ratio free of run-to-run noise.

A last run measures the retry pass: ``--fail-share`` of the rows get a 404 first URL and a good duplicate URL, so
``run_download`` runs a second img2dataset pass over them (reported, no goal).

    .venv/bin/python perf/bench_download.py [--n 2000] [--repeats 2] [--processes 2] [--threads 32]
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from lib.common.workflow_config import dataset_config  # noqa: E402
from lib.data import chunk_download  # noqa: E402
from faulty_image_server import FaultyImageServer  # noqa: E402


def _serve(port_q, stop, size, distinct):
    srv = FaultyImageServer(good_size=size, distinct=distinct).start(0)
    srv.warm()                                 # encode the images once, before any timing
    port_q.put(srv.port)
    stop.wait()
    srv.stop()


def url_table(base: str, n: int, fail_share: float = 0.0) -> pd.DataFrame:
    """``n`` urls.parquet rows (``uid, url, urls, alt_texts``); the first ``fail_share`` of them 404 at their first
    URL and have a good duplicate."""
    rows = []
    n_fail = int(round(n * fail_share))
    for i in range(n):
        uid = f"{i:016x}"
        good = f"{base}/good/{uid}.jpg"
        urls = [f"{base}/missing/{uid}.jpg", good] if i < n_fail else [good]
        rows.append({"uid": uid, "url": urls[0], "urls": urls, "alt_texts": [f"image {i}"]})
    return pd.DataFrame(rows)


def run_bare(rows: pd.DataFrame, out: Path, opts: dict, processes: int) -> float:
    out.mkdir(parents=True)
    inp = out.parent / f"{out.name}_input.parquet"
    chunk_download.chunk_rows(rows, 0, 1).to_parquet(inp, index=False)     # the same input rows, prepared untimed
    cmd = chunk_download.img2dataset_command(str(inp), str(out), opts, processes)
    t0 = time.perf_counter()
    # its own session, as run_download starts it (and as a terminal would): with the kernel's autogroup scheduling
    # a new session is a new CPU-share group, which on a loaded machine alone changes the rate by ~25 %
    r = subprocess.run(cmd, env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"), capture_output=True, text=True,
                       start_new_session=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    assert sum(s["successes"] for s in stats) == len(rows), "bare run: not every image downloaded"
    return dt


_I2D_S: list[float] = []          # wall time of each img2dataset process started by run_download
_run_with_timeout = chunk_download.run_with_timeout


def _timed_run_with_timeout(*a, **kw):
    t0 = time.perf_counter()
    try:
        return _run_with_timeout(*a, **kw)
    finally:
        _I2D_S.append(time.perf_counter() - t0)


chunk_download.run_with_timeout = _timed_run_with_timeout


def run_ours(rows: pd.DataFrame, out: Path, opts: dict, processes: int) -> tuple[float, dict, float]:
    """``(wall s, summary, s spent outside img2dataset)``: the last is our own overhead, free of img2dataset's
    start-up and download noise."""
    _I2D_S.clear()
    t0 = time.perf_counter()
    summary = chunk_download.run_download(rows, 0, 1, str(out), opts, processes, timeout_s=600)
    dt = time.perf_counter() - t0
    return dt, summary, dt - sum(_I2D_S)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--size", default="1024x768", help="WxH of the served JPEGs (downscaled to 512 by the run)")
    ap.add_argument("--distinct", type=int, default=64, help="distinct images served (names hash onto them)")
    ap.add_argument("--fail-share", type=float, default=0.05)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.lower().split("x"))
    ctx = mp.get_context("spawn")
    port_q, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(port_q, stop, size, args.distinct), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port_q.get(timeout=120)}"
    # the schema's download defaults (512 px short side, keep_ratio, q95, 10 s timeout, 10k per shard), no retries
    opts = {**dataset_config({"datasets": {"x": {}}}, "x")["download"], "thread_count": args.threads, "retries": 0}
    rows = url_table(base, args.n)
    res = {"bare": [], "ours": []}
    overhead = []
    print(f"{args.n} URLs of {args.size} JPEGs on {base}; {args.processes} processes x {args.threads} threads; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench_download_") as tmp:
            for r in range(args.repeats):
                dt = run_bare(rows, Path(tmp) / f"bare{r}", opts, args.processes)
                res["bare"].append(dt)
                print(f"  bare run {r}: {dt:6.1f} s  {args.n / dt:7.1f} img/s  (load {os.getloadavg()[0]:.2f})",
                      flush=True)
                dt, summary, over = run_ours(rows, Path(tmp) / f"ours{r}", opts, args.processes)
                assert summary["successes"] == args.n and summary["retry"] is None, summary
                res["ours"].append(dt)
                overhead.append(over)
                print(f"  ours run {r}: {dt:6.1f} s  {args.n / dt:7.1f} img/s  (load {os.getloadavg()[0]:.2f}; "
                      f"{over:.2f} s outside img2dataset)", flush=True)
            frows = url_table(base, args.n, args.fail_share)
            dt_f, summary_f, over_f = run_ours(frows, Path(tmp) / "ours_retry", opts, args.processes)
    finally:
        stop.set()
        server.join(timeout=10)
    best = {k: min(v) for k, v in res.items()}
    ratio = best["bare"] / best["ours"]           # (n / ours) / (n / bare)
    n_fail = int(round(args.n * args.fail_share))
    report = {
        "n_urls": args.n, "size": args.size, "processes": args.processes, "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} after",
        "bare_s": res["bare"], "ours_s": res["ours"],
        "bare_img_per_s": args.n / best["bare"], "ours_img_per_s": args.n / best["ours"], "ratio": ratio,
        "ours_outside_img2dataset_s": overhead,
        "ratio_bound_from_overhead": best["bare"] / (best["bare"] + max(overhead)),
        "retry_run": {"failed_first_urls": n_fail, "seconds": dt_f, "successes": summary_f["successes"],
                      "recovered_by_retry": summary_f["recovered_by_retry"],
                      "extra_s_vs_best_ours": dt_f - best["ours"], "outside_img2dataset_s": over_f,
                      "img2dataset_passes_s": list(_I2D_S)},
    }
    print(json.dumps(report, indent=2))
    print(f"\nbare {report['bare_img_per_s']:.1f} img/s | ours {report['ours_img_per_s']:.1f} img/s | "
          f"ratio ours/bare {ratio:.3f} (goal >= 0.95) | ours outside img2dataset: max {max(overhead):.2f} s "
          f"(ratio bound {report['ratio_bound_from_overhead']:.3f}) | retry pass over {n_fail} rows: "
          f"{_I2D_S[-1]:.1f} s")


if __name__ == "__main__":
    main()
