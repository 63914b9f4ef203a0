"""One home for the artifact column lists (scripts/lib/common/artifact_columns.py), checked against docs/CONTRACTS.md.

Bugs these catch: a writer or reader that keeps its own copy of a column list (they drifted before: the
evaluation wrote ``skipped`` rows that the paper-table reader rejected as an unknown status), and code that changes
a column without the contract document.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from lib.common import artifact_columns as ac
from lib.data import dataset_card
from lib.eval import suite_evaluation
from lib.paper import eval_scores
import search
from lib.search import search_web

CONTRACTS = (Path(__file__).resolve().parents[2] / "docs" / "CONTRACTS.md").read_text()


def _section(title: str) -> str:
    start = CONTRACTS.index(f"## {title}\n")
    end = CONTRACTS.find("\n## ", start + 1)
    return CONTRACTS[start:end if end > 0 else None]


def _first_code_list(text: str) -> list[str]:
    """The first backquoted, comma-separated column list of a section; parenthesised notes are dropped."""
    for code in re.findall(r"`([^`]+)`", text):
        plain = re.sub(r" \([^)]*\)", "", code)
        if "," in plain:
            return [c.strip() for c in plain.split(",")]
    raise AssertionError("no column list in the section")


def test_hit_columns_match_the_contract_and_every_user():
    assert _first_code_list(_section("search/{backend}/chunk_{i}.parquet")) == list(ac.HIT_COLUMNS)
    assert search.HIT_COLUMNS is ac.HIT_COLUMNS and search_web.HIT_COLUMNS is ac.HIT_COLUMNS


def test_eval_columns_and_statuses_match_the_contract_and_every_user():
    section = _section("eval.csv")
    assert _first_code_list(section) == list(ac.EVAL_COLUMNS)
    documented = set(re.findall(r"`(ok|missing|skipped|[a-z]+)`(?= \(|,| or )", section.split("(`status` is", 1)[1]))
    assert set(ac.EVAL_STATUSES) <= documented | {"ok"}
    assert suite_evaluation.EVAL_COLUMNS is ac.EVAL_COLUMNS and eval_scores.EVAL_COLUMNS is ac.EVAL_COLUMNS
    assert dataset_card.PLOTS == list(ac.CARD_PLOTS)


def test_the_paper_tables_read_a_skipped_benchmark_as_absent():
    """The evaluation writes ``skipped`` rows for ``evaluation.skip``; the table reader must take them."""
    base = dict(dataset="d", model="m", task="zeroshot_classification", variant="", n_variants=1,
                samples_seen=1e6, macs_1e18=0.1)
    df = pd.DataFrame([{**base, "benchmark": "cars", "metric": "acc1", "value": 0.5, "status": "ok"},
                       {**base, "benchmark": "imagenet1k", "metric": "acc1", "value": None, "status": "skipped"}],
                      columns=list(ac.EVAL_COLUMNS))
    out = eval_scores.validate_eval(df)
    assert list(out["status"]) == ["ok", "skipped"]
    df.loc[1, "value"] = 0.3
    try:
        eval_scores.validate_eval(df)
    except ValueError as e:
        assert "but a value" in str(e)
    else:
        raise AssertionError("a skipped row with a value was accepted")
