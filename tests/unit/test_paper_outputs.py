"""Unit tests for the paper outputs: aggregates (lib.paper.eval_scores), ablation table writers (lib.paper.tables),
Fig. 1 (lib.paper.fig1) and the rule entries scripts/ablation_table.py, scripts/plot_fig1.py."""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

import ablation_table as ablation_entry
import plot_fig1 as fig1_entry
from lib.paper import eval_scores as scores, fig1, tables

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "eval_csv"
REFERENCE_POINTS = REPO / "resources" / "paper" / "reference_points.csv"
ABLATION_REFERENCE = REPO / "resources" / "paper" / "ablation_reference.csv"


def fixture(name: str) -> pd.DataFrame:
    return scores.read_eval_csv(FIXTURES / f"{name}.csv")


@pytest.fixture()
def three_runs() -> dict:
    return {
        "B-32, 50% alt text": fixture("entitynet_b32_alt50"),
        "B-32, 100% alt text": fixture("entitynet_b32_alt100"),
        "B-32, 0% alt text": fixture("entitynet_b32_alt0"),
    }


def empty_points() -> pd.DataFrame:
    return pd.DataFrame(columns=list(fig1.POINT_COLUMNS))


# --------------------------------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------------------------------


def test_aggregate_complete_run_hand_computed():
    agg = scores.aggregate(fixture("entitynet_b32_alt50"))
    assert len(agg) == 1
    row = agg.iloc[0]
    assert (row["dataset"], row["model"]) == ("entitynet", "b32_alt50")
    assert row["imagenet"] == pytest.approx(0.615)
    # (0.40+0.30)/2, (0.50+0.40)/2, (0.32+0.30)/2 -> mean(0.35, 0.45, 0.31)
    assert row["retrieval"] == pytest.approx(0.37)
    # (0.52 + 0.60 + 0.45 + 0.20 + 0.28) / 5
    assert row["distribution_shift"] == pytest.approx(0.41)
    assert row["inat2021"] == pytest.approx(0.261)
    assert row["cub"] == pytest.approx(0.795)
    assert row["rare_species"] == pytest.approx(0.427)
    assert row["samples_seen"] == 588_600_000
    assert row["macs_1e18"] == pytest.approx(13.05)
    assert row["missing"] == ""


def test_aggregate_missing_inputs_give_nan_not_a_partial_mean():
    row = scores.aggregate(fixture("entitynet_b32_alt0")).iloc[0]
    # objectnet is status 'missing': the other four shift sets must NOT be averaged on their own
    assert math.isnan(row["distribution_shift"])
    # the xm3600 text->image row is absent altogether
    assert math.isnan(row["retrieval"])
    assert row["imagenet"] == pytest.approx(0.557)
    assert row["rare_species"] == pytest.approx(0.297)
    assert set(row["missing"].split(";")) == {"objectnet:acc1", "xm3600:image_retrieval_recall@1"}


def test_aggregate_several_models_in_one_frame_keeps_order():
    df = pd.concat([fixture("entitynet_b32_alt100"), fixture("entitynet_b32_alt50")], ignore_index=True)
    agg = scores.aggregate(df)
    assert agg["model"].tolist() == ["b32_alt100", "b32_alt50"]
    # (0.37 + 0.48 + 0.32) / 3 and (0.50 + 0.55 + 0.42 + 0.18 + 0.255) / 5
    assert agg.iloc[0]["retrieval"] == pytest.approx(0.39)
    assert agg.iloc[0]["distribution_shift"] == pytest.approx(0.381)
    assert agg.iloc[1]["retrieval"] == pytest.approx(0.37)


