"""The paper's ablation table: one row per run from the eval.csv aggregates, written as CSV, Markdown and LaTeX.

Columns: the run's MACs and samples seen (in the unit that suits the table, `cost_units`), the paper's metric
columns (`lib.paper.eval_scores.AGGREGATES`) in percent, then benchmarks outside the paper's aggregates.

Tables show percent with one decimal; per metric column the best value is bold and the second best italic, as in
the paper (ranked on the displayed, rounded value, so ties share the mark).
"""

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from _helpers import write_text
from lib.paper.eval_scores import AGGREGATE_INPUTS, AGGREGATES, aggregate, other_benchmarks, validate_eval

MACS_TITLE = "MACs (1e18)"
SAMPLES_TITLE = "samples seen (M)"
# Units of the cost columns, largest first: the table takes the largest one in which its largest value is >= 1
# (the paper's runs: MACs in 1e18 and samples in millions; the CPU demo: MACs in 1e9, samples as they are).
MACS_EXPONENTS = (18, 15, 12, 9, 6, 3, 0)
SAMPLE_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, ""))
COST_PREFIXES = ("MACs", "samples seen", "images")
MISSING_MARK = "–"  # en dash, as in the brief; LaTeX gets "--"


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
        write_text(rounded.to_csv(na_rep="", float_format=f"%.{decimals}f", lineterminator="\n"), csv_path)
    if md_path is not None:
        write_text(format_table(table, "markdown", decimals), md_path)
    if tex_path is not None:
        write_text(format_table(table, "latex", decimals), tex_path)
