"""The paper's evaluation outputs: aggregate scores, the ablation table and Fig. 1, from eval.csv files.

Input is the `eval.csv` contract (docs/CONTRACTS.md), one row per (benchmark, metric) and model:

    dataset, model, benchmark, task, metric, value, variant, n_variants, samples_seen, macs_1e18, status

`value` is a fraction in [0, 1]; `status` is `ok`, `missing` or `skipped` (then `value` is empty). Where a benchmark was run
with several prompt variants (templates / no template, Latin / common names for iNat), the row already holds the best
variant (docs/PAPER_NOTES.md §13), named in `variant`.

Aggregates (the ablation table's columns, docs/PAPER_NOTES.md §13, §14.1):

| key                | column        | definition                                                                       |
|--------------------|---------------|----------------------------------------------------------------------------------|
| imagenet           | ImageNet      | imagenet1k acc1                                                                  |
| retrieval          | Retrieval     | mean over mscoco_captions, flickr30k, xm3600 of the mean of image->text R@1      |
|                    |               | (`text_retrieval_recall@1`) and text->image R@1 (`image_retrieval_recall@1`)     |
| distribution_shift | Distr. shift  | mean acc1 of imagenetv2, imagenet-r, imagenet_sketch, imagenet-a, objectnet      |
| inat2021           | iNat 2021     | inat2021 acc1 (best of Latin / common names: the row's value)                    |
| cub                | CUB           | cub200 acc1                                                                      |
| rare_species       | Rare Species  | rare_species acc1 (best over label styles and templates: the row's value)        |

Choices of ours, since the paper body is unavailable (docs/PAPER_NOTES.md §13, §19 item 7): Retrieval averages i2t and
t2i R@1 per dataset, then the three datasets with equal weight. **An aggregate with any input missing (no row, status
`missing`) is NaN**, shown as "–" in tables: it is never averaged over fewer inputs, because a mean over a subset is not
comparable with the paper's column. The `missing` column of `aggregate` names the absent inputs.

Tables show percent with one decimal; per metric column the best value is bold and the second best italic, as in
the paper (ranked on the displayed, rounded value, so ties share the mark).

Snakemake entry (bottom of the file) dispatches on `snakemake.rule` (or `params.action`); see `main`.
"""

import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------------
# eval.csv schema and benchmark names (clip_benchmark style)
# ----------------------------------------------------------------------------------------------------------------
from lib.common.artifact_columns import EVAL_COLUMNS, EVAL_STATUSES as STATUSES  # noqa: E402  (one home)

ACC1 = "acc1"
I2T_R1 = "text_retrieval_recall@1"  # image -> text: retrieve the caption for an image
T2I_R1 = "image_retrieval_recall@1"  # text -> image

IMAGENET = "imagenet1k"
DISTRIBUTION_SHIFT_BENCHMARKS: tuple[str, ...] = ("imagenetv2", "imagenet-r", "imagenet_sketch", "imagenet-a", "objectnet")
RETRIEVAL_BENCHMARKS: tuple[str, ...] = ("mscoco_captions", "flickr30k", "xm3600")
INAT2021 = "inat2021"
CUB = "cub200"
RARE_SPECIES = "rare_species"

#: Aggregate key -> column title used in the paper's ablation table, in the paper's order.
AGGREGATES: dict[str, str] = {
    "imagenet": "ImageNet",
    "retrieval": "Retrieval",
    "distribution_shift": "Distr. shift",
    "inat2021": "iNat 2021",
    "cub": "CUB",
    "rare_species": "Rare Species",
}
METRIC_TITLES: tuple[str, ...] = tuple(AGGREGATES.values())

#: Aggregate key -> the benchmarks it reads.
AGGREGATE_INPUTS: dict[str, tuple[str, ...]] = {
    "imagenet": (IMAGENET,),
    "retrieval": RETRIEVAL_BENCHMARKS,
    "distribution_shift": DISTRIBUTION_SHIFT_BENCHMARKS,
    "inat2021": (INAT2021,),
    "cub": (CUB,),
    "rare_species": (RARE_SPECIES,),
}

MACS_TITLE = "MACs (1e18)"
SAMPLES_TITLE = "samples seen (M)"
# Units of the cost columns, largest first: the table takes the largest one in which its largest value is >= 1
# (the paper's runs: MACs in 1e18 and samples in millions; the CPU demo: MACs in 1e9, samples as they are).
MACS_EXPONENTS = (18, 15, 12, 9, 6, 3, 0)
SAMPLE_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, ""))
COST_PREFIXES = ("MACs", "samples seen", "images")
MISSING_MARK = "–"  # en dash, as in the brief; LaTeX gets "--"

# ----------------------------------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------------------------------


def _atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Call `write(tmp_path)` for a temp file in the target's directory, then move it over `path`."""
    from _helpers import atomic_path

    with atomic_path(path, suffix=suffix or None) as tmp:
        write(str(tmp))


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)

    _atomic_write(path, write)


# ----------------------------------------------------------------------------------------------------------------
# reading and validating eval.csv
# ----------------------------------------------------------------------------------------------------------------


