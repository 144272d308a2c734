"""Turn an evaluation's rows into a terminal table, a JSON file and PNG plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
logging.getLogger("matplotlib").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402


def table_rows(result: dict) -> list[list[str]]:
    out = []
    for r in result["rows"]:
        out.append(
            [
                r["scenario"],
                f"{r['variable']}={r['value']}",
                r["tracker"],
                r["tracker_extractor"],
                f"{r['protection']['mean']:.0%} ± {r['protection']['std']:.0%}",
                f"{r['baseline_protection']['mean']:.0%}",
                f"{r['normal_accuracy']['mean']:.1%}",
                f"{r['baseline_normal_accuracy']['mean']:.1%}",
            ]
        )
    return out


HEADER = ["scenario", "condition", "tracker", "tracker model", "protection", "baseline prot.", "normal acc.", "baseline acc."]


def write_json(result: dict, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def plot(result: dict, out_dir: Path) -> list[Path]:
    """One PNG per swept scenario: protection and normal accuracy against the swept variable."""
    paths = []
    by_scenario: dict[str, list[dict]] = {}
    for r in result["rows"]:
        by_scenario.setdefault(r["scenario"], []).append(r)
    for scenario, rows in by_scenario.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(f"{r['tracker']} / {r['tracker_extractor']}", []).append(r)
        for label, rs in groups.items():
            xs = [str(r["value"]) for r in rs]  # categorical axis: sweeps are not evenly spaced
            ax.plot(xs, [100 * r["protection"]["mean"] for r in rs], marker="o", label=f"protection ({label})")
            ax.plot(xs, [100 * r["normal_accuracy"]["mean"] for r in rs], marker="s", linestyle="--", label=f"normal acc. ({label})")
        ax.set_xlabel(rows[0]["variable"])
        ax.set_ylabel("%")
        ax.set_ylim(-5, 105)
        ax.set_title(f"{scenario}: {Path(result['config']['dataset']).parent.name}/{Path(result['config']['dataset']).name}")
        ax.legend(fontsize=6)
        fig.tight_layout()
        p = out_dir / f"{scenario}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    return paths
