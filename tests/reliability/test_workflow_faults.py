"""The real workflow (Snakemake CLI, real rules) in one throw-away working directory, on loopback only:

1. kill -9 during ``download`` (the demo's ``results/demo/download/chunk_00000``, img2dataset running and half the
   photos served), then the same target again: refused as incomplete without ``--rerun-incomplete``, rebuilt with
   it; the (uid, url, image sha256) set equals an uninterrupted run's, and no half-written file is left anywhere.
   (Training kill/resume: tests/integration/test_demo_e2e.py::test_killed_training_resumes_from_checkpoint.)
2. A KG label and an alt text made of quotes, braces, a newline, a backslash and SPARQL keywords flow as data from
   the frozen KG through kg_entities, build_queries, the pool search, merge_search, img2dataset and build_shards.
3. Web search jobs (Brave, SerpAPI, Openverse stand-ins that check the keys) with fake API keys in the environment;
   then every file of the run (logs, benchmarks, results, caches, Snakemake's metadata and log, the HTML report)
   is searched for the key values, raw and URL-encoded: zero hits.

The photos are served by a loopback server of this test (the demo's pool URLs are rewritten to it), so the test
can count and hold requests; ``serve_local`` moves to a free port so a concurrent demo cannot collide.
"""
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rel_common import record  # noqa: E402,F401 (fixture)

from loopback import PhotoServer, free_port, wait_until  # noqa: E402
from standins import BraveStandin, OpenverseStandin, SerpApiStandin  # noqa: E402
from workflow_helpers import REPO, make_workdir, snakemake  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHUNK = "results/demo/download/chunk_00000"
KEYS = {"BRAVE_API_KEY": "brv-FAKE-7f3a9c1e5d0b", "SERPAPI_API_KEY": "serp+FAKE/2b8e4d6f=0a",
        "OPENVERSE_TOKEN": "ov-FAKE-9c1d3e5f7b2a"}
NASTY_LABEL = 'Gold"fish\' {braces} } UNION { ?s ?p ?o } # DROP ALL ; SELECT * WHERE {\nINSERT DATA { <urn:x> ' \
              '<urn:y> "z" } \\ LIMIT 1'
NASTY_ALT = NASTY_LABEL + " (alt text)"
NASTY_PATH = "/nasty/photo.jpg"
GOLDFISH = "Q123141"


def turtle_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def noise_jpeg(seed: int = 7) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


class Run:
    """The module's working directory, its servers and config override files."""

    def __init__(self, wd: Path, photos: PhotoServer):
        self.wd, self.photos = wd, photos
        self.config = [str(wd / "config/config.yaml"), str(wd / "override.yaml")]

    def sm(self, *args, config=None, timeout=900):
        t0 = time.monotonic()
        r = snakemake(self.wd, *args, "--cores", "2", "--configfile", *(config or self.config),
                      timeout=timeout, env=KEYS)
        print(f"snakemake {' '.join(args)[:80]}: rc {r.returncode}, {time.monotonic() - t0:.1f} s")
        return r

    def popen(self, *args) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(self.wd), *args,
               "--cores", "2", "--configfile", *self.config]
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", **KEYS)
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("workflow") / "wd")
    # a KG whose goldfish label is hostile text
    ttl = (REPO / "resources/demo/kg/extract.ttl").read_text()
    line = f'wd:{GOLDFISH} rdfs:label "Goldfish"@en .'
    assert ttl.count(line) == 1
    (wd / "kg.ttl").write_text(ttl.replace(line, f"wd:{GOLDFISH} rdfs:label {turtle_literal(NASTY_LABEL)}@en ."))
    photos = PhotoServer(REPO / "resources/demo/photos", extra={NASTY_PATH: noise_jpeg()})
    pool = pd.read_csv(REPO / "resources/demo/pool.csv", dtype=str, keep_default_na=False)
    pool["url"] = pool["url"].str.replace("http://127.0.0.1:18765", photos.url, regex=False)
    assert pool["url"].str.startswith(photos.url).all()
    nasty = {c: "" for c in pool.columns}
    nasty.update(url=photos.url + NASTY_PATH, alt_text=NASTY_ALT, licence="CC0", page_url="https://example.org/n")
    pool = pd.concat([pool, pd.DataFrame([nasty])], ignore_index=True)
    pool.to_csv(wd / "pool.csv", index=False)
    override = {"datasets": {"demo": {
        "kg": {"endpoint": f"file:{wd / 'kg.ttl'}"},
        "search": {"backends": {"pool": {"path": "pool.csv", "max_results": 20, "match": "fts"}}},
        "download": {"serve_local": {"directory": "resources/demo/photos", "bind": f"127.0.0.1:{free_port()}",
                                     "pin_port": True}},  # the URLs name photos.url, not bind: no proxy
    }}}
    (wd / "override.yaml").write_text(yaml.safe_dump(override))
    try:
        yield Run(wd, photos)
    finally:
        photos.close()


