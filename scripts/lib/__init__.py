"""Libraries of the workflow, grouped by stage; the rule entries in ``scripts/`` import them, never the reverse.

- ``common``: config checks (``workflow_config``), artifact column lists, HTTP retry timing and the cached HTTP
  client, the console of a run.
- ``kg``: SPARQL client and queries, the LLM client and the LLM-mode prompts.
- ``search``: web image-search backends and the local search pool.
- ``data``: perceptual-hash dedup and decontamination.
- ``train``: the open_clip wrapper run by torchrun, the fast data paths, the text sampler, multi-node set-up, MACs.
- ``eval``: the clip_benchmark wrapper run as a subprocess.
"""
