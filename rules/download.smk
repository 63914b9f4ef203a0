# Stage 4: img2dataset download, one job per URL chunk (a fixed number: the DAG is known before anything runs).


rule download:
    input:
        urls=rules.merge_search.output.urls,
    output:
        chunk_dir=directory("results/{dataset}/download/chunk_{chunk}"),
    params:
        n_chunks=lambda w: ds(w.dataset)["download"]["n_chunks"],
        timeout_s=lambda w: ds(w.dataset)["download"]["timeout_s"],
        options=lambda w: ds(w.dataset)["download"],
    log:
        "logs/{dataset}/download/chunk_{chunk}.log",
    benchmark:
        "benchmarks/{dataset}/download/chunk_{chunk}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        internet=1,
    conda:
        "../envs/download.yaml"
    script:
        "../scripts/download.py"
