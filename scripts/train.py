"""Train one model on one dataset with open_clip_train (rule ``train``), then export the final weights.

The recipe (``params.recipe``, config ``models.<name>`` resolved) runs over the dataset's shards through
:func:`lib.train.launch.run`: one process, torchrun or the multi-node srun launcher (``resources.nodes``), resuming
from the run directory ``params.run_root`` (not a declared output). The outputs are the exported
``model.safetensors`` and ``train_summary.json`` (with the text mix: the text sources drawn, per epoch); the
launchers' and every rank's output go to the rule's log.
"""

from _helpers import configure_logging, rule_entry
from lib.train.launch import run


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    nodes = int(snakemake.resources.get("nodes", 1))
    # training processes per node: the recipe's gpus (a CPU recipe asks Slurm for no GPU but keeps its processes)
    gpus_per_node = int(p.recipe["gpus"])
    run(dict(p.recipe), snakemake.input.shards_dir, snakemake.input.get("text_candidates"), p.run_root,
        snakemake.output.model, snakemake.output.summary, gpus_per_node, nodes,
        log_file=str(snakemake.log[0]) if len(snakemake.log) else None)


if __name__ == "__main__":
    rule_entry(main, globals())