def test_aggregate_partial_model_lists_every_absent_input():
    row = scores.aggregate(fixture("entitynet_vitb16")).iloc[0]
    assert row["imagenet"] == pytest.approx(0.662)
    assert row["inat2021"] == pytest.approx(0.32)
    for key in ("retrieval", "distribution_shift", "cub", "rare_species"):
        assert math.isnan(row[key]), key
    absent = row["missing"].split(";")
    assert "cub200:acc1" in absent and "objectnet:acc1" in absent and "flickr30k:text_retrieval_recall@1" in absent
    assert len(absent) == 1 + 5 + 1 + 6  # cub, five shift sets, rare species, six retrieval metrics


def _mutate(name: str, changes: dict) -> pd.DataFrame:
    df = fixture(name).copy()
    for (row, col), value in changes.items():
        df.loc[row, col] = value
    return df


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: fixture("entitynet_b32_alt50").drop(columns=["status"]), "missing column"),
        (lambda: _mutate("entitynet_b32_alt50", {(0, "value"): 61.5}), "fractions"),
        (lambda: _mutate("entitynet_b32_alt50", {(0, "value"): float("nan")}), "status 'ok' but no value"),
        (lambda: _mutate("entitynet_b32_alt0", {(5, "value"): 0.3}), "status 'missing' but a value"),
        (lambda: _mutate("entitynet_b32_alt50", {(0, "status"): "failed"}), "unknown status"),
        (lambda: _mutate("entitynet_b32_alt50", {(3, "macs_1e18"): 14.0}), "inconsistent macs_1e18"),
        (
            lambda: pd.concat([fixture("entitynet_b32_alt50"), fixture("entitynet_b32_alt50").head(1)]),
            "duplicate",
        ),
    ],
    ids=["no-status-column", "percent", "ok-without-value", "missing-with-value", "bad-status",
         "inconsistent-macs", "duplicate-row"],
)
def test_aggregate_rejects_bad_eval_frames(make, message):
    with pytest.raises(ValueError, match=message):
        scores.aggregate(make())


def test_read_eval_csv_names_the_file(tmp_path):
    bad = tmp_path / "eval.csv"
    bad.write_text("dataset,model\nx,y\n")
    with pytest.raises(ValueError, match=str(bad)):
        scores.read_eval_csv(bad)


# --------------------------------------------------------------------------------------------------------------
# ablation table and writers
# --------------------------------------------------------------------------------------------------------------


def test_ablation_table_layout_and_percent(three_runs):
    table = tables.ablation_table(three_runs)
    assert table.index.tolist() == list(three_runs)
    assert table.index.name == "run"
    assert table.columns.tolist() == ["model", tables.MACS_TITLE, tables.SAMPLES_TITLE, *scores.METRIC_TITLES]
    first = table.loc["B-32, 50% alt text"]
    assert first["model"] == "entitynet/b32_alt50"
    assert first[tables.SAMPLES_TITLE] == pytest.approx(588.6)
    assert first["Retrieval"] == pytest.approx(37.0)
    assert first["Distr. shift"] == pytest.approx(41.0)
    assert math.isnan(table.loc["B-32, 0% alt text", "Retrieval"])


def test_ablation_table_rejects_a_run_with_two_models():
    both = pd.concat([fixture("entitynet_b32_alt50"), fixture("entitynet_b32_alt100")], ignore_index=True)
    with pytest.raises(ValueError, match="exactly one"):
        tables.ablation_table({"mixed": both})


def test_highlight_ranks_bold_best_italic_second_and_nan(three_runs):
    marks = tables.highlight_ranks(tables.ablation_table(three_runs))
    assert marks.loc["B-32, 50% alt text", "ImageNet"] == "best"
    assert marks.loc["B-32, 100% alt text", "ImageNet"] == "second"
    assert marks.loc["B-32, 0% alt text", "ImageNet"] == ""
    assert marks.loc["B-32, 100% alt text", "Retrieval"] == "best"  # 39.0 vs 37.0 vs NaN
    # only two valued rows: the best is bold, the other is not called "second"
    assert marks.loc["B-32, 50% alt text", "Distr. shift"] == "best"
    assert marks.loc["B-32, 100% alt text", "Distr. shift"] == ""
    assert marks.loc["B-32, 0% alt text", "iNat 2021"] == "second"  # 24.2 between 26.1 and 22.9
    assert tables.MACS_TITLE not in marks.columns  # cost is not ranked