def chunk_samples(chunk: Path) -> set[tuple[str, str, str]]:
    """{(uid, url, sha256 of the stored image)} of an img2dataset webdataset chunk (member order ignored)."""
    out = set()
    for tar in sorted(chunk.rglob("*.tar")):  # rglob: a second pass may keep its shards in a subfolder
        with tarfile.open(tar) as tf:
            members = {m.name: m for m in tf.getmembers()}
            for name in members:
                if name.endswith(".json"):
                    meta = json.loads(tf.extractfile(members[name]).read())
                    jpg = tf.extractfile(members[name[:-5] + ".jpg"]).read()
                    out.add((meta["uid"], meta["url"], hashlib.sha256(jpg).hexdigest()))
    return out


def half_written(root: Path) -> list[str]:
    """Temp/partial files under ``root``: atomic-write temp names (``.name.XXXX``), ``*.tmp``/``*.part``,
    img2dataset's ``_tmp`` folders, tars that do not list cleanly, shards without their ``_stats.json``."""
    bad = []
    for p in root.rglob("*"):
        if p.name == ".snakemake_timestamp":  # Snakemake's own marker of a finished directory() output
            continue
        if p.name.startswith(".") or p.suffix in (".tmp", ".part", ".partial") or p.name == "_tmp":
            bad.append(str(p.relative_to(root)))
        elif p.suffix == ".tar":
            try:
                with tarfile.open(p) as tf:
                    tf.getmembers()
            except (tarfile.TarError, EOFError, OSError) as e:
                bad.append(f"{p.relative_to(root)} ({e})")
            if "download" in p.parts and not (p.parent / f"{p.stem}_stats.json").exists():
                bad.append(f"{p.relative_to(root)} (no _stats.json)")
    return bad


def find_secrets(root: Path, needles: set[str]) -> tuple[int, list[str]]:
    """(files scanned, ``"path: needle"`` hits) over every regular file under ``root`` that is not behind a
    symlink; gzip files are also searched decompressed, tar files member by member."""
    import gzip

    scanned, hits = 0, []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_symlink() or not p.is_file() or any((root / Path(*rel.parts[:i])).is_symlink()
                                                    for i in range(1, len(rel.parts))):
            continue
        raw = p.read_bytes()
        texts = [raw]
        if raw[:2] == b"\x1f\x8b":
            texts.append(gzip.decompress(raw))
        if tarfile.is_tarfile(p):
            with tarfile.open(p) as tf:
                texts += [tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()]
        scanned += 1
        hits += sorted({f"{rel}: {n}" for n in needles for t in texts if n.encode() in t})
    return scanned, hits


