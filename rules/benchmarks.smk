# Evaluation benchmarks by target name: data/benchmarks/{benchmark} from benchmarks.<name>.source (docs/BENCHMARKS.md).
import re



wildcard_constraints:
    benchmark="|".join(sorted(re.escape(n) for n, b in config["benchmarks"].items() if wc.prepared_by_rule(n, b)))
    or "(?!)",


rule prepare_benchmark:
    output:
        root=directory("data/benchmarks/{benchmark}"),
    params:
        bench=lambda w: config["benchmarks"][w.benchmark],
        cache=lambda w: f"data/benchmarks/.cache/{w.benchmark}",
    log:
        "logs/benchmarks/{benchmark}.log",
    benchmark:
        "benchmarks/prepare_benchmark/{benchmark}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=720,
        internet=1,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/prepare_benchmark.py"
