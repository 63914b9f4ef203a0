"""Paper outputs from eval.csv files: scores and aggregates (`eval_scores`), the ablation table (`tables`), Fig. 1
(`fig1`). The rule entries `scripts/ablation_table.py` and `scripts/plot_fig1.py` call them."""
