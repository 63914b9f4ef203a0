"""How many search requests change with the authors' query shapes (issue 16, query side).

    .venv/bin/python -m snakemake results/demo/queries.parquet --cores 1   # builds the demo's entities/attributes
    .venv/bin/python perf/query_fidelity_effects.py                      # demo (the default)
    .venv/bin/python perf/query_fidelity_effects.py --dataset rehearsal  # any dataset whose KG stage has run

Builds the dataset's queries (its configured kinds, caps and seed) twice from ``results/{dataset}/entities.parquet``
and ``attributes.parquet``:

* **old**: ``queries.world_search_terms: extended`` (world queries with the living-style OR group and exclude list)
  and ``serpapi_bing`` with ``or_terms: false`` (Bing sends the text only);
* **new** (the defaults): ``world_search_terms: authors`` (world queries: text + photo type only) and
  ``serpapi_bing`` with ``or_terms: natural_type`` (living noun and attribute+noun queries carry their natural type).

Each query goes through every backend's real request code (``search_web.make_backend``) with a recording HTTP
session that answers an empty result page, so nothing leaves the machine; the first request of each query is
compared between old and new. The ``pool`` backend matches the query text only, so it cannot change (it is
reported from the text, which both builds share). Prints one table row per backend: world and living queries whose
request changed, of how many, and one example of each.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import pandas as pd
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from lib.search import query_builder as bq  # noqa: E402
from lib.search import search_web  # noqa: E402
from lib.common import workflow_config as wc  # noqa: E402

WEB = ["openverse", "commons", "inaturalist", "brave", "serpapi_google", "serpapi_bing"]
ENV = {"BRAVE_API_KEY": "k", "SERPAPI_API_KEY": "k"}


class _Body(io.BytesIO):
    """The streamed body http_cache reads (``read1(n, decode_content=True)``, like urllib3's response)."""

    def read1(self, size=-1, decode_content=True):
        return super().read1(size)


class RecordingSession(requests.Session):
    """Answers every request with an empty JSON object (each backend then stops) and records its parameters."""

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []

    def request(self, method, url, params=None, **kw):
        self.calls.append({"url": url, **{k: v for k, v in (params or {}).items() if k != "api_key"}})
        resp = requests.Response()
        resp.status_code, resp._content, resp.url = 200, b"{}", url
        resp.raw = _Body(b"{}")
        resp.headers["Content-Type"] = "application/json"
        return resp


def first_requests(name: str, queries: pd.DataFrame, params: dict) -> dict[str, str]:
    """query_id -> the first request the backend sends for it (JSON of its parameters)."""
    session = RecordingSession()
    b = search_web.make_backend(name, {"requests_per_second": 0, **params}, None, env=ENV, session=session)
    out = {}
    for row in queries.to_dict("records"):
        n = len(session.calls)
        b.search(row, 10)
        out[row["query_id"]] = json.dumps(session.calls[n], sort_keys=True, default=str)
    b.close()
    return out


def effects(entities: pd.DataFrame, attributes: pd.DataFrame, qcfg: dict) -> list[dict]:
    def build(world):
        q = bq.build_queries(entities, attributes, list(qcfg["kinds"]), dict(qcfg.get("max_per_kind") or {}),
                             int(qcfg.get("seed", 0)), world_search_terms=world)
        return q.set_index("query_id", drop=False)

    old_q, new_q = build("extended"), build("authors")
    assert list(old_q.index) == list(new_q.index), "the switch must not change which queries exist"
    world = old_q["kind"].str.endswith("-world")
    rows = [{"backend": "pool", "world_changed": 0, "world": int(world.sum()), "living_changed": 0,
             "living": int((~world).sum()), "example_world": "", "example_living": ""}]
    for name in WEB:
        old_p = {"or_terms": False} if name == "serpapi_bing" else {}
        new_p = {"or_terms": "natural_type"} if name == "serpapi_bing" else {}
        old, new = first_requests(name, old_q, old_p), first_requests(name, new_q, new_p)
        changed = pd.Series({qid: old[qid] != new[qid] for qid in old_q.index})
        row = {"backend": name, "world_changed": int(changed[world].sum()), "world": int(world.sum()),
               "living_changed": int(changed[~world].sum()), "living": int((~world).sum())}
        for part, mask in (("world", world), ("living", ~world)):
            ids = changed[mask & changed].index
            if len(ids):
                qid = ids[0]
                o, n = json.loads(old[qid]), json.loads(new[qid])
                row[f"example_{part}"] = f"{o.get('q')!r} -> {n.get('q')!r}"
            else:
                row[f"example_{part}"] = ""
        rows.append(row)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--results", default=str(REPO / "results"))
    args = ap.parse_args(argv)
    base = Path(args.results) / args.dataset
    entities = pd.read_parquet(base / "entities.parquet")
    attributes = pd.read_parquet(base / "attributes.parquet")
    qcfg = wc.dataset_config(yaml.safe_load((REPO / "config/config.yaml").read_text()), args.dataset)["queries"]
    rows = effects(entities, attributes, qcfg)
    q = bq.build_queries(entities, attributes, list(qcfg["kinds"]), dict(qcfg.get("max_per_kind") or {}),
                         int(qcfg.get("seed", 0)))
    print(f"dataset {args.dataset}: {len(entities)} entities, {len(q)} queries "
          f"({q['kind'].value_counts().sort_index().to_dict()})")
    print(f"{'backend':15} {'world changed':>15} {'living changed':>16}  example (old q -> new q)")
    for r in rows:
        ex = r["example_world"] or r["example_living"]
        print(f"{r['backend']:15} {r['world_changed']:>7} / {r['world']:<5} {r['living_changed']:>8} / "
              f"{r['living']:<5}  {ex}")
    for r in rows:
        if r["example_world"] and r["example_living"]:
            print(f"{r['backend']}: living example {r['example_living']}")


if __name__ == "__main__":
    main()
