"""Effect of the KG (no-LLM) mode's rules on the demo extract, against a hand-written reference.

    .venv/bin/python perf/kg_mode_effect.py            # ~15 s on one core; prints the tables below

Runs the KG stage in-process (dump -> entities -> attributes -> queries) on ``resources/demo/kg/extract.ttl`` with
the demo config twice: **new** (the defaults: ``natural_types.living_rule: nearest_common_name``, living clean-up,
visuality filter, per-root exclusions, living attribute hints) and **old** (``most_sitelinks``, no clean-up, no
visuality filter, the union of exclusions, attributes for world entities only, as before the living hint facet),
then scores each against ``perf/kg_mode_reference.tsv``:
- natural types: share of the selected reference items whose natural-type label is one of the acceptable answers
  (case-insensitive, a trailing plural "s" ignored); four records (red squirrel, Crenicichla tigrina,
  Actinopodidae, Arachnida) have parent taxa the extract lacks, so no living root reaches them;
- clean-up: agreement with the authors' living-filter answers on their few-shot examples;
- visuality: agreement on world items (an item counts as "visual" when it is kept);
- query kinds: how many of the seven kinds the demo produces.
"""
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from lib.search import query_builder as bq  # noqa: E402
import kg_attributes as ka  # noqa: E402
from lib.kg.kg_entity_table import build_entities  # noqa: E402
from lib.kg.kg_selection import cleanup_reasons  # noqa: E402
from lib.common import workflow_config as wc  # noqa: E402
from kg_dump import dump  # noqa: E402
from lib.kg.sparql_client import EmbeddedSparql  # noqa: E402


def norm(s) -> str:
    s = str(s).strip().lower()
    return s[:-1] if len(s) > 3 and s.endswith("s") and not s.endswith("ss") else s


def run(d: dict, new: bool, workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    living_roots = d["living_roots"] + (["Q764"] if d["living"]["include_fungi"] else [])
    vis = d["visual_filter"]
    out = workdir / f"{'new' if new else 'old'}.nt.gz"
    dump(f"file:{REPO}/" + d["kg"]["endpoint"][len("file:"):], d["roots"], living_roots, "en", 5000, str(out),
         str(workdir / "p.json"), "perf", abstract_classes=vis["abstract_classes"] if new else [])
    ents = build_entities(
        str(out), d["roots"], living_roots, "en", d["min_sitelinks"], d["living"]["exclude"],
        d["living"]["require_image"], d["living"]["max_per_root"], d["natural_types"]["generic_classes"],
        exclude_by_root=d["living"]["exclude_by_root"] if new else None,
        coordinate_roots=d["living"]["exclude_coordinates_roots"] if new else None,
        cleanup=d["living"]["cleanup"] if new else [], visual=vis if new else None,
        living_rule=d["natural_types"]["living_rule"] if new else "most_sitelinks",
        living_type_min_sitelinks=d["natural_types"]["living_min_sitelinks"])
    s = EmbeddedSparql()
    s.load(out)
    attrs = ka.attributes_from_hints(ka.load_hints(s, "en"), ents, int(d["attributes"]["max_per_category"]))
    if not new:  # before: hints were dumped for world roots only
        attrs = attrs[~attrs["qid"].map(ents.set_index("qid")["is_living"]).fillna(False).astype(bool)]
    return ents, bq.build_queries(ents, attrs, d["queries"]["kinds"])


def score(ref: pd.DataFrame, ents: pd.DataFrame, new: bool, d: dict) -> dict:
    e = ents.set_index("qid")
    out = {}
    nt = ref[ref["feature"] == "natural_type"]
    nt = nt[nt["qid"].isin(e.index)]  # items the extract connects to a living root (4 of the records are not)
    hits = [norm(e.loc[q, "natural_type_label"]) in {norm(x) for x in exp.split("|")}
            for q, exp in zip(nt["qid"], nt["expected"])]
    out["natural_type"] = (sum(hits), len(hits))
    cl = ref[ref["feature"] == "cleanup"].rename(columns={"label": "label"})
    kept = cleanup_reasons(cl, d["living"]["cleanup"] if new else []).isna()
    out["cleanup"] = (int((kept == (cl["expected"] == "true")).sum()), len(cl))
    vi = ref[ref["feature"] == "visual"]
    present = vi["qid"].isin(e.index)
    out["visual"] = (int((present == (vi["expected"] == "true")).sum()), len(vi))
    return out


def main() -> None:
    cfg = yaml.safe_load(open(REPO / "config/config.yaml"))
    d = wc.dataset_config(cfg, "demo")
    ref = pd.read_csv(REPO / "perf/kg_mode_reference.tsv", sep="\t", comment="#", dtype=str, keep_default_na=False)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for new in (False, True):
            ents, queries = run(d, new, Path(tmp))
            sc = score(ref, ents, new, d)
            kinds = queries["kind"].value_counts().to_dict()
            rows["new" if new else "old"] = {**{k: f"{a}/{b} ({a / b:.0%})" for k, (a, b) in sc.items()},
                                            "query kinds": f"{len(kinds)}/7", "living entities": int(ents["is_living"].sum()),
                                            "world entities": int((~ents["is_living"]).sum())}
            print(f"{'new' if new else 'old'} query kinds: {kinds}")
            if new:
                nt = ref[ref["feature"] == "natural_type"]
                e = ents.set_index("qid")
                for q, lab, exp in zip(nt["qid"], nt["label"], nt["expected"]):
                    got = e.loc[q, "natural_type_label"] if q in e.index else "(not selected)"
                    mark = "ok " if norm(got) in {norm(x) for x in exp.split("|")} else "-- "
                    print(f"  {mark}{q:<10} {lab:<22} -> {got}   (reference: {exp})")
    table = pd.DataFrame(rows)
    print("\nagreement with perf/kg_mode_reference.tsv (demo extract):")
    print(table.to_string())


if __name__ == "__main__":
    main()