def test_highlight_ties_at_displayed_precision_share_the_mark():
    table = pd.DataFrame({"ImageNet": [61.54, 61.46, 50.0, 40.0]}, index=list("abcd"))
    marks = tables.highlight_ranks(table)
    assert marks["ImageNet"].tolist() == ["best", "best", "second", ""]


def test_paper_ablation_reference_reproduces_the_papers_marks():
    table = tables.reference_ablation_table(ABLATION_REFERENCE)
    marks = tables.highlight_ranks(table)
    # docs/PAPER_NOTES.md §14.1: bold = best, italic = second best, per column
    expected = {
        "B-32, 50% alt text": ["best", "second", "best", "best", "best", "best"],
        "B-32, 100% alt text": ["second", "best", "second", "", "second", "second"],
        "B-32, 0% alt text": ["", "", "", "second", "", ""],
    }
    for run, row in expected.items():
        assert marks.loc[run, list(scores.METRIC_TITLES)].tolist() == row, run


def test_write_table_csv_md_tex(tmp_path, three_runs):
    table = tables.ablation_table(three_runs)
    csv, md, tex = tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "sub" / "t.tex"
    tables.write_table(table, csv, md, tex)

    back = pd.read_csv(csv, index_col="run")
    assert back.index.tolist() == list(three_runs)
    assert back.loc["B-32, 50% alt text", "ImageNet"] == pytest.approx(61.5)
    assert back.loc["B-32, 100% alt text", "Distr. shift"] == pytest.approx(38.1)
    assert math.isnan(back.loc["B-32, 0% alt text", "Retrieval"])
    assert "**" not in csv.read_text()

    md_lines = md.read_text(encoding="utf-8").splitlines()
    assert md_lines[0].startswith("| run | model | MACs (1e18) |")
    row50 = next(line for line in md_lines if line.startswith("| B-32, 50% alt text"))
    row0 = next(line for line in md_lines if line.startswith("| B-32, 0% alt text"))
    # Retrieval has two valued rows only (0% alt is "–"): 39.0 bold, 37.0 unmarked
    assert "**61.5**" in row50 and "| 37.0 |" in row50 and "**41.0**" in row50
    assert "| 13.1 |" in row50 and "| 588.6 |" in row50  # cost and samples: one decimal, never marked
    assert row0.count(tables.MISSING_MARK) == 2 and "*24.2*" in row0

    tex_text = tex.read_text(encoding="utf-8")
    assert tex_text.startswith(r"\begin{tabular}{llrrrrrrrr}")  # run, model left; numbers right
    assert r"B-32, 50\% alt text" in tex_text and "50% alt" not in tex_text.replace(r"\%", "")
    assert r"\textbf{61.5}" in tex_text and r"\textit{59.1}" in tex_text and r"\textit{24.2}" in tex_text
    assert r"entitynet/b32\_alt50" in tex_text
    assert tex_text.count("--") == 2 and r"\toprule" in tex_text and r"\bottomrule" in tex_text
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_format_table_rejects_unknown_style(three_runs):
    with pytest.raises(ValueError, match="unknown table style"):
        tables.format_table(tables.ablation_table(three_runs), "html")


# --------------------------------------------------------------------------------------------------------------
# Fig. 1
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, arch",
    [("ViT-B-32", "B-32"), ("ViT-B-16-quickgelu", "B-16"), ("b32_alt50", "B-32"), ("entitynet_vitb16", "B-16"),
     ("vitb32-alt0", "B-32"), ("ViT-B-32-ctx32", "B-32"), ("EntityNet-tiny-ctx32", None),
     ("ViT-L-14", "L-14"), ("H/14", "H-14"), ("B-32", "B-32"), ("RN50", None), ("ViT-bigG-14", None)],
)
def test_normalise_arch(name, arch):
    assert fig1.normalise_arch(name) == arch


