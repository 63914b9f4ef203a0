"""Dataset card of a built dataset: its numbers, ``card.md``, ``card.json`` and PNG plots (a library: no rule
entry; rule ``dataset_card``, ``scripts/dataset_card.py``, calls it).

Enough to judge a dataset before spending GPU hours on it. Everything is computed from the workflow's own
artifacts of the dataset: the shard index (which images were written, and to which split), the deduplicated
``urls.parquet`` rows of those images (queries, alt texts, entities, licence), ``queries.parquet`` (query kinds),
``entities.parquet`` (labels and root classes), the download status table (every input URL row counted once by
its final status, retry pass included) and the dedup/decontamination ``counts.json``.

Sections and plots (``PLOTS``):

* ``root_classes``: images per root class (an image counts once for every root one of its entities lies under;
  images found only by attribute queries, which carry no entity, are counted as ``(no entity)``);
* ``query_kinds``: images per query kind (an image counts once per kind of the queries that found it);
* ``download_status``: input rows by final download outcome (success, success after the retry at the next
  duplicate URL, and each failure reason: HTTP status, opt-out, redirect loop, decode error, ...);
* ``texts_per_image``: distinct alt texts per image and queries per image;
* ``alt_text``: images with / without an alt text, per split;
* ``top_entities``: the 20 entities with the most images;
* ``licences``: licence mix (``unknown`` when the search backend gave none);
* ``dedup``: images hashed, duplicates dropped, eval contamination per eval set (missing eval roots flagged).
"""

import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from _helpers import atomic_path, write_json, write_text
from lib.common.artifact_columns import CARD_PLOTS

PLOTS = list(CARD_PLOTS)
NO_ENTITY = "(no entity)"
TOP_N = 20


def _table(obj, columns: Iterable[str] | None = None) -> pa.Table:
    """A pyarrow Table from a DataFrame or Table (only ``columns`` that exist)."""
    t = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
    if columns is not None:
        t = t.select([c for c in columns if c in t.column_names])
    return t


def _pairs(t: pa.Table, col: str) -> pa.Table:
    """Distinct ``(p, v)``: row index ``p`` of ``t`` and each value ``v`` of its list column ``col``."""
    if col not in t.column_names:
        return pa.table({"p": pa.array([], pa.int64()), "v": pa.array([], pa.string())})
    arr = t[col].combine_chunks()
    flat = pc.list_flatten(arr)
    pairs = pa.table({"p": pc.cast(pc.list_parent_indices(arr), pa.int64()), "v": pc.cast(flat, pa.string())})
    pairs = pairs.filter(pc.is_valid(pairs["v"]))
    return pairs.group_by(["p", "v"]).aggregate([])


def _count_by(pairs: pa.Table, key: str = "v") -> dict[str, int]:
    """Images per value (``pairs`` distinct per image)."""
    if pairs.num_rows == 0:
        return {}
    c = pairs.group_by(key).aggregate([("p", "count")])
    return dict(zip(c[key].to_pylist(), c["p_count"].to_pylist()))


def _counts(counter: Mapping[str, int], labels: Mapping[str, str] | None = None) -> list[dict]:
    rows = [{"key": k, "label": (labels or {}).get(k, k), "images": int(v)} for k, v in counter.items()]
    return sorted(rows, key=lambda r: (-r["images"], r["key"]))


def _hist(lengths: np.ndarray) -> dict[str, int]:
    vals, cnt = np.unique(np.minimum(lengths, 5), return_counts=True)
    return {("5+" if v == 5 else str(int(v))): int(c) for v, c in zip(vals, cnt)}


