"""Training MACs of the paper's recipe under both conventions of ``evaluation.mac_count``.

    .venv/bin/python perf/macs_counts.py            # ViT-B-32 and ViT-B-16, 18 x 32.7M samples, global batch 8192

Prints, per architecture, the per-sample forward GMACs (image, text, loss) and the training MACs in 1e18 counted
as the authors' calculator does (``authors``, the default, which made the paper's numbers) and as matrix products
only (``matmul``, open_clip's profile convention), and the relative difference. Text at context 77 (the authors'
"fair comparison"). Pure arithmetic on open_clip's shipped model configs: no torch, no GPU, well under a second.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from lib.train import macs  # noqa: E402

#: The paper's recipe: 18 epochs over 32.7M images, 8 GPUs x 1024.
SAMPLES_SEEN = 18 * 32.7e6
GLOBAL_BATCH = 8192


def rows(archs: list[str], samples_seen: float, batch: int, text_context: int) -> list[dict]:
    out = []
    for arch in archs:
        cfg = macs.load_model_config(arch)
        a = macs.authors_forward_macs(cfg, batch, text_context)
        m = macs.forward_macs(cfg, text_context)
        t_a = macs.training_macs(cfg, samples_seen, text_context, "authors", batch)
        t_m = macs.training_macs(cfg, samples_seen, text_context, "matmul")
        out.append({"arch": arch, "authors_image_g": a["image"] / 1e9, "authors_text_g": a["text"] / 1e9,
                    "authors_loss_g": a["loss"] / 1e9, "matmul_image_g": m["image"] / 1e9,
                    "matmul_text_g": m["text"] / 1e9, "authors_1e18": t_a / 1e18, "matmul_1e18": t_m / 1e18,
                    "authors_vs_matmul": t_a / t_m - 1})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="ViT-B-32,ViT-B-16")
    ap.add_argument("--samples-seen", type=float, default=SAMPLES_SEEN)
    ap.add_argument("--batch", type=int, default=GLOBAL_BATCH)
    ap.add_argument("--text-context", type=int, default=77)
    args = ap.parse_args(argv)
    print(f"samples seen {args.samples_seen:.4g}, global batch {args.batch}, text context {args.text_context}")
    print(f"{'arch':10} {'authors GMACs/sample (img+txt+loss)':>36} {'matmul GMACs/sample (img+txt)':>30} "
          f"{'authors 1e18':>13} {'matmul 1e18':>12} {'diff':>7}")
    for r in rows(args.archs.split(","), args.samples_seen, args.batch, args.text_context):
        a = f"{r['authors_image_g']:.4f}+{r['authors_text_g']:.4f}+{r['authors_loss_g']:.4f}"
        m = f"{r['matmul_image_g']:.4f}+{r['matmul_text_g']:.4f}"
        print(f"{r['arch']:10} {a:>36} {m:>30} {r['authors_1e18']:13.3f} {r['matmul_1e18']:12.3f} "
              f"{r['authors_vs_matmul']:+7.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
