# Stage 3: image search (chunked, one job per backend and chunk) and the per-image merge.


rule pool_index:
    input:
        pool=lambda w: ds(w.dataset)["search"]["backends"]["pool"]["path"],
    output:
        index="results/{dataset}/search/pool.sqlite",
    log:
        "logs/{dataset}/pool_index.log",
    benchmark:
        "benchmarks/{dataset}/pool_index.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/search.yaml"
    script:
        "../scripts/pool_index.py"


rule search:
    input:
        queries="results/{dataset}/queries.parquet",
        pool_index=lambda w: (
            "results/{dataset}/search/pool.sqlite" if w.backend == "pool" else []
        ),
    output:
        hits="results/{dataset}/search/{backend}/chunk_{chunk}.parquet",
    params:
        backend=lambda w: {**ds(w.dataset)["search"]["backends"][w.backend], "user_agent": config["user_agent"]},
        n_chunks=lambda w: ds(w.dataset)["search"]["n_chunks"],
        cache_dir="resources/cache/search",  # one sub-folder per backend
    log:
        "logs/{dataset}/search/{backend}/chunk_{chunk}.log",
    benchmark:
        "benchmarks/{dataset}/search/{backend}/chunk_{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
        internet=1,
    conda:
        "../envs/search.yaml"
    script:
        "../scripts/run_search.py"


rule merge_search:
    input:
        hits=search_hits,
        queries="results/{dataset}/queries.parquet",
    output:
        urls="results/{dataset}/urls.parquet",
    params:
        seed=lambda w: ds(w.dataset)["search"]["seed"],
    log:
        "logs/{dataset}/merge_search.log",
    benchmark:
        "benchmarks/{dataset}/merge_search.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/search.yaml"
    script:
        "../scripts/merge_search.py"
