# Stage 6: open_clip_train from scratch with the paper's alt-text / KG-text mix.


rule train:
    input:
        shards_dir=train_shards_dir,
        text_candidates=rules.text_candidates.output.candidates,
    output:
        model="results/{dataset}/{model}/model.safetensors",
        summary="results/{dataset}/{model}/train_summary.json",
    params:
        recipe=lambda w: recipe(w.model, w.dataset),
        # resumable state, deliberately not a declared output (Snakemake deletes outputs of failed jobs)
        run_root=lambda w: f"results/{w.dataset}/{w.model}/openclip",
    log:
        "logs/{dataset}/{model}/train.log",
    benchmark:
        "benchmarks/{dataset}/{model}/train.tsv"
    threads: lambda w: max(1, int(recipe(w.model, w.dataset)["workers"]))
    resources:
        # Slurm's --gpus is per job: GPUs per node x nodes (the launcher gets the per-node count); 0 for a CPU recipe
        gpu=lambda w: ri.gpus_per_node(recipe(w.model, w.dataset)) * int(recipe(w.model, w.dataset)["nodes"]),
        nodes=lambda w: int(recipe(w.model, w.dataset)["nodes"]),
        # multi-node: one task per node, started by our own srun inside the job (scripts/launch_multinode.sh)
        tasks=lambda w: int(recipe(w.model, w.dataset)["nodes"]) if int(recipe(w.model, w.dataset)["nodes"]) > 1 else None,
        tasks_per_gpu=lambda w: 0 if int(recipe(w.model, w.dataset)["nodes"]) > 1 else None,
        mpi=lambda w: "srun" if int(recipe(w.model, w.dataset)["nodes"]) > 1 else None,
        mem_mb=lambda w: int(recipe(w.model, w.dataset)["mem_mb"]),
        runtime=lambda w: int(recipe(w.model, w.dataset)["runtime_min"]),
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train.py"
