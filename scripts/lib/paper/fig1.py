"""Fig. 1 of the paper: zero-shot accuracy against training cost, two panels (ImageNet-1k, iNaturalist 2021).

Points come from our runs' eval.csv (`points_from_eval`), from baselines evaluated by this workflow
(`baseline_points`) and from the reference points read off the paper (`read_reference_points`,
resources/paper/reference_points.csv); `fig1_annotations` computes the paper's labels ("22.5x", "+14%") from the
points that exist, and `plot_fig1` draws the figure.
"""

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from _helpers import atomic_path
from lib.paper.eval_scores import aggregate

logger = logging.getLogger(__name__)

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


def _add_legends(fig: Any, points: pd.DataFrame, colours: Mapping[str, str], ours_have_entitynet: bool) -> None:
    """Fig. 1's two legend rows below the panels: training data (the paper's families first, in the paper's
    order; our EntityNet and the paper's hollow one apart), then architectures, the Pareto front and the
    "measured here" cross. No legend without points."""
    from matplotlib.lines import Line2D

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

    _add_legends(fig, points, colours, ours_have_entitynet)
    if len(undrawn):
        names = ", ".join(f"{p.training_data} {p.arch}" for p in undrawn.itertuples(index=False))
        fig.text(0.5, 0.985, f"Not drawn (no ImageNet-1k or iNat 2021 result): {names}", ha="center", va="top",
                 fontsize=8, color="dimgrey")
        logger.warning("Fig. 1: %s not drawn (no ImageNet-1k or iNat 2021 result)", names)
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9 if len(undrawn) else 0.92, bottom=0.25, wspace=0.18)

    if out_png is not None:
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(str(tmp), format="png")
    return fig
