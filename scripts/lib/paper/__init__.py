"""Paper outputs from eval.csv files: scores and aggregates (`eval_scores`), the ablation table (`tables`), Fig. 1
(`fig1`); the report's HTML pages (`report_pages`). The rule entries `scripts/ablation_table.py`,
`scripts/plot_fig1.py` and `scripts/report_html.py` call them."""
