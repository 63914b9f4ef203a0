"""HTML for the Snakemake report: HTML twins of the Markdown outputs and a one-page overview per dataset.

Rules (rules/report.smk):

* ``markdown_html`` twins (``card_html``, ``eval_table_html``, ``ablation_html``): the Markdown file as a standalone
  HTML page, its images embedded (:func:`lib.paper.report_pages.markdown_page`).
* ``dataset_overview``: ``results/{dataset}/overview.html``: dataset size, query kinds, download status, each
  evaluated model's eval table and the figures, on one page (:func:`lib.paper.report_pages.overview_page`).

One entry function per page kind (``markdown_html``, ``dataset_overview``); ``main`` picks it by the rule's name
from ``PAGES``.
"""

import logging
from pathlib import Path

from _helpers import configure_logging, rule_entry, write_text
from lib.paper.report_pages import markdown_page, overview_page

log = logging.getLogger("entitynet.report_html")


def markdown_html(snakemake) -> str:
    """Rules ``card_html``, ``eval_table_html``, ``ablation_html``: input.md as its standalone HTML twin."""
    return markdown_page(snakemake.input.md)


def dataset_overview(snakemake) -> str:
    """Rule ``dataset_overview``: the dataset's overview page (card.json, the models' eval tables and figures)."""
    models = list(snakemake.params.models)
    tables = dict(zip(models, snakemake.input.eval_tables))
    figures = dict(zip(models, snakemake.input.eval_figures))
    return overview_page(snakemake.wildcards.dataset, snakemake.input.card_json,
                         Path(snakemake.input.card_json).parent, tables, figures, snakemake.params.description)


#: Rule name -> the function that makes its page (this script serves these rules only, rules/report.smk).
PAGES = {
    "card_html": markdown_html,
    "eval_table_html": markdown_html,
    "ablation_html": markdown_html,
    "dataset_overview": dataset_overview,
}


def main(snakemake):
    configure_logging(snakemake)
    if snakemake.rule not in PAGES:
        raise ValueError(f"report_html.py serves the rules {sorted(PAGES)}, not {snakemake.rule!r}")
    out = snakemake.output[0]
    text = PAGES[snakemake.rule](snakemake)
    write_text(text, out)
    log.info("%s: %d bytes", out, len(text))


if __name__ == "__main__":
    rule_entry(main, globals())
