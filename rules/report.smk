# Stage 9: what `snakemake --report` shows. The Markdown outputs as HTML pages (twins made here, tagged for the
# report, so the report renders them instead of offering the .md as downloads) and one overview page per dataset.
# Which datasets and models: evaluated_models / run_datasets / report_targets in rules/common.smk.


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


rule report_all:
    input:
        report_targets,