def test_pareto_front():
    costs = [10, 3, 300, 30, 20, float("nan")]
    accs = [60, 30, 70, 50, 65, 99]
    # 3 (30) -> 10 (60) -> 20 (65) -> 300 (70); 30 (50) is dominated by 10 (60); NaN ignored
    assert fig1.pareto_front(costs, accs) == [1, 0, 4, 2]


def test_points_from_eval_labels_and_arch():
    df = pd.concat([fixture("entitynet_b32_alt50"), fixture("entitynet_vitb16")], ignore_index=True)
    pts = fig1.points_from_eval(df, dataset_labels={"entitynet": "EntityNet"})
    assert pts["training_data"].tolist() == ["EntityNet", "EntityNet"]
    assert pts["arch"].tolist() == ["B-32", "B-16"]
    assert pts["imagenet_top1"].tolist() == pytest.approx([61.5, 66.2])
    assert pts["inat2021_top1"].tolist() == pytest.approx([26.1, 32.0])
    assert pts["macs_1e18"].tolist() == pytest.approx([13.05, 36.28])
    relabelled = fig1.points_from_eval(fixture("entitynet_vitb16"), arch_labels={"vitb16": "ViT-L-14-ctx32"})
    assert relabelled["arch"].tolist() == ["L-14"]
    tiny = fig1.points_from_eval(fixture("entitynet_vitb16"), arch_labels={"vitb16": "EntityNet-tiny-ctx32"})
    assert tiny["arch"].tolist() == ["EntityNet-tiny-ctx32"]
    assert fig1.arch_marker("EntityNet-tiny-ctx32") == fig1.OTHER_MARKER


def test_points_from_eval_unknown_arch_raises():
    df = fixture("entitynet_vitb16").assign(model="mystery")
    with pytest.raises(ValueError, match="arch_labels"):
        fig1.points_from_eval(df)


def test_fig1_annotations_reproduce_the_papers_labels_from_reference_points():
    ref = fig1.read_reference_points(REFERENCE_POINTS)
    notes = fig1.fig1_annotations(empty_points(), ref)
    assert [n["text"] for n in notes] == ["22.5x", "+14%", "+17%", "+7%"]
    assert [n["panel"] for n in notes] == ["imagenet_top1"] + ["inat2021_top1"] * 3
    # the strongest DataComp B-32 (XL at 12.5), not DataComp-M (1.0)
    assert notes[1]["baseline"] == (290.0, 12.5)
    assert notes[3]["baseline_label"] == "DFN-5B H-14"


def test_fig1_annotations_prefer_our_points_and_skip_absent_baselines():
    ref = fig1.read_reference_points(REFERENCE_POINTS)
    ours = fig1.points_from_eval(fixture("entitynet_b32_alt50"), dataset_labels={"entitynet": "EntityNet"})
    notes = fig1.fig1_annotations(ours, ref)
    ratio = next(n for n in notes if n["kind"] == "cost_ratio")
    assert ratio["subject"] == (13.05, pytest.approx(61.5))
    assert ratio["text"] == f"{295 / 13.05:.1f}x" == "22.6x"
    # without an OpenAI B-32 point there is no cost-ratio annotation
    no_openai = ref[ref["training_data"] != "OpenAI"]
    assert all(n["kind"] != "cost_ratio" for n in fig1.fig1_annotations(ours, no_openai))
    # a worse EntityNet gives a negative gain, printed with its sign
    worse = ours.assign(inat2021_top1=[10.0])
    gain = next(n for n in fig1.fig1_annotations(worse, ref) if n["baseline_label"] == "DataComp-XL B-32")
    assert gain["text"] == "-2%"


