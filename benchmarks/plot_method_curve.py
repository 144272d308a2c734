"""Protection against SSIMULACRA2 for two cloak methods side by side, from bench_protection JSONs with budget variants.

    python -m benchmarks.plot_method_curve results/protection/mid-24-old.json results/protection/mid-24-new.json \
        results/protection/curve-24-0.012.json --old-default results/protection/curve-24-gpu-0.02.json \
        --out results/protection/curve-24.png

Rows whose variant has ``leave=own`` are the old method (each photo toward one photo of its
target, away from its own features); rows with ``floor_in_loop=`` are the new objective with
SSIMULACRA2 held inside the loop as a constraint (#38's loop); rows with ``ssimulacra2_floor=0``
the new objective without a floor; every other cloaked row is the new objective with the floor
reached by shrinking the change after the loop (the default's loop). Rows without a cloak (``none``) are left out. ``--old-default FILE`` names a
JSON measured while the old method was the default: its rows without ``leave=`` are old.
One panel per tracker; each point is one budget (or mode), with its 95 % interval over users.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PANELS = ("sface linear", "sface similarity", "dlib-native linear", "dlib-native similarity")


def _ci(row: dict, key: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in str(row.get(f"{key} ci", "nan-nan")).split("-"))
    return lo, hi


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser()
    ap.add_argument("json", nargs="+")
    ap.add_argument("--old-default", nargs="*", default=[], help="JSONs measured when the old method was the default")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for p in [*args.json, *args.old_default]:
        for r in json.loads(Path(p).read_text())["rows"]:
            if "s2 med" in r and r["variant"] != "none":
                legacy = p in args.old_default and "leave=" not in r["variant"]
                v = r["variant"]
                method = (
                    "old"
                    if "leave=own" in v or legacy
                    else "loop"
                    if "floor_in_loop=" in v
                    else "nofloor"
                    if "ssimulacra2_floor=0" in v
                    else "new"
                )
                rows.append({**r, "method": method})
    panels = [k for k in PANELS if any(k in r for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), sharey=True)
    for ax, key in zip(axes, panels):
        for label, method, colour in (
            ("old: own features, one target photo", "old", "tab:grey"),
            ("new objective, no floor", "nofloor", "lightsteelblue"),
            ("new objective, floor by shrinking (old loop)", "new", "tab:blue"),
            ("new objective, floor held in the loop (new loop)", "loop", "tab:orange"),
        ):
            mine = sorted((r for r in rows if key in r and r["method"] == method), key=lambda r: -r["s2 med"])
            if not mine:
                continue
            xs = [r["s2 med"] for r in mine]
            ys = [100 * r[key] for r in mine]
            lo = [100 * (r[key] - _ci(r, key)[0]) for r in mine]
            hi = [100 * (_ci(r, key)[1] - r[key]) for r in mine]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=colour, label=label)
        ax.axvline(80, color="tab:red", lw=0.8, ls="--")
        ax.text(80, 95, " SSIMULACRA2 80", color="tab:red", fontsize=8)
        ax.set_title(key)
        ax.set_xlabel("SSIMULACRA2 of the face (median)")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("protection (%), 95 % interval over users")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Protection against visibility, lfw-dev, 24 users: old and new objective, old and new loop")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
