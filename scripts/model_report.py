"""Per-model report from eval.csv: a Markdown table and a bar chart (rule ``model_report``)."""

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from _helpers import atomic_path, configure_logging, rule_entry, write_text  # noqa: E402

log = logging.getLogger("entitynet.model_report")


def markdown_table(df: pd.DataFrame) -> str:
    lines = ["| benchmark | metric | value (%) | best variant | variants | status |", "|---|---|---|---|---|---|"]
    for r in df.itertuples(index=False):
        val = "–" if pd.isna(r.value) else f"{100 * float(r.value):.1f}"
        lines.append(f"| {r.benchmark} | {r.metric} | {val} | {r.variant if isinstance(r.variant, str) else '–'} | "
                     f"{int(r.n_variants)} | {r.status} |")
    head = df.iloc[0] if len(df) else None
    title = f"# {head.dataset} / {head.model}\n\n" if head is not None else ""
    meta = (f"Samples seen: {int(head.samples_seen):,}; training cost: "
            f"{'–' if pd.isna(head.macs_1e18) else f'{float(head.macs_1e18) * 1e18:.3g}'} MACs "
            "(3 × samples seen × forward MACs, text tower at context 77).\n\n") if head is not None else ""
    return title + meta + "\n".join(lines) + "\n"


def bar_chart(df: pd.DataFrame, out_png: str) -> None:
    ok = df[df["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(ok) + 2), 3.5))
    labels = [f"{b}\n{m}" for b, m in zip(ok["benchmark"], ok["metric"])]
    ax.bar(range(len(ok)), 100 * ok["value"].astype(float), color="#1f77b4", edgecolor="black")
    ax.set_xticks(range(len(ok)), labels, fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    if len(df):
        ax.set_title(f"{df.iloc[0]['dataset']} / {df.iloc[0]['model']}: zero-shot results (best prompt variant)")
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(snakemake) -> None:
    configure_logging(snakemake)
    df = pd.read_csv(snakemake.input.eval_csv)
    write_text(markdown_table(df), snakemake.output.table)
    bar_chart(df, snakemake.output.figure)


if __name__ == "__main__":
    rule_entry(main, globals())
