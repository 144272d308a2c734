"""Render an eval.json as Markdown tables (used to write the README's results section).

python scripts/results_table.py results/history/lfw-dev/eval.json
"""

from __future__ import annotations

import json
import sys


def pct(x: dict) -> str:
    return f"{100 * x['mean']:.0f} %" + (f" ± {100 * x['std']:.0f}" if x.get("std") else "")


def main(path: str) -> None:
    r = json.load(open(path))
    print(f"{r['faces']} faces, {r['identities']} identities; protected users: {', '.join(r['users'])}.")
    print(f"Target-bank identities among tracker classes: {', '.join(r['target_bank_overlap']) or 'none'}.")
    secs = ", ".join(f"{k}: {v:.1f} s" for k, v in r["cloak_seconds_per_face"].items())
    dss = ", ".join(f"{k}: {v['mean']:.4f}" for k, v in r["dssim"].items())
    print(f"Cloak seconds per face (median): {secs}. Mean DSSIM: {dss}.\n")
    print("| scenario | condition | tracker | tracker model | protection | baseline protection | normal acc. | baseline acc. |")
    print("|---|---|---|---|---|---|---|---|")
    for row in r["rows"]:
        print(
            f"| {row['scenario']} | {row['variable']}={row['value']} | {row['tracker']} | {row['tracker_extractor']} | "
            f"{pct(row['protection'])} | {pct(row['baseline_protection'])} | {100 * row['normal_accuracy']['mean']:.1f} % | "
            f"{100 * row['baseline_normal_accuracy']['mean']:.1f} % |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
