"""img2dataset through ``lib.data.chunk_download`` (rule download) against a real HTTP server on 127.0.0.1 that serves
the faults of web crawls (tests/faulty_image_server.py), then the rule entries of dedup, build_shards and the dataset
card on the result.

Every input row must end as exactly one counted status, the job must neither crash nor hang (hard timeouts), a row
that failed at its first URL must be retried once at its next duplicate URL, an ``X-Robots-Tag: noai`` refusal must
not be retried elsewhere, and the counts must reach the dataset card.
"""
import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from snakemake.iocontainers import Namedlist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from faulty_image_server import FaultyImageServer  # noqa: E402

import build_shards  # noqa: E402
import dataset_card  # noqa: E402
import dedup_decontaminate  # noqa: E402
from lib.common.artifact_columns import CARD_PLOTS  # noqa: E402
from lib.common.workflow_config import dataset_config  # noqa: E402
from lib.data import chunk_download, download_outcomes  # noqa: E402

pytestmark = pytest.mark.integration

PIL_BOMB_LIMIT = 89_478_485          # PIL.Image.MAX_IMAGE_PIXELS
DRIP_CLOSE_S = 6
JOB_TIMEOUT_S = 300  # a hang is killed here (and fails the test); a slow machine never gets near it

# uid -> (first URL path, other duplicate URL paths, expected final status, expected reason, retried?)
CASES = {
    "a000000000000001": ("/good/a.jpg", [], "success", "success", False),
    "a000000000000002": ("/good/b.jpg", [], "success", "success", False),
    "a000000000000003": ("/good/c.jpg", [], "success", "success", False),
    "a000000000000004": ("/missing/m.jpg", [], "failed_to_download", "HTTP 404", False),
    "a000000000000005": ("/html/h.jpg", [], "failed_to_resize", "not a decodable image", False),
    "a000000000000006": ("/truncated/t.jpg", [], "failed_to_resize", "not a decodable image", False),
    "a000000000000007": ("/zero/z.jpg", [], "failed_to_resize", "empty body", False),
    "a000000000000008": ("/loop/l.jpg", [], "failed_to_download", "redirect loop", False),
    "a000000000000009": ("/huge/g.png", [], "failed_to_resize", "image area too large", False),
    "a00000000000000a": ("/drip/d.jpg", [], "failed_to_download", "incomplete body", False),
    "a00000000000000b": ("/short/s.jpg", [], "failed_to_download", "incomplete body", False),
    # opt-out: never retried at the duplicate, although the duplicate would work
    "a00000000000000c": ("/noai/n.jpg", ["/good/n-mirror.jpg"], "failed_to_download", "opt-out (X-Robots-Tag)",
                         False),
    # the paper's duplicate URLs: the first fails, the next one is tried once
    "a00000000000000d": ("/missing/dup.jpg", ["/good/dup.jpg", "/good/never-third.jpg"], "success", "success",
                         True),
    "a00000000000000e": ("/missing/dup2.jpg", ["/missing/dup2-mirror.jpg"], "failed_to_download", "HTTP 404", True),
}


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    with FaultyImageServer(drip_close_s=DRIP_CLOSE_S) as srv:
        rows = []
        for i, (uid, (first, others, *_)) in enumerate(CASES.items()):
            rows.append({
                "uid": uid, "url": srv.url + first, "urls": [srv.url + first] + [srv.url + o for o in others],
                "query_ids": [f"q{i % 3}"], "alt_texts": [f"alt text {i}"] if i % 2 == 0 else [],
                "page_urls": [], "qids": [["Q1", "Q2", "Q3"][i % 3]], "kinds": [], "backends": ["pool"],
                "is_living": i % 3 == 0, "licence": "CC0" if i % 2 else None, "width": None, "height": None})
        urls = pd.DataFrame(rows)
        opts = {**dataset_config({"datasets": {"x": {}}}, "x")["download"],  # the schema's defaults, then ours
                "thread_count": 16, "request_timeout_s": 3, "retries": 0, "samples_per_shard": 1000,
                "image_size": 512, "max_image_area": PIL_BOMB_LIMIT, "user_agent_token": "entitynet-test"}
        exits = []  # img2dataset's exit codes; None when run_with_timeout had to kill it (a hang)
        real_run = chunk_download.run_with_timeout

        def recording_run(*args, **kwargs):
            rc, output = real_run(*args, **kwargs)
            exits.append(rc)
            return rc, output

        t0 = time.monotonic()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(chunk_download, "run_with_timeout", recording_run)
            summary = chunk_download.run_download(urls, 0, 1, str(root / "download" / "chunk_00000"), opts,
                                                  processes=1, timeout_s=JOB_TIMEOUT_S)
        elapsed = time.monotonic() - t0
        counts = {p: srv.request_count(p) for p in ("/good/n-mirror.jpg", "/good/dup.jpg", "/good/never-third.jpg",
                                            "/missing/dup2-mirror.jpg", "/noai/n.jpg")}
    urls.to_parquet(root / "urls.parquet")
    return {"root": root, "urls": urls, "summary": summary, "elapsed": elapsed, "counts": counts, "exits": exits}


