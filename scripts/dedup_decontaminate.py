"""Rule ``dedup_decontaminate``: :func:`lib.data.image_dedup.dedup_downloads` over every download folder, with the
eval roots resolved here; writes its outputs.

What this entry adds to ``dedup_downloads`` (which does the hashing, grouping, decontamination and merging):

* the training images are those of every chunk **and** its ``retry/`` pass (``lib.data.download_outcomes``);
* the eval sets come as ``params.eval_sets`` (``{benchmark name: root}``); a root that does **not exist** is skipped
  with a logged warning and listed in ``counts.json`` (``eval_sets_missing``, ``eval_set_status``: ``ok`` or
  ``missing``) instead of failing the job: the paper's benchmarks are large downloads a user may not have yet, and
  the model evaluation reports the same roots as ``missing``. Benchmarks opted out with ``evaluation.skip`` come as
  ``params.skipped`` and are listed as ``eval_sets_skipped`` (status ``skipped``). A root that exists but holds no
  image still fails (a misconfiguration must not pass decontamination silently). Eval roots built by a rule of this
  workflow (the demo's held-out set, the roots rule ``prepare_benchmark`` prepares) are the rule's inputs, so they
  always exist when it runs.

Snakemake rule (see ``rules/dataset.smk``): input ``chunks`` (download chunk dirs), ``urls`` (urls.parquet),
optional ``eval_sets`` (rule-built roots, only for the DAG); params ``eval_sets`` (dict), ``hamming_threshold``,
``decontam_threshold``, ``representative``, ``skipped`` (all resolved config, no fallbacks here); output ``keep``, ``removed``,
``drop``, ``counts``, ``urls``, ``eval_hashes`` (schemas: ``lib.data.image_dedup.DedupResult`` and
docs/CONTRACTS.md).
"""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from _helpers import configure_logging, rule_entry, write_json, write_parquet
from lib.data.download_outcomes import download_dirs
from lib.data.image_dedup import dedup_downloads

log = logging.getLogger("entitynet.dedup_decontaminate")


def split_eval_sets(eval_sets: Mapping[str, str], base: str | os.PathLike = ".") -> tuple[dict, dict]:
    """``(present, missing)``: the eval sets whose root exists (relative roots resolved against ``base``) and the
    others, both ``{name: root}`` in the given order."""
    present, missing = {}, {}
    for name, root in eval_sets.items():
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise ValueError(f"eval set {name!r}: root must be a path, got {root!r}")
        (present if (Path(base) / root).exists() else missing)[str(name)] = str(root)
    return present, missing


def main(snakemake) -> None:
    configure_logging(snakemake)
    p = snakemake.params
    eval_sets = dict(p.eval_sets)
    present, missing = split_eval_sets(eval_sets)
    for name, root in missing.items():
        log.warning("eval set %r: root %s does not exist; NOT decontaminated against it (counted as missing)",
                    name, root)
    dirs = download_dirs(snakemake.input.chunks)
    log.info("hashing %d download folder(s); eval sets: %s; missing: %s", len(dirs), sorted(present),
             sorted(missing))
    result = dedup_downloads(dirs, present, int(p.hamming_threshold), int(p.decontam_threshold),
                             representative=p.representative, processes=int(snakemake.threads),
                             urls=pd.read_parquet(snakemake.input.urls))
    counts = result.counts
    counts["eval_sets_missing"] = sorted(missing)
    counts["eval_set_roots"] = {**present, **missing}
    skipped = [str(n) for n in p.skipped]
    counts["eval_sets_skipped"] = sorted(skipped)
    counts["eval_set_status"] = {**{name: ("ok" if name in present else "missing") for name in eval_sets},
                                 **{name: "skipped" for name in skipped}}
    counts["n_download_dirs"] = len(dirs)
    out = snakemake.output
    for name in ("keep", "removed", "drop", "eval_hashes", "urls"):
        write_parquet(getattr(result, name), getattr(out, name))
    write_json(counts, out.counts)
    log.info("dedup_decontaminate: %s", {k: v for k, v in counts.items() if not isinstance(v, (list, dict))})


if __name__ == "__main__":
    rule_entry(main, globals())
