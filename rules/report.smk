# Stage 9: what `snakemake --report` shows. The Markdown outputs as HTML pages (twins made here, tagged for the
# report, so the report renders them instead of offering the .md as downloads) and one overview page per dataset.
# Which datasets and models: report_targets in rules/common.smk, evaluated_models / run_datasets in
# scripts/lib/common/rule_inputs.py.


rule card_html:
    input:
        md=rules.dataset_card.output.card,
        plots=[getattr(rules.dataset_card.output, p) for p in CARD_PLOTS],
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
        md=rules.model_report.output.table,
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
        md=rules.ablation_table.output.md,
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
        card_json=rules.dataset_card.output.stats,
        card_html=rules.card_html.output[0],
        plots=[getattr(rules.dataset_card.output, p) for p in CARD_PLOTS],
        eval_tables=lambda w: expand(rules.model_report.output.table, dataset=w.dataset,
                                     model=ri.evaluated_models(config, w.dataset)),
        eval_figures=lambda w: expand(rules.model_report.output.figure, dataset=w.dataset,
                                      model=ri.evaluated_models(config, w.dataset)),
    output:
        report(
            "results/{dataset}/overview.html",
            category="Overview",
            subcategory="{dataset}",
            caption="../docs/report/overview.rst",
        ),
    params:
        models=lambda w: ri.evaluated_models(config, w.dataset),
        description=lambda w: ds(w.dataset)["description"],
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
