# Stage 8: tables and figures from eval.csv.


rule model_report:
    input:
        eval_csv="results/{dataset}/{model}/eval.csv",
    output:
        table=report(
            "results/{dataset}/{model}/report/eval_table.md",
            category="Evaluation",
            caption="../docs/report/eval_table.rst",
        ),
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
        "../scripts/report_model.py"