def test_secret_scanner_finds_what_it_must(tmp_path):
    """The scanner of test_web_search_keys_never_written is not blind: raw, URL-encoded, gzip and tar hits."""
    import gzip

    key = KEYS["SERPAPI_API_KEY"]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/a.log").write_text(f"GET /search.json?api_key={quote_plus(key)}&q=x")
    (tmp_path / "c.json.gz").write_bytes(gzip.compress(json.dumps({"k": key}).encode()))
    with tarfile.open(tmp_path / "s.tar", "w") as tf:
        info = tarfile.TarInfo("x.json")
        data = key.encode()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (tmp_path / "clean.txt").write_text("nothing here")
    (tmp_path / "linked").symlink_to(tmp_path / "logs")
    scanned, hits = find_secrets(tmp_path, {key, quote(key, safe=""), quote_plus(key)})
    assert scanned == 4
    assert sorted(h.split(":")[0] for h in hits) == ["c.json.gz", "logs/a.log", "s.tar"]


# ---------------------------------------------------------------------------------------- 1. kill -9 during download
def test_download_killed_midway_then_rerun(run, record):
    r = run.sm(CHUNK)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    chunk = run.wd / CHUNK
    reference = chunk_samples(chunk)
    n_urls = len(pd.read_parquet(run.wd / "results/demo/urls.parquet"))
    assert len(reference) == n_urls >= 15 and run.photos.count == n_urls

    # the same job again, killed (whole process group, SIGKILL) while img2dataset has fetched 5 photos
    run.photos.hold_after(5)
    proc = run.popen(CHUNK, "--forcerun", "download")
    try:
        wait_until(lambda: run.photos.count > 5 or proc.poll() is not None, 300, 0.05, "img2dataset downloading")
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        partial = sorted(p.name for p in chunk.iterdir()) if chunk.exists() else []
        killed_at = time.time()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        run.photos.release()
    assert "_input.parquet" in partial  # the job was inside img2dataset when it died
    assert any((run.wd / ".snakemake/incomplete").iterdir())  # Snakemake knows the output is incomplete

    # kill -9 leaves Snakemake's lock behind (no cleanup ran): the documented way out is --unlock
    r = run.sm("--unlock", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    # without --rerun-incomplete the half-written chunk is refused, not used
    r = run.sm(CHUNK, timeout=300)
    assert r.returncode != 0 and "incomplete" in (r.stdout + r.stderr).lower(), (r.stdout + r.stderr)[-3000:]
    assert "--rerun-incomplete" in r.stdout + r.stderr

    run.photos.hold_after(None)
    r = run.sm(CHUNK, "--rerun-incomplete")
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert run.photos.count == n_urls  # the rerun fetched the whole chunk again (the partial one was discarded)
    resumed = chunk_samples(chunk)
    assert resumed == reference
    assert all(t.stat().st_mtime > killed_at for t in chunk.rglob("*.tar"))
    assert not any((run.wd / ".snakemake/incomplete").iterdir())
    assert half_written(run.wd / "results") == [] and half_written(run.wd / "resources/kg") == []
    assert json.loads((chunk / "00000_stats.json").read_text())["successes"] == n_urls
    record("workflow: download (img2dataset)", "kill -9 midway + --rerun-incomplete", "recovered",
           samples=len(resumed), partial_entries=len(partial))


# ------------------------------------------------------------------------------- 2. hostile KG label and alt text
def test_hostile_label_and_alt_text_flow_as_data(run, record):
    r = run.sm("results/demo/shards_summary.json")
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    wd = run.wd
    ents = pd.read_parquet(wd / "results/demo/entities.parquet").set_index("qid")
    assert ents.loc[GOLDFISH, "label"] == NASTY_LABEL  # byte for byte, newline and backslash included
    q = pd.read_parquet(wd / "results/demo/queries.parquet")
    mine = q[q["qids"].map(lambda v: GOLDFISH in list(v))]
    text = " ".join(NASTY_LABEL.split()).lower()
    assert text in set(mine["text"]), sorted(mine["text"])
    qid = mine.loc[mine["text"] == text, "query_id"].iloc[0]
    hits = pd.concat(pd.read_parquet(p) for p in sorted((wd / "results/demo/search/pool").glob("chunk_*.parquet")))
    assert NASTY_ALT in set(hits.loc[hits["query_id"] == qid, "alt_text"])
    urls = pd.read_parquet(wd / "results/demo/urls.parquet")
    row = urls[urls["url"] == run.photos.url + NASTY_PATH].iloc[0]
    assert NASTY_ALT in list(row["alt_texts"]) and qid in list(row["query_ids"])
    uid = row["uid"]
    found = None
    for tar in sorted((wd / "results/demo/shards").rglob("*.tar")):
        with tarfile.open(tar) as tf:
            if f"{uid}.json" in tf.getnames():
                found = json.loads(tf.extractfile(f"{uid}.json").read())
    assert found is not None, "the sample with the hostile alt text is missing from the shards"
    assert NASTY_ALT in found["alt_texts"] and qid in found["query_ids"]
    record("workflow: KG -> shards", "hostile label/alt text (quotes, braces, newline, SPARQL)", "data intact")


# ------------------------------------------------------------------------------------------------- 3. secrets
def test_web_search_keys_never_written(run, record):
    with BraveStandin(api_key=KEYS["BRAVE_API_KEY"], n_results=8) as brave, \
            SerpApiStandin(api_key=KEYS["SERPAPI_API_KEY"], n_results=8, echo_key=True) as serp, \
            OpenverseStandin(api_key=KEYS["OPENVERSE_TOKEN"], n_results=8) as openverse:
        fast = {"requests_per_second": 1000, "max_results": 5, "max_retries": 1, "timeout_s": 10}
        web = {"datasets": {"demo": {"search": {"backends": {
            "brave": {"base_url": brave.url, **fast},
            "serpapi_google": {"base_url": serp.url, "api_key_env": "SERPAPI_API_KEY", **fast},
            "openverse": {"base_url": openverse.url, "api_key_env": "OPENVERSE_TOKEN", "page_size": 5, **fast},
        }}}}}
        (run.wd / "web.yaml").write_text(yaml.safe_dump(web))
        targets = [f"results/demo/search/{b}/chunk_00000.parquet" for b in ("brave", "serpapi_google", "openverse")]
        web_config = run.config + [str(run.wd / "web.yaml")]
        r = run.sm(*targets, config=web_config)
        assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
        # the keys were really sent (the stand-ins answer 401 otherwise)
        assert brave.requests[0].headers["x-subscription-token"] == KEYS["BRAVE_API_KEY"]
        assert serp.requests[0].param("api_key") == KEYS["SERPAPI_API_KEY"]
        assert openverse.requests[0].headers["authorization"] == f"Bearer {KEYS['OPENVERSE_TOKEN']}"
        n_requests = brave.request_count() + serp.request_count() + openverse.request_count()
    for t in targets:
        assert len(pd.read_parquet(run.wd / t)) > 0
    report = run.sm("--report", str(run.wd / "report.html"), *targets, CHUNK, config=web_config, timeout=600)
    assert report.returncode == 0 and (run.wd / "report.html").stat().st_size > 10_000, report.stderr[-3000:]

    needles = {v for key in KEYS.values() for v in (key, quote(key, safe=""), quote_plus(key))}
    scanned, hits = find_secrets(run.wd, needles)
    kinds = {p.relative_to(run.wd).parts[0] for p in run.wd.rglob("*") if p.is_file() and not p.is_symlink()}
    assert {"logs", "benchmarks", "results", "resources", ".snakemake", "report.html"} <= kinds, kinds
    assert list((run.wd / "resources/cache/search").rglob("*.json.gz")), "no search cache files to check"
    assert hits == [], hits
    record("workflow: secrets", "API keys in the environment (3 web backends)", "no leak", files_scanned=scanned,
           key_hits=0, requests=n_requests)
