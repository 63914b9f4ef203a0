"""Rule ``plot_fig1``: the paper's Fig. 1 (accuracy vs training cost) from eval.csv files (lib.paper.fig1).

input.eval (our runs), input.reference (points read off the paper), input.baselines (baselines evaluated here), with
params.dataset_labels / arch_labels / baseline_labels -> output.png and output.points (the points of ours and of
the measured baselines, as CSV).
"""

import logging

import matplotlib
import pandas as pd

from _helpers import configure_logging, rule_entry, write_text
from lib.paper.eval_scores import read_eval_csvs
from lib.paper.fig1 import POINT_COLUMNS, baseline_points, fig1_annotations, plot_fig1, points_from_eval, \
    read_reference_points

log = logging.getLogger("entitynet.plot_fig1")


def _paths(value) -> list[str]:
    """A named input as a list of paths (absent: empty; one path: a list of one)."""
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(p) for p in value]


def main(snakemake) -> None:
    configure_logging(snakemake)
    matplotlib.use("Agg")
    inp, params = snakemake.input, snakemake.params
    paths = _paths(inp.get("eval"))
    ours = (
        points_from_eval(read_eval_csvs(paths), dataset_labels=params.get("dataset_labels") or None,
                         arch_labels=params.get("arch_labels") or None)
        if paths else pd.DataFrame(columns=list(POINT_COLUMNS))
    )
    ref_path = inp.get("reference")
    reference = read_reference_points(ref_path) if ref_path else pd.DataFrame(columns=list(POINT_COLUMNS))
    base_paths = _paths(inp.get("baselines"))
    measured = baseline_points(read_eval_csvs(base_paths), params.get("baseline_labels") or None) \
        if base_paths else None
    plot_fig1(ours, reference, snakemake.output.png, measured=measured)
    parts = [f for f in (ours.assign(origin="ours"),
                         None if measured is None else measured.assign(origin="measured baseline"))
             if f is not None and len(f)]
    table = pd.concat(parts, ignore_index=True) if parts else ours.assign(origin="ours")
    write_text(table.to_csv(index=False, na_rep="", lineterminator="\n"), snakemake.output.points)
    for note in fig1_annotations(ours, reference):
        log.info("Fig. 1 %s: %s vs %s -> %s", note["panel"], note["subject_label"], note["baseline_label"],
                 note["text"])


if __name__ == "__main__":
    rule_entry(main, globals())
