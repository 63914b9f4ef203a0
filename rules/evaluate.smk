# Stage 7: clip_benchmark evaluation, best over prompt variants.

# evaluation.* keys that both evaluate rules pass to scripts/evaluate.py as params of the same names.
EVAL_OPTIONS = ("fail_on_missing", "skip", "batch_size", "mac_text_context", "mac_count")


rule build_demo_evalset:
    input:
        labels="resources/demo/eval_heldout.tsv",
        images="resources/demo/photos",
    output:
        root=directory("resources/eval/demo_heldout"),
    params:
        templates=lambda w: ["a photo of a {c}."],
    log:
        "logs/evalsets/demo_heldout.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/build_demo_evalset.py"


rule evaluate:
    input:
        model=rules.train.output.model,
        summary=rules.train.output.summary,
        benchmarks=eval_inputs,
    output:
        eval_csv="results/{dataset}/{model}/eval.csv",
        details=directory("results/{dataset}/{model}/eval"),
    params:
        arch=lambda w: recipe(w.model, w.dataset)["arch"],
        suite=lambda w: wc.suite(config, w.dataset),
        **{k: config["evaluation"][k] for k in EVAL_OPTIONS},
        global_batch=lambda w: ri.global_batch(recipe(w.model, w.dataset)),
    log:
        "logs/{dataset}/{model}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{model}/evaluate.tsv"
    threads: 2
    resources:
        gpu=lambda w: 1 if ri.gpus_per_node(recipe(w.model, w.dataset)) > 0 else 0,
        mem_mb=16000,
        runtime=240,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/evaluate.py"


rule evaluate_baseline:
    # A published open_clip model, e.g. results/baselines/ViT-B-32__openai/eval.csv (weights from the model hubs).
    input:
        benchmarks=baseline_eval_inputs,
    output:
        eval_csv="results/baselines/{tag}/eval.csv",
        details=directory("results/baselines/{tag}/eval"),
    params:
        suite=lambda w: wc.suite_by_name(config, config["evaluation"]["baseline_suite"]),
        samples_seen=lambda w: config["evaluation"]["baseline_samples_seen"].get(w.tag),
        **{k: config["evaluation"][k] for k in EVAL_OPTIONS},
    log:
        "logs/baselines/{tag}/evaluate.log",
    benchmark:
        "benchmarks/baselines/{tag}/evaluate.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
        internet=1,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/evaluate.py"


# "<recipe>-alt<N>" where N % is the recipe's own alt-text share (tiny-alt50 is tiny) names the same training run:
# its eval.csv is the recipe's, copied, instead of a second training run.
MODEL_ALIASES = wc.model_aliases(config)


rule model_alias:
    input:
        eval_csv=lambda w: "results/{}/eval.csv".format(MODEL_ALIASES[w.alias]),
    output:
        eval_csv="results/{alias}/eval.csv",
    wildcard_constraints:
        alias="|".join(re.escape(a) for a in sorted(MODEL_ALIASES)) or "(?!)",
    log:
        "logs/{alias}/model_alias.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/model_alias.py"


ruleorder: model_alias > evaluate