def test_every_row_ends_as_exactly_one_counted_status(crawl):
    out = download_outcomes.row_outcomes([crawl["root"] / "download" / "chunk_00000"])
    assert len(out) == len(CASES) and out["uid"].is_unique and set(out["uid"]) == set(CASES)
    for _, r in out.iterrows():
        _, _, status, reason, retried = CASES[r["uid"]]
        got = (r["status"], download_outcomes.failure_reason(r["status"], r["error_message"]), bool(r["retried"]))
        assert got == (status, reason, retried), (r["uid"], r["error_message"], got)
    s = crawl["summary"]
    assert s["count"] == len(CASES) and s["successes"] == 4 and s["recovered_by_retry"] == 1
    assert s["first"]["count"] == len(CASES) and s["retry"]["count"] == 2
    assert sum(s["status_dict"].values()) == len(CASES)


def test_no_hang_and_the_drip_is_bounded_by_the_server_close(crawl):
    """img2dataset's timeout is per socket read: the 1 byte/s drip holds a thread until the server closes (6 s
    here). No hang: every img2dataset run (first URLs, then the retry at duplicates) exited by itself, none was
    killed at the job timeout. That, not a wall-clock bound, is the check; the wall time is only printed."""
    print(f"crawl of {len(CASES)} rows: {crawl['elapsed']:.1f} s")
    assert crawl["exits"] == [0, 0], crawl["exits"]
    assert crawl["elapsed"] >= DRIP_CLOSE_S


def test_retry_takes_the_next_duplicate_once_and_never_after_an_opt_out(crawl):
    c = crawl["counts"]
    assert c["/good/dup.jpg"] == 1 and c["/missing/dup2-mirror.jpg"] == 1
    assert c["/good/never-third.jpg"] == 0           # retried once only
    assert c["/noai/n.jpg"] == 1 and c["/good/n-mirror.jpg"] == 0
    retry_dir = crawl["root"] / "download" / "chunk_00000" / "retry"
    assert sorted(pd.read_parquet(retry_dir / "_input.parquet")["uid"]) == ["a00000000000000d", "a00000000000000e"]
    assert download_outcomes.download_dirs([crawl["root"] / "download" / "chunk_00000"])[-1] == str(retry_dir)


def test_huge_image_is_refused_by_area_not_decoded_into_the_shards(crawl):
    st = download_outcomes.pass_status(crawl["root"] / "download" / "chunk_00000")
    msg = st.set_index("uid").loc["a000000000000009", "error_message"]
    assert msg == "image area too large"


