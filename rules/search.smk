# Stage 3: image search (chunked, one job per backend and chunk) and the per-image merge -- or, for a dataset with
# search.released_metadata, the import of the authors' released EntityNet metadata in their place.
import glob as _glob
import re as _re

# Disjoint wildcard constraints keep the DAG decided by the config alone: datasets with search.released_metadata
# only match import_released_metadata, all others only merge_search ("(?!)" never matches: no released dataset).
_RELEASED_RE = "|".join(_re.escape(n) for n in ri.released_datasets(config)) or "(?!)"
# ... and those whose search.released_metadata names the authors' entity table take entities.parquet and
# attributes.parquet from it (import_released_entities) instead of the KG (kg_entities, kg_attributes).
_RELEASED_ENTITIES_RE = "|".join(_re.escape(n) for n in ri.released_datasets(config, entities=True)) or "(?!)"


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
        queries=rules.build_queries.output.queries,
        pool_index=lambda w: of(rules.pool_index.output.index, dataset=w.dataset) if w.backend == "pool" else [],
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
        "../scripts/search.py"


rule merge_search:
    input:
        hits=search_hits,
        queries=rules.build_queries.output.queries,
    output:
        urls="results/{dataset}/urls.parquet",
    wildcard_constraints:
        dataset=rf"(?!(?:{_RELEASED_RE})/)[a-z][a-z0-9_]*",
    params:
        seed=lambda w: ds(w.dataset)["search"]["seed"],
    log:
        "logs/{dataset}/merge_search.log",
    benchmark:
        "benchmarks/{dataset}/merge_search.tsv"
    threads: 1
    resources:
        mem_mb=4000,  # streaming merge: ~1.3 GB peak at 10M hits (perf/README_merge.md); temp files on disk
        runtime=120,
    conda:
        "../envs/search.yaml"
    script:
        "../scripts/merge_search.py"


rule import_released_metadata:
    input:
        # the release's image-metadata files (sorted glob); the bare pattern if none, so Snakemake names it missing
        metadata=lambda w: sorted(_glob.glob(ds(w.dataset)["search"]["released_metadata"]["metadata_glob"]))
        or [ds(w.dataset)["search"]["released_metadata"]["metadata_glob"]],
        author_queries=lambda w: ds(w.dataset)["search"]["released_metadata"]["queries"],
    output:  # the files merge_search and build_queries make for the other datasets
        urls=rules.merge_search.output.urls,
        queries=rules.build_queries.output.queries,
    wildcard_constraints:
        dataset=_RELEASED_RE,
    params:
        seed=lambda w: ds(w.dataset)["search"]["seed"],
    log:
        "logs/{dataset}/import_released_metadata.log",
    benchmark:
        "benchmarks/{dataset}/import_released_metadata.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/search.yaml"
    script:
        "../scripts/import_released.py"


# queries.parquet of a released dataset comes from the authors' query table, not from the KG (build_queries).
ruleorder: import_released_metadata > build_queries


rule import_released_entities:
    input:
        author_entities=lambda w: ds(w.dataset)["search"]["released_metadata"]["entities"],
        author_queries=lambda w: ds(w.dataset)["search"]["released_metadata"]["queries"],
    output:  # the files kg_entities and kg_attributes make for the other datasets
        entities=rules.kg_entities.output.entities,
        attributes=rules.kg_attributes.output.attributes,
    wildcard_constraints:
        dataset=_RELEASED_ENTITIES_RE,
    log:
        "logs/{dataset}/import_released_entities.log",
    benchmark:
        "benchmarks/{dataset}/import_released_entities.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/search.yaml"
    script:
        "../scripts/import_released.py"


# entities.parquet / attributes.parquet of such a dataset come from the authors' entity table, not from the KG.
ruleorder: import_released_entities > kg_entities
ruleorder: import_released_entities > kg_attributes
