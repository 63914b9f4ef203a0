# Stage 7: clip_benchmark evaluation, best over prompt variants.


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
        "../scripts/build_evalset.py"


rule evaluate:
    input:
        model="results/{dataset}/{model}/model.safetensors",
        summary="results/{dataset}/{model}/train_summary.json",
        benchmarks=eval_inputs,
    output:
        eval_csv="results/{dataset}/{model}/eval.csv",
        details=directory("results/{dataset}/{model}/eval"),
    params:
        arch=lambda w: recipe(w.model, w.dataset)["arch"],
        suite=lambda w: wc.suite(config, w.dataset),
        fail_on_missing=config["evaluation"].get("fail_on_missing", False),
        skip=config["evaluation"].get("skip", []),
        batch_size=config["evaluation"].get("batch_size", 64),
        mac_text_context=config["evaluation"].get("mac_text_context", 77),
    log:
        "logs/{dataset}/{model}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{model}/evaluate.tsv"
    threads: 2
    resources:
        gpu=lambda w: 1 if gpus_per_node(w.model, w.dataset) > 0 else 0,
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
        suite=lambda w: wc.suite_by_name(config, config["evaluation"].get("baseline_suite", "paper")),
        samples_seen=lambda w: config["evaluation"].get("baseline_samples_seen", {}).get(w.tag),
        fail_on_missing=config["evaluation"].get("fail_on_missing", False),
        skip=config["evaluation"].get("skip", []),
        batch_size=config["evaluation"].get("batch_size", 64),
        mac_text_context=config["evaluation"].get("mac_text_context", 77),
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
