# Stage 5: final training shards (after dedup/decontamination) and the KG text candidates of the text mix.


rule build_shards:
    input:
        chunks=download_chunks,
        urls=lambda w: f"results/{src(w.dataset)}/urls.parquet",
        queries=lambda w: f"results/{src(w.dataset)}/queries.parquet",
    output:
        shards_dir=directory("results/{dataset}/shards"),
        status="results/{dataset}/download_status.parquet",
        summary="results/{dataset}/shards_summary.json",
    params:
        val_size=lambda w: ds(w.dataset)["shards"]["val_size"],
        samples_per_shard=lambda w: ds(w.dataset)["shards"]["samples_per_shard"],
        seed=lambda w: ds(w.dataset)["shards"]["seed"],
        subset=lambda w: ds(w.dataset).get("subset"),
    log:
        "logs/{dataset}/build_shards.log",
    benchmark:
        "benchmarks/{dataset}/build_shards.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/download.yaml"
    script:
        "../scripts/build_shards.py"


rule text_candidates:
    input:
        entities=lambda w: f"results/{src(w.dataset)}/entities.parquet",
        attributes=lambda w: f"results/{src(w.dataset)}/attributes.parquet",
        queries=lambda w: f"results/{src(w.dataset)}/queries.parquet",
    output:
        candidates="results/{dataset}/text_candidates.parquet",
    params:
        hierarchy_chance_generic=config["text_mix"]["hierarchy_chance_generic"],
        hierarchy_chance_living=config["text_mix"]["hierarchy_chance_living"],
    log:
        "logs/{dataset}/text_candidates.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/text_mix.py"