def validate_eval(eval_df: pd.DataFrame, source: str = "eval.csv") -> pd.DataFrame:
    """Check an eval.csv frame against the contract and return a normalised copy.

    Normalisation: `status` lower-cased and stripped, `value`, `samples_seen`, `macs_1e18` as float.

    Raises:
        ValueError (naming `source` and the offending rows) when columns are missing, a status is unknown, an `ok`
        row has no value, a `missing` row has one, a value lies outside [0, 1] (percent given instead of a
        fraction?), or a (dataset, model, benchmark, metric) appears twice.
    """
    missing_cols = [c for c in EVAL_COLUMNS if c not in eval_df.columns]
    if missing_cols:
        raise ValueError(f"{source}: missing column(s) {missing_cols}; expected {list(EVAL_COLUMNS)}")
    df = eval_df.copy()
    for col in ("dataset", "model", "benchmark", "metric"):
        if df[col].isna().any():
            rows = df.index[df[col].isna()].tolist()[:5]
            raise ValueError(f"{source}: empty '{col}' in row(s) {rows}")
        df[col] = df[col].astype(str).str.strip()
    df["status"] = df["status"].astype(str).str.strip().str.lower()
    bad_status = sorted(set(df["status"]) - set(STATUSES))
    if bad_status:
        raise ValueError(f"{source}: unknown status value(s) {bad_status}; expected one of {list(STATUSES)}")
    for col in ("value", "samples_seen", "macs_1e18"):
        try:
            df[col] = pd.to_numeric(df[col], errors="raise").astype(float)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source}: column '{col}' is not numeric ({exc})") from exc
    ok = df["status"] == "ok"
    ok_no_value = ok & df["value"].isna()
    if ok_no_value.any():
        raise ValueError(f"{source}: rows with status 'ok' but no value: {_describe_rows(df[ok_no_value])}")
    missing_with_value = ~ok & df["value"].notna()
    if missing_with_value.any():
        raise ValueError(
            f"{source}: rows with status '{df.loc[missing_with_value, 'status'].iloc[0]}' but a value: "
            f"{_describe_rows(df[missing_with_value])}"
        )
    out_of_range = ok & ~df["value"].between(0.0, 1.0)
    if out_of_range.any():
        raise ValueError(
            f"{source}: values must be fractions in [0, 1] (percent given?): {_describe_rows(df[out_of_range])}"
        )
    key = ["dataset", "model", "benchmark", "metric"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        raise ValueError(f"{source}: duplicate (dataset, model, benchmark, metric) rows: {_describe_rows(df[dup])}")
    return df


def _describe_rows(rows: pd.DataFrame, limit: int = 5) -> str:
    parts = [
        f"{r.dataset}/{r.model} {r.benchmark}:{r.metric}={r.value!r}" for r in rows.head(limit).itertuples(index=False)
    ]
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return "; ".join(parts) + more


def read_eval_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate one eval.csv (see `validate_eval`)."""
    df = pd.read_csv(
        path,
        dtype={"dataset": str, "model": str, "benchmark": str, "task": str, "metric": str, "variant": str,
               "status": str},
        keep_default_na=False,
        na_values={"value": [""], "samples_seen": [""], "macs_1e18": [""], "n_variants": [""]},
    )
    return validate_eval(df, source=str(path))


def read_eval_csvs(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Read, validate and concatenate several eval.csv files (duplicates across files are rejected too)."""
    frames = [read_eval_csv(p) for p in paths]
    if not frames:
        raise ValueError("no eval.csv files given")
    return validate_eval(pd.concat(frames, ignore_index=True), source="concatenated eval.csv files")


# ----------------------------------------------------------------------------------------------------------------
# aggregates
# ----------------------------------------------------------------------------------------------------------------


def _lookup(values: Mapping[tuple[str, str], float], benchmark: str, metric: str, absent: list[str]) -> float:
    value = values.get((benchmark, metric), math.nan)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        absent.append(f"{benchmark}:{metric}")
        return math.nan
    return float(value)


def _strict_mean(values: Sequence[float]) -> float:
    """Mean that is NaN as soon as one input is NaN (never a mean over fewer inputs)."""
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return float(sum(values) / len(values))


def _single_value(series: pd.Series, what: str, who: str) -> float:
    distinct = sorted(set(series.dropna().astype(float)))
    if len(distinct) > 1:
        raise ValueError(f"{who}: inconsistent {what} values {distinct}")
    return distinct[0] if distinct else math.nan


def aggregate(eval_df: pd.DataFrame) -> pd.DataFrame:
    """Aggregate eval.csv rows into the paper's ablation-table columns, one row per (dataset, model).

    Returns columns `dataset, model, samples_seen, macs_1e18, imagenet, retrieval, distribution_shift, inat2021,
    cub, rare_species, missing`; scores are fractions in [0, 1] (NaN when any input is missing); `missing` is a
    `;`-joined list of the absent `benchmark:metric` inputs ("" when complete). Rows keep first-seen order.
    """
    df = validate_eval(eval_df, source="aggregate() input")
    records = []
    for (dataset, model), group in df.groupby(["dataset", "model"], sort=False):
        who = f"{dataset}/{model}"
        ok = group[group["status"] == "ok"]
        values = {(b, m): v for b, m, v in zip(ok["benchmark"], ok["metric"], ok["value"])}
        absent: list[str] = []
        retrieval_per_dataset = [
            _strict_mean([_lookup(values, b, I2T_R1, absent), _lookup(values, b, T2I_R1, absent)])
            for b in RETRIEVAL_BENCHMARKS
        ]
        records.append({
            "dataset": dataset,
            "model": model,
            "samples_seen": _single_value(group["samples_seen"], "samples_seen", who),
            "macs_1e18": _single_value(group["macs_1e18"], "macs_1e18", who),
            "imagenet": _lookup(values, IMAGENET, ACC1, absent),
            "retrieval": _strict_mean(retrieval_per_dataset),
            "distribution_shift": _strict_mean(
                [_lookup(values, b, ACC1, absent) for b in DISTRIBUTION_SHIFT_BENCHMARKS]
            ),
            "inat2021": _lookup(values, INAT2021, ACC1, absent),
            "cub": _lookup(values, CUB, ACC1, absent),
            "rare_species": _lookup(values, RARE_SPECIES, ACC1, absent),
            "missing": ";".join(absent),
        })
    columns = ["dataset", "model", "samples_seen", "macs_1e18", *AGGREGATES, "missing"]
    return pd.DataFrame.from_records(records, columns=columns)


# ----------------------------------------------------------------------------------------------------------------
# ablation table
# ----------------------------------------------------------------------------------------------------------------


def ablation_table(eval_dfs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One table row per labelled run, in the paper's ablation-table layout.

    Args:
        eval_dfs: row label (e.g. "B-32, 50% alt text") -> that run's eval.csv frame, which must hold exactly one
            (dataset, model). Insertion order is the row order.

    Returns:
        DataFrame indexed by label (index name "run") with columns `model` ("dataset/model"), the MACs and samples
        seen in the unit that suits the table (:func:`cost_units`; the paper's runs: "MACs (1e18)", "samples seen
        (M)"), then the paper's metric columns in percent (unrounded; NaN when missing), then one column per
        benchmark outside the paper's aggregates (e.g. the demo's ``demo_heldout``: acc1, or for retrieval the mean
        of both R@1). A paper column none of whose benchmarks any run was evaluated on (not even a ``missing`` row:
        another suite) is left out.
    """
    if not eval_dfs:
        raise ValueError("ablation_table: no runs given")
    rows, evaluated = [], set()
    for label, df in eval_dfs.items():
        agg = aggregate(df)
        if len(agg) != 1:
            found = [f"{d}/{m}" for d, m in zip(agg["dataset"], agg["model"])]
            raise ValueError(f"ablation_table: run {label!r} must hold exactly one (dataset, model), found {found}")
        a = agg.iloc[0]
        evaluated |= set(validate_eval(df)["benchmark"])
        row = {"run": str(label), "model": f"{a['dataset']}/{a['model']}", "macs": a["macs_1e18"] * 1e18,
               "samples": a["samples_seen"]}
        row.update({title: 100.0 * a[key] for key, title in AGGREGATES.items()})
        row.update({bench: 100.0 * v for bench, v in other_benchmarks(df).items()})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("run")
    (macs_title, macs_unit), (samples_title, samples_unit) = cost_units(table["macs"], table["samples"])
    table = table.assign(macs=table["macs"] / macs_unit, samples=table["samples"] / samples_unit)
    table = table.rename(columns={"macs": macs_title, "samples": samples_title})
    unused = [title for key, title in AGGREGATES.items() if not set(AGGREGATE_INPUTS[key]) & evaluated]
    return table.drop(columns=unused)


def cost_units(macs: pd.Series, samples: pd.Series) -> tuple[tuple[str, float], tuple[str, float]]:
    """``((MACs title, divisor), (samples title, divisor))`` for raw MAC and sample counts: the largest unit of
    MACS_EXPONENTS / SAMPLE_UNITS in which the largest value is at least 1, so that no run reads "0.0"."""
    top_macs = float(pd.to_numeric(macs, errors="coerce").max()) if len(macs) else math.nan
    top_samples = float(pd.to_numeric(samples, errors="coerce").max()) if len(samples) else math.nan
    exp = next((e for e in MACS_EXPONENTS if not math.isnan(top_macs) and top_macs >= 10.0 ** e), 18)
    div, suffix = next(((d, u) for d, u in SAMPLE_UNITS if not math.isnan(top_samples) and top_samples >= d),
                       (1e6, "M"))
    macs_title = "MACs" if exp == 0 else f"MACs (1e{exp})"
    return (macs_title, 10.0 ** exp), (f"samples seen ({suffix})" if suffix else "samples seen", div)


def other_benchmarks(eval_df: pd.DataFrame) -> dict[str, float]:
    """{benchmark: score (fraction)} of the benchmarks that no paper aggregate reads, in first-seen order: acc1 of a
    classification benchmark, the mean of image->text and text->image R@1 of a retrieval one; NaN when its rows
    are missing."""
    df = validate_eval(eval_df)
    paper = set().union(*AGGREGATE_INPUTS.values())
    out = {}
    for bench, group in df.groupby("benchmark", sort=False):
        if bench in paper:
            continue
        ok = group[group["status"] == "ok"]
        values = dict(zip(ok["metric"], ok["value"]))
        if ACC1 in set(group["metric"]):
            out[bench] = float(values.get(ACC1, math.nan))
        else:
            out[bench] = _strict_mean([float(values.get(I2T_R1, math.nan)), float(values.get(T2I_R1, math.nan))])
    return out


def reference_ablation_table(path: str | os.PathLike) -> pd.DataFrame:
    """The paper's ablation table (resources/paper/ablation_reference.csv) in the `ablation_table` layout.

    Index: "<arch>, <text_mix>"; columns "MACs (1e18)", "images (M)", then the six metric columns (percent).
    """
    ref = pd.read_csv(path)
    needed = ["arch", "text_mix", "macs_1e18", "images_m", *AGGREGATES]
    missing = [c for c in needed if c not in ref.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    table = pd.DataFrame({
        "run": ref["arch"].astype(str) + ", " + ref["text_mix"].astype(str),
        MACS_TITLE: ref["macs_1e18"].astype(float),
        "images (M)": ref["images_m"].astype(float),
        **{title: ref[key].astype(float) for key, title in AGGREGATES.items()},
    })
    return table.set_index("run")


def highlight_ranks(table: pd.DataFrame, columns: Sequence[str] | None = None, decimals: int = 1) -> pd.DataFrame:
    """Per metric column: "best" (bold), "second" (italic) or "" for each cell.

    Ranking uses the values rounded to `decimals` (the displayed precision), higher is better, NaN never ranks.
    Bold needs at least two valued rows; italic goes to the second-highest distinct value and needs at least three
    valued rows (with two rows "second" would just mean "worst").
    """
    if columns is None:  # every numeric column but the costs (MACs, samples / images)
        columns = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
                   and not str(c).startswith(COST_PREFIXES)]
    columns = [c for c in columns if c in table.columns]
    marks = pd.DataFrame("", index=table.index, columns=columns)
    for col in columns:
        rounded = pd.to_numeric(table[col], errors="coerce").round(decimals)
        valid = rounded.dropna()
        if len(valid) < 2:
            continue
        distinct = sorted(set(valid), reverse=True)
        marks.loc[rounded == distinct[0], col] = "best"
        if len(valid) >= 3 and len(distinct) >= 2:
            marks.loc[rounded == distinct[1], col] = "second"
    return marks


def _format_number(value: Any, decimals: int = 1) -> str | None:
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.{decimals}f}"
    return str(value)


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _markdown_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def format_table(table: pd.DataFrame, style: str, decimals: int = 1) -> str:
    """Render a table as "markdown" or "latex" with best / second-best marks on the metric columns.

    Numbers show `decimals` decimals; NaN shows "–" (Markdown) or "--" (LaTeX, an en dash). The index is the first
    column, titled with the index name.
    """
    if style not in ("markdown", "latex"):
        raise ValueError(f"unknown table style {style!r}; expected 'markdown' or 'latex'")
    marks = highlight_ranks(table, decimals=decimals)
    header = [table.index.name or "", *map(str, table.columns)]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    body: list[list[str]] = []
    for idx, row in table.iterrows():
        cells = [latex_escape(idx) if style == "latex" else _markdown_escape(idx)]
        for col in table.columns:
            text = _format_number(row[col], decimals)
            mark = marks.at[idx, col] if col in marks.columns else ""
            if text is None:
                cells.append("--" if style == "latex" else MISSING_MARK)
                continue
            if style == "latex":
                text = latex_escape(text)
                text = {"best": rf"\textbf{{{text}}}", "second": rf"\textit{{{text}}}"}.get(mark, text)
            else:
                text = _markdown_escape(text)
                text = {"best": f"**{text}**", "second": f"*{text}*"}.get(mark, text)
            cells.append(text)
        body.append(cells)
    if style == "markdown":
        align = ["---"] + ["---:" if n else "---" for n in numeric]
        lines = ["| " + " | ".join(_markdown_escape(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines) + "\n"
    spec = "l" + "".join("r" if n else "l" for n in numeric)
    lines = [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
        *(" & ".join(cells) + r" \\" for cells in body),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def write_table(
    table: pd.DataFrame,
    csv_path: str | os.PathLike | None,
    md_path: str | os.PathLike | None,
    tex_path: str | os.PathLike | None,
    decimals: int = 1,
) -> None:
    """Write a table (e.g. from `ablation_table`) as CSV, Markdown and LaTeX (booktabs); None skips a format.

    CSV: machine-readable, numbers rounded to `decimals`, NaN as an empty cell, no marks. Markdown / LaTeX: see
    `format_table`. All writes are atomic.
    """
    if csv_path is not None:
        rounded = table.copy()
        for col in rounded.columns:
            if pd.api.types.is_numeric_dtype(rounded[col]):
                rounded[col] = rounded[col].round(decimals)
        _atomic_write_text(csv_path, rounded.to_csv(na_rep="", float_format=f"%.{decimals}f", lineterminator="\n"))
    if md_path is not None:
        _atomic_write_text(md_path, format_table(table, "markdown", decimals))
    if tex_path is not None:
        _atomic_write_text(tex_path, format_table(table, "latex", decimals))


# ----------------------------------------------------------------------------------------------------------------
# Fig. 1 data
# ----------------------------------------------------------------------------------------------------------------
POINT_COLUMNS: tuple[str, ...] = ("training_data", "arch", "macs_1e18", "imagenet_top1", "inat2021_top1")

_ARCH_RE = re.compile(r"(?i)(?:(?<![a-z])|(?<=vit))([bslhm])[-_/]?(8|14|16|32)(?!\d)")


def normalise_arch(name: str) -> str | None:
    """"ViT-B-32", "ViT-B-32-quickgelu", "B/32", "b32", "entitynet_b16_alt50" -> "B-32" / "B-16"; None if unknown."""
    match = _ARCH_RE.search(str(name))
    if match is None:
        return None
    return f"{match.group(1).upper()}-{match.group(2)}"


def points_from_eval(
    eval_df: pd.DataFrame,
    dataset_labels: Mapping[str, str] | None = None,
    arch_labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Fig. 1 points (percent) from eval.csv rows: imagenet1k and inat2021 acc1 plus macs_1e18 per (dataset, model).

    Args:
        eval_df: eval.csv rows of one or more models.
        dataset_labels: dataset key -> legend label (e.g. {"entitynet": "EntityNet"}); default: the key.
        arch_labels: model key -> architecture (open_clip name such as "ViT-B-32-ctx32", or "B-32"); normalised to
            "B-32" style when recognisable, else kept as given. Default: parsed from the model key ("vitb32-alt0").

    Returns:
        Columns `training_data, arch, macs_1e18, imagenet_top1, inat2021_top1, dataset, model`; a missing
        benchmark gives NaN (that panel then skips the point).
    """
    dataset_labels = dict(dataset_labels or {})
    arch_labels = dict(arch_labels or {})
    agg = aggregate(eval_df)
    rows = []
    for a in agg.itertuples(index=False):
        given = arch_labels.get(a.model)
        # an explicit label that is not a known ViT size is kept as is (drawn with the "other" marker)
        arch = normalise_arch(given if given is not None else a.model) or given
        if arch is None:
            raise ValueError(
                f"cannot tell the architecture of model {a.model!r} (dataset {a.dataset!r}); "
                "pass arch_labels={model: 'ViT-B-32', ...}"
            )
        rows.append({
            "training_data": dataset_labels.get(a.dataset, a.dataset),
            "arch": arch,
            "macs_1e18": a.macs_1e18,
            "imagenet_top1": 100.0 * a.imagenet,
            "inat2021_top1": 100.0 * a.inat2021,
            "dataset": a.dataset,
            "model": a.model,
        })
    return pd.DataFrame(rows, columns=[*POINT_COLUMNS, "dataset", "model"])


def baseline_points(eval_df: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Fig. 1 points of measured baselines (rule evaluate_baseline: dataset ``baselines``, model = the tag
    ``<arch>__<pretrained>``): the architecture from the tag, the training-data label from ``labels[tag]`` (e.g.
    ``{"ViT-B-32__openai": "OpenAI"}``), else the pretrained part of the tag."""
    if eval_df is None or len(eval_df) == 0:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "dataset", "model"])
    tags = list(dict.fromkeys(eval_df["model"]))
    arch = {t: t.split("__", 1)[0] for t in tags}
    pts = points_from_eval(eval_df, arch_labels=arch)
    pts["training_data"] = [(labels or {}).get(t) or t.split("__", 1)[-1] for t in pts["model"]]
    return pts


def read_reference_points(path: str | os.PathLike) -> pd.DataFrame:
    """Read resources/paper/reference_points.csv (columns: POINT_COLUMNS + source, approximate, note)."""
    ref = pd.read_csv(path)
    missing = [c for c in POINT_COLUMNS if c not in ref.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected at least {list(POINT_COLUMNS)}")
    return ref


#: Dataset family -> (match pattern, legend label, face colour). First match wins.
DATASET_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("entitynet", "EntityNet", "tab:blue"),
    ("cc12m", "CC12M", "tab:orange"),
    ("datacomp", "DataComp", "tab:green"),
    ("openai", "OpenAI", "tab:red"),
    ("dfn", "DFN", "tab:brown"),
)
OTHER_COLOURS: tuple[str, ...] = ("tab:purple", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "gold", "navy")
ARCH_MARKERS: dict[str, str] = {"B-32": "o", "B-16": "D", "L-14": "s", "H-14": "X"}
OTHER_MARKER = "^"
PANELS: tuple[tuple[str, str], ...] = (
    ("imagenet_top1", "Generic domain – ImageNet-1k"),
    ("inat2021_top1", "Expert domain – iNaturalist 2021"),
)


def dataset_family(training_data: str) -> str:
    """Legend family of a training-data label: "EntityNet", "CC12M", "DataComp", "OpenAI", "DFN", or the label."""
    low = str(training_data).lower()
    for pattern, family, _ in DATASET_FAMILIES:
        if pattern in low:
            return family
    return str(training_data)


def family_colours(families: Iterable[str]) -> dict[str, str]:
    """Colour per family: fixed for the paper's five, then OTHER_COLOURS in order of first appearance."""
    known = {family: colour for _, family, colour in DATASET_FAMILIES}
    colours: dict[str, str] = {}
    others = 0
    for family in families:
        if family in colours:
            continue
        if family in known:
            colours[family] = known[family]
        else:
            colours[family] = OTHER_COLOURS[others % len(OTHER_COLOURS)]
            others += 1
    return colours


def arch_marker(arch: str) -> str:
    """Marker for an architecture (circle B-32, diamond B-16, square L-14, cross H-14, '^' otherwise)."""
    return ARCH_MARKERS.get(normalise_arch(arch) or str(arch), OTHER_MARKER)


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the cost/accuracy Pareto front (lower cost, higher accuracy), ordered by cost.

    A point is on the front when no other point is at most as costly and at least as accurate, and strictly better
    in one of the two. NaN points are ignored.
    """
    pts = [(float(c), float(a), i) for i, (c, a) in enumerate(zip(costs, accuracies))
           if not (math.isnan(float(c)) or math.isnan(float(a)))]
    pts.sort(key=lambda p: (p[0], -p[1]))
    front: list[int] = []
    best = -math.inf
    for _cost, acc, i in pts:
        if acc > best:
            front.append(i)
            best = acc
    return front


def _combined_points(our_points: pd.DataFrame, reference: pd.DataFrame,
                     measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ours, reference and measured-baseline points in one frame with `origin` ("ours"/"reference"/"measured"),
    `family` and normalised `arch`."""
    frames = []
    for origin, frame in (("ours", our_points), ("reference", reference), ("measured", measured)):
        if frame is None or len(frame) == 0:
            continue
        missing = [c for c in POINT_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{origin} points lack column(s) {missing}")
        part = frame[list(POINT_COLUMNS)].copy()
        part["origin"] = origin
        frames.append(part)
    if not frames:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "origin", "family"])
    points = pd.concat(frames, ignore_index=True)
    for col in ("macs_1e18", "imagenet_top1", "inat2021_top1"):
        points[col] = pd.to_numeric(points[col], errors="coerce").astype(float)
    points["arch"] = [normalise_arch(a) or str(a) for a in points["arch"]]
    points["family"] = [dataset_family(t) for t in points["training_data"]]
    return points


#: (kind, panel column, subject (family, arch), baseline (family, arch)) as in the paper's Fig. 1.
FIG1_COMPARISONS: tuple[tuple[str, str, tuple[str, str], tuple[str, str]], ...] = (
    ("cost_ratio", "imagenet_top1", ("EntityNet", "B-32"), ("OpenAI", "B-32")),
    ("accuracy_gain", "inat2021_top1", ("EntityNet", "B-32"), ("DataComp", "B-32")),
    ("accuracy_gain", "inat2021_top1", ("EntityNet", "B-16"), ("DataComp", "B-16")),
    ("accuracy_gain", "inat2021_top1", ("EntityNet", "B-16"), ("DFN", "H-14")),
)


def _pick(points: pd.DataFrame, family: str, arch: str, column: str) -> pd.Series | None:
    """Best-accuracy point of (family, arch) with cost and `column` known; ours preferred over reference."""
    usable = points[
        (points["family"] == family) & (points["arch"] == arch)
        & points["macs_1e18"].notna() & points[column].notna() & (points["macs_1e18"] > 0)
    ]
    for origin in ("ours", "reference"):
        candidates = usable[usable["origin"] == origin]
        if len(candidates):
            return candidates.loc[candidates[column].idxmax()]
    return None


def fig1_annotations(our_points: pd.DataFrame, reference: pd.DataFrame) -> list[dict[str, Any]]:
    """The paper's Fig. 1 annotations, computed from the points that exist.

    For each comparison in FIG1_COMPARISONS both sides are picked with `_pick` (our points first, then the
    reference; the most accurate when several match, e.g. DataComp-XL over DataComp-M). Cost ratios read
    "<baseline MACs / subject MACs>x" with one decimal, accuracy gains "<+/-difference in points>%" rounded to
    an integer, as printed in the paper ("22.5x", "+14%"). Comparisons with a side absent are skipped.

    Returns dicts with keys kind, panel, text, value, subject (x, y), baseline (x, y), subject_label, baseline_label.
    """
    points = _combined_points(our_points, reference)
    notes = []
    for kind, column, (s_family, s_arch), (b_family, b_arch) in FIG1_COMPARISONS:
        if points.empty:
            break
        subject = _pick(points, s_family, s_arch, column)
        baseline = _pick(points, b_family, b_arch, column)
        if subject is None or baseline is None:
            continue
        if kind == "cost_ratio":
            value = baseline["macs_1e18"] / subject["macs_1e18"]
            text = f"{value:.1f}x"
        else:
            value = subject[column] - baseline[column]
            text = f"{value:+.0f}%"
        notes.append({
            "kind": kind,
            "panel": column,
            "text": text,
            "value": float(value),
            "subject": (float(subject["macs_1e18"]), float(subject[column])),
            "baseline": (float(baseline["macs_1e18"]), float(baseline[column])),
            "subject_label": f"{subject['training_data']} {s_arch}",
            "baseline_label": f"{baseline['training_data']} {b_arch}",
        })
    return notes


def _draw_annotation(ax: Any, note: Mapping[str, Any]) -> None:
    (sx, sy), (bx, by) = note["subject"], note["baseline"]
    arrow = dict(arrowstyle="<->", color="black", lw=1.0, shrinkA=4, shrinkB=4)
    if note["kind"] == "cost_ratio":
        # horizontal arrow at the subject's accuracy, from the subject's cost to the baseline's cost; label below
        ax.annotate("", xy=(sx, sy), xytext=(bx, sy), arrowprops=arrow)
        ax.plot([bx, bx], [sy, by], ls=":", color="black", lw=0.8)
        ax.annotate(note["text"], xy=(math.sqrt(sx * bx), sy), xytext=(0, -5), textcoords="offset points",
                    ha="center", va="top", fontsize=10, fontweight="bold")
    else:
        # vertical arrow at the baseline's cost, from the baseline's accuracy to the subject's; label to the right
        ax.plot([sx, bx], [sy, sy], ls=":", color="black", lw=0.8)
        ax.annotate("", xy=(bx, sy), xytext=(bx, by), arrowprops=arrow)
        ax.annotate(note["text"], xy=(bx, (sy + by) / 2), xytext=(4, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=10, fontweight="bold")


def plot_fig1(our_points: pd.DataFrame, reference: pd.DataFrame, out_png: str | os.PathLike | None = None,
              measured: pd.DataFrame | None = None):
    """Draw Fig. 1 (two panels, accuracy vs training cost) and optionally save it as PNG (atomically).

    Args:
        our_points: Fig. 1 points of our runs (POINT_COLUMNS; e.g. from `points_from_eval`), may be empty.
        reference: reference points (POINT_COLUMNS; e.g. `read_reference_points`), may be empty.
        out_png: where to save; None only returns the figure.
        measured: baselines evaluated by this workflow (`baseline_points`), drawn beside the paper's read-off points
            with a black cross over the marker ("measured here" in the legend; the others "read off the paper").

    Colour encodes the training-data family (EntityNet blue with a black outline, CC12M orange, DataComp green,
    OpenAI red, DFN brown, others further colours), the marker the architecture. When we have EntityNet points of
    our own, the paper's EntityNet reference points are drawn hollow ("EntityNet (paper)"). The grey dashed line is
    the Pareto front over all plotted points of a panel; annotations come from `fig1_annotations`.

    Returns:
        the matplotlib Figure (Agg canvas, not registered with pyplot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    points = _combined_points(our_points, reference, measured)
    # Only points with a cost and at least one panel's accuracy count, for the axes and the legends: a run of ours
    # without ImageNet-1k and iNat 2021 results (the demo, evaluated on its own held-out photos) is named above the
    # panels instead, and must not stretch the cost axis by nine decades.
    drawable = (points["macs_1e18"] > 0) & points[[c for c, _ in PANELS]].notna().any(axis=1)
    undrawn = points[(points["origin"] == "ours") & ~drawable]
    points = points[drawable].reset_index(drop=True)
    ours_have_entitynet = bool(((points["origin"] == "ours") & (points["family"] == "EntityNet")).any())
    colours = family_colours(points["family"])

    fig = Figure(figsize=(11.5, 4.9), dpi=150)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    notes = fig1_annotations(our_points, reference)
    costs = points["macs_1e18"].dropna()
    for ax, (column, title) in zip(axes, PANELS):
        usable = points[points["macs_1e18"].notna() & (points["macs_1e18"] > 0) & points[column].notna()]
        skipped = len(points) - len(usable)
        if skipped:
            logger.warning("%s: %d point(s) without cost or accuracy are not drawn", title, skipped)
        front = pareto_front(usable["macs_1e18"].tolist(), usable[column].tolist())
        if len(front) >= 2:
            fp = usable.iloc[front]
            ax.plot(fp["macs_1e18"], fp[column], ls="--", color="grey", lw=1.2, zorder=1, label="_pareto")
        for p in usable.itertuples(index=False):
            colour = colours[p.family]
            hollow = p.family == "EntityNet" and p.origin == "reference" and ours_have_entitynet
            is_entitynet = p.family == "EntityNet"
            ax.scatter(
                [p.macs_1e18], [getattr(p, column)],
                marker=arch_marker(p.arch), s=80 if is_entitynet else 55,
                facecolors="none" if hollow else colour,
                edgecolors=colour if hollow else ("black" if is_entitynet else colour),
                linewidths=1.4 if is_entitynet else 0.8, zorder=3 if p.origin == "ours" else 2,
            )
            if p.origin == "measured":
                ax.scatter([p.macs_1e18], [getattr(p, column)], marker="x", s=30, color="black", linewidths=1.2,
                           zorder=4, label="_measured")
        panel_notes = [note for note in notes if note["panel"] == column]
        for note in panel_notes:
            _draw_annotation(ax, note)
        ax.set_xscale("log")
        if len(costs):
            # one cost range for both panels, with room for the labels right of the rightmost gain arrow
            right = max([costs.max()] + [n["baseline"][0] * 4 for n in notes if n["kind"] == "accuracy_gain"])
            ax.set_xlim(costs.min() / 1.6, right * 1.6)
        ax.set_title(title)
        ax.set_xlabel("Training cost (1e18 MACs)")
        ax.set_ylabel("Zero-shot top-1 accuracy (%)")
        ax.grid(True, which="major", alpha=0.3)
        ax.grid(True, which="minor", alpha=0.1)

    # legend row 1: training data (the paper's families first, in the paper's order); row 2: architectures
    known = [family for _, family, _ in DATASET_FAMILIES]
    ordered = [f for f in known if f in colours] + [f for f in colours if f not in known]
    data_handles, data_labels = [], []
    for family in ordered:
        is_entitynet = family == "EntityNet"
        data_handles.append(Line2D([], [], ls="", marker="o", markersize=8, markerfacecolor=colours[family],
                                   markeredgecolor="black" if is_entitynet else colours[family]))
        data_labels.append(f"{family} (ours)" if is_entitynet and ours_have_entitynet else family)
        if is_entitynet and ours_have_entitynet and (
            (points["origin"] == "reference") & (points["family"] == "EntityNet")
        ).any():
            data_handles.append(Line2D([], [], ls="", marker="o", markersize=8, markerfacecolor="none",
                                       markeredgecolor=colours["EntityNet"]))
            data_labels.append("EntityNet (paper)")
    arch_handles, arch_labels = [], []
    present = set(points["arch"])
    for arch in [a for a in ARCH_MARKERS if a in present] + sorted(present - set(ARCH_MARKERS)):
        arch_handles.append(Line2D([], [], ls="", marker=arch_marker(arch), markersize=8,
                                   markerfacecolor="lightgrey", markeredgecolor="black"))
        arch_labels.append(arch)
    if len(points):
        arch_handles.append(Line2D([], [], ls="--", color="grey"))
        arch_labels.append("Pareto front")
        if (points["origin"] == "measured").any():
            arch_handles.append(Line2D([], [], ls="", marker="x", color="black"))
            arch_labels.append("measured here (others: read off the paper)")
        fig.legend(data_handles, data_labels, loc="lower center", bbox_to_anchor=(0.5, 0.065),
                   ncol=len(data_handles), frameon=False, fontsize=9)
        fig.legend(arch_handles, arch_labels, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                   ncol=len(arch_handles), frameon=False, fontsize=9)
    if len(undrawn):
        names = ", ".join(f"{p.training_data} {p.arch}" for p in undrawn.itertuples(index=False))
        fig.text(0.5, 0.985, f"Not drawn (no ImageNet-1k or iNat 2021 result): {names}", ha="center", va="top",
                 fontsize=8, color="dimgrey")
        logger.warning("Fig. 1: %s not drawn (no ImageNet-1k or iNat 2021 result)", names)
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9 if len(undrawn) else 0.92, bottom=0.25, wspace=0.18)

    if out_png is not None:
        _atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Snakemake entry
# ----------------------------------------------------------------------------------------------------------------


def _named(container: Any, name: str, default: Any = None) -> Any:
    """`container.name` for a Snakemake Namedlist, `default` when it is not set."""
    try:
        return getattr(container, name)
    except AttributeError:
        return default


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def _main_aggregate(smk: Any) -> None:
    """input.eval: eval.csv files -> output.csv: `aggregate` of all of them (fractions, full precision)."""
    df = read_eval_csvs(_as_list(_named(smk.input, "eval", list(smk.input))))
    out = _named(smk.output, "csv", smk.output[0])
    agg = aggregate(df)
    _atomic_write_text(out, agg.to_csv(index=False, na_rep="", lineterminator="\n"))


def _main_ablation(smk: Any) -> None:
    """input.eval + params.labels (same order) -> output.csv / output.md / output.tex."""
    paths = _as_list(_named(smk.input, "eval"))
    labels = [str(label) for label in _as_list(_named(smk.params, "labels"))]
    if len(paths) != len(labels):
        raise ValueError(f"ablation table: {len(paths)} eval.csv inputs but {len(labels)} params.labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"ablation table: params.labels are not unique: {labels}")
    table = ablation_table({label: read_eval_csv(path) for label, path in zip(labels, paths)})
    write_table(table, smk.output.csv, smk.output.md, smk.output.tex)


def _main_fig1(smk: Any) -> None:
    """input.eval (+ input.reference) with params.dataset_labels / params.arch_labels -> output.png (+ output.points)."""
    paths = _as_list(_named(smk.input, "eval"))
    ours = (
        points_from_eval(
            read_eval_csvs(paths),
            dataset_labels=_named(smk.params, "dataset_labels") or None,
            arch_labels=_named(smk.params, "arch_labels") or None,
        )
        if paths else pd.DataFrame(columns=list(POINT_COLUMNS))
    )
    ref_path = _named(smk.input, "reference")
    reference = read_reference_points(ref_path) if ref_path else pd.DataFrame(columns=list(POINT_COLUMNS))
    base_paths = _as_list(_named(smk.input, "baselines"))
    measured = baseline_points(read_eval_csvs(base_paths), _named(smk.params, "baseline_labels") or None) \
        if base_paths else None
    plot_fig1(ours, reference, _named(smk.output, "png", smk.output[0]), measured=measured)
    points_out = _named(smk.output, "points")
    if points_out:
        parts = [f for f in (ours.assign(origin="ours"),
                             None if measured is None else measured.assign(origin="measured baseline")) if
                 f is not None and len(f)]
        table = pd.concat(parts, ignore_index=True) if parts else ours.assign(origin="ours")
        _atomic_write_text(points_out, table.to_csv(index=False, na_rep="", lineterminator="\n"))
    for note in fig1_annotations(ours, reference):
        logger.info("Fig. 1 %s: %s vs %s -> %s", note["panel"], note["subject_label"], note["baseline_label"],
                    note["text"])


#: Snakemake rule name (or params.action) -> handler.
ACTIONS: dict[str, Callable[[Any], None]] = {
    "aggregate_eval": _main_aggregate,
    "ablation_table": _main_ablation,
    "plot_fig1": _main_fig1,
}


def main(smk: Any) -> None:
    """Snakemake entry: run the handler named by `params.action`, else by the rule name (see ACTIONS)."""
    log = _as_list(_named(smk, "log"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=str(log[0]) if log else None,
    )
    action = _named(smk.params, "action") or smk.rule
    if action not in ACTIONS:
        raise ValueError(f"paper_outputs.py: no action for rule {action!r}; use one of {sorted(ACTIONS)} "
                         "(rule name or params.action)")
    import matplotlib

    matplotlib.use("Agg")
    ACTIONS[action](smk)


if __name__ == "__main__":
    from _helpers import rule_entry

    rule_entry(main, globals())
