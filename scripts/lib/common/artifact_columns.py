"""Column lists of the artifacts that several modules write or read: one home, checked against docs/CONTRACTS.md.

A library module (no rule entry). Writers build their frames with these lists; readers validate with them; the test
``tests/unit/test_artifact_columns.py`` reads the contract document and fails when the two drift apart.
"""
from __future__ import annotations

#: ``results/{dataset}/search/{backend}/chunk_{i}.parquet``: one raw image-search hit per row
HIT_COLUMNS: tuple[str, ...] = ("query_id", "backend", "rank", "image_url", "page_url", "alt_text", "width",
                                "height", "licence")

#: ``results/{dataset}/{model}/eval.csv``: one row per (benchmark, metric)
EVAL_COLUMNS: tuple[str, ...] = ("dataset", "model", "benchmark", "task", "metric", "value", "variant",
                                 "n_variants", "samples_seen", "macs_1e18", "status")
#: ``eval.csv`` ``status`` values: ``ok`` has a value; ``missing`` (root absent) and ``skipped``
#: (``evaluation.skip``) have none
EVAL_STATUSES: tuple[str, ...] = ("ok", "missing", "skipped")

#: the dataset card's plots, ``results/{dataset}/card/{plot}.png``
CARD_PLOTS: tuple[str, ...] = ("root_classes", "query_kinds", "download_status", "texts_per_image", "alt_text",
                               "top_entities", "licences", "dedup")