def _download_stats(status: pd.DataFrame) -> dict:
    """The card's ``download`` block: input rows by final status and by outcome (retries included)."""
    st = status.copy()
    if "reason" not in st:
        st["reason"] = st["status"]
    if "retried" not in st:
        st["retried"] = False
    st["outcome"] = np.where((st["status"] == "success") & st["retried"].astype(bool), "success (retry URL)",
                             st["reason"].astype(str))
    by_outcome = st.groupby("outcome")["count"].sum().sort_values(ascending=False, kind="stable")
    by_status = st.groupby("status")["count"].sum().sort_values(ascending=False, kind="stable")
    rows_total = int(st["count"].sum())
    ok = int(by_status.get("success", 0))
    retried = st["retried"].astype(bool)
    return {
        "rows": rows_total, "successes": ok,
        "success_rate": ok / rows_total if rows_total else 0.0,
        "recovered_by_retry": int(st.loc[(st["status"] == "success") & retried, "count"].sum()),
        "retried": int(st.loc[retried, "count"].sum()),
        "by_status": {str(k): int(v) for k, v in by_status.items()},
        "by_outcome": {str(k): int(v) for k, v in by_outcome.items()},
    }


def card_stats(index, urls, queries, entities, status: pd.DataFrame, dedup_counts: Mapping, summary: Mapping,
               roots: Iterable[str] = ()) -> dict:
    """Every number of the card as a JSON-ready dict (see the module docstring for what each block counts).

    ``index``: ``uid, split`` of the written samples; ``urls``: rows with ``uid, query_ids, alt_texts, qids,
    licence``; ``queries``: ``query_id, kind``; ``entities``: ``qid, label, roots``; ``status``: ``status, reason,
    retried, count``; ``roots``: the dataset's configured roots (listed with 0 images when none was found). Tables
    may be DataFrames or pyarrow Tables; list columns are handled columnar (pyarrow), so tens of millions of images
    fit in a few GB.
    """
    idx = _table(index, ["uid", "split"])
    agg = idx.group_by("uid").aggregate([("split", "min")])
    idx = pa.table({"uid": pc.cast(agg["uid"], pa.string()), "split": agg["split_min"]})
    u = _table(urls, ["uid", "query_ids", "alt_texts", "qids", "licence"])
    u = u.set_column(u.schema.get_field_index("uid"), "uid", pc.cast(u["uid"], pa.string()))
    u = u.filter(pc.is_in(u["uid"], value_set=idx["uid"]))
    uid_list = u["uid"].to_pylist()
    if len(set(uid_list)) != len(uid_list):
        raise ValueError("urls table has repeated uids among the written samples")
    if u.num_rows != idx.num_rows:
        missing = set(idx["uid"].to_pylist()) - set(uid_list)
        raise ValueError(f"{len(missing)} written sample(s) have no urls row, e.g. {sorted(missing)[:3]}")
    n = u.num_rows

    def lengths(col: str) -> np.ndarray:
        if col not in u.column_names:
            return np.zeros(n, dtype=np.int64)
        return pc.fill_null(pc.list_value_length(u[col]), 0).to_numpy(zero_copy_only=False).astype(np.int64)

    n_alts, n_qry = lengths("alt_texts"), lengths("query_ids")
    per_split = pa.table({"uid": u["uid"], "alt": pa.array(n_alts > 0)}).join(idx, "uid")
    splits = {}
    for split, g in per_split.to_pandas().groupby("split"):
        splits[str(split)] = {"images": int(len(g)), "with_alt_text": int(g["alt"].sum()),
                              "without_alt_text": int((~g["alt"]).sum())}
    q = _table(queries, ["query_id", "kind"])
    q = pa.table({"v": pc.cast(q["query_id"], pa.string()), "kind": pc.cast(q["kind"], pa.string())})
    kind_pairs = _pairs(u, "query_ids").join(q, "v", join_type="left outer")
    kind_pairs = pa.table({"p": kind_pairs["p"], "v": pc.fill_null(kind_pairs["kind"], "?")})
    per_kind = _count_by(kind_pairs.group_by(["p", "v"]).aggregate([]))
    ent_pairs = _pairs(u, "qids")
    per_entity = _count_by(ent_pairs)
    e = _table(entities, ["qid", "label", "roots"])
    label = dict(zip(pc.cast(e["qid"], pa.string()).to_pylist(), e["label"].to_pylist()))
    label = {k: (v if isinstance(v, str) else "") for k, v in label.items()}
    root_map = _pairs(e, "roots")                                # p = entity row, v = root
    root_map = pa.table({"qid": pc.take(pc.cast(e["qid"], pa.string()), root_map["p"]), "root": root_map["v"]})
    image_roots = pa.table({"p": ent_pairs["p"], "qid": ent_pairs["v"]}).join(root_map, "qid", join_type="inner")
    image_roots = image_roots.select(["p", "root"]).group_by(["p", "root"]).aggregate([])
    per_root = {r: 0 for r in roots} | _count_by(image_roots, "root")
    n_with_root = len(pc.unique(image_roots["p"])) if image_roots.num_rows else 0
    if n - n_with_root:
        per_root[NO_ENTITY] = n - n_with_root
    lic = pc.fill_null(pc.if_else(pc.equal(pc.utf8_length(pc.cast(u["licence"], pa.string())), 0), None,
                                  pc.cast(u["licence"], pa.string())), "unknown") \
        if "licence" in u.column_names else pa.array(["unknown"] * n)
    vc = pc.value_counts(lic)
    licences = {str(x["values"]): int(x["counts"]) for x in vc.to_pylist()}
    dd = dict(dedup_counts)
    return {
        "images": n,
        "splits": splits,
        "shards": {k: summary.get(k) for k in ("n_train", "n_val")} | {"skipped": summary.get("skipped", {})},
        "root_classes": _counts(per_root, {**label, NO_ENTITY: NO_ENTITY}),
        "query_kinds": _counts(per_kind),
        "top_entities": _counts(per_entity, label)[:TOP_N],
        "n_entities": len(per_entity),
        "texts_per_image": {
            "alt_texts_mean": float(n_alts.mean()) if n else 0.0,
            "queries_mean": float(n_qry.mean()) if n else 0.0,
            "alt_texts_hist": _hist(n_alts),
            "queries_hist": _hist(n_qry),
        },
        "alt_text": {"with": int((n_alts > 0).sum()), "without": int((n_alts == 0).sum()),
                     "share_with": float((n_alts > 0).mean()) if n else 0.0},
        "licences": _counts(licences),
        "download": _download_stats(status),
        "dedup": {
            "hamming_threshold": dd.get("hamming_threshold"),
            "decontam_threshold": dd.get("decontam_threshold"),
            "images_hashed": dd.get("n_images"),
            "exact_duplicate_images": dd.get("n_exact_duplicate_images"),
            "duplicates_dropped": dd.get("n_duplicates_dropped"),
            "contaminated": dd.get("n_contaminated"),
            "contaminated_per_eval_set": dd.get("contaminated_total", {}),
            "eval_set_sizes": dd.get("eval_set_sizes", {}),
            "eval_sets_missing": dd.get("eval_sets_missing", []),
            "eval_sets_skipped": dd.get("eval_sets_skipped", []),
            "corrupt_images": dd.get("n_corrupt"),
        },
    }


