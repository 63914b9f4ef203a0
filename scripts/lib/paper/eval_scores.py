"""Scores of the paper's evaluation outputs: read and validate eval.csv files, aggregate them per run.

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

The ablation table (`lib.paper.tables`) and Fig. 1 (`lib.paper.fig1`) are built on these aggregates.
"""

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from lib.common.artifact_columns import EVAL_COLUMNS, EVAL_STATUSES as STATUSES  # (one home)

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
