"""Pure functions of lib.data.chunk_download (rule download), lib.data.loopback_server and lib.data.download_outcomes:
the duplicate-URL retry, per-row final outcomes, failure reasons, the CLI."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from lib.common.workflow_config import dataset_config
from lib.data import chunk_download, download_outcomes, loopback_server

#: the download options of a dataset that sets none: the schema's defaults (what the rule passes, resolved)
DOWNLOAD = dataset_config({"datasets": {"x": {}}}, "x")["download"]


@pytest.mark.parametrize("url,urls,want", [
    ("a", ["a", "b", "c"], "b"),
    ("b", ["a", "b", "c"], "c"),
    ("c", ["a", "b", "c"], "a"),          # wraps around
    ("x", ["a", "b"], "a"),               # first URL not listed: the first other one
    ("a", ["a", "a", "b"], "b"),          # never the same URL again
    ("a", ["a"], None),
    ("a", [], None),
    ("a", None, None),
])
def test_next_duplicate_url(url, urls, want):
    assert chunk_download.next_duplicate_url(url, urls) == want


def test_retry_rows_skip_successes_opt_outs_and_rows_without_another_url():
    urls = pd.DataFrame({"uid": ["u1", "u2", "u3", "u4", "u5"],
                         "urls": [["h1", "m1"], ["h2", "m2"], ["h3"], ["h4", "m4"], ["h5", "m5"]],
                         "alt_texts": [["one"], [], ["three"], ["four"], None]})
    status = pd.DataFrame({"uid": ["u1", "u2", "u3", "u4", "u5"], "url": ["h1", "h2", "h3", "h4", "h5"],
                           "status": ["failed_to_download", "failed_to_resize", "failed_to_download",
                                      "failed_to_download", "success"],
                           "error_message": ["HTTP Error 404: Not Found", "Image decoding error", "timed out",
                                             "Use of image disallowed by X-Robots-Tag directive", ""]})
    got = chunk_download.retry_rows(urls, status)
    assert got.to_dict("records") == [{"url": "m1", "caption": "one", "uid": "u1"},
                                      {"url": "m2", "caption": "", "uid": "u2"}]
    assert chunk_download.retry_rows(urls.drop(columns="urls"), status).empty


@pytest.mark.parametrize("status,msg,reason", [
    ("success", None, "success"),
    ("failed_to_download", "HTTP Error 404: Not Found", "HTTP 404"),
    ("failed_to_download", "HTTP Error 503: Service Unavailable", "HTTP 503"),
    ("failed_to_download", "HTTP Error 302: The HTTP server returned a redirect error that would lead to an "
                           "infinite loop.\nThe last 30x error message was:\nFound", "redirect loop"),
    ("failed_to_download", "Use of image disallowed by X-Robots-Tag directive", "opt-out (X-Robots-Tag)"),
    ("failed_to_download", "IncompleteRead(5 bytes read, 11904 more expected)", "incomplete body"),
    ("failed_to_download", "timed out", "timeout"),
    ("failed_to_download", "<urlopen error [Errno 111] Connection refused>", "connection refused"),
    ("failed_to_resize", "Image decoding error", "not a decodable image"),
    ("failed_to_resize", "OpenCV(4.14.0) loadsave.cpp:1310: error: (-215:Assertion failed) !buf.empty() in "
                         "function 'imdecode_'", "empty body"),
    ("failed_to_resize", "image area too large", "image area too large"),
    ("failed_to_download", "something new", "failed_to_download: other"),
])
def test_failure_reason(status, msg, reason):
    assert download_outcomes.failure_reason(status, msg) == reason


def _pass(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["uid", "url", "status", "error_message"]).to_parquet(folder / "00000.parquet")


def test_row_outcomes_take_the_retry_status_and_count_each_row_once(tmp_path):
    c0, c1 = tmp_path / "chunk_00000", tmp_path / "chunk_00001"
    _pass(c0, [("u1", "h1", "success", None), ("u2", "h2", "failed_to_download", "HTTP Error 404: Not Found"),
               ("u3", "h3", "failed_to_download", "HTTP Error 404: Not Found")])
    _pass(c0 / "retry", [("u2", "m2", "success", None), ("u3", "m3", "failed_to_resize", "Image decoding error")])
    _pass(c1, [("u4", "h4", "failed_to_download", "timed out")])
    (tmp_path / "chunk_00002").mkdir()                   # an empty chunk (no URL): no parquet at all
    dirs = [c0, c1, tmp_path / "chunk_00002"]
    assert download_outcomes.download_dirs(dirs) == [str(c0), str(c0 / "retry"), str(c1), str(tmp_path / "chunk_00002")]
    out = download_outcomes.row_outcomes(dirs).set_index("uid")
    assert list(out.index) == ["u1", "u2", "u3", "u4"]
    assert out["status"].to_dict() == {"u1": "success", "u2": "success", "u3": "failed_to_resize",
                                       "u4": "failed_to_download"}
    assert out["retried"].to_dict() == {"u1": False, "u2": True, "u3": True, "u4": False}
    assert out.loc["u2", "retry_url"] == "m2" and out.loc["u2", "first_error"] == "HTTP Error 404: Not Found"
    assert out.loc["u3", "error_message"] == "Image decoding error" and out.loc["u1", "error_message"] == ""
    assert download_outcomes.row_outcomes([tmp_path / "chunk_00002"]).empty


def test_img2dataset_command_passes_opt_out_and_area_settings():
    cmd = chunk_download.img2dataset_command("in.parquet", "out",
                                             {**DOWNLOAD, "max_image_area": 1000, "user_agent_token": "tok"}, 2)
    args = dict(a[2:].split("=", 1) for a in cmd[1:])
    assert args["max_image_area"] == "1000" and args["user_agent_token"] == "tok"
    assert "disallowed_header_directives" not in args               # img2dataset's default opt-out list applies
    assert args["incremental_mode"] == "incremental" and args["save_additional_columns"] == '["uid"]'
    args = dict(a[2:].split("=", 1) for a in chunk_download.img2dataset_command(
        "in.parquet", "out", {**DOWNLOAD, "disallowed_header_directives": []}, 1)[1:])
    assert json.loads(args["disallowed_header_directives"]) == [] and "max_image_area" not in args


def test_empty_chunk_writes_a_summary(tmp_path):
    urls = pd.DataFrame({"uid": ["0000000000000001"], "url": ["http://127.0.0.1:9/x.jpg"], "urls": [["x"]],
                         "alt_texts": [[]]})
    s = chunk_download.run_download(urls, 0, 2, str(tmp_path / "c"), DOWNLOAD, 1, 10)   # uid 1 is in chunk 1 of 2
    assert s["count"] == 0 and (tmp_path / "c" / "_empty").exists()
    assert json.loads((tmp_path / "c" / "_summary.json").read_text())["count"] == 0


def test_run_with_timeout_kills_the_whole_process_group(tmp_path):
    import os
    import time

    pidfile, finished = tmp_path / "grandchild.pid", tmp_path / "grandchild.finished"
    # the grandchild holds the output pipe open for 60 s; a run_with_timeout that waited for it (or for EOF on the
    # pipe) would return only after it wrote `finished`, so the file's absence shows the kill, without a clock
    script = f"(sleep 60; touch {finished}) & echo $! > {pidfile}; echo started; wait"
    rc, out = chunk_download.run_with_timeout(["bash", "-c", script], dict(os.environ), timeout_s=3, grace_s=2)
    assert rc is None and "started" in out and not finished.exists()
    pid = int(pidfile.read_text())
    for _ in range(300):                                  # the orphaned sleep is gone too (reaped by init)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"grandchild {pid} survived the timeout")
    assert chunk_download.run_with_timeout(["bash", "-c", "exit 3"], dict(os.environ), 5) == (3, "")


def test_read_chunk_urls_reads_only_the_chunk(tmp_path):
    uids = [f"{i:016x}" for i in range(50)]
    urls = pd.DataFrame({"uid": uids, "url": [f"http://h/{u}" for u in uids], "urls": [[f"http://h/{u}"] for u in uids],
                         "alt_texts": [[] for _ in uids], "page_urls": [[] for _ in uids]})
    urls.to_parquet(tmp_path / "urls.parquet", row_group_size=7)
    parts = [chunk_download.read_chunk_urls(tmp_path / "urls.parquet", c, 3) for c in range(3)]
    assert sorted(u for p in parts for u in p["uid"]) == uids
    for c, p in enumerate(parts):
        assert list(p.columns) == ["uid", "url", "urls", "alt_texts"]
        assert set(p["uid"]) == set(chunk_download.chunk_rows(urls, c, 3)["uid"])
    assert chunk_download.read_chunk_urls(tmp_path / "urls.parquet", 77, 100).empty   # uids 0..49 only


def _fetch(url: str, env: dict) -> tuple[int, bytes]:
    """GET ``url`` with urllib (as img2dataset does) in a fresh process whose environment is ``env``."""
    code = ("import sys, urllib.request, urllib.error\n"
            "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n    print(e.code)\n")
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    r = subprocess.run([sys.executable, "-c", code, url], env={**base, **env}, capture_output=True, text=True,
                       timeout=60)
    lines = r.stdout.splitlines()
    assert lines, r.stderr
    return int(lines[0]), "\n".join(lines[1:]).encode()


def test_two_unpinned_servers_share_one_url_origin(tmp_path):
    """Two demo downloads at once: neither binds the pool's port; each serves the pool's URLs through its proxy."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.txt").write_text(f"from {name}")
    bind = "127.0.0.1:18765"
    with loopback_server.serve_directory(str(tmp_path / "a"), bind, pin_port=False) as env_a, \
            loopback_server.serve_directory(str(tmp_path / "b"), bind, pin_port=False) as env_b:
        assert env_a["http_proxy"] != env_b["http_proxy"] and bind not in env_a["http_proxy"]
        assert _fetch(f"http://{bind}/x.txt", env_a) == (200, b"from a")
        assert _fetch(f"http://{bind}/x.txt", env_b) == (200, b"from b")
        assert _fetch("http://127.0.0.1:9/x.txt", env_a)[0] == 403  # another origin is not served


def test_pinned_port_collision_names_the_way_out(tmp_path):
    with loopback_server.serve_directory(str(tmp_path), "127.0.0.1:0", pin_port=False) as env:
        port = env["http_proxy"].rsplit(":", 1)[1]
        with pytest.raises(RuntimeError, match="pin_port false"):
            with loopback_server.serve_directory(str(tmp_path), f"127.0.0.1:{port}", pin_port=True):
                pass
