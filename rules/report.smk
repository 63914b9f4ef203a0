# Stage 9: what `snakemake --report` shows. The Markdown outputs as HTML pages (twins made here, tagged for the
# report, so the report renders them instead of offering the .md as downloads) and one overview page per dataset.
import glob as _glob


def evaluated_models(dataset):
    """Models of a dataset that have an eval.csv on disk, plus the default target's model on its dataset: what the
    overview and `make report` show ("the datasets and models that have been run")."""
    found = {Path(p).parent.name for p in _glob.glob(f"results/{dataset}/*/eval.csv")}
    dt = config.get("default_target", {})
    if dataset == dt.get("dataset", "demo"):
        found.add(dt.get("model", "tiny"))
    valid = [m for m in found if m.split("-alt")[0] in config["models"]]
    return sorted(valid)


def run_datasets():
    """Datasets (of the config) with a dataset card on disk, plus the default target's dataset."""
    found = {p.split("/")[1] for p in _glob.glob("results/*/card/card.md")}
    found.add(config.get("default_target", {}).get("dataset", "demo"))
    return sorted(d for d in found if d in config["datasets"])


rule card_html:
    input:
        md="results/{dataset}/card/card.md",
        plots=expand("results/{{dataset}}/card/{plot}.png", plot=CARD_PLOTS),
    output:
        report(
            "results/{dataset}/card/card.html",
            category="Dataset card",
            subcategory="{dataset}",
            caption="../docs/report/card_html.rst",
        ),
    log:
        "logs/{dataset}/card_html.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_html.py"


rule eval_table_html:
    input:
        md="results/{dataset}/{model}/report/eval_table.md",
    output:
        report(
            "results/{dataset}/{model}/report/eval_table.html",
            category="Evaluation",
            subcategory="{dataset}",
            caption="../docs/report/eval_table.rst",
        ),
    log:
        "logs/{dataset}/{model}/eval_table_html.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_html.py"


rule ablation_html:
    input:
        md="results/paper/ablation_{dataset}_{recipe}.md",
    output:
        report(
            "results/paper/ablation_{dataset}_{recipe}.html",
            category="Paper",
            caption="../docs/report/ablation.rst",
        ),
    log:
        "logs/paper/ablation_{dataset}_{recipe}_html.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_html.py"


rule dataset_overview:
    input:
        card_json="results/{dataset}/card/card.json",
        card_html="results/{dataset}/card/card.html",
        plots=expand("results/{{dataset}}/card/{plot}.png", plot=CARD_PLOTS),
        eval_tables=lambda w: expand(
            "results/{dataset}/{model}/report/eval_table.md", dataset=w.dataset, model=evaluated_models(w.dataset)
        ),
        eval_figures=lambda w: expand(
            "results/{dataset}/{model}/report/eval_bars.png", dataset=w.dataset, model=evaluated_models(w.dataset)
        ),
    output:
        report(
            "results/{dataset}/overview.html",
            category="Overview",
            subcategory="{dataset}",
            caption="../docs/report/overview.rst",
        ),
    params:
        models=lambda w: evaluated_models(w.dataset),
        description=lambda w: ds(w.dataset).get("description", ""),
    log:
        "logs/{dataset}/overview.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_html.py"


def report_targets(wildcards=None):
    """Everything `make report` puts in report.html: per dataset that has been run its overview and card; per
    evaluated model its eval table and bars; every ablation table and Fig. 1 on disk."""
    targets = []
    for d in run_datasets():
        targets += [f"results/{d}/overview.html", f"results/{d}/card/card.html"]
        for m in evaluated_models(d):
            targets += [f"results/{d}/{m}/report/eval_table.html", f"results/{d}/{m}/report/eval_bars.png"]
    for md in sorted(_glob.glob("results/paper/ablation_*.md")):
        targets.append(md[: -len(".md")] + ".html")
    targets += sorted(_glob.glob("results/paper/fig1_*.png"))
    return targets


# The default target's report pages (built by `snakemake` with the demo).
_dt_d = config.get("default_target", {}).get("dataset", "demo")
_dt_m = config.get("default_target", {}).get("model", "tiny")
DEFAULT_REPORT_TARGETS = [
    f"results/{_dt_d}/overview.html",
    f"results/{_dt_d}/card/card.html",
    f"results/{_dt_d}/{_dt_m}/report/eval_table.html",
]


rule report_all:
    input:
        report_targets,
