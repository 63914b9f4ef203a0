# Stage 8: tables and figures from eval.csv.


rule model_report:
    input:
        eval_csv=rules.evaluate.output.eval_csv,
    output:
        table="results/{dataset}/{model}/report/eval_table.md",  # in the report as its HTML twin (rules/report.smk)
        figure=report(
            "results/{dataset}/{model}/report/eval_bars.png",
            category="Evaluation",
            caption="../docs/report/eval_bars.rst",
        ),
    log:
        "logs/{dataset}/{model}/model_report.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/model_report.py"


rule ablation_table:
    input:
        eval=lambda w: expand(rules.evaluate.output.eval_csv, dataset=w.dataset,
                              model=ri.ablation_models(config, w.recipe, w.dataset)),
    output:
        csv="results/paper/ablation_{dataset}_{recipe}.csv",
        md="results/paper/ablation_{dataset}_{recipe}.md",  # in the report as its HTML twin (rules/report.smk)
        tex="results/paper/ablation_{dataset}_{recipe}.tex",
    params:
        labels=["0% alt text", "50% alt text", "100% alt text"],
    log:
        "logs/paper/ablation_{dataset}_{recipe}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/ablation_table.py"


rule plot_fig1:
    input:
        eval=lambda w: expand(rules.evaluate.output.eval_csv, dataset=w.dataset, model=ds(w.dataset)["fig1_models"]),
        reference="resources/paper/reference_points.csv",
        baselines=expand(rules.evaluate_baseline.output.eval_csv, tag=config["paper"]["fig1_baselines"]),
    output:
        png=report("results/paper/fig1_{dataset}.png", category="Paper", caption="../docs/report/fig1.rst"),
        points="results/paper/fig1_{dataset}_points.csv",
    params:
        dataset_labels=lambda w: {w.dataset: config["paper"]["dataset_labels"].get(w.dataset, w.dataset)},
        arch_labels=lambda w: {m: config["models"][m]["arch"] for m in ds(w.dataset)["fig1_models"]},
        baseline_labels=config["paper"]["baseline_labels"],
    log:
        "logs/paper/fig1_{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/plot_fig1.py"
