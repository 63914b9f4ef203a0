# Stage 1: knowledge graph -> frozen dump -> entities and attributes.


rule kg_dump:
    output:
        extract="resources/kg/{dataset}/extract.nt.gz",
        provenance="resources/kg/{dataset}/provenance.json",
    params:
        endpoint=lambda w: ds(w.dataset)["kg"]["endpoint"],
        roots=lambda w: ds(w.dataset).get("roots", []),
        living_roots=lambda w: living_roots_of(w.dataset),
        language=lambda w: ds(w.dataset)["kg"]["language"],
        page_size=lambda w: ds(w.dataset)["kg"]["page_size"],
        # the visuality filter's abstract classes: the dump keeps the P279 paths up to them
        abstract_classes=lambda w: (
            (ds(w.dataset).get("visual_filter") or {}).get("abstract_classes", [])
            if (ds(w.dataset).get("visual_filter") or {}).get("enabled")
            else []
        ),
        max_tries=lambda w: ds(w.dataset)["kg"]["max_tries"],
        timeout_s=lambda w: ds(w.dataset)["kg"]["timeout_s"],
        user_agent=config["user_agent"],
        # kg.refresh: a new value on every invocation makes Snakemake re-query the live endpoint (params trigger)
        refresh_token=lambda w: (
            _dt.datetime.now().isoformat() if ds(w.dataset)["kg"].get("refresh") else "frozen"
        ),
    log:
        "logs/{dataset}/kg_dump.log",
    benchmark:
        "benchmarks/{dataset}/kg_dump.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        internet=1,
    conda:
        "../envs/kg.yaml"
    script:
        "../scripts/kg_dump.py"


rule kg_wordnet:
    output:
        entities="results/{dataset}/wordnet_entities.parquet",
    params:
        wordnet_dir=lambda w: (ds(w.dataset).get("wordnet") or {}).get("dir"),
        max_synsets=lambda w: (ds(w.dataset).get("wordnet") or {}).get("max_synsets"),
    log:
        "logs/{dataset}/kg_wordnet.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../envs/kg.yaml"
    script:
        "../scripts/kg_wordnet.py"


rule kg_entities:
    input:
        extract="resources/kg/{dataset}/extract.nt.gz",
        # WordNet living things (the paper's wordnet-noun-living), when datasets.<name>.wordnet.dir is set
        wordnet=lambda w: (
            "results/{d}/wordnet_entities.parquet".format(d=w.dataset)
            if (ds(w.dataset).get("wordnet") or {}).get("dir")
            else []
        ),
    output:
        entities="results/{dataset}/entities.parquet",
    params:
        roots=lambda w: ds(w.dataset).get("roots", []),
        living_roots=lambda w: living_roots_of(w.dataset),
        allow_empty_roots=lambda w: ds(w.dataset)["kg"].get("allow_empty_roots", []),
        language=lambda w: ds(w.dataset)["kg"]["language"],
        min_sitelinks=lambda w: ds(w.dataset)["min_sitelinks"],
        living_exclude=lambda w: ds(w.dataset)["living"]["exclude"],
        exclude_by_root=lambda w: ds(w.dataset)["living"].get("exclude_by_root") or {},
        coordinate_roots=lambda w: ds(w.dataset)["living"].get("exclude_coordinates_roots"),
        cleanup=lambda w: ds(w.dataset)["living"].get("cleanup", []),
        visual_filter=lambda w: ds(w.dataset).get("visual_filter") or {},
        require_image=lambda w: ds(w.dataset)["living"]["require_image"],
        max_living_per_root=lambda w: ds(w.dataset)["living"]["max_per_root"],
        generic_classes=lambda w: ds(w.dataset)["natural_types"]["generic_classes"],
        natural_types_mode=lambda w: ds(w.dataset)["natural_types"].get("mode", "kg"),
        living_rule=lambda w: ds(w.dataset)["natural_types"].get("living_rule", "nearest_common_name"),
        living_type_min_sitelinks=lambda w: ds(w.dataset)["natural_types"].get("living_min_sitelinks", 0),
        llm=lambda w: ds(w.dataset).get("llm") or {},
        llm_cache_dir="resources/cache/llm",
    log:
        "logs/{dataset}/kg_entities.log",
    benchmark:
        "benchmarks/{dataset}/kg_entities.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/kg.yaml"
    script:
        "../scripts/kg_entities.py"


rule kg_attributes:
    input:
        extract="resources/kg/{dataset}/extract.nt.gz",
        entities="results/{dataset}/entities.parquet",
    output:
        attributes="results/{dataset}/attributes.parquet",
    params:
        language=lambda w: ds(w.dataset)["kg"]["language"],
        max_per_category=lambda w: ds(w.dataset)["attributes"]["max_per_category"],
        max_queries_world=lambda w: ds(w.dataset)["attributes"]["max_queries_world"],
        seed=lambda w: ds(w.dataset)["attributes"]["seed"],
        mode=lambda w: ds(w.dataset)["attributes"].get("mode", "kg"),
        living_limit=lambda w: ds(w.dataset)["attributes"].get("living_limit"),
        llm=lambda w: ds(w.dataset).get("llm") or {},
        llm_cache_dir="resources/cache/llm",
        store=lambda w: ds(w.dataset)["kg"].get("store", "auto"),
        disk_min_mb=lambda w: ds(w.dataset)["kg"].get("disk_store_min_mb", 32),
    log:
        "logs/{dataset}/kg_attributes.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/kg.yaml"
    script:
        "../scripts/kg_attributes.py"


rule kg_catalog:
    # What the dataset's roots select from its dump, as a table (qid, label, roots, ...): results/demo/kg_catalog.tsv
    # lists the bundled extract's entities.
    input:
        entities="results/{dataset}/entities.parquet",
    output:
        catalog="results/{dataset}/kg_catalog.tsv",
    log:
        "logs/{dataset}/kg_catalog.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/kg.yaml"
    script:
        "../scripts/kg_catalog.py"