# ------------------------------------------------------------------------------------------------------ plots


def _save(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _barh(path, items: list[tuple[str, float]], title: str, xlabel: str, colors=None) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.32 * len(items) + 1.2)))
    if not items:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        labels = [lbl if len(lbl) <= 45 else lbl[:44] + "…" for lbl, _ in items][::-1]
        values = [v for _, v in items][::-1]
        bars = ax.barh(labels, values, color=(colors[::-1] if colors else "#4c72b0"))
        ax.bar_label(bars, labels=[f"{int(v):,}" for v in values], padding=3, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.15)
    ax.set_title(title)
    _save(fig, path)


def plot_all(stats: Mapping, out: Mapping[str, str | os.PathLike], dataset: str) -> None:
    """Write every plot of ``PLOTS`` to ``out[name]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _barh(out["root_classes"], [(f"{r['label']} ({r['key']})" if r["label"] != r["key"] else r["key"], r["images"])
                                for r in stats["root_classes"]],
          f"{dataset}: images per root class", "images (an image counts for each of its roots)")
    _barh(out["query_kinds"], [(r["key"], r["images"]) for r in stats["query_kinds"]],
          f"{dataset}: images per query kind", "images")
    dl = stats["download"]["by_outcome"]
    _barh(out["download_status"], list(dl.items()),
          f"{dataset}: download outcome of {stats['download']['rows']:,} URL rows "
          f"({100 * stats['download']['success_rate']:.1f} % success)", "URL rows",
          colors=["#55a868" if k.startswith("success") else "#c44e52" for k in dl])
    tp = stats["texts_per_image"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, title in ((axes[0], "alt_texts_hist", f"alt texts per image (mean {tp['alt_texts_mean']:.2f})"),
                           (axes[1], "queries_hist", f"queries per image (mean {tp['queries_mean']:.2f})")):
        h = tp[key]
        ax.bar(list(h), list(h.values()), color="#4c72b0")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("images")
    fig.suptitle(f"{dataset}: texts per image", y=1.04)
    _save(fig, out["texts_per_image"])
    fig, ax = plt.subplots(figsize=(6, 2.6))
    splits = stats["splits"]
    names = list(splits)
    with_alt = [splits[s]["with_alt_text"] for s in names]
    without = [splits[s]["without_alt_text"] for s in names]
    ax.barh(names, with_alt, color="#55a868", label="with alt text")
    ax.barh(names, without, left=with_alt, color="#dd8452", label="without (KG text only)")
    ax.set_xlabel("images")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{dataset}: alt-text presence ({100 * stats['alt_text']['share_with']:.1f} % with)")
    _save(fig, out["alt_text"])
    _barh(out["top_entities"], [(f"{r['label']} ({r['key']})", r["images"]) for r in stats["top_entities"]],
          f"{dataset}: top {len(stats['top_entities'])} of {stats['n_entities']:,} entities", "images")
    _barh(out["licences"], [(r["key"], r["images"]) for r in stats["licences"]], f"{dataset}: licence mix", "images")
    d = stats["dedup"]
    items = [("images hashed", d.get("images_hashed") or 0), ("exact duplicates (sha256)",
                                                              d.get("exact_duplicate_images") or 0),
             ("duplicates dropped (pHash)", d.get("duplicates_dropped") or 0),
             ("eval-contaminated (all sets)", d.get("contaminated") or 0)]
    items += [(f"contaminated: {k}", v) for k, v in (d.get("contaminated_per_eval_set") or {}).items()]
    items += [(f"eval set missing: {k}", 0) for k in d.get("eval_sets_missing") or []]
    _barh(out["dedup"], items, f"{dataset}: dedup (t={d.get('hamming_threshold')}) and decontamination "
                               f"(t={d.get('decontam_threshold')})", "images")


# ----------------------------------------------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: Iterable[Iterable]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} %" if b else "–"


def render_markdown(stats: Mapping, dataset: str, description: str = "", source: str | None = None,
                    subset: str | None = None) -> str:
    """The card's Markdown (plots referenced by their file names in the same folder)."""
    n = stats["images"]
    dl, d = stats["download"], stats["dedup"]
    out = [f"# Dataset card: `{dataset}`", ""]
    if description:
        out += [description, ""]
    if source and source != dataset:
        out += [f"Built from the download of `{source}`" + (f", subset `{subset}`" if subset else "") + ".", ""]
    out += ["## Summary", "", _md_table(["quantity", "value"], [
        ("images in the shards", f"{n:,}"),
        *[(f"  {s}", f"{v['images']:,}") for s, v in stats["splits"].items()],
        ("URL rows downloaded", f"{dl['rows']:,}"),
        ("download successes", f"{dl['successes']:,} ({_pct(dl['successes'], dl['rows'])})"),
        ("retried at the next duplicate URL", f"{dl['retried']:,} (recovered {dl['recovered_by_retry']:,})"),
        ("duplicates dropped", f"{d.get('duplicates_dropped') or 0:,}"),
        ("eval-contaminated images removed", f"{d.get('contaminated') or 0:,}"),
        ("eval sets not checked (root missing)", ", ".join(d.get("eval_sets_missing") or []) or "none"),
        ("eval sets skipped (evaluation.skip)", ", ".join(d.get("eval_sets_skipped") or []) or "none"),
        ("images with an alt text", f"{stats['alt_text']['with']:,} ({_pct(stats['alt_text']['with'], n)})"),
        ("alt texts / queries per image (mean)",
         f"{stats['texts_per_image']['alt_texts_mean']:.2f} / {stats['texts_per_image']['queries_mean']:.2f}"),
        ("entities with images", f"{stats['n_entities']:,}"),
        ("skipped when writing shards", ", ".join(f"{k} {v}" for k, v in stats["shards"]["skipped"].items())),
    ]), ""]
    out += ["## Download outcome", "", "Every input URL row counted once, by its final outcome (a row that failed "
            "at its first URL and was retried at its next duplicate URL counts by the retry's outcome).", "",
            _md_table(["outcome", "rows", "share"], [(k, f"{v:,}", _pct(v, dl["rows"]))
                                                  for k, v in dl["by_outcome"].items()]), "",
            "![download status](download_status.png)", ""]
    out += ["## Dedup and decontamination", "",
            f"Perceptual duplicates: pHash Hamming distance ≤ {d.get('hamming_threshold')} (plus exact sha256); "
            f"eval matches: distance ≤ {d.get('decontam_threshold')}.", "",
            _md_table(["eval set", "eval images", "training images removed"],
                   [(k, f"{(d.get('eval_set_sizes') or {}).get(k, 0):,}", f"{v:,}")
                    for k, v in (d.get("contaminated_per_eval_set") or {}).items()]
                   + [(k, "missing", "not checked") for k in d.get("eval_sets_missing") or []]
                   + [(k, "skipped (evaluation.skip)", "not checked") for k in d.get("eval_sets_skipped") or []]), "",
            "![dedup](dedup.png)", ""]
    out += ["## Images per root class", "", _md_table(["root", "label", "images"], [
        (r["key"], r["label"], f"{r['images']:,}") for r in stats["root_classes"]]), "",
        "![root classes](root_classes.png)", ""]
    out += ["## Images per query kind", "", _md_table(["kind", "images"], [
        (r["key"], f"{r['images']:,}") for r in stats["query_kinds"]]), "", "![query kinds](query_kinds.png)", ""]
    tp = stats["texts_per_image"]
    out += ["## Texts per image", "", _md_table(["count", "images (alt texts)", "images (queries)"], [
        (k, f"{tp['alt_texts_hist'].get(k, 0):,}", f"{tp['queries_hist'].get(k, 0):,}")
        for k in sorted(set(tp["alt_texts_hist"]) | set(tp["queries_hist"]), key=lambda x: int(x.rstrip("+")))]),
        "", "![texts per image](texts_per_image.png)", "", "![alt text](alt_text.png)", ""]
    out += ["## Top entities", "", _md_table(["entity", "label", "images"], [
        (r["key"], r["label"], f"{r['images']:,}") for r in stats["top_entities"]]), "",
        "![top entities](top_entities.png)", ""]
    out += ["## Licences", "", _md_table(["licence", "images"], [(r["key"], f"{r['images']:,}")
                                                            for r in stats["licences"]]), "",
            "![licences](licences.png)", ""]
    return "\n".join(out)


def write_card(stats: Mapping, out: Mapping[str, str | os.PathLike], dataset: str, description: str = "",
               source: str | None = None, subset: str | None = None) -> None:
    """Write ``out["card"]`` (Markdown), ``out["stats"]`` (JSON) and every plot ``out[<plot>]``."""
    plot_all(stats, out, dataset)
    write_json(stats, out["stats"])
    write_text(render_markdown(stats, dataset, description, source, subset), out["card"])
