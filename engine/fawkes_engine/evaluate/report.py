"""Turn an evaluation's rows into a terminal table, a JSON file and PNG plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
logging.getLogger("matplotlib").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402


def is_transfer_row(scenario: str) -> bool:
    """Rows of the leave-one-model-out table (white-box, transfer, transfer after JPEG): shown in their own table."""
    return scenario in ("transfer", "whitebox") or scenario.startswith("transfer-jpeg")


def table_rows(result: dict) -> list[list[str]]:
    out = []
    for r in result["rows"]:
        if r["scenario"] == "detection" or is_transfer_row(r["scenario"]):
            continue
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
DETECTION_HEADER = [
    "tracker model",
    "mitigation",
    "closeness detected",
    "closeness z",
    "closeness FP",
    "two-cluster detected",
    "two-cluster FP",
    "protection",
]


def detection_table_rows(result: dict) -> list[list[str]]:
    return [
        [
            r["tracker_extractor"],
            str(r["value"]),
            f"{r['closeness_detected']:.0%}",
            f"{r['closeness_z']['mean']:+.2f}",
            f"{r['closeness_false_positive']:.0%}",
            f"{r['two_cluster_detected']:.0%}",
            f"{r['two_cluster_false_positive']:.0%}",
            f"{r['protection']['mean']:.0%}",
        ]
        for r in result["rows"]
        if r["scenario"] == "detection"
    ]


TRANSFER_HEADER = [
    "cloak variant",
    "tracker model",
    "tracker",
    "kind",
    "protection PNG",
    "protection JPEG",
    "normal acc.",
    "baseline acc.",
    "DSSIM",
    "s / face",
]


def transfer_table_rows(result: dict) -> list[list[str]]:
    """Leave-one-model-out table: one line per cloak variant × tracker, PNG and JPEG side by side."""
    lines: dict[tuple, dict] = {}
    for r in result["rows"]:
        sc = r["scenario"]
        if not is_transfer_row(sc):
            continue
        kind = "white-box" if sc == "whitebox" else "transfer"
        key = (r["value"], r["tracker_extractor"], r["tracker"], kind)
        slot = lines.setdefault(key, {"cloak": r["cloak"]})
        slot["jpeg" if sc.startswith("transfer-jpeg") else "png"] = r
    out = []
    for (label, view, tracker, kind), slot in lines.items():
        png, jpg = slot.get("png"), slot.get("jpeg")
        ck = slot["cloak"]["key"] if slot["cloak"] else ""
        dssim = result.get("dssim", {}).get(ck, {}).get("mean")
        secs = result.get("cloak_seconds_per_face", {}).get(ck)
        out.append(
            [
                label,
                view,
                tracker,
                kind,
                f"{png['protection']['mean']:.0%}" if png else "",
                f"{jpg['protection']['mean']:.0%}" if jpg else "",
                f"{png['normal_accuracy']['mean']:.1%}" if png else "",
                f"{png['baseline_normal_accuracy']['mean']:.1%}" if png else "",
                f"{dssim:.4f}" if dssim is not None else "",
                f"{secs:.1f}" if secs is not None else "",
            ]
        )
    return out


def plot_sybil(result: dict, out_dir: Path) -> list[Path]:
    """Like the paper's Figs. 10–11: protection against the leaked share, without and with Sybil photos."""
    rows = [r for r in result["rows"] if r["scenario"] == "leaked" or r["scenario"].startswith("leaked+sybil")]
    if not any(r["scenario"] != "leaked" for r in rows):
        return []
    paths = []
    for view in sorted({r["tracker_extractor"] for r in rows}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for scenario in sorted({r["scenario"] for r in rows}):
            rs = [r for r in rows if r["scenario"] == scenario and r["tracker_extractor"] == view]
            label = "no Sybil" if scenario == "leaked" else scenario.replace("leaked+sybil", "Sybil photos per user photo: ")
            ax.plot([100 * r["value"] for r in rs], [100 * r["protection"]["mean"] for r in rs], marker="o", label=label)
        ax.set_xlabel("clean (leaked) share of the user's training photos, %")
        ax.set_ylabel("protection, %")
        ax.set_title(f"leaked photos and Sybil identities: linear tracker on {view}")
        paths.append(_finish(fig, ax, out_dir / f"sybil-{view}.png", legend_size=7))
    return paths


def _finish(fig, ax, path: Path, legend_size: int) -> Path:
    """The common tail of every plot: percent axis, legend, save, free the figure."""
    ax.set_ylim(-5, 105)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_json(result: dict, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def plot(result: dict, out_dir: Path) -> list[Path]:
    """One PNG per swept scenario: protection and normal accuracy against the swept variable."""
    paths = []
    by_scenario: dict[str, list[dict]] = {}
    for r in result["rows"]:
        if r["scenario"] != "detection" and not is_transfer_row(r["scenario"]):
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
        ax.set_title(f"{scenario}: {Path(result['config']['dataset']).parent.name}/{Path(result['config']['dataset']).name}")
        paths.append(_finish(fig, ax, out_dir / f"{scenario}.png", legend_size=6))
    return paths + plot_sybil(result, out_dir)
