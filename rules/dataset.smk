# Stage 5: dedup + eval decontamination, final training shards, dataset card, KG text candidates of the text mix.


rule dedup_decontaminate:
    input:
        chunks=download_chunks,
        urls=src_output(rules.merge_search.output.urls),
        eval_sets=dedup_eval_inputs,
    output:
        keep="results/{dataset}/dedup/keep.parquet",
        removed="results/{dataset}/dedup/removed.parquet",
        drop="results/{dataset}/dedup/drop.parquet",
        counts="results/{dataset}/dedup/counts.json",
        eval_hashes="results/{dataset}/dedup/eval_hashes.parquet",
        urls="results/{dataset}/urls_dedup.parquet",
    params:
        eval_sets=lambda w: ri.dedup_eval_sets(config, w.dataset),
        skipped=lambda w: ri.dedup_skipped(config, w.dataset),
        hamming_threshold=lambda w: ds(w.dataset)["dedup"]["hamming_threshold"],
        decontam_threshold=lambda w: ds(w.dataset)["dedup"]["decontam_threshold"],
        representative=lambda w: ds(w.dataset)["dedup"]["representative"],
    log:
        "logs/{dataset}/dedup_decontaminate.log",
    benchmark:
        "benchmarks/{dataset}/dedup_decontaminate.tsv"
    threads: 4
    resources:
        mem_mb=16000,
        runtime=720,
    conda:
        "../envs/download.yaml"
    script:
        "../scripts/dedup_decontaminate.py"


rule build_shards:
    input:
        chunks=download_chunks,
        urls=lambda w: dedup_of(w.dataset, "urls"),
        drop=lambda w: dedup_of(w.dataset, "drop"),
        queries=src_output(rules.build_queries.output.queries),
    output:
        shards_dir=directory("results/{dataset}/shards"),
        status="results/{dataset}/download_status.parquet",
        summary="results/{dataset}/shards_summary.json",
        index="results/{dataset}/shards_index.parquet",
    params:
        val_size=lambda w: ds(w.dataset)["shards"]["val_size"],
        samples_per_shard=lambda w: ds(w.dataset)["shards"]["samples_per_shard"],
        seed=lambda w: ds(w.dataset)["shards"]["seed"],
        subset=lambda w: ds(w.dataset)["subset"],
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


# Opt-in (models.<name>.stored_short_side): the shards at a smaller stored short side, same layout and contract.
rule resize_shards:
    input:
        shards_dir=rules.build_shards.output.shards_dir,
    output:
        shards_dir=directory("results/{dataset}/shards_s{side}"),
    params:
        short_side=lambda w: int(w.side),
        quality=lambda w: ds(src(w.dataset))["download"]["encode_quality"],
    log:
        "logs/{dataset}/resize_shards_s{side}.log",
    benchmark:
        "benchmarks/{dataset}/resize_shards_s{side}.tsv"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=1440,
    conda:
        "../envs/download.yaml"
    script:
        "../scripts/resize_shards.py"


rule dataset_card:
    input:
        index=rules.build_shards.output.index,
        summary=rules.build_shards.output.summary,
        status=rules.build_shards.output.status,
        urls=lambda w: dedup_of(w.dataset, "urls"),
        dedup_counts=lambda w: dedup_of(w.dataset, "counts"),
        queries=src_output(rules.build_queries.output.queries),
        entities=src_output(rules.kg_entities.output.entities),
    output:
        card="results/{dataset}/card/card.md",  # in the report as its HTML twin (rules/report.smk)
        stats="results/{dataset}/card/card.json",
        **{p: report(f"results/{{dataset}}/card/{p}.png", category="Dataset card", subcategory="{dataset}")
           for p in CARD_PLOTS},
    params:
        dataset=lambda w: w.dataset,
        description=lambda w: ds(w.dataset)["description"],
        source=lambda w: src(w.dataset),
        subset=lambda w: ds(w.dataset)["subset"],
        roots=lambda w: ds(w.dataset)["roots"] + living_roots_of(w.dataset),
    log:
        "logs/{dataset}/dataset_card.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/download.yaml"
    script:
        "../scripts/dataset_card.py"


rule text_candidates:
    input:
        entities=src_output(rules.kg_entities.output.entities),
        attributes=src_output(rules.kg_attributes.output.attributes),
        queries=src_output(rules.build_queries.output.queries),
    output:
        candidates="results/{dataset}/text_candidates.parquet",
    params:
        **{k: config["text_mix"][k] for k in ("hierarchy_chance_generic", "hierarchy_chance_living")},
        weights={"guard": bool(config["text_mix"]["synonym_guard"])},
        kg_text_queries=lambda w: ds(w.dataset)["kg_text_queries"],
    log:
        "logs/{dataset}/text_candidates.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/text_candidates.py"