@pytest.fixture(scope="module")
def card(crawl, tmp_path_factory):
    """dedup -> build_shards -> dataset_card through their Snakemake entry points (the rules' script blocks)."""
    root = crawl["root"]
    out = tmp_path_factory.mktemp("built")
    evalset = out / "eval_present"
    evalset.mkdir()
    from PIL import Image
    Image.new("RGB", (64, 64), (10, 200, 30)).save(evalset / "green.png")   # matches no training image

    class Job:
        def __init__(self, inp, outp, params):
            self.input, self.output = Namedlist(fromdict=inp), Namedlist(fromdict=outp)
            self.params, self.log = Namedlist(fromdict=params), Namedlist(fromdict={})
            self.threads, self.wildcards = 1, Namedlist(fromdict={"dataset": "faults"})

    chunks = [str(root / "download" / "chunk_00000")]
    dd = {k: str(out / "dedup" / f"{k}.parquet") for k in ("keep", "removed", "drop", "eval_hashes")}
    dd |= {"counts": str(out / "dedup" / "counts.json"), "urls": str(out / "urls_dedup.parquet")}
    dedup_decontaminate.main(Job({"chunks": chunks, "urls": str(root / "urls.parquet")}, dd, {
        "eval_sets": {"present": str(evalset), "absent": str(out / "no_such_benchmark")},
        "hamming_threshold": 4, "decontam_threshold": 8, "representative": "largest", "skipped": []}))
    queries = pd.DataFrame({"query_id": ["q0", "q1", "q2"], "text": ["fox", "oak", "chair"],
                            "kind": ["wd-noun-living", "wd-noun-living", "wd-noun-world"]})
    entities = pd.DataFrame({"qid": ["Q1", "Q2", "Q3"], "label": ["fox", "oak", "chair"],
                             "roots": [["Q729"], ["Q756"], ["Q14745"]]})
    queries.to_parquet(out / "queries.parquet")
    entities.to_parquet(out / "entities.parquet")
    bs = {"shards_dir": str(out / "shards"), "status": str(out / "download_status.parquet"),
          "summary": str(out / "shards_summary.json"), "index": str(out / "shards_index.parquet")}
    build_shards.main(Job({"chunks": chunks, "urls": dd["urls"], "drop": dd["drop"],
                           "queries": str(out / "queries.parquet")}, bs,
                          {"val_size": 1, "samples_per_shard": 2, "seed": 0, "subset": None}))
    co = {"card": str(out / "card" / "card.md"), "stats": str(out / "card" / "card.json")}
    co |= {p: str(out / "card" / f"{p}.png") for p in CARD_PLOTS}
    dataset_card.main(Job({"index": bs["index"], "summary": bs["summary"], "status": bs["status"],
                           "urls": dd["urls"], "dedup_counts": dd["counts"], "queries": str(out / "queries.parquet"),
                           "entities": str(out / "entities.parquet")}, co,
                          {"dataset": "faults", "description": "fault test", "source": "faults", "subset": None,
                           "roots": ["Q729", "Q756", "Q14745"]}))
    return out


def test_status_table_counts_every_row_once(card):
    st = pd.read_parquet(card / "download_status.parquet")
    assert list(st.columns) == ["status", "reason", "error_message", "retried", "count"]
    assert st["count"].sum() == len(CASES)
    want = pd.Series([(c[2], c[3], c[4]) for c in CASES.values()]).value_counts()
    got = st.groupby(["status", "reason", "retried"])["count"].sum()
    assert {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in want.items()}


def test_shards_hold_the_successes_and_the_card_shows_every_count(card):
    summary = json.loads((card / "shards_summary.json").read_text())
    assert summary["n_train"] + summary["n_val"] == 4 and summary["n_val"] == 1
    assert summary["download"] == {"rows": len(CASES), "successes": 4, "recovered_by_retry": 1}
    index = pd.read_parquet(card / "shards_index.parquet")
    assert sorted(index["uid"]) == sorted(u for u, c in CASES.items() if c[2] == "success")
    stats = json.loads((card / "card" / "card.json").read_text())
    by = stats["download"]["by_outcome"]
    assert by == {"success": 3, "success (retry URL)": 1, "HTTP 404": 2, "not a decodable image": 2,
                  "incomplete body": 2, "empty body": 1, "redirect loop": 1, "image area too large": 1,
                  "opt-out (X-Robots-Tag)": 1}
    assert stats["download"]["retried"] == 2 and stats["download"]["recovered_by_retry"] == 1
    assert stats["dedup"]["eval_sets_missing"] == ["absent"]
    assert stats["dedup"]["contaminated_per_eval_set"] == {"present": 0}
    assert [(r["key"], r["images"]) for r in stats["root_classes"]] == [("Q729", 2), ("Q14745", 1), ("Q756", 1)]
    assert [(r["key"], r["images"]) for r in stats["query_kinds"]] == [("wd-noun-living", 3), ("wd-noun-world", 1)]
    assert [(r["key"], r["label"], r["images"]) for r in stats["top_entities"]] == [
        ("Q1", "fox", 2), ("Q2", "oak", 1), ("Q3", "chair", 1)]
    assert stats["alt_text"] == {"with": 3, "without": 1, "share_with": 0.75}
    assert stats["texts_per_image"]["alt_texts_hist"] == {"0": 1, "1": 3}
    assert [(r["key"], r["images"]) for r in stats["licences"]] == [("unknown", 3), ("CC0", 1)]
    md = (card / "card" / "card.md").read_text()
    for reason, n in by.items():
        assert f"| {reason} | {n:,} |" in md, reason
    assert "absent | missing | not checked" in md
    for p in CARD_PLOTS:
        png = (card / "card" / f"{p}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000, p
