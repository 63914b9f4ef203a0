"""Evaluate one trained model, or one open_clip baseline, on the configured benchmark suite (rules ``evaluate``,
``evaluate_baseline``).

Every prompt variant of every benchmark runs through clip_benchmark in one process; ``eval.csv`` reports the best
variant per metric (and its name), with ``missing``/``skipped`` rows for benchmarks not evaluated, and the training
MACs. The variants, the runner and the table: ``lib.eval.suite_evaluation``; baseline tags: ``lib.eval.baselines``.
"""

import json
from pathlib import Path

from _helpers import configure_logging, rule_entry, write_text
from lib.eval.baselines import baseline_samples_seen, clip_benchmark_model, parse_baseline_tag
from lib.eval.suite_evaluation import evaluate


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    suite = {k: dict(v) for k, v in p.suite.items()}
    mac_count, skip = str(p.mac_count), list(p.skip)
    global_batch = getattr(p, "global_batch", None)  # rule evaluate only; baselines: the authors' 8192
    global_batch = int(global_batch) if global_batch else None
    if snakemake.rule == "evaluate_baseline":
        # open_clip pretrained weights: fetched from the model hubs by open_clip itself (needs internet once)
        arch, pretrained = parse_baseline_tag(snakemake.wildcards.tag)
        model_arg, pretrained_arg = clip_benchmark_model(arch, pretrained)
        df = evaluate("baselines", snakemake.wildcards.tag, model_arg, pretrained_arg, suite,
                      snakemake.output.details, baseline_samples_seen(pretrained, p.samples_seen),
                      bool(p.fail_on_missing), int(p.batch_size), int(p.mac_text_context),
                      skip=skip, macs_arch=arch,
                      mac_count=mac_count, global_batch=global_batch)
    else:
        summary = json.loads(Path(snakemake.input.summary).read_text())
        df = evaluate(snakemake.wildcards.dataset, snakemake.wildcards.model, p.arch, snakemake.input.model, suite,
                      snakemake.output.details, int(summary["samples_seen"]), bool(p.fail_on_missing),
                      int(p.batch_size), int(p.mac_text_context), skip=skip,
                      mac_count=mac_count, global_batch=global_batch)
    write_text(df.to_csv(index=False), snakemake.output.eval_csv)


if __name__ == "__main__":
    rule_entry(main, globals())
