# Stage 1: knowledge graph -> frozen dump -> entities and attributes.


rule kg_dump:
    output:
        extract="resources/kg/{dataset}/extract.nt.gz",
        provenance="resources/kg/{dataset}/provenance.json",
    params:
        endpoint=lambda w: ds(w.dataset)["kg"]["endpoint"],
        roots=lambda w: ds(w.dataset)["roots"],
        living_roots=lambda w: living_roots_of(w.dataset),
        language=lambda w: ds(w.dataset)["kg"]["language"],
        page_size=lambda w: ds(w.dataset)["kg"]["page_size"],
        # the visuality filter's abstract classes: the dump keeps the P279 paths up to them
        abstract_classes=lambda w: ds(w.dataset)["visual_filter"]["abstract_classes"]
        if ds(w.dataset)["visual_filter"]["enabled"] else [],
        max_tries=lambda w: ds(w.dataset)["kg"]["max_tries"],
        timeout_s=lambda w: ds(w.dataset)["kg"]["timeout_s"],
        user_agent=config["user_agent"],
        # kg.refresh: a new value on every invocation makes Snakemake re-query the live endpoint (params trigger)
        refresh_token=lambda w: _dt.datetime.now().isoformat() if ds(w.dataset)["kg"]["refresh"] else "frozen",
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
        wordnet_dir=lambda w: ds(w.dataset)["wordnet"]["dir"],
        max_synsets=lambda w: ds(w.dataset)["wordnet"]["max_synsets"],
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
        extract=rules.kg_dump.output.extract,
        # WordNet living things (the paper's wordnet-noun-living), when datasets.<name>.wordnet.dir is set
        wordnet=lambda w: of(rules.kg_wordnet.output.entities, dataset=w.dataset)
        if ds(w.dataset)["wordnet"]["dir"] else [],
    output:
        entities="results/{dataset}/entities.parquet",
    params:
        roots=lambda w: ds(w.dataset)["roots"],
        living_roots=lambda w: living_roots_of(w.dataset),
        allow_empty_roots=lambda w: ds(w.dataset)["kg"]["allow_empty_roots"],
        language=lambda w: ds(w.dataset)["kg"]["language"],
        min_sitelinks=lambda w: ds(w.dataset)["min_sitelinks"],
        living_exclude=lambda w: ds(w.dataset)["living"]["exclude"],
        exclude_by_root=lambda w: ds(w.dataset)["living"]["exclude_by_root"],
        coordinate_roots=lambda w: ds(w.dataset)["living"]["exclude_coordinates_roots"],
        cleanup=lambda w: ds(w.dataset)["living"]["cleanup"],
        visual_filter=lambda w: ds(w.dataset)["visual_filter"],
        require_image=lambda w: ds(w.dataset)["living"]["require_image"],
        max_living_per_root=lambda w: ds(w.dataset)["living"]["max_per_root"],
        generic_classes=lambda w: ds(w.dataset)["natural_types"]["generic_classes"],
        natural_types_mode=lambda w: ds(w.dataset)["natural_types"]["mode"],
        living_rule=lambda w: ds(w.dataset)["natural_types"]["living_rule"],
        living_type_min_sitelinks=lambda w: ds(w.dataset)["natural_types"]["living_min_sitelinks"],
        llm=lambda w: ds(w.dataset)["llm"],
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
        extract=rules.kg_dump.output.extract,
        entities=rules.kg_entities.output.entities,
    output:
        attributes="results/{dataset}/attributes.parquet",
    params:
        language=lambda w: ds(w.dataset)["kg"]["language"],
        max_per_category=lambda w: ds(w.dataset)["attributes"]["max_per_category"],
        max_queries_world=lambda w: ds(w.dataset)["attributes"]["max_queries_world"],
        seed=lambda w: ds(w.dataset)["attributes"]["seed"],
        mode=lambda w: ds(w.dataset)["attributes"]["mode"],
        living_limit=lambda w: ds(w.dataset)["attributes"]["living_limit"],
        llm=lambda w: ds(w.dataset)["llm"],
        llm_cache_dir="resources/cache/llm",
        store=lambda w: ds(w.dataset)["kg"]["store"],
        disk_min_mb=lambda w: ds(w.dataset)["kg"]["disk_store_min_mb"],
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
        entities=rules.kg_entities.output.entities,
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