def test_plot_fig1_renders_two_log_panels_with_annotations(tmp_path):
    ref = fig1.read_reference_points(REFERENCE_POINTS)
    ours = fig1.points_from_eval(
        pd.concat([fixture("entitynet_b32_alt50"), fixture("entitynet_vitb16")], ignore_index=True),
        dataset_labels={"entitynet": "EntityNet"},
    )
    ours = pd.concat([ours, pd.DataFrame([{"training_data": "LAION-400M", "arch": "ViT-B-32", "macs_1e18": 280.0,
                                            "imagenet_top1": 63.0, "inat2021_top1": float("nan")}])],
                     ignore_index=True)
    out = tmp_path / "fig" / "fig1.png"
    fig = fig1.plot_fig1(ours, ref, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

    axes = fig.get_axes()
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["Generic domain – ImageNet-1k", "Expert domain – iNaturalist 2021"]
    assert all(ax.get_xscale() == "log" for ax in axes)
    texts = [[t.get_text() for t in ax.texts if t.get_text()] for ax in axes]
    assert texts[0] == ["22.6x"]
    assert texts[1] == ["+14%", "+17%", "+7%"]
    # 13 reference + 3 of ours on ImageNet; the LAION point has no iNat value
    assert len(axes[0].collections) == 16 and len(axes[1].collections) == 15
    # a grey dashed Pareto front in each panel
    assert all(any(line.get_linestyle() == "--" for line in ax.get_lines()) for ax in axes)

    legend_labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for label in ("EntityNet (ours)", "EntityNet (paper)", "CC12M", "DataComp", "OpenAI", "DFN", "LAION-400M",
                  "B-32", "B-16", "L-14", "H-14", "Pareto front"):
        assert label in legend_labels

    colours = fig1.family_colours(["EntityNet", "CC12M", "DataComp", "OpenAI", "DFN", "LAION-400M"])
    assert colours["EntityNet"] == "tab:blue" and colours["DFN"] == "tab:brown"
    assert colours["LAION-400M"] not in {c for _, _, c in fig1.DATASET_FAMILIES}
    assert [fig1.arch_marker(a) for a in ("ViT-B-32", "B-16", "L-14", "H-14", "g-14")] == ["o", "D", "s", "X", "^"]
    assert not list(out.parent.glob(".*"))


def test_plot_fig1_with_reference_only_draws_entitynet_solid():
    fig = fig1.plot_fig1(empty_points(), fig1.read_reference_points(REFERENCE_POINTS))
    legend_labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "EntityNet" in legend_labels and "EntityNet (paper)" not in legend_labels
    assert [t.get_text() for t in fig.get_axes()[0].texts if t.get_text()] == ["22.5x"]


# --------------------------------------------------------------------------------------------------------------
# Snakemake entry
# --------------------------------------------------------------------------------------------------------------


def _fake_snakemake(rule, input, output, params=None, log=None):
    from types import SimpleNamespace

    from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params

    return SimpleNamespace(
        rule=rule,
        input=InputFiles(fromdict=input),
        output=OutputFiles(fromdict=output),
        params=Params(fromdict=params or {}),
        log=Log(fromdict=log or {}),
    )


def test_rule_entries_write_the_ablation_table_and_fig1(tmp_path):
    names = ["entitynet_b32_alt50", "entitynet_b32_alt100", "entitynet_b32_alt0"]
    evals = [str(FIXTURES / f"{n}.csv") for n in names]
    out = {k: str(tmp_path / f"ablation.{k}") for k in ("csv", "md", "tex")}
    ablation_entry.main(_fake_snakemake("ablation_table", {"eval": evals}, out, {"labels": ["50%", "100%", "0%"]},
                                        {"log": str(tmp_path / "log.txt")}))
    assert pd.read_csv(out["csv"], index_col="run").index.tolist() == ["50%", "100%", "0%"]
    assert r"\textbf{61.5}" in Path(out["tex"]).read_text()

    fig_out = {"png": str(tmp_path / "fig1.png"), "points": str(tmp_path / "points.csv")}
    fig1_entry.main(_fake_snakemake(
        "plot_fig1",
        {"eval": [evals[0], str(FIXTURES / "entitynet_vitb16.csv")], "reference": str(REFERENCE_POINTS)},
        fig_out,
        {"dataset_labels": {"entitynet": "EntityNet"}, "arch_labels": {}},
    ))
    assert Path(fig_out["png"]).stat().st_size > 20_000
    assert pd.read_csv(fig_out["points"])["arch"].tolist() == ["B-32", "B-16"]

    agg = scores.aggregate(scores.read_eval_csvs(evals))
    assert agg["model"].tolist() == ["b32_alt50", "b32_alt100", "b32_alt0"]
    assert agg["retrieval"].iloc[0] == pytest.approx(0.37) and math.isnan(agg["retrieval"].iloc[2])


def test_ablation_entry_rejects_mismatched_labels(tmp_path):
    out = {k: str(tmp_path / f"a.{k}") for k in ("csv", "md", "tex")}
    with pytest.raises(ValueError, match="params.labels"):
        ablation_entry.main(_fake_snakemake("ablation_table", {"eval": [str(FIXTURES / "entitynet_b32_alt50.csv")]},
                                            out, {"labels": ["a", "b"]}))


def test_evaluate_style_file_extra_metrics_ignored_and_missing_benchmark_propagates():
    df = fixture("evaluate_style_vitb32")
    row = scores.aggregate(df).iloc[0]
    assert row["imagenet"] == pytest.approx(0.5571)  # acc1, not acc5 or mean_per_class_recall
    assert row["inat2021"] == pytest.approx(0.2417)
    assert math.isnan(row["retrieval"])
    absent = row["missing"].split(";")
    assert "mscoco_captions:image_retrieval_recall@1" in absent and "mscoco_captions:text_retrieval_recall@1" in absent
    pts = fig1.points_from_eval(df)
    assert pts.iloc[0][["training_data", "arch"]].tolist() == ["entitynet", "B-32"]
    assert pts.iloc[0]["imagenet_top1"] == pytest.approx(55.71)


# --------------------------------------------------------------------------------------------------------------
# the CPU demo's outputs (issue 18): its own benchmark, tiny costs, Fig. 1 axes
# --------------------------------------------------------------------------------------------------------------


def demo_eval(model: str, acc1: float) -> pd.DataFrame:
    """eval.csv of a demo run: the demo suite (demo_heldout only), 512 samples, ~9.6e10 MACs."""
    rows = [("demo", model, "demo_heldout", "zeroshot_classification", metric, value, "default+openai", 2, 512,
             9.6191643648e-08, "ok") for metric, value in (("acc1", acc1), ("acc5", 0.6))]
    return scores.validate_eval(pd.DataFrame(rows, columns=list(scores.EVAL_COLUMNS)))


def test_demo_ablation_shows_its_benchmark_and_readable_costs(tmp_path):
    runs = {"0% alt text": demo_eval("tiny-alt0", 1 / 11), "50% alt text": demo_eval("tiny", 2 / 11),
            "100% alt text": demo_eval("tiny-alt100", 3 / 11)}
    table = tables.ablation_table(runs)
    # the paper's six columns would all read "–" (the demo suite has none of their benchmarks): left out
    assert table.columns.tolist() == ["model", "MACs (1e9)", "samples seen", "demo_heldout"]
    assert table["MACs (1e9)"].tolist() == pytest.approx([96.19] * 3, abs=0.01)
    assert table["samples seen"].tolist() == [512] * 3
    assert table["demo_heldout"].tolist() == pytest.approx([100 / 11, 200 / 11, 300 / 11])
    md = tmp_path / "t.md"
    tables.write_table(table, None, md, None)
    text = md.read_text(encoding="utf-8")
    assert "| 96.2 | 512.0 | **27.3** |" in text and "*18.2*" in text and "| 0.0 |" not in text


def test_cost_units_pick_the_largest_readable_unit(three_runs):
    assert tables.cost_units(pd.Series([13.05e18]), pd.Series([588.6e6])) == (("MACs (1e18)", 1e18),
                                                                           ("samples seen (M)", 1e6))
    assert tables.cost_units(pd.Series([2.5e12]), pd.Series([12.8e9])) == (("MACs (1e12)", 1e12), ("samples seen (B)", 1e9))
    # the paper's runs keep the paper's units
    assert tables.ablation_table(three_runs).columns[:3].tolist() == ["model", tables.MACS_TITLE, tables.SAMPLES_TITLE]


def test_fig1_axis_spans_the_drawn_points_only():
    ours = fig1.points_from_eval(demo_eval("tiny", 0.1), dataset_labels={"demo": "EntityNet demo"},
                               arch_labels={"tiny": "EntityNet-tiny-ctx32"})
    assert math.isnan(ours.loc[0, "imagenet_top1"])  # nothing to draw in either panel
    reference = fig1.read_reference_points(REFERENCE_POINTS)
    fig = fig1.plot_fig1(ours, reference)
    low, high = fig.axes[0].get_xlim()
    assert low >= reference["macs_1e18"].min() / 2 and high <= reference["macs_1e18"].max() * 10
    texts = [t.get_text() for t in fig.texts]
    assert any("Not drawn" in t and "EntityNet demo" in t for t in texts), texts
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "EntityNet (ours)" not in legend and "EntityNet-tiny-ctx32" not in legend


def test_fig1_draws_measured_baselines_marked_as_measured(tmp_path):
    """Baselines evaluated by this workflow (dataset "baselines", model = tag) become Fig. 1 points with the tag's
    architecture and label, drawn with the "measured here" cross and written to the points CSV as measured."""
    rows = []
    for tag, inet, inat in (("ViT-B-32__openai", 0.633, 0.05), ("ViT-B-16__hf-hub:imageomics/bioclip", 0.4, 0.3)):
        for bench, value in (("imagenet1k", inet), ("inat2021", inat)):
            rows.append({"dataset": "baselines", "model": tag, "benchmark": bench, "task": "zeroshot_classification",
                         "metric": "acc1", "value": value, "variant": "default+openai", "n_variants": 2,
                         "samples_seen": 12_800_000_000, "macs_1e18": 55.0, "status": "ok"})
    csv = tmp_path / "b.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    pts = fig1.baseline_points(scores.read_eval_csvs([csv]), {"ViT-B-32__openai": "OpenAI"})
    assert pts["training_data"].tolist() == ["OpenAI", "hf-hub:imageomics/bioclip"]
    assert pts["arch"].tolist() == ["B-32", "B-16"] and pts["imagenet_top1"].round(1).tolist() == [63.3, 40.0]
    fig = fig1.plot_fig1(empty_points(), fig1.read_reference_points(REFERENCE_POINTS), measured=pts)
    crosses = [c for ax in fig.axes for c in ax.collections if c.get_label() == "_measured"]
    assert len(crosses) == 4  # two baselines x two panels
    out = {"png": str(tmp_path / "fig1.png"), "points": str(tmp_path / "points.csv")}
    fig1_entry.main(_fake_snakemake("plot_fig1",
                                    {"eval": [], "reference": str(REFERENCE_POINTS), "baselines": [str(csv)]},
                                    out, {"baseline_labels": {"ViT-B-32__openai": "OpenAI"}}))
    written = pd.read_csv(out["points"])
    assert written["origin"].tolist() == ["measured baseline"] * 2 and written["training_data"][0] == "OpenAI"
