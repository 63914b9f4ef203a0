# Stage 2: search queries of the paper's kinds.


rule build_queries:
    input:
        entities=rules.kg_entities.output.entities,
        attributes=rules.kg_attributes.output.attributes,
    output:
        queries="results/{dataset}/queries.parquet",
    params:
        kinds=lambda w: ds(w.dataset)["queries"]["kinds"],
        max_per_kind=lambda w: ds(w.dataset)["queries"]["max_per_kind"],
        seed=lambda w: ds(w.dataset)["queries"]["seed"],
        world_search_terms=lambda w: ds(w.dataset)["queries"]["world_search_terms"],
    log:
        "logs/{dataset}/build_queries.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/kg.yaml"
    script:
        "../scripts/build_queries.py"
