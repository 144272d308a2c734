"""Plot protection against visibility from a bench_protection JSON with budget variants.

    python -m benchmarks.plot_protection_curve results/protection/curve.json [--out results/protection/curve.png]

Two panels: protection per tracker against the faces' worst-scale DSSIM (median) and against
their SSIMULACRA2 (median), one point per budget, so a user can choose a mode knowingly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    data = json.loads(Path(args.json).read_text())
    rows = [r for r in data["rows"] if "dssim_budget=" in r["variant"]]
    rows.sort(key=lambda r: r["dssim med"])
    trackers = [k for k in rows[0] if k.endswith(("linear", "similarity")) or "jpeg" in k]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for key in trackers:
        ys = [100 * r[key] for r in rows]
        style = "--" if "jpeg" in key else "-"
        axes[0].plot([r["dssim med"] for r in rows], ys, style, marker="o", label=key)
        axes[1].plot([r["s2 med"] for r in rows], ys, style, marker="o", label=key)
    axes[0].set_xlabel("face DSSIM, worst scale (median)")
    axes[1].set_xlabel("SSIMULACRA2 of the face (median; 90 = visually lossless)")
    axes[1].invert_xaxis()
    axes[0].set_ylabel("protection (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        for m, x in (("mid", 0.007),):
            if ax is axes[0]:
                ax.axvline(x, color="grey", lw=0.8)
                ax.text(x, 2, f" {m}", color="grey")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Protection against visibility, lfw-dev, 8 users (budgets 0.002–0.02, no floor)")
    fig.tight_layout()
    out = Path(args.out or Path(args.json).with_suffix(".png"))
    fig.savefig(out, dpi=100)
    print(f"written {out}")


if __name__ == "__main__":
    main()
